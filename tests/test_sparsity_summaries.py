"""SparsitySummaries: event files that TensorFlow reads back, exact values."""

import glob
import math
import os

import keras
import numpy as np
import pytest

import keras_er
from keras_er.callbacks import (
    IMP, SET, STR, EdgePopup, SparsitySummaries,
)
from keras_er.callbacks import sparsity_summaries as ss
from tests.conftest import mlp, to_numpy

tf = pytest.importorskip("tensorflow")


def read_events(directory):
    """``{step: {tag: value}}`` and the file versions of every event file."""
    steps, versions = {}, []
    for path in sorted(glob.glob(os.path.join(directory, "*tfevents*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            if event.file_version:
                versions.append(event.file_version)
            for value in event.summary.value:
                steps.setdefault(event.step, {})[value.tag] = (
                    value.simple_value
                )
    return steps, versions


def event_steps(directory):
    """The step of every summary event, in file order (repeats kept)."""
    return [
        event.step
        for path in sorted(glob.glob(os.path.join(directory, "*tfevents*")))
        for event in tf.compat.v1.train.summary_iterator(path)
        if event.summary.value
    ]


def data(n=64, dim=20, classes=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, dim)).astype("float32")
    return x, rng.integers(0, classes, size=n)


class MaskRecorder(keras.callbacks.Callback):
    """Copies every mask at each epoch end."""

    def __init__(self):
        super().__init__()
        self.masks = {}

    def on_epoch_end(self, epoch, logs=None):
        self.masks[epoch] = keras_er.get_masks(self.model)


def compiled(model):
    model.compile(
        keras.optimizers.SGD(0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def test_crc32c_matches_the_standard_check_value():
    # The CRC-32C check value of "123456789" (RFC 3720, B.4).
    assert ss.crc32c(b"123456789") == 0xE3069283
    assert ss.crc32c(b"") == 0


def test_writer_round_trips_through_tensorflow(tmp_path):
    writer = ss.EventFileWriter(str(tmp_path))
    writer.add_scalars({"a/b": 0.125, "c": -3.0}, step=7)
    writer.add_scalars({"a/b": 0.25}, step=2**40)
    writer.close()
    steps, versions = read_events(str(tmp_path))
    assert versions == ["brain.Event:2"]
    assert steps == {7: {"a/b": 0.125, "c": -3.0}, 2**40: {"a/b": 0.25}}


def test_tensorboard_reads_the_callback_logs(tmp_path):
    # TensorBoard's own reader (what `tensorboard --logdir` uses) finds the
    # per-layer densities next to Keras' TensorBoard curves.
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    x, y = data()
    model = compiled(keras_er.sparsify(mlp(), "erk", 0.4, seed=0))
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[
        SparsitySummaries(str(tmp_path)),
        keras.callbacks.TensorBoard(str(tmp_path)),
    ])
    runs = {}
    for directory in sorted({os.path.dirname(p) for p in glob.glob(
            os.path.join(str(tmp_path), "**", "*tfevents*"),
            recursive=True)}):
        reader = accumulator.EventAccumulator(directory)
        reader.Reload()
        runs[os.path.relpath(directory, str(tmp_path))] = reader
    sparsity = [r for r in runs.values()
                if any("density" in t for t in r.Tags()["scalars"])]
    assert len(sparsity) == 1
    reader = sparsity[0]
    masks = keras_er.get_masks(model)
    for name, mask in masks.items():
        tags = [t for t in reader.Tags()["scalars"]
                if name in t and "density" in t]
        assert tags, f"no density scalar for {name}"
        last = reader.Scalars(tags[0])[-1].value
        assert last == pytest.approx(mask.mean(), abs=1e-6)
    keras_tags = {t for r in runs.values()
                  for t in r.Tags()["scalars"] + r.Tags()["tensors"]}
    assert any("loss" in t for t in keras_tags)


def test_imp_densities_equal_the_masks(tmp_path):
    model = keras_er.sparsify(mlp(), "balanced", density=0.5, seed=0)
    compiled(model)
    imp = IMP(target_density=0.2, prune_fraction=0.5, epochs_per_cycle=1)
    summaries = SparsitySummaries(str(tmp_path))
    recorder = MaskRecorder()
    x, y = data()
    epochs = IMP.total_epochs(model, 0.2, 0.5, 1)
    history = model.fit(
        x, y, batch_size=32, epochs=epochs, verbose=0,
        callbacks=[imp, summaries, recorder],
    )
    steps, _ = read_events(summaries.events_dir)
    assert sorted(steps) == list(range(epochs))
    names = [layer.name for layer in model.layers]
    for epoch, masks in recorder.masks.items():
        logged = steps[epoch]
        for name in names:
            mask = masks[name]
            assert logged[f"density/{name}"] == np.float32(
                mask.sum() / mask.size
            )
        overall = sum(m.sum() for m in masks.values()) / sum(
            m.size for m in masks.values()
        )
        assert logged["density/overall"] == np.float32(overall)
        assert logged["imp/cycle"] == history.history["imp_cycle"][epoch]
        # No STR or edge-popup: no effective density.
        assert not any(tag.startswith("effective") for tag in logged)
    # IMP pruned at every epoch end (this callback runs after it) and ended
    # at the target, up to rounding to whole weights.
    overall = [steps[e]["density/overall"] for e in range(epochs)]
    assert overall == sorted(overall, reverse=True) and overall[0] < 0.5
    assert overall[-1] == pytest.approx(0.2, abs=2e-3)


def test_logs_of_callbacks_listed_after_it_are_logged(tmp_path):
    model = compiled(keras_er.sparsify(mlp(), "uniform", 0.5, seed=0))
    imp = IMP(target_density=0.25, prune_fraction=0.5, epochs_per_cycle=1)
    summaries = SparsitySummaries(str(tmp_path))
    x, y = data()
    history = model.fit(
        x, y, epochs=2, verbose=0, callbacks=[summaries, imp]
    )
    steps, _ = read_events(summaries.events_dir)
    assert [steps[e]["imp/cycle"] for e in (0, 1)] == (
        history.history["imp_cycle"]
    )


def test_str_thresholds_and_effective_density(tmp_path):
    model = keras_er.sparsify(mlp(), "erk", density=0.6, seed=1)
    # A threshold near the weights' magnitude, so some entries are pruned.
    str_cb = STR(s_init=-2.5, s_weight_decay=0.0, fold_at_end=False)
    str_cb.prepare(model)
    compiled(model)
    summaries = SparsitySummaries(str(tmp_path))
    x, y = data()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[str_cb, summaries])
    logged, _ = read_events(summaries.events_dir)
    last = logged[1]
    alive = size = 0
    for layer in model.layers:
        tau = 1.0 / (1.0 + math.exp(-float(to_numpy(layer.str_s))))
        assert last[f"str_threshold/{layer.name}"] == pytest.approx(tau, 1e-6)
        mask = to_numpy(layer.mask)
        kernel = to_numpy(layer._kernel)
        kept = int(((mask > 0) & (np.abs(kernel) > np.float32(tau))).sum())
        assert last[f"effective_density/{layer.name}"] == np.float32(
            kept / mask.size
        )
        # The mask itself does not move until STR folds.
        assert last[f"density/{layer.name}"] == np.float32(
            mask.sum() / mask.size
        )
        alive += kept
        size += mask.size
    assert last["effective_density/overall"] == np.float32(alive / size)
    assert last["effective_density/overall"] < last["density/overall"]


def test_edge_popup_level_and_subnetwork_density(tmp_path):
    model = keras_er.sparsify(mlp(), "uniform", density=0.5, seed=0)
    EdgePopup.prepare(model, seed=0)
    compiled(model)
    edge_popup = EdgePopup(final_density=0.1, levels=2, finalize=False)
    summaries = SparsitySummaries(str(tmp_path))
    history = model.fit(
        *data(), epochs=2, verbose=0, callbacks=[summaries, edge_popup]
    )
    steps, _ = read_events(summaries.events_dir)
    assert [steps[e]["edge_popup/level"] for e in (0, 1)] == (
        history.history["edge_popup_level"]
    )
    for layer in model.layers:
        mask = to_numpy(layer.mask)
        k = int(to_numpy(layer.edge_popup_k))
        assert steps[1][f"effective_density/{layer.name}"] == np.float32(
            k / mask.size
        )
        assert steps[1][f"density/{layer.name}"] == np.float32(mask.mean())
    assert steps[1]["effective_density/overall"] == pytest.approx(0.1, 1e-2)


def test_batch_frequency_uses_optimizer_steps(tmp_path):
    model = compiled(keras_er.sparsify(mlp(), "uniform", 0.3, seed=0))
    summaries = SparsitySummaries(str(tmp_path), update_freq=2)
    x, y = data()
    # 4 batches per epoch, 2 epochs: records every 2 batches and at the
    # epoch ends, with the optimizer step.
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[summaries])
    # One event per step: the epoch-end records replace the batch records
    # of steps 4 and 8.
    assert event_steps(summaries.events_dir) == [2, 4, 6, 8]
    steps, _ = read_events(summaries.events_dir)
    rows = keras_er.summary(model, print_fn=None)
    assert steps[8]["density/overall"] == np.float32(rows[-1]["density"])


def test_rigl_drop_fraction_per_step(tmp_path):
    model = compiled(keras_er.sparsify(mlp(), "erk", 0.3, seed=0))
    rewire = SET(update_every=2, drop_fraction=0.4, end_fraction=0.75)
    summaries = SparsitySummaries(str(tmp_path), update_freq=2)
    # 8 steps: updates at steps 2, 4 and 6 (end step floor(0.75 * 8) = 6).
    model.fit(*data(), batch_size=16, epochs=2, verbose=0,
              callbacks=[summaries, rewire])
    steps, _ = read_events(summaries.events_dir)
    fractions = [u["drop_fraction"] for u in rewire.updates]
    assert [u["step"] for u in rewire.updates] == [2, 4, 6]
    logged = [steps[s]["rigl/drop_fraction"] for s in (2, 4, 6, 8)]
    np.testing.assert_allclose(logged, fractions + fractions[-1:], rtol=1e-6)
    # Cosine decay from 0.4: f(2) = 0.2 (1 + cos(pi / 3)) = 0.3.
    assert logged[0] == pytest.approx(0.3)


def test_plain_layers_count_in_the_overall_density(tmp_path):
    model = keras_er.sparsify(
        mlp(), "uniform", 0.3, dense_layers=("last",), seed=0
    )
    summaries = SparsitySummaries(str(tmp_path))
    compiled(model).fit(*data(), epochs=1, verbose=0, callbacks=[summaries])
    steps, _ = read_events(summaries.events_dir)
    rows = keras_er.summary(model, print_fn=None)
    assert steps[0]["density/overall"] == np.float32(rows[-1]["density"])
    # The dense last layer has its tag too, as in the summary table.
    for row in rows[:-1]:
        assert steps[0][f"density/{row['name']}"] == np.float32(
            row["density"]
        )
    assert steps[0][f"density/{rows[-2]['name']}"] == 1.0


def test_bad_arguments_and_models(tmp_path):
    with pytest.raises(ValueError, match="log_dir"):
        SparsitySummaries("")
    with pytest.raises(ValueError, match="update_freq"):
        SparsitySummaries(str(tmp_path), update_freq=0)
    with pytest.raises(ValueError, match="update_freq"):
        SparsitySummaries(str(tmp_path), update_freq="step")
    assert SparsitySummaries(str(tmp_path), "batch").update_freq == 1
    dense = compiled(mlp())
    with pytest.raises(ValueError, match="no keras_er layers"):
        dense.fit(
            *data(), epochs=1, verbose=0,
            callbacks=[SparsitySummaries(str(tmp_path))],
        )
