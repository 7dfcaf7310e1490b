"""The one backend-specific gradient call."""

import keras
import numpy as np

from keras_er.gradients import gradients


def test_gradients_of_a_known_function():
    x = keras.ops.convert_to_tensor(np.array([1.0, -2.0, 3.0], "float32"))
    w = keras.ops.convert_to_tensor(np.array([[0.5], [1.0], [2.0]], "float32"))
    unused = keras.ops.convert_to_tensor(np.ones((2,), "float32"))

    def loss_of(tensors):
        x_, w_, _ = tensors
        return keras.ops.sum(keras.ops.matmul(x_[None, :] ** 2, w_))

    gx, gw, gu = gradients(loss_of, [x, w, unused])
    np.testing.assert_allclose(gx, 2 * np.array([1.0, -2.0, 3.0]) *
                               np.array([0.5, 1.0, 2.0]))
    np.testing.assert_allclose(gw[:, 0], [1.0, 4.0, 9.0])
    np.testing.assert_array_equal(gu, np.zeros(2))  # unconnected -> zeros
