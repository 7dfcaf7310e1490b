"""keras_er on several JAX processes and many devices (fresh processes).

Two processes with ``jax.distributed.initialize`` on loopback, 4 virtual
CPU devices each (`tests/jax_multiprocess.py`), and one process with 8
devices and a variable Keras creates already sharded. Each is killed after
a bounded time. Marked ``heavy``: CI runs them (``pytest -m heavy``), the
default suite does not.
"""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from tests.test_distribute import (
    ROOT, _env, _free_ports, _tail, run_two_agreeing,
)

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        importlib.util.find_spec("jax") is None, reason="needs jax"
    ),
]


def _run_two_processes(tmp_path, mode):
    """Both processes' results (``tests/jax_multiprocess.py``), which must
    agree, as one dict."""
    (port,) = _free_ports(1)

    def rank(i, output):
        return ([sys.executable, str(ROOT / "tests" / "jax_multiprocess.py"),
                 str(port), str(i), str(output), mode],
                _env(JAX_PLATFORMS="cpu"))

    first, _ = run_two_agreeing(tmp_path, "process", rank, timeout=300)
    return first


def test_data_parallel_processes_agree_on_every_mask(tmp_path):
    """DataParallel: seeds drawn without a user seed, masks after
    MagnitudePruning and RiGL with a different gradient batch per process,
    and masks loaded back from a .keras file are the same on both."""
    result = _run_two_processes(tmp_path, "data")
    assert int(result["rigl_updates"]) >= 1
    names = [k.split("/", 1)[1] for k in result if k.startswith("trained/")]
    assert len(names) == 3
    for name in names:
        trained = result[f"trained/{name}"]
        assert not np.array_equal(trained, result[f"drawn/{name}"])
        assert np.all(result[f"kernel/{name}"][trained == 0] == 0)
        for how in ("keras_loaded", "keras_er_loaded"):
            np.testing.assert_array_equal(result[f"{how}/{name}"], trained)


def test_model_parallel_across_processes_with_every_callback(tmp_path):
    """ModelParallel, kernels sharded over devices of both processes: each
    mask takes its kernel's layout, and after sparsify (no seed), prepare
    and fit with every callback both processes hold the same masks and
    kernels, zero outside the masks; summary and strip work. Gradient
    batches that differ between processes sharing batch shards raise."""
    result = _run_two_processes(tmp_path, "model")
    assert bool(result["different_batches_refused"])
    methods = ["imp", "rigl", "set", "gmp", "str", "edge_popup"]
    for method in methods:
        assert bool(result[f"{method}/sharded"]), method
        assert bool(result[f"{method}/stripped_equal"]), method
        masks = {k: v for k, v in result.items()
                 if k.startswith(f"{method}/mask/")}
        assert len(masks) == 2, method
        nonzeros = 0
        for key, mask in masks.items():
            kernel = result[key.replace("/mask/", "/kernel/")]
            assert np.all(kernel[mask == 0] == 0), key
            nonzeros += int(mask.sum())
        assert f"{nonzeros:,}" in str(result[f"{method}/summary"]), method
    # Pruning methods pruned below the drawn density 0.5.
    for method in ("imp", "gmp", "str", "edge_popup"):
        masks = [v for k, v in result.items()
                 if k.startswith(f"{method}/mask/")]
        assert sum(m.sum() for m in masks) < 0.45 * sum(m.size for m in masks)


_SHARD_AT_INIT = """
import keras, numpy as np, jax
import keras_er
keras.distribution.set_distribution(
    keras.distribution.DataParallel(devices=jax.devices()))
inputs = keras.Input((2048,))
# 2048 x 4096 entries x 4 B x 8 devices >= 250 MiB: Keras creates the kernel
# (and so the mask) already sharded, with a jitted initializer.
model = keras.Model(inputs, keras.layers.Dense(4096)(inputs))
sparse = keras_er.sparsify(model, "uniform", 0.1, seed=0)
layer = keras_er.ERDense(4096, density=0.1, seed=0)
layer.build((None, 2048))
for mask in (sparse.layers[-1].mask, layer.mask):
    assert len(mask.value.sharding.device_set) == 8
    assert abs(float(np.mean(np.asarray(mask.value))) - 0.1) < 0.01
print("ok")
"""


def test_masks_of_variables_sharded_at_creation():
    """Eight devices and a kernel past Keras' shard-at-init threshold."""
    result = subprocess.run(
        [sys.executable, "-c", _SHARD_AT_INIT], cwd=ROOT, timeout=240,
        env=_env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
                 XLA_FLAGS="--xla_force_host_platform_device_count=8"),
        capture_output=True, text=True,
    )
    assert result.returncode == 0, _tail(result.stdout + result.stderr)
    assert result.stdout.strip().endswith("ok")


def test_multihost_example_runs_on_two_local_processes():
    """examples/multihost_jax.py, as docs/distribution.md runs it: both
    processes end with the same masks and the same test accuracy."""
    result = subprocess.run(
        [sys.executable, "examples/multihost_jax.py", "--local_processes=2",
         "--epochs=1", "--train_size=6000", "--devices_per_process=2"],
        cwd=ROOT, env=_env(), timeout=300, capture_output=True, text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, _tail(output)
    lines = sorted(
        line for line in output.splitlines() if line.startswith("process ")
    )
    assert len(lines) == 2, _tail(output)
    # "process R/2: test accuracy A, density D, masks H, RiGL updates N"
    first, second = (line.split(": ", 1)[1] for line in lines)
    assert first == second
    accuracy = float(first.split("test accuracy ")[1].split(",")[0])
    assert accuracy > 0.5
