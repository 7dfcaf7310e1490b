"""Gradual magnitude pruning inside ER masks (keras_er and tfmot schedules)."""

import os

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

import keras_er
from keras_er.callbacks import MagnitudePruning, schedules
from keras_er.callbacks.magnitude_pruning import allocate, magnitude_masks
from keras_er.mask_io import er_layers
from tests.conftest import Interrupt, mlp, to_numpy


@pytest.fixture(scope="module")
def tfmot():
    # Importing tfmot sets TF_USE_LEGACY_KERAS; keep it from leaking.
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    import tensorflow_model_optimization as module

    if before is None:
        os.environ.pop("TF_USE_LEGACY_KERAS", None)
    else:
        os.environ["TF_USE_LEGACY_KERAS"] = before
    return module


def digits(n):
    data = load_digits()
    return (data.data[:n] / 16.0).astype("float32"), data.target[:n]


def sparse_model(density, seed=0, spe=1):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10),
    ])
    model = keras_er.sparsify(model, ratio="er", density=density, seed=seed)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=spe)
    return model


class StepRecorder(keras.callbacks.Callback):
    """Masks after every training call, keyed by the optimizer step."""

    def __init__(self):
        super().__init__()
        self.masks = {}
        self.epoch_logs = []

    def on_train_begin(self, logs=None):
        self.masks[0] = [to_numpy(l.mask).copy() for l in er_layers(self.model)]

    def on_train_batch_end(self, batch, logs=None):
        step = int(to_numpy(self.model.optimizer.iterations))
        self.masks[step] = [to_numpy(l.mask).copy()
                            for l in er_layers(self.model)]

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_logs.append(dict(logs or {}))


def check_run(recorder, schedule, total):
    """Masks nest and follow the schedule step by step."""
    steps = sorted(recorder.masks)
    kept = {s: sum(int(m.sum()) for m in recorder.masks[s]) for s in steps}
    for before, after in zip(steps, steps[1:]):
        for new, old in zip(recorder.masks[after], recorder.masks[before]):
            assert np.all(new <= old)  # Nested: masked weights never revive.
        # The first batch of fit also prunes at the step it starts from.
        first = before if before == steps[0] else before + 1
        turns = [s for s in range(first, after + 1)
                 if schedule.should_prune(s)]
        if not turns:
            assert kept[after] == kept[before]
            continue
        goal = max(1, round((1 - schedule.sparsity(turns[-1])) * total))
        # The ER start density caps the density: never denser than before.
        assert kept[after] == min(kept[before], goal)
    return kept


SCHEDULES = {
    "tfmot_polynomial": lambda tfmot: tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.1, final_sparsity=0.9, begin_step=4, end_step=36,
        power=3, frequency=4),
    "keras_er_polynomial": lambda tfmot: schedules.PolynomialDecay(
        0.1, 0.9, begin_step=4, end_step=36, power=3, frequency=4),
    "keras_er_constant": lambda tfmot: schedules.ConstantSparsity(
        0.75, begin_step=8, end_step=-1, frequency=4),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_gmp_reaches_the_final_sparsity_on_schedule(tfmot, name):
    schedule_object = SCHEDULES[name](tfmot)
    schedule = schedules.as_pruning_schedule(schedule_object)
    x, y = digits(256)
    model = sparse_model(0.6)
    total = sum(int(np.prod(l.mask.shape)) for l in er_layers(model))
    recorder = StepRecorder()
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False,
              callbacks=[MagnitudePruning(schedule_object), recorder])
    kept = check_run(recorder, schedule, total)
    final = schedule.final_sparsity_value
    last_turn = 36 if name != "keras_er_constant" else 8
    # Before the schedule's sparsity exceeds the ER sparsity, nothing moves.
    assert kept[3] == kept[0]
    for step, count in kept.items():
        if step >= last_turn:
            assert abs(count / total - (1 - final)) <= 0.5 / total
    assert abs(recorder.epoch_logs[-1]["density"] - (1 - final)) \
        <= 0.5 / total


@pytest.mark.skipif(keras.backend.backend() == "torch",
                    reason="Keras' torch trainer needs steps_per_execution=1")
def test_gmp_layerwise_with_steps_per_execution():
    schedule = schedules.PolynomialDecay(0.4, 0.85, begin_step=0,
                                         end_step=30, frequency=5)
    x, y = digits(192)
    model = sparse_model(0.6, spe=4)
    layers = er_layers(model)
    start = [int(to_numpy(l.mask).sum()) for l in layers]
    total = sum(int(np.prod(l.mask.shape)) for l in layers)
    recorder = StepRecorder()
    model.fit(x, y, batch_size=16, epochs=3, verbose=0,
              callbacks=[MagnitudePruning(schedule, scope="layerwise"),
                         recorder])
    # Callbacks only see every 4th step; turns in between still apply.
    assert all(step % 4 == 0 for step in recorder.masks)
    check_run(recorder, schedule, total)
    end = [int(to_numpy(l.mask).sum()) for l in layers]
    assert abs(sum(end) / total - 0.15) <= 0.5 / total
    # Layerwise keeps the ER proportions between layers.
    shares = [e / s for e, s in zip(end, start)]
    prunings = len([s for s in range(31) if schedule.should_prune(s)])
    assert max(shares) - min(shares) <= 2 * prunings / min(start)


