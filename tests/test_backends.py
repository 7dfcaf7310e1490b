"""Cross-backend checks: JAX DataParallel, files and masks across backends,
and the errors of TensorFlow-only features on the other backends.

The subprocess checks start fresh Python processes on another backend; they
run once, from the default (TensorFlow) suite. The in-process checks test the
current backend and run in the JAX and torch CI jobs (docs/backends.md).
"""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_er
from tests.conftest import cnn, mlp, to_numpy

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

once = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="cross-backend subprocess check: runs once, from the TensorFlow "
    "suite",
)


def _needs(module):
    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None,
        reason=f"{module} is not installed (pip install -e '.[backends]')",
    )


def _run(args, backend, **env):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               **env)
    result = subprocess.run([sys.executable, *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _digest(masks):
    return {name: hashlib.sha1(np.asarray(m, np.uint8).tobytes()).hexdigest()
            for name, m in masks.items()}


@once
@pytest.mark.heavy  # A fresh process.
@_needs("jax")
def test_data_parallel_on_jax_keeps_masks_exact():
    # Two host devices need XLA_FLAGS before JAX starts: a fresh process.
    out = _run(["tests/backend_data_parallel.py"], "jax",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert out["devices"] == 2
    # Variables are replicated over both devices (DataParallel), masks too.
    assert out["kernel_devices"] == [2, 2, 2]
    assert out["mask_devices"] == [2, 2, 2]
    assert out["binary"] and out["max_masked"] == 0.0
    assert out["density_after_gmp"] == pytest.approx(0.2, abs=1e-6)
    # RiGL rewires at constant density.
    assert out["rigl_updates"] == 3 and out["rigl_moved"]
    assert out["density"] == pytest.approx(0.2, abs=1e-6)
    assert out["finite_loss"] and out["outputs_match_masked_kernels"]


_LOAD_SCRIPT = """
import hashlib, json, sys
import keras, numpy as np
import keras_er
from tests.conftest import cnn

path, x_path = sys.argv[1], sys.argv[2]
loaded = keras.saving.load_model(path)
x = np.load(x_path)
fresh = keras_er.sparsify(cnn(), "erk", 0.3, seed=3)
digest = lambda masks: {
    k: hashlib.sha1(np.asarray(m, np.uint8).tobytes()).hexdigest()
    for k, m in masks.items()}
print(json.dumps({
    "outputs": keras.ops.convert_to_numpy(loaded(x)).tolist(),
    "masks": digest(keras_er.get_masks(loaded)),
    "fresh_masks": digest(keras_er.get_masks(fresh)),
    "nonzeros": keras_er.summary(loaded, print_fn=None)[-1]["nonzeros"],
}))
"""


@once
@pytest.mark.heavy  # Fresh processes.
@pytest.mark.parametrize("backend", [
    pytest.param("jax", marks=_needs("jax")),
    pytest.param("torch", marks=_needs("torch")),
])
def test_keras_file_and_seeded_masks_are_the_same_on_other_backends(
    backend, tmp_path
):
    sparse = keras_er.sparsify(cnn(), "erk", 0.3, seed=3)
    x = np.random.default_rng(0).normal(size=(2, 12, 12, 3)).astype("float32")
    sparse.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    out = _run(["-c", _LOAD_SCRIPT, str(tmp_path / "m.keras"),
                str(tmp_path / "x.npy")], backend)
    np.testing.assert_allclose(out["outputs"], to_numpy(sparse(x)),
                               rtol=1e-4, atol=1e-5)
    masks = _digest(keras_er.get_masks(sparse))
    assert out["masks"] == masks
    # The same seed draws the same masks on every backend.
    assert out["fresh_masks"] == masks
    assert out["nonzeros"] == keras_er.summary(sparse, print_fn=None)[-1][
        "nonzeros"]


@pytest.mark.skipif(BACKEND == "tensorflow",
                    reason="checks the errors on the JAX and torch backends")
def test_tensorflow_formats_name_the_fix_on_other_backends(tmp_path):
    sparse = keras_er.sparsify(mlp(), "uniform", 0.5, seed=0)
    with pytest.raises(ValueError, match="KERAS_BACKEND=tensorflow"):
        keras_er.export(sparse, tmp_path / "m.tflite", format="tflite")
    if BACKEND == "torch":
        with pytest.raises(ValueError, match="format='keras'"):
            keras_er.export(sparse, tmp_path / "saved")
    # The .keras format works everywhere and loads as plain Keras.
    keras_er.export(sparse, tmp_path / "m.keras", format="keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    x = np.ones((2, 20), "float32")
    np.testing.assert_allclose(to_numpy(reloaded(x)), to_numpy(sparse(x)),
                               rtol=1e-5, atol=1e-6)


def test_jit_train_step_sees_new_masks_and_keeps_zeros():
    # A mask set between fits reaches the compiled train step (on JAX the
    # masks are state of the jitted step, not constants traced into it), and
    # Muon's non-elementwise update is projected back onto the mask.
    model = keras.Sequential([
        keras.Input((10,)),
        keras_er.ERDense(16, density=0.5, seed=1, activation="relu"),
        keras_er.ERDense(4, density=0.5, seed=2),
    ])
    # XLA on TensorFlow and JAX; torch.compile would only add minutes.
    model.compile(keras.optimizers.Muon(1e-2), "mse",
                  jit_compile=BACKEND != "torch")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10)).astype("float32")
    y = rng.normal(size=(64, 4)).astype("float32")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    first = model.layers[0]
    new = (rng.random((10, 16)) < 0.2).astype("float32")
    new[:, 0] = 1.0
    keras_er.set_masks(model, {first.name: new})
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for layer in model.layers:
        mask = to_numpy(layer.mask)
        kernel = to_numpy(layer._kernel)
        assert np.isin(mask, (0, 1)).all()
        assert np.all(kernel[mask == 0] == 0)
        assert np.any(kernel[mask == 1] != 0)
    np.testing.assert_array_equal(to_numpy(first.mask), new)
