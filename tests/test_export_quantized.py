"""Quantized TFLite export keeps the zeros, and sparse models refuse
`Model.quantize` loudly (pointing to `strip`)."""

import os

import keras
import numpy as np
import pytest

import keras_er
from keras_er.export import gzipped_size
from tests.conftest import interpreter_for, to_numpy

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.tf_only

DENSITY = 0.2


def run_tflite(path, x):
    interpreter = interpreter_for(path)
    runner = interpreter.get_signature_runner()
    (name,) = runner.get_input_details()
    outputs = [
        next(iter(runner(**{name: x[i : i + 1]}).values()))
        for i in range(len(x))
    ]
    return np.concatenate(outputs), interpreter


def _convnet():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((12, 12, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])


@pytest.fixture(scope="module")
def models():
    dense = _convnet()
    sparse = keras_er.sparsify(dense, "erk", DENSITY, seed=0)
    x = np.random.default_rng(1).random((48, 12, 12, 1), dtype=np.float32)
    return dense, sparse, x


def _masked_count(sparse):
    return sum(
        int(np.sum(to_numpy(layer.mask) == 0))
        for layer in keras_er.er_layers(sparse)
    )


@pytest.mark.parametrize("quantize,atol", [
    (None, 1e-4), ("float16", 2e-3), ("dynamic_range", 3e-2), ("int8", 5e-2),
])
def test_quantized_tflite_reproduces_the_model_and_keeps_zeros(
    models, tmp_path, quantize, atol
):
    dense, sparse, x = models
    paths = {}
    for name, model in (("dense", dense), ("sparse", sparse)):
        paths[name] = str(tmp_path / f"{name}.tflite")
        keras_er.export(
            model, paths[name], format="tflite", quantize=quantize,
            representative_data=x if quantize == "int8" else None,
        )
    expected = to_numpy(sparse(x))
    output, interpreter = run_tflite(paths["sparse"], x)
    scale = np.abs(expected).max()
    assert np.abs(output - expected).max() <= atol * max(scale, 1.0)

    weights = {
        None: np.float32, "float16": np.float16,
        "dynamic_range": np.int8, "int8": np.int8,
    }[quantize]
    # Weights, not activations: activations (run one example at a time)
    # have a batch axis of 1, TFLite's kernels lead with their out units.
    kernels = [
        t for t in interpreter.get_tensor_details()
        if t["dtype"] == weights and len(t["shape"]) >= 2
        and t["shape"][0] != 1 and not t["sparsity_parameters"]
    ]
    if quantize in ("dynamic_range", "int8"):
        # Stored dense: every masked entry is an exact 0 in the int8 kernels
        # (symmetric weight quantization maps 0 to 0; small weights may
        # round to 0 too, hence >=).
        zeros = sum(
            int(np.sum(interpreter.get_tensor(t["index"]) == 0))
            for t in kernels
        )
        assert zeros >= _masked_count(sparse)
    else:
        # The sparse (CSR) encoding stores the big Dense kernel (800 x 64)
        # without its zeros (TFLite encodes kernels with >= 30 % zeros).
        encoded = [tuple(t["shape"]) for t in interpreter.get_tensor_details()
                   if t["sparsity_parameters"]]
        assert (64, 800) in encoded
    # What the zeros buy: the download (gzip'd file) shrinks with density.
    assert gzipped_size(paths["sparse"]) < 0.6 * gzipped_size(paths["dense"])


def test_quantized_export_is_smaller_than_float(models, tmp_path):
    _, sparse, x = models
    sizes = {}
    for quantize in (None, "dynamic_range"):
        path = str(tmp_path / f"{quantize}.tflite")
        keras_er.export(sparse, path, format="tflite", quantize=quantize)
        sizes[quantize] = gzipped_size(path)
    assert sizes["dynamic_range"] < 0.6 * sizes[None]


def test_representative_data_forms(models, tmp_path):
    _, sparse, x = models
    outputs = []
    for data in (x[:16], [x[:16]], lambda: ([x[i : i + 1]] for i in range(16))):
        path = str(tmp_path / "m.tflite")
        keras_er.export(sparse, path, format="tflite", quantize="int8",
                        representative_data=data)
        outputs.append(run_tflite(path, x[:4])[0])
    # The same calibration data, given three ways: the same file.
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], outputs[2])


@pytest.mark.parametrize("kwargs,match", [
    ({"format": "tflite", "quantize": "int4"}, "quantize must be None or"),
    ({"format": "tflite", "quantize": "int8"}, "needs representative_data"),
    ({"format": "keras", "quantize": "float16"}, "needs format='tflite'"),
    ({"format": "tflite", "representative_data": np.zeros((2, 12, 12, 1))},
     "only used with quantize='int8'"),
])
def test_quantize_argument_errors(models, tmp_path, kwargs, match):
    _, sparse, _ = models
    suffix = ".keras" if kwargs["format"] == "keras" else ".tflite"
    with pytest.raises(ValueError, match=match):
        keras_er.export(sparse, str(tmp_path / f"m{suffix}"), **kwargs)
    assert not os.listdir(tmp_path)


def test_model_quantize_refuses_masked_layers_and_strip_quantizes(models):
    _, sparse, x = models
    with pytest.raises(ValueError, match=r"keras_er\.strip\(model\)"):
        sparse.quantize("int8")
    stripped = keras_er.strip(sparse)
    stripped.quantize("int8")
    quantized = [layer for layer in stripped.layers
                 if getattr(layer, "quantization_mode", None) == "int8"]
    # Keras quantizes Dense (and EinsumDense, Embedding), not Conv2D.
    assert [layer.name for layer in quantized] == [
        layer.name for layer in stripped.layers
        if isinstance(layer, keras.layers.Dense)
    ]
    # Zeros stay zero in the int8 kernels: at least every masked entry.
    for layer in quantized:
        mask = to_numpy(sparse.get_layer(layer.name).mask)
        kernel = to_numpy(layer._kernel)
        assert np.all(kernel[mask == 0] == 0), layer.name
    np.testing.assert_allclose(
        to_numpy(stripped(x)), to_numpy(sparse(x)), atol=0.05
    )
