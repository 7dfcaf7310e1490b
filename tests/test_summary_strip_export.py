"""summary rows, strip output equality, .keras and SavedModel export."""

import keras
import numpy as np
import pytest

import keras_er
from tests.conftest import cnn, mlp, to_numpy


def test_summary_rows_match_masks_and_flops():
    model = cnn(input_shape=(12, 12, 3))
    sparse = keras_er.sparsify(model, "erk", 0.3, seed=0)
    lines = []
    rows = keras_er.summary(sparse, print_fn=lines.append)
    masks = keras_er.get_masks(sparse)
    layer_rows, total = rows[:-1], rows[-1]
    assert [r["name"] for r in layer_rows] == list(masks)
    for row in layer_rows:
        mask = masks[row["name"]]
        assert row["params"] == mask.size
        assert row["nonzeros"] == int(mask.sum())
        assert row["density"] == pytest.approx(mask.mean())
        assert row["kernel_shape"] == mask.shape
        layer = sparse.get_layer(row["name"])
        out = layer.output.shape
        positions = int(np.prod(out[1:-1])) if len(out) > 2 else 1
        assert row["dense_flops"] == 2 * mask.size * positions
        assert row["sparse_flops"] == 2 * int(mask.sum()) * positions
    # first conv: 12x12 output ("same"), 3x3x3x8 kernel
    assert layer_rows[0]["dense_flops"] == 2 * 3 * 3 * 3 * 8 * 12 * 12
    assert total["name"] == "total"
    assert total["nonzeros"] == sum(int(m.sum()) for m in masks.values())
    assert total["density"] == pytest.approx(
        total["nonzeros"] / total["params"])
    assert total["sparse_flops"] == sum(r["sparse_flops"] for r in layer_rows)
    text = "\n".join(lines)
    for row in layer_rows:
        assert row["name"] in text
    assert "Sparse FLOPs" in lines[0] and lines[-1].startswith("total")


def test_summary_of_a_dense_model_counts_nonzeros():
    rows = keras_er.summary(mlp(), print_fn=None)
    assert rows[-1]["density"] == 1.0
    assert all(r["type"] == "Dense" for r in rows[:-1])


@pytest.mark.parametrize("build", [mlp, cnn])
def test_strip_gives_plain_layers_and_equal_outputs(build, tmp_path):
    sparse = keras_er.sparsify(build(), "balanced", 0.2, seed=0)
    stripped = keras_er.strip(sparse)
    assert not any(isinstance(l, keras_er.layers.MaskedKernelMixin)
                   for l in stripped.layers)
    x = np.random.default_rng(0).normal(
        size=(4,) + sparse.input_shape[1:]).astype("float32")
    np.testing.assert_allclose(to_numpy(stripped(x)), to_numpy(sparse(x)),
                               rtol=1e-6, atol=1e-6)
    for name, mask in keras_er.get_masks(sparse).items():
        kernel = to_numpy(stripped.get_layer(name).kernel)
        assert np.all(kernel[mask == 0] == 0)
    # A stripped model loads with Keras alone (no keras_er classes inside).
    path = tmp_path / "plain.keras"
    stripped.save(path)
    assert "keras_er" not in open(path, "rb").read().decode("latin-1")


@pytest.mark.skipif(keras.backend.backend() == "torch",
                    reason="no SavedModel export from torch (tests/"
                    "test_backends.py checks the error)")
def test_export_saved_model_serve_reproduces_outputs(tmp_path):
    tf = pytest.importorskip("tensorflow")
    sparse = keras_er.sparsify(cnn(), "pyramidal", 0.1, seed=0)
    keras_er.export(sparse, tmp_path / "exported")
    reloaded = tf.saved_model.load(str(tmp_path / "exported"))
    x = np.random.default_rng(1).normal(size=(3, 12, 12, 3)).astype("float32")
    np.testing.assert_allclose(reloaded.serve(x).numpy(), to_numpy(sparse(x)),
                               rtol=1e-5, atol=1e-5)


def test_export_keras_format_and_bad_format(tmp_path):
    sparse = keras_er.sparsify(mlp(), "uniform", 0.5, seed=0)
    keras_er.export(sparse, tmp_path / "m.keras", format="keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = np.ones((2, 20), "float32")
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(sparse(x)),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="format must be one of"):
        keras_er.export(sparse, tmp_path / "x", format="onnx")
    with pytest.raises(ValueError, match="ending in '.keras'"):
        keras_er.export(sparse, tmp_path / "x.h5", format="keras")


def test_quickstart_from_the_readme(tmp_path):
    model = mlp(input_dim=20, hidden=(16,), classes=3)
    sparse = keras_er.sparsify(model, ratio="pyramidal", density=0.1, seed=0)
    sparse.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, 20)).astype("float32")
    y = np.arange(32) % 3
    sparse.fit(x, y, verbose=0)
    rows = keras_er.summary(sparse, print_fn=None)
    assert rows[-1]["density"] < 0.5
    sparse.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(sparse(x)))
    if keras.backend.backend() == "torch":  # SavedModel: TF and JAX only.
        with pytest.raises(ValueError, match="format='keras'"):
            keras_er.export(sparse, tmp_path / "exported")
    else:
        keras_er.export(sparse, tmp_path / "exported")
