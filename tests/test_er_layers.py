"""ERDense / ERConv2D: masked forward, exact zeros through training, saving."""

import keras
import numpy as np
import pytest

import keras_er
from keras_er.layers import KERAS_LAYER_FOR
from tests.conftest import to_numpy

OPTIMIZERS = {
    "sgd_momentum_weight_decay": lambda: keras.optimizers.SGD(
        0.1, momentum=0.9, nesterov=True, weight_decay=1e-2
    ),
    "adam": lambda: keras.optimizers.Adam(1e-2),
    "adamw": lambda: keras.optimizers.AdamW(1e-2, weight_decay=1e-2),
    # Muon orthogonalizes the whole update, so zero gradients alone would not
    # keep masked entries at zero: the mask constraint must.
    "muon": lambda: keras.optimizers.Muon(1e-2),
}


def er_mlp(density=0.3):
    return keras.Sequential([
        keras.Input((10,)),
        keras_er.ERDense(16, density=density, seed=1, activation="relu"),
        keras.layers.BatchNormalization(),
        keras_er.ERDense(4, density=density, seed=2),
    ])


def er_cnn(density=0.3):
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras_er.ERConv2D(8, 3, density=density, seed=1, activation="relu"),
        keras_er.ERConv2D(8, 3, density=density, seed=2, padding="same"),
        keras.layers.Flatten(),
        keras_er.ERDense(4, density=density, seed=3),
    ])


@pytest.mark.parametrize("build", [er_mlp, er_cnn])
def test_forward_equals_plain_layer_with_masked_kernel(build):
    model = build()
    x = np.random.default_rng(0).normal(size=(5,) + model.input_shape[1:])
    h = x.astype("float32")
    for layer in model.layers:
        if isinstance(layer, keras_er.layers.MaskedKernelMixin):
            kernel = to_numpy(layer._kernel) * to_numpy(layer.mask)
            plain = KERAS_LAYER_FOR[type(layer)].from_config(
                {k: v for k, v in layer.get_config().items()
                 if k not in layer.ER_CONFIG_KEYS}
            )
            plain.build(h.shape)
            plain.set_weights([kernel, to_numpy(layer.bias)])
            expected = to_numpy(plain(h))
            np.testing.assert_allclose(to_numpy(layer(h)), expected,
                                       rtol=1e-5, atol=1e-5)
            h = expected
        else:
            h = to_numpy(layer(h))


def test_mask_is_a_non_trainable_0_1_variable_with_the_kernel_shape():
    layer = keras_er.ERDense(32, density=0.25, seed=0)
    layer.build((None, 64))
    assert layer.mask.shape == (64, 32)
    assert not layer.mask.trainable
    assert any(w is layer.mask for w in layer.non_trainable_weights)
    assert all(w is not layer.mask for w in layer.trainable_weights)
    values = to_numpy(layer.mask)
    assert set(np.unique(values)) <= {0.0, 1.0}
    assert abs(values.mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / values.size)
    assert np.all(to_numpy(layer._kernel)[values == 0] == 0)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("build", [er_mlp, er_cnn])
def test_masked_entries_stay_exactly_zero_through_training(optimizer, build):
    model = build()
    model.compile(OPTIMIZERS[optimizer](), "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64,) + model.input_shape[1:]).astype("float32")
    y = rng.normal(size=(64, 4)).astype("float32")
    before = {l.name: to_numpy(l._kernel) for l in model.layers
              if hasattr(l, "mask")}
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    for layer in model.layers:
        if not hasattr(layer, "mask"):
            continue
        mask, kernel = to_numpy(layer.mask), to_numpy(layer._kernel)
        assert np.all(kernel[mask == 0] == 0.0)
        # Training did happen on the kept entries.
        assert not np.allclose(kernel[mask == 1], before[layer.name][mask == 1])


def test_flow_preservation_in_a_standalone_layer():
    layer = keras_er.ERDense(10, density=0.01, seed=0, flow="addition")
    layer.build((None, 50))
    mask = to_numpy(layer.mask)
    assert mask.sum(axis=0).min() >= 1 and mask.sum(axis=1).min() >= 1
    assert layer.flow_edges_added > 0


@pytest.mark.parametrize("build", [er_mlp, er_cnn])
def test_keras_file_round_trip_restores_masks_and_outputs(build, tmp_path):
    model = build()
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(
        size=(8,) + model.input_shape[1:]).astype("float32")
    model.fit(x, np.zeros((8, 4)), epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))
    for name, mask in keras_er.get_masks(model).items():
        np.testing.assert_array_equal(keras_er.get_masks(loaded)[name], mask)
    assert type(loaded.layers[0]) is type(model.layers[0])


def test_weights_file_and_checkpoint_round_trip(tmp_path):
    model = er_mlp()
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    other = er_mlp(density=0.9)  # different masks before loading
    other.load_weights(path)
    saved = list(keras_er.get_masks(model).values())
    loaded = list(keras_er.get_masks(other).values())
    assert len(saved) == len(loaded) == 2
    for a, b in zip(saved, loaded):
        np.testing.assert_array_equal(a, b)


def test_get_config_round_trip_keeps_mask_options():
    layer = keras_er.ERConv2D(4, 3, density=0.2, seed=7, sampling="exact",
                              flow="rejection", strides=2)
    config = layer.get_config()
    assert config["density"] == 0.2 and config["seed"] == 7
    clone = keras_er.ERConv2D.from_config(config)
    assert clone.get_config() == config
    layer.build((None, 9, 9, 3))
    clone.build((None, 9, 9, 3))
    np.testing.assert_array_equal(to_numpy(layer.mask), to_numpy(clone.mask))
    # exact sampling, before flow repair, keeps round(p N) entries
    assert abs(to_numpy(layer.mask).sum() - round(0.2 * 3 * 3 * 3 * 4)) <= 4


def test_set_mask_zeroes_the_kernel_outside_and_validates():
    layer = keras_er.ERDense(3, density=1.0)
    layer.build((None, 4))
    new_mask = np.eye(4, 3, dtype="float32")
    layer.set_mask(new_mask)
    kernel = to_numpy(layer._kernel)
    assert np.all(kernel[new_mask == 0] == 0)
    with pytest.raises(ValueError, match="does not match kernel shape"):
        layer.set_mask(np.ones((3, 3)))
    with pytest.raises(ValueError, match="only 0 and 1"):
        layer.set_mask(np.full((4, 3), 0.5))


def test_quantize_and_lora_point_to_strip():
    layer = keras_er.ERDense(3, density=0.5)
    layer.build((None, 4))
    with pytest.raises(ValueError, match="keras_er.strip"):
        layer.quantize("int8")
    with pytest.raises(NotImplementedError, match="keras_er.strip"):
        layer.enable_lora(2)


@pytest.mark.parametrize("kwargs,match", [
    ({"density": 0.0}, "density must be in"),
    ({"density": 2}, "density must be in"),
    ({"sampling": "uniform"}, "sampling must be one of"),
    ({"flow": "yes"}, "flow must be one of"),
    ({"seed": "abc"}, "seed must be an int"),
])
def test_bad_layer_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_er.ERDense(3, **kwargs)