@pytest.mark.slow
def test_gmp_resumes_with_backup_and_restore(tmp_path):
    schedule = schedules.PolynomialDecay(0.3, 0.9, begin_step=0,
                                         end_step=40, frequency=4)
    x, y = digits(192)

    def run(name, seed=0, interrupt=False):
        model = sparse_model(0.5, seed=seed)
        callbacks = [keras.callbacks.BackupAndRestore(str(tmp_path / name)),
                     MagnitudePruning(schedule)]
        if interrupt:
            callbacks.append(Interrupt(2))
        model.fit(x, y, batch_size=32, epochs=5, shuffle=False, verbose=0,
                  callbacks=callbacks)
        return model

    reference = run("reference")
    with pytest.raises(RuntimeError, match="interrupted"):
        run("resumed", interrupt=True)
    resumed = run("resumed", seed=1)  # Everything comes from the backup.
    for ref, res in zip(er_layers(reference), er_layers(resumed)):
        np.testing.assert_array_equal(to_numpy(ref.mask), to_numpy(res.mask))


def test_schedules_match_tfmot(tfmot):
    pairs = [
        (tfmot.sparsity.keras.PolynomialDecay(0.1, 0.8, 5, 45, power=2,
                                              frequency=5),
         schedules.PolynomialDecay(0.1, 0.8, 5, 45, power=2, frequency=5)),
        (tfmot.sparsity.keras.ConstantSparsity(0.6, 10, 50, frequency=7),
         schedules.ConstantSparsity(0.6, 10, 50, frequency=7)),
        (tfmot.sparsity.keras.ConstantSparsity(0.3, 0, frequency=3),
         schedules.ConstantSparsity(0.3, 0, frequency=3)),
    ]
    for theirs, ours in pairs:
        converted = schedules.as_pruning_schedule(theirs)
        assert type(converted) is type(ours)
        assert converted.get_config() == ours.get_config()
        for step in range(0, 70, 3):
            prune, sparsity = theirs(step)
            assert bool(prune) == ours.should_prune(step)
            assert float(sparsity) == pytest.approx(ours.sparsity(step),
                                                    abs=1e-6)
        again = type(ours).from_config(ours.get_config())
        assert again(33) == ours(33)


@settings(max_examples=100, deadline=None)
@given(counts=st.lists(st.integers(0, 10**9), min_size=1, max_size=8),
       share=st.floats(0.0, 1.0))
def test_allocate_splits_exactly_and_proportionally(counts, share):
    keep = int(share * sum(counts))
    shares = allocate(keep, counts)
    assert int(shares.sum()) == keep
    total = sum(counts)
    for got, count in zip(shares, counts):
        assert 0 <= got <= count
        if total:
            assert abs(got - count * keep / total) < 1


def test_magnitude_masks_keep_the_largest_unmasked_weights():
    model = keras_er.sparsify(mlp(), ratio="er", density=0.5, seed=3)
    layers = er_layers(model)
    for layer in layers:
        # Distinct magnitudes so the top-k is unique.
        size = int(np.prod(layer._kernel.shape))
        values = np.random.default_rng(size).permutation(size) + 1.0
        layer._kernel.assign(values.reshape(layer._kernel.shape) *
                             np.sign(np.random.default_rng(1).normal(
                                 size=layer._kernel.shape)))
        layer.apply_mask()
    old = [to_numpy(l.mask) for l in layers]
    keep = int(sum(m.sum() for m in old) * 0.4)
    new = magnitude_masks(layers, keep, "global")
    assert sum(int(m.sum()) for m in new) == keep
    kept, dropped = [], []
    for layer, mask, before in zip(layers, new, old):
        assert np.all(mask <= before)
        magnitude = np.abs(to_numpy(layer._kernel))
        kept.append(magnitude[mask == 1])
        dropped.append(magnitude[(before == 1) & (mask == 0)])
    assert np.concatenate(kept).min() > np.concatenate(dropped).max()


def test_bad_arguments_raise():
    bad_schedules = [
        lambda: schedules.PolynomialDecay(0.1, 1.0, 0, 10),
        lambda: schedules.PolynomialDecay(-0.1, 0.5, 0, 10),
        lambda: schedules.PolynomialDecay(0.1, 0.5, -1, 10),
        lambda: schedules.PolynomialDecay(0.1, 0.5, 10, 5),
        lambda: schedules.PolynomialDecay(0.1, 0.5, 0, -1),
        lambda: schedules.PolynomialDecay(0.1, 0.5, 0, 10, frequency=0),
        lambda: schedules.PolynomialDecay(0.1, 0.5, 1.5, 10),
        lambda: schedules.PolynomialDecay(0.1, 0.5, 0, 10, power="x"),
        lambda: schedules.ConstantSparsity(1.2, 0),
        lambda: schedules.ConstantSparsity(0.5, 0, end_step=-2),
        lambda: schedules.ConstantSparsity("x", 0),
        lambda: schedules.as_pruning_schedule(0.5),
        lambda: schedules.as_pruning_schedule("polynomial"),
        lambda: MagnitudePruning(0.9),
        lambda: MagnitudePruning(schedules.ConstantSparsity(0.5, 0),
                                 scope="per_layer"),
    ]
    for make in bad_schedules:
        with pytest.raises(ValueError):
            make()
    with pytest.raises(ValueError, match="keras_er layers"):
        MagnitudePruning(schedules.ConstantSparsity(0.5, 0)).set_model(mlp())
    callback = MagnitudePruning(schedules.ConstantSparsity(0.5, 0, 100, 10))
    again = MagnitudePruning.from_config(callback.get_config())
    assert again.get_config() == callback.get_config()
