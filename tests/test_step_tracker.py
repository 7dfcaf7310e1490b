"""`StepTracker`: callbacks read the optimizer step only when it matters."""

import keras
import numpy as np
import pytest

import keras_er
from keras_er import optimizer_state
from keras_er.callbacks import MagnitudePruning, RiGL
from keras_er.callbacks import schedules
from keras_er.optimizer_state import StepTracker
from tests.conftest import Interrupt, mlp, to_numpy

STEPS = 24


def compiled(spe=1):
    model = keras_er.sparsify(mlp(), "erk", 0.5, seed=0)
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=spe)
    return model


def data(n=STEPS * 8):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 20)).astype("float32"), rng.integers(0, 3, n)


@pytest.fixture
def reads(monkeypatch):
    """Counts the device reads of the optimizer step done by trackers."""
    counted = []
    real = optimizer_state.optimizer_step

    def counting(model):
        counted.append(1)
        return real(model)

    monkeypatch.setattr(optimizer_state, "optimizer_step", counting)
    return counted


def test_bound_counts_batches_since_the_last_read():
    model = compiled()
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(7)
    tracker = StepTracker()
    tracker.reset()
    tracker.batch_begin(0, model)  # The first batch reads the step.
    tracker.batch_end(0)
    assert tracker.upper_bound() == 8
    tracker.batch_begin(1, model)  # steps_per_execution=4: batches 1..4.
    tracker.batch_end(4)
    assert tracker.upper_bound() == 12
    assert tracker.read(model) == 7  # Nothing trained: the bound is loose.
    assert tracker.upper_bound() == 7


@pytest.mark.parametrize("spe", [1, 4])
def test_rigl_reads_the_step_only_around_updates(reads, spe):
    if spe > 1 and keras.backend.backend() == "torch":
        pytest.skip("Keras' torch trainer needs steps_per_execution=1")
    x, y = data()
    rigl = RiGL(update_every=8, data=(x[:16], y[:16]), seed=0)
    compiled(spe).fit(x, y, batch_size=8, epochs=1, verbose=0,
                      callbacks=[rigl])
    # Updates at steps 8 and 16 (24 is past the end fraction, 0.75).
    assert [u["step"] for u in rigl.updates] == [8, 16]
    # One read at the first batch, one per reached update step: not 24.
    assert len(reads) == 1 + STEPS // 8


def test_magnitude_pruning_reads_the_step_only_at_pruning_steps(reads):
    x, y = data()
    schedule = schedules.PolynomialDecay(0.5, 0.8, 0, 16, frequency=8)
    callback = MagnitudePruning(schedule)
    model = compiled()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    # The first batch (step 0 prunes), then steps 8 and 16; the schedule
    # ends at 16, so no read for step 24 and none for the other 21 batches.
    assert len(reads) == 3
    assert callback.density() == pytest.approx(0.2, abs=0.01)


def test_rigl_resumed_by_backup_and_restore_updates_on_time(tmp_path):
    # BackupAndRestore restores the optimizer step in its on_train_begin,
    # after RiGL's: the tracker must read the step at the first batch.
    x, y = data()
    model = compiled()
    rigl = RiGL(update_every=8, data=(x[:16], y[:16]), seed=0,
                total_steps=4 * STEPS)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))

    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0,
                  callbacks=[rigl, backup, Interrupt(0, at="end")])
    resumed = compiled()
    rigl = RiGL(update_every=8, data=(x[:16], y[:16]), seed=0,
                total_steps=4 * STEPS)
    resumed.fit(x, y, batch_size=8, epochs=2, verbose=0,
                callbacks=[rigl, backup])
    # The second epoch is optimizer steps 25..48. The checkpoint says update
    # 24 is done, so 32, 40 and 48 follow. A step read before the restore
    # (0) would put the first update of the resumed run at step 8.
    assert [u["step"] for u in rigl.updates] == [32, 40, 48]
    assert int(to_numpy(resumed.optimizer.iterations)) == 2 * STEPS

