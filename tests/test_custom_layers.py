"""Custom layers opt in to masking by declaring their kernel.

A layer with a raw weight matrix of its own defines ``maskable_kernels()``
(keras_er's counterpart of tfmot's ``PrunableLayer``); `sparsify` then
masks it where it sits, the callbacks prune it, and it survives saving,
loading, `strip` and export like the built-in layers.
"""

import keras
import numpy as np
import pytest

import keras_er
from keras_er.layers import is_er_layer
from keras_er.model_walk import iter_maskable, kernel_shape, unit_name
from tests.conftest import to_numpy


@keras.saving.register_keras_serializable(package="keras_er_tests")
class RawProjection(keras.layers.Layer):
    """``x @ w + b`` with its own weights; declares ``w`` maskable."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(
            shape=(input_shape[-1], self.units), initializer="glorot_uniform",
            name="w",
        )
        self.b = self.add_weight(shape=(self.units,), initializer="zeros",
                                 name="b")

    def call(self, x):
        return keras.ops.matmul(x, self.w) + self.b

    def maskable_kernels(self):
        return {"w": ((0,), (1,))}

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="keras_er_tests")
class Block(keras.layers.Layer):
    """A custom block holding a RawProjection and a Dense."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.raw = RawProjection(12, name="raw")
        self.dense = keras.layers.Dense(8, name="dense")

    def call(self, x):
        return self.dense(keras.ops.relu(self.raw(x)))


def model():
    inputs = keras.Input((10,))
    x = Block(name="block")(inputs)
    return keras.Model(inputs, RawProjection(3, name="head")(x))


def data(n=32):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, 10)).astype("float32"),
            rng.normal(size=(n, 3)).astype("float32"))


def test_declared_kernels_are_masked_pruned_saved_and_stripped(tmp_path):
    plain = model()
    x, y = data()
    sparse = keras_er.sparsify(plain, "uniform", 0.5, seed=0)
    masks = keras_er.get_masks(sparse)
    assert sorted(masks) == ["block/dense", "block/raw", "head"]
    head = sparse.get_layer("head")
    assert is_er_layer(head) and isinstance(head, RawProjection)
    assert head.mask.path == "head/mask"
    # The layer's own `call` reads the masked kernel.
    kernel = to_numpy(head.w)
    np.testing.assert_array_equal(kernel[masks["head"] == 0], 0)
    # Pruned by a callback, zeros kept through training.
    sparse.compile(keras.optimizers.Adam(1e-2), "mse")
    gmp = keras_er.callbacks.MagnitudePruning(
        keras_er.callbacks.schedules.ConstantSparsity(0.75, 0, frequency=1)
    )
    sparse.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[gmp])
    pruned = keras_er.get_masks(sparse)
    for name in masks:
        assert np.all(pruned[name] <= masks[name])
    assert pruned["head"].mean() < masks["head"].mean()
    raw = vars(head)["w"]
    np.testing.assert_array_equal(
        to_numpy(raw)[pruned["head"] == 0], 0
    )
    # Saved and loaded with every mask, the same outputs.
    path = tmp_path / "custom.keras"
    sparse.save(path)
    loaded = keras_er.load_model(path)
    for name, mask in pruned.items():
        np.testing.assert_array_equal(keras_er.get_masks(loaded)[name], mask)
    expected = to_numpy(sparse(x))
    np.testing.assert_allclose(to_numpy(loaded(x)), expected, rtol=1e-6)
    # Stripped back to the plain class, equal outputs, no mask left.
    stripped = keras_er.strip(loaded)
    assert type(stripped.get_layer("head")) is RawProjection
    assert not any(is_er_layer(u) for u in iter_maskable(stripped))
    assert not any(v.path.endswith("mask") for v in stripped.weights)
    np.testing.assert_allclose(to_numpy(stripped(x)), expected, rtol=1e-5,
                               atol=1e-6)


def test_declared_kernels_count_in_the_ratios():
    plain = model()
    shapes = {
        unit_name(u): tuple(kernel_shape(u)) for u in iter_maskable(plain)
    }
    assert shapes == {"block/raw": (10, 12), "block/dense": (12, 8),
                      "head": (8, 3)}
    densities = keras_er.layer_densities(plain, "er", 0.3)
    assert list(densities) == ["block/raw", "block/dense", "head"]


class VectorKernel(RawProjection):
    def maskable_kernels(self):
        return {"w": ((0,), (1,)), "b": ((0,), ())}


class BadAxes(RawProjection):
    def maskable_kernels(self):
        return {"w": (0, 1)}


class NotAWeight(RawProjection):
    def maskable_kernels(self):
        return {"units": ((0,), (1,))}


@pytest.mark.parametrize("cls, message", [
    (VectorKernel, "rank >= 2"),
    (BadAxes, "in_axes, out_axes"),
    (NotAWeight, "rank >= 2"),
])
def test_bad_declarations_are_named(cls, message):
    inputs = keras.Input((4,))
    built = keras.Model(inputs, cls(3)(inputs))
    with pytest.raises(ValueError, match=message):
        keras_er.sparsify(built, "uniform", 0.5, seed=0)


def test_layers_inside_keras_wrappers_are_masked_where_they_sit(tmp_path):
    inputs = keras.Input((5, 6))
    wrapped = keras.layers.TimeDistributed(keras.layers.Dense(4), name="td")
    model = keras.Model(inputs, wrapped(inputs))
    path_before = wrapped.layer.kernel.path
    sparse = keras_er.sparsify(model, "uniform", 0.5, seed=0, in_place=True)
    inner = sparse.get_layer("td").layer
    assert is_er_layer(inner) and inner._kernel.path == path_before
    assert list(keras_er.get_masks(sparse)) == [f"td/{inner.name}"]
    x = np.random.default_rng(0).normal(size=(2, 5, 6)).astype("float32")
    sparse.save(tmp_path / "td.keras")
    loaded = keras_er.load_model(tmp_path / "td.keras")
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(sparse(x)))
