"""`CallbackState`: callback counters saved with the model's weights."""

import numpy as np
import pytest

from keras_er.callbacks.callback_state import CallbackState
from tests.conftest import mlp, to_numpy


def state(n=3):
    return CallbackState("keras_er_test_state", ("started", "step"),
                         [((n,), "int64"), ((2, 2), "float32")], owner="Test")


def test_counters_start_at_zero_and_update_by_name():
    s = state()
    assert s.get() == {"started": 0, "step": 0}
    s.update(step=7)
    s.update(started=1)
    assert s.get() == {"started": 1, "step": 7}
    with pytest.raises(KeyError, match="steps"):
        s.update(steps=1)


def test_attached_state_is_saved_but_not_a_model_weight(tmp_path):
    model = mlp()
    n_weights = len(model.weights)
    s = state()
    s.attach(model)
    assert len(model.weights) == n_weights and s not in model.layers
    s.update(started=1, step=42)
    s.arrays[0].assign(np.array([1, 2, 3]))
    s.arrays[1].assign(np.full((2, 2), 0.5, "float32"))
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)

    other = mlp()
    restored = state()
    restored.attach(other)
    other.load_weights(path)
    assert restored.get() == {"started": 1, "step": 42}
    np.testing.assert_array_equal(to_numpy(restored.arrays[0]), [1, 2, 3])
    np.testing.assert_array_equal(to_numpy(restored.arrays[1]),
                                  np.full((2, 2), 0.5))
    # Detached: the same file loads into a model without the state, and the
    # state of another owner is not removed.
    restored.detach(other)
    assert not hasattr(other, "_keras_er_test_state")
    other.load_weights(path)
    state().detach(model)
    assert getattr(model, "_keras_er_test_state") is s


def test_checkpoint_of_another_shape_raises(tmp_path):
    model = mlp()
    state(3).attach(model)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    other = mlp()
    state(4).attach(other)
    with pytest.raises(ValueError, match="another model or other Test"):
        other.load_weights(path)
