"""`CallbackState`: callback counters saved with the model's weights."""

import numpy as np
import pytest

import keras_er
from keras_er.callbacks.callback_state import CallbackState
from keras_er.mask_io import er_layers
from tests.conftest import mlp, to_numpy


def state(n=3):
    return CallbackState("keras_er_test_state", ("started", "step"),
                         [((n,), "int64"), ((2, 2), "float32")], owner="Test")


def sparse(seed=0):
    return keras_er.sparsify(mlp(), "uniform", 0.5, seed=seed)


def saved(tmp_path, n=3, name="m"):
    """A weights file holding a state with counters (1, 42)."""
    model = sparse()
    s = state(n)
    s.attach(model)
    s.update(started=1, step=42)
    s.arrays[0].assign(np.arange(1, n + 1))
    s.arrays[1].assign(np.full((2, 2), 0.5, "float32"))
    path = str(tmp_path / f"{name}.weights.h5")
    model.save_weights(path)
    return model, s, path


def test_counters_start_at_zero_and_update_by_name():
    s = state()
    assert s.get() == {"started": 0, "step": 0}
    s.update(step=7)
    s.update(started=1)
    assert s.get() == {"started": 1, "step": 7}
    with pytest.raises(KeyError, match="steps"):
        s.update(steps=1)


def test_attached_state_is_saved_but_not_a_model_weight(tmp_path):
    model = sparse()
    n_weights, n_layers = len(model.weights), len(model.layers)
    model, s, path = saved(tmp_path)
    assert len(model.weights) == n_weights and len(model.layers) == n_layers

    # Attached before the load (BackupAndRestore): assigned directly, into a
    # model with other masks.
    other = sparse(seed=1)
    restored = state()
    restored.attach(other)
    other.load_weights(path)
    assert restored.get() == {"started": 1, "step": 42}
    np.testing.assert_array_equal(to_numpy(restored.arrays[0]), [1, 2, 3])
    np.testing.assert_array_equal(to_numpy(restored.arrays[1]),
                                  np.full((2, 2), 0.5))
    assert not restored.resume_pending(True)  # Nothing left pending.


def test_state_loaded_before_attach_is_pending(tmp_path):
    # load_weights before fit: the callback does not exist yet.
    _, _, path = saved(tmp_path)
    other = sparse(seed=1)
    other.load_weights(path)
    resumed = state()
    resumed.attach(other)
    assert resumed.get() == {"started": 0, "step": 0}
    assert resumed.resume_pending(True)
    assert resumed.get() == {"started": 1, "step": 42}
    np.testing.assert_array_equal(to_numpy(resumed.arrays[0]), [1, 2, 3])
    # A new run (resume=False) discards them.
    again = sparse(seed=1)
    again.load_weights(path)
    fresh = state()
    fresh.attach(again)
    assert not fresh.resume_pending(False)
    assert not fresh.resume_pending(True)  # Discarded, not kept.
    assert fresh.get() == {"started": 0, "step": 0}


def test_pending_state_survives_a_save_and_load_round_trip(tmp_path):
    _, _, path = saved(tmp_path)
    middle = sparse(seed=1)
    middle.load_weights(path)  # Pending, no callback.
    copy = str(tmp_path / "copy.weights.h5")
    middle.save_weights(copy)
    last = sparse(seed=2)
    last.load_weights(copy)
    s = state()
    s.attach(last)
    assert s.resume_pending(True) and s.get()["step"] == 42


def test_detached_state_is_not_saved(tmp_path):
    model, s, _ = saved(tmp_path)
    s.detach()
    path = str(tmp_path / "after.weights.h5")
    model.save_weights(path)
    other = sparse()
    other.load_weights(path)
    restored = state()
    restored.attach(other)
    assert not restored.resume_pending(True)
    assert restored.get() == {"started": 0, "step": 0}


def test_a_new_state_takes_over_the_attached_one_as_pending(tmp_path):
    # E.g. a fit that crashed left its callback's state attached.
    model, old, _ = saved(tmp_path)
    new = state()
    new.attach(model)
    assert new.get()["step"] == 0
    assert new.resume_pending(True) and new.get()["step"] == 42
    old.update(step=1)  # No longer saved with the model.
    path = str(tmp_path / "new.weights.h5")
    model.save_weights(path)
    other = sparse()
    restored = state()
    restored.attach(other)
    other.load_weights(path)
    assert restored.get()["step"] == 42


def test_the_state_lives_in_the_first_er_layer(tmp_path):
    model, s, path = saved(tmp_path)
    first = er_layers(model)[0]
    assert first._keras_er_callback_states is first._keras_er_callback_states
    import h5py

    with h5py.File(path) as f:
        keys = []
        f.visit(keys.append)
    assert [k for k in keys if "keras_er_test_state" in k] == [
        f"layers/er_dense/_keras_er_callback_states/vars/"
        f"keras_er_test_state:{i}" for i in range(3)
    ]


def test_checkpoint_of_another_shape_raises(tmp_path):
    _, _, path = saved(tmp_path, n=3)
    other = sparse()
    state(4).attach(other)
    with pytest.raises(ValueError, match="another model or other Test"):
        other.load_weights(path)
    # The same when the values were pending.
    other = sparse()
    other.load_weights(path)
    s = state(4)
    s.attach(other)
    with pytest.raises(ValueError, match="another model or other Test"):
        s.resume_pending(True)
