"""IMP with rewinding inside ER masks: schedule, rewinding, resuming, errors."""

import math

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

import keras_er
from keras_er.callbacks import IMP, CyclicCosine
from keras_er.callbacks.imp import _count_schedule
from keras_er.optimizer_state import slot_variables
from keras_er.mask_io import er_layers
from tests.conftest import Interrupt, mlp, to_numpy


def digits(n=None):
    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int32")
    return (x, y) if n is None else (x[:n], y[:n])


def sparse_digits_mlp(density=0.5, seed=0, hidden=64):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(10),
    ])
    return keras_er.sparsify(model, ratio="er", density=density, seed=seed)


def n_weights(model):
    return sum(int(np.prod(l.mask.shape)) for l in er_layers(model))


def n_kept(model):
    return sum(int(to_numpy(l.mask).sum()) for l in er_layers(model))


class Recorder(keras.callbacks.Callback):
    """Copies masks, weights and optimizer slots at every epoch end."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        layers = er_layers(self.model)
        optimizer = self.model.optimizer
        self.epochs.append({
            "logs": dict(logs or {}),
            "masks": [to_numpy(l.mask).copy() for l in layers],
            "kernels": [to_numpy(l._kernel).copy() for l in layers],
            "biases": [to_numpy(l.bias).copy() for l in layers],
            "slots": [to_numpy(s).copy() for v in self.model.trainable_variables
                      for s in slot_variables(optimizer, v)],
        })


@pytest.mark.slow
def test_imp_on_digits_follows_the_schedule_rewinds_and_learns():
    x, y = digits()
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
    model = sparse_digits_mlp(density=0.5)
    layers = er_layers(model)
    total, start = n_weights(model), n_kept(model)
    er_masks = [to_numpy(l.mask).copy() for l in layers]
    init_kernels = [to_numpy(l._kernel).copy() for l in layers]
    init_biases = [to_numpy(l.bias).copy() for l in layers]
    epochs_per_cycle, fraction, target = 2, 0.3, 0.15
    batch = 64
    steps = math.ceil(len(x_train) / batch)
    model.compile(
        keras.optimizers.SGD(
            CyclicCosine(0.1, 0.01, epochs_per_cycle * steps), momentum=0.9
        ),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    imp = IMP(target, fraction, epochs_per_cycle)
    recorder = Recorder()
    epochs = IMP.total_epochs(model, target, fraction, epochs_per_cycle)
    plan = IMP.density_schedule(start / total, target, fraction)
    assert epochs == len(plan) * epochs_per_cycle
    model.fit(x_train, y_train, batch_size=batch, epochs=epochs, verbose=0,
              callbacks=[imp, recorder])

    n = len(plan) - 1
    assert n >= 3
    previous = er_masks
    for epoch, record in enumerate(recorder.epochs):
        cycle = epoch // epochs_per_cycle
        # Logs describe the epoch just trained.
        assert record["logs"]["imp_cycle"] == cycle
        trained = record["logs"]["density"]
        if cycle < n:
            assert abs(trained - start / total * (1 - fraction) ** cycle) \
                <= 1 / total
        else:
            assert abs(trained - target) <= 0.5 / total
        # Masks shrink inside the previous ones; masked weights stay zero.
        for mask, old, kernel in zip(record["masks"], previous,
                                     record["kernels"]):
            assert np.all(mask <= old)
            assert np.all(kernel[mask == 0] == 0)
        previous = record["masks"]
        boundary = (epoch + 1) % epochs_per_cycle == 0 and cycle < n
        if boundary:
            # Right after a pruning: survivors back at init, slots zeroed.
            for kernel, mask, init in zip(record["kernels"], record["masks"],
                                          init_kernels):
                np.testing.assert_array_equal(kernel, init * mask)
            for bias, init in zip(record["biases"], init_biases):
                np.testing.assert_array_equal(bias, init)
            assert all(not s.any() for s in record["slots"])
        else:
            assert any(s.any() for s in record["slots"])
    assert n_kept(model) == max(1, round(target * total))
    assert imp.cycle == n
    # The IMP state is detached after fit, the model is unchanged otherwise.
    assert not hasattr(model, "_keras_er_imp_state")
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    assert accuracy > 0.6  # Chance is 0.1.


def test_rewind_to_step_layerwise_kernels_only_with_adam():
    x, y = digits(320)
    model = sparse_digits_mlp(density=0.6, hidden=32)
    layers = er_layers(model)
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rewind_step = 3
    snapshot = {}

    class AtStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(to_numpy(self.model.optimizer.iterations)) == rewind_step:
                snapshot["kernels"] = [to_numpy(l._kernel).copy()
                                       for l in layers]
                snapshot["biases"] = [to_numpy(l.bias).copy() for l in layers]

    imp = IMP(0.3, 0.25, epochs_per_cycle=1, rewind=rewind_step,
              scope="layerwise", rewind_weights="kernels")
    recorder = Recorder()
    counts = [[int(to_numpy(l.mask).sum()) for l in layers]]
    model.fit(x, y, batch_size=32, epochs=2, verbose=0,
              callbacks=[imp, AtStep(), recorder])
    first = recorder.epochs[0]
    counts.append([int(m.sum()) for m in first["masks"]])
    # Layerwise: every layer keeps ~75 % of its weights (rounding to 1).
    for before, after in zip(*counts):
        assert abs(after - 0.75 * before) <= 1
    for kernel, mask, snap in zip(first["kernels"], first["masks"],
                                  snapshot["kernels"]):
        np.testing.assert_array_equal(kernel, snap * mask)
    # Biases are not rewound with rewind_weights="kernels".
    assert any(not np.array_equal(b, s)
               for b, s in zip(first["biases"], snapshot["biases"]))
    assert all(not s.any() for s in first["slots"])  # Adam m and v reset.


def _imp_run(tmp_path, name, order, seed=0, interrupt=None):
    x, y = digits(256)
    model = sparse_digits_mlp(density=0.5, seed=seed, hidden=32)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    imp = IMP(0.1, 0.5, epochs_per_cycle=2)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / name))
    callbacks = [imp, backup] if order == "imp_first" else [backup, imp]
    if interrupt is not None:
        callbacks.append(Interrupt(interrupt))
    epochs = IMP.total_epochs(0.5, 0.1, 0.5, 2)
    model.fit(x, y, batch_size=64, epochs=epochs, shuffle=False, verbose=0,
              callbacks=callbacks)
    return model


@pytest.mark.slow
def test_resumed_runs_match_the_uninterrupted_run(tmp_path):
    reference = _imp_run(tmp_path, "reference", "imp_first")
    assert n_kept(reference) == max(1, round(0.1 * n_weights(reference)))
    for order, interrupt_at in [
        ("backup_first", 4),  # Checkpoint written before epoch 3's pruning.
        ("imp_first", 3),  # Mid-cycle, after the first pruning.
    ]:
        with pytest.raises(RuntimeError, match="interrupted"):
            _imp_run(tmp_path, order, order, interrupt=interrupt_at)
        # Another seed: masks, weights and the rewind snapshot must all come
        # from the checkpoint, not from this fresh model.
        resumed = _imp_run(tmp_path, order, order, seed=1)
        for ref, res in zip(er_layers(reference), er_layers(resumed)):
            np.testing.assert_array_equal(to_numpy(ref.mask),
                                          to_numpy(res.mask))
            np.testing.assert_allclose(to_numpy(ref._kernel),
                                       to_numpy(res._kernel), atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    start=st.floats(0.02, 1.0),
    ratio=st.floats(0.001, 1.0),
    fraction=st.floats(0.01, 0.95),
    epochs=st.integers(1, 20),
)
def test_density_schedule_properties(start, ratio, fraction, epochs):
    target = start * ratio
    plan = IMP.density_schedule(start, target, fraction)
    assert plan[0] == start
    assert plan[-1] == pytest.approx(target, rel=1e-6)
    for c, density in enumerate(plan[:-1]):
        assert density == pytest.approx(start * (1 - fraction) ** c)
        assert density > target * (1 - 1e-9)  # Fewest cycles that reach it.
    assert all(a >= b for a, b in zip(plan, plan[1:]))
    assert IMP.total_epochs(start, target, fraction, epochs) \
        == len(plan) * epochs


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(10, 10**7),
    start_share=st.floats(0.05, 1.0),
    target_share=st.floats(0.01, 1.0),
    fraction=st.floats(0.05, 0.9),
)
def test_count_schedule_is_nonincreasing_and_lands_on_target(
        total, start_share, target_share, fraction):
    start = max(1, int(start_share * total))
    target = max(1, int(target_share * start)) / total
    counts = _count_schedule(start, total, target, fraction)
    assert counts[0] == start
    assert counts[-1] == min(start, max(1, round(target * total)))
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    for c, count in enumerate(counts[1:-1], start=1):
        assert abs(count - start * (1 - fraction) ** c) <= 0.5 + 1e-9


def test_cyclic_cosine_restarts_every_cycle():
    schedule = CyclicCosine(0.1, 0.01, cycle_steps=10)
    values = [float(to_numpy(schedule(step))) for step in range(30)]
    for cycle in range(3):
        part = values[cycle * 10:(cycle + 1) * 10]
        assert part[0] == pytest.approx(0.1)
        assert all(a > b for a, b in zip(part, part[1:]))
        assert min(part) > 0.01
    restored = CyclicCosine.from_config(schedule.get_config())
    assert float(to_numpy(restored(17))) == pytest.approx(values[17])


BAD_ARGUMENTS = [
    {"prune_fraction": 0.0}, {"prune_fraction": 1.0},
    {"prune_fraction": -0.2}, {"prune_fraction": 1.5},
    {"prune_fraction": float("nan")}, {"prune_fraction": "a"},
    {"prune_fraction": True},
    {"target_density": 0.0}, {"target_density": 1.5},
    {"target_density": -0.1}, {"target_density": "x"},
    {"target_density": None},
    {"epochs_per_cycle": 0}, {"epochs_per_cycle": 1.5},
    {"epochs_per_cycle": True},
    {"rewind": "start"}, {"rewind": -1}, {"rewind": 1.5}, {"rewind": None},
    {"rewind": True},
    {"scope": "local"}, {"scope": None},
    {"rewind_weights": "biases"},
]


def test_bad_arguments_raise_and_config_round_trips():
    # One test, not a parametrization: the per-test session reset is slow.
    for kwargs in BAD_ARGUMENTS:
        with pytest.raises(ValueError):
            IMP(**{"target_density": 0.1, **kwargs})
    with pytest.raises(ValueError):
        IMP.density_schedule(0.3, 0.1, 1.0)
    with pytest.raises(ValueError):
        CyclicCosine(0.1, 0.01, cycle_steps=0)
    with pytest.raises(ValueError):
        CyclicCosine(0.0, 0.01, cycle_steps=5)
    imp = IMP(0.2, 0.3, epochs_per_cycle=4, rewind=7, scope="layerwise")
    assert IMP.from_config(imp.get_config()).get_config() == imp.get_config()


def test_model_errors_raise():
    with pytest.raises(ValueError, match="keras_er layers"):
        IMP(0.1).set_model(mlp())
    sparse = keras_er.sparsify(mlp(), ratio="er", density=0.3, seed=0)
    with pytest.raises(ValueError, match="above"):
        IMP(0.5).set_model(sparse)
    with pytest.raises(ValueError, match="above"):
        IMP.total_epochs(sparse, 0.5, 0.2, 1)
    # The rewind step must come before the first pruning (2 steps/epoch).
    x, y = digits(128)
    model = sparse_digits_mlp(density=0.5, hidden=16)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    with pytest.raises(ValueError, match="rewind"):
        model.fit(x, y, batch_size=64, epochs=2, verbose=0,
                  callbacks=[IMP(0.2, 0.5, epochs_per_cycle=1, rewind=2)])
