"""1-byte masks (``mask_dtype="bool"``, the default, or ``"uint8"``).

A uint8/bool mask holds the same 0/1 values as a float32 one, so everything
must behave identically: the same masks drawn, the same training run with
every callback (bit for bit on CPU), the same files, at a quarter of the
mask memory.
"""

import os

import keras
import numpy as np
import pytest

import keras_er
from keras_er.callbacks import (
    IMP,
    SET,
    STR,
    EdgePopup,
    MagnitudePruning,
    RiGL,
    schedules,
)
from keras_er.mask_io import er_layers
from tests.conftest import classification_data, cnn, to_numpy
from tests.test_layer_coverage import CASES as LAYER_CASES
from tests.test_layer_coverage import apply, batch

ONE_BYTE = ("uint8", "bool")
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def data(n=96, seed=0):
    return classification_data(n, seed=seed)


def sparse_mlp(mask_dtype, density=0.5):
    keras.backend.clear_session(free_memory=False)  # Same layer names.
    keras.utils.set_random_seed(0)
    dense = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(4),
    ])
    return keras_er.sparsify(dense, "erk", density, seed=0,
                             mask_dtype=mask_dtype)


CALLBACKS = {
    "static": (lambda x, y: None, None),
    "rigl": (lambda x, y: RiGL(update_every=2, data=(x[:32], y[:32]),
                               seed=0), None),
    "set": (lambda x, y: SET(update_every=2, seed=0), None),
    "imp": (lambda x, y: IMP(0.25, 0.3, epochs_per_cycle=1), None),
    "magnitude_pruning": (lambda x, y: MagnitudePruning(
        schedules.PolynomialDecay(0.5, 0.8, 0, 6, frequency=2)), None),
    "str": (lambda x, y: STR(s_init=-3.0, target_density=0.3), "str"),
    "edge_popup": (lambda x, y: EdgePopup(0.2, levels=2),
                   "edge_popup"),
}


def train(name, mask_dtype):
    x, y = data()
    make, prepare = CALLBACKS[name]
    model = sparse_mlp(mask_dtype)
    callback = make(x, y)
    if prepare == "str":
        callback.prepare(model)
    elif prepare == "edge_popup":
        EdgePopup.prepare(model, seed=0)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), LOSS)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0,
              callbacks=[] if callback is None else [callback])
    return model


def assert_exactly_sparse(model, mask_dtype):
    for layer in er_layers(model):
        assert layer.mask.dtype == mask_dtype, layer.name
        mask = to_numpy(layer.mask)
        assert not to_numpy(layer._kernel)[mask == 0].any(), layer.name


def test_bool_is_the_default():
    layer = keras_er.ERDense(3, density=0.5, seed=0)
    layer.build((None, 4))
    assert layer.mask.dtype == "bool"
    assert layer.get_config()["mask_dtype"] == "bool"
    default = keras_er.sparsify(keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(4)]), "erk", 0.5, seed=0)
    assert er_layers(default)[0].mask.dtype == "bool"


def test_bad_mask_dtype_names_the_choices():
    with pytest.raises(ValueError, match="mask_dtype must be one of"):
        keras_er.ERDense(4, mask_dtype="int64")
    with pytest.raises(ValueError, match="mask_dtype must be one of"):
        keras_er.sparsify(
            keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]),
            "erk", 0.5, mask_dtype="float16",
        )


@pytest.mark.parametrize("mask_dtype", ONE_BYTE)
def test_same_masks_at_a_quarter_of_the_memory(mask_dtype):
    model = cnn()
    reference = keras_er.sparsify(model, "erk", 0.2, seed=3,
                                  mask_dtype="float32")
    small = keras_er.sparsify(model, "erk", 0.2, seed=3,
                              mask_dtype=mask_dtype)
    mask_bytes = kernel_bytes = 0
    for ref, layer in zip(er_layers(reference), er_layers(small)):
        mask, ref_mask = to_numpy(layer.mask), to_numpy(ref.mask)
        assert mask.dtype == np.dtype(mask_dtype)
        np.testing.assert_array_equal(mask.astype("float32"), ref_mask)
        np.testing.assert_array_equal(to_numpy(layer.kernel),
                                      to_numpy(ref.kernel))
        mask_bytes += mask.nbytes
        kernel_bytes += to_numpy(layer._kernel).nbytes
    assert mask_bytes / kernel_bytes == 0.25
    x = np.random.default_rng(0).normal(size=(2, 12, 12, 3))
    np.testing.assert_array_equal(to_numpy(small(x)), to_numpy(reference(x)))


