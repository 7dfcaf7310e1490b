"""Real architectures: keras.applications ResNet50 and MobileNetV2, and a
small Transformer encoder built from MultiHeadAttention.

Each is sparsified, trained for two steps, saved and loaded as a ``.keras``
file with `keras_er.load_model` (identical outputs) and stripped (equal outputs). Inputs are tiny
(32x32 images, batch 2) and the models train eagerly (the CNNs with plain
SGD), which is faster than tracing a graph for two steps; the compiled
train step of every layer type is covered by test_layer_coverage.py.
"""

import keras
import numpy as np
import pytest

import keras_er
from keras_er.layers import is_er_layer
from keras_er.mask_io import er_layers
from keras_er.model_walk import iter_maskable
from tests.conftest import to_numpy


def resnet50():
    return keras.applications.ResNet50(
        weights=None, input_shape=(32, 32, 3), classes=4
    )


def mobilenet_v2():
    return keras.applications.MobileNetV2(
        weights=None, alpha=0.35, input_shape=(32, 32, 3), classes=4
    )


def transformer_encoder(length=8, width=16, heads=2, blocks=2, classes=4):
    """Token embedding, ``blocks`` post-norm encoder blocks, mean pooling."""
    tokens = keras.Input((length,), dtype="int32")
    x = keras.layers.Embedding(50, width)(tokens)
    for _ in range(blocks):
        attended = keras.layers.MultiHeadAttention(
            heads, width // heads, dropout=0.1
        )(x, x)
        x = keras.layers.Add()([x, attended])
        x = keras.layers.LayerNormalization()(x)
        hidden = keras.layers.Dense(2 * width, activation="gelu")(x)
        hidden = keras.layers.Dense(width)(hidden)
        x = keras.layers.LayerNormalization()(keras.layers.Add()([x, hidden]))
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(tokens, keras.layers.Dense(classes)(x))


def data(model, n=2):
    rng = np.random.default_rng(0)
    if model.input.dtype == "int32":
        x = rng.integers(0, 50, size=(n,) + tuple(model.input.shape[1:]))
    else:
        x = rng.normal(size=(n,) + tuple(model.input.shape[1:]))
    return x.astype(model.input.dtype), np.arange(n) % 4


CASES = {
    # builder, maskable kernels, layer types that must become ER layers
    "resnet50": (resnet50, 54, {"ERConv2D", "ERDense"}),
    "mobilenet_v2": (mobilenet_v2, 53,
                     {"ERConv2D", "ERDepthwiseConv2D", "ERDense"}),
    # Token embedding, 2 blocks of attention (4 kernels) and MLP (2), head.
    # The attention projections are masked inside each MultiHeadAttention.
    "transformer": (transformer_encoder, 1 + 2 * 4 + 2 * 2 + 1,
                    {"EREmbedding", "ERDense"}),
}


@pytest.mark.heavy  # Full-size applications.
@pytest.mark.parametrize("name", sorted(CASES))
def test_sparsify_train_save_load_strip(name, tmp_path):
    build, kernels, er_types = CASES[name]
    model = build()
    x, y = data(model)
    sparse = keras_er.sparsify(model, "erk", 0.1, seed=0)
    assert len(er_layers(sparse)) == kernels
    assert er_types <= {type(l).__name__ for l in sparse.layers}
    rows = keras_er.summary(sparse, print_fn=None)
    # Bernoulli draws plus the edges flow preservation adds.
    assert rows[-1]["density"] == pytest.approx(0.1, abs=0.03)

    # Plain SGD for the CNNs: no optimizer slots to build for 25M weights.
    cnn = name != "transformer"
    sparse.compile(
        keras.optimizers.SGD(1e-3) if cnn else keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=not cnn),
        run_eagerly=True,  # Tracing a graph costs more than two steps.
    )
    sparse.fit(x, y, batch_size=1, epochs=1, verbose=0)  # Two steps.
    for layer in er_layers(sparse):
        kernel = to_numpy(layer._kernel)
        assert np.all(kernel[to_numpy(layer.mask) == 0] == 0), layer.name

    expected = to_numpy(sparse(x, training=False))
    path = tmp_path / f"{name}.keras"
    sparse.save(path)
    loaded = keras_er.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded(x, training=False)),
                                  expected)

    plain = keras_er.strip(sparse)
    assert not any(is_er_layer(u) for u in iter_maskable(plain))
    np.testing.assert_allclose(to_numpy(plain(x, training=False)), expected,
                               rtol=1e-5, atol=1e-5)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        keras_er.export(sparse, tmp_path / "exported")
        reloaded = tf.saved_model.load(str(tmp_path / "exported"))
        np.testing.assert_allclose(np.asarray(reloaded.serve(x)), expected,
                                   rtol=1e-4, atol=1e-4)