@pytest.mark.parametrize("mask_dtype", ONE_BYTE)
@pytest.mark.parametrize("name", sorted(CALLBACKS))
def test_every_callback_trains_identically_with_1_byte_masks(name,
                                                             mask_dtype):
    reference = train(name, "float32")
    small = train(name, mask_dtype)
    assert_exactly_sparse(small, mask_dtype)
    ref_masks, masks = keras_er.get_masks(reference), keras_er.get_masks(small)
    for key in ref_masks:
        assert masks[key].dtype == np.float32
        np.testing.assert_array_equal(masks[key], ref_masks[key])
    for ref, layer in zip(er_layers(reference), er_layers(small)):
        np.testing.assert_allclose(to_numpy(layer._kernel),
                                   to_numpy(ref._kernel), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["rigl", "str", "edge_popup"])
def test_summary_counts_1_byte_masks(name):
    model = train(name, "bool")
    assert_exactly_sparse(model, "bool")
    total = keras_er.summary(model, print_fn=None)[-1]
    expected = np.mean(np.concatenate(
        [m.ravel() for m in keras_er.get_masks(model).values()]))
    assert total["density"] == pytest.approx(expected)


@pytest.mark.parametrize("mask_dtype", ONE_BYTE)
def test_every_layer_type_round_trips(mask_dtype, tmp_path):
    for name, (make, er_class, shape, _) in sorted(LAYER_CASES.items()):
        keras.backend.clear_session(free_memory=False)
        inputs = keras.Input(shape)
        model = keras.Model(inputs, apply(make(), inputs))
        sparse = keras_er.sparsify(model, "erk", 0.4, seed=0,
                                   mask_dtype=mask_dtype)
        # A MultiHeadAttention stays one; its projections are masked.
        er = [layer for layer in sparse.layers if isinstance(layer, er_class)]
        er = er or keras_er.er_layers(sparse)
        assert er and er[0].get_config()["mask_dtype"] == mask_dtype, name
        assert_exactly_sparse(sparse, mask_dtype)
        path = os.path.join(tmp_path, f"{name}.keras")
        sparse.save(path)
        loaded = keras_er.load_model(path)
        assert_exactly_sparse(loaded, mask_dtype)
        for key, mask in keras_er.get_masks(sparse).items():
            np.testing.assert_array_equal(keras_er.get_masks(loaded)[key],
                                          mask)
        x = batch(name, 2, seed=1)
        np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(sparse(x)),
                                   atol=1e-6)
        stripped = keras_er.strip(loaded)
        np.testing.assert_allclose(to_numpy(stripped(x)), to_numpy(sparse(x)),
                                   atol=1e-5)


def test_set_masks_keeps_the_dtype():
    model = sparse_mlp("bool")
    masks = {name: 1 - mask for name, mask in keras_er.get_masks(model).items()}
    keras_er.set_masks(model, masks)
    for name, mask in keras_er.get_masks(model).items():
        np.testing.assert_array_equal(mask, masks[name])
    assert_exactly_sparse(model, "bool")


def test_er_layers_is_public():
    model = sparse_mlp("bool")
    layers = keras_er.er_layers(model)
    assert [layer.name for layer in layers] == list(keras_er.get_masks(model))
    with pytest.raises(ValueError, match="keras_er.sparsify"):
        keras_er.er_layers(keras.Sequential([keras.Input((3,)),
                                             keras.layers.Dense(2)]))
