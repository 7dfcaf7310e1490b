"""keras_er under tf.distribute, each run in fresh processes.

MirroredStrategy needs two logical CPU devices, configured before TensorFlow
initializes its devices, and MultiWorkerMirroredStrategy one process per
worker; neither can happen inside this (already initialized) interpreter.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.heavy,  # Fresh processes: CI runs them (pytest -m heavy).
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="tf.distribute needs the TensorFlow backend.",
    ),
]


def _env(**extra):
    env = dict(os.environ)
    env.update(
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="-1",  # CPU devices only, also on GPU hosts.
        PYTHONPATH=os.pathsep.join(
            [str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
        ),
        **extra,
    )
    return env


def _tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


def test_mirrored_strategy_on_two_logical_cpus():
    """Runs tests/distributed_mirrored.py (every callback, checkpoints, the
    scope errors) in a fresh interpreter with two logical CPU devices."""
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "tests/distributed_mirrored.py",
    ]
    try:
        result = subprocess.run(
            command, cwd=ROOT, env=_env(KERAS_ER_REQUIRE_TWO_CPUS="1"),
            capture_output=True, text=True, timeout=240,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"MirroredStrategy tests timed out:\n{error.stdout}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, _tail(output)
    assert " passed" in output and "skipped" not in output, _tail(output)


def run_two_processes(tmp_path, name, command, timeout):
    """Starts two processes and returns their ``.npz`` results as dicts.

    ``command(i, output)`` gives process ``i``'s argv and environment; it
    writes its results to ``output``. Both are killed (only ours, by their
    handles) if they have not finished ``timeout`` seconds after the start.
    """
    outputs = [tmp_path / f"{name}{i}.npz" for i in range(2)]
    logs = [tmp_path / f"{name}{i}.log" for i in range(2)]
    processes = []
    try:
        for i in range(2):
            argv, env = command(i, outputs[i])
            with open(logs[i], "w") as log:
                processes.append(subprocess.Popen(
                    argv, cwd=ROOT, env=env, stdout=log,
                    stderr=subprocess.STDOUT,
                ))
        deadline = time.monotonic() + timeout
        for process in processes:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"the {name}s did not finish in {timeout} s:\n" + _logs(logs)
        )
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert all(p.returncode == 0 for p in processes), _logs(logs)
    return [dict(np.load(path)) for path in outputs]


def run_two_agreeing(tmp_path, name, command, timeout):
    """`run_two_processes`, asserting both ended with identical arrays."""
    first, second = run_two_processes(tmp_path, name, command, timeout)
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    return first, second


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_multi_worker_mirrored_strategy_on_loopback(tmp_path):
    """Two worker processes train one model with SET and MagnitudePruning
    (custom loop, see tests/distributed_worker.py); both end with identical
    masks and kernels, also after RiGL with per-worker gradient batches.
    Killed after 120 s."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]

    def worker(i, output):
        config = {"cluster": {"worker": workers},
                  "task": {"type": "worker", "index": i}}
        return ([sys.executable, str(ROOT / "tests" / "distributed_worker.py"),
                 str(output)], _env(TF_CONFIG=json.dumps(config)))

    first, _ = run_two_agreeing(tmp_path, "worker", worker, timeout=120)
    assert int(first["changes"]) >= 2  # SET and the pruning acted.
    assert bool(first["rigl_rewired"])
    masks = [v for k, v in first.items() if k.endswith("/mask")]
    density = sum(m.sum() for m in masks) / sum(m.size for m in masks)
    assert density == pytest.approx(0.2, abs=0.01)  # Pruned to 1 - 0.8.
    assert first["loss"][-1] < first["loss"][0]


def _logs(paths):
    return "\n".join(
        f"--- worker {i}\n{_tail(path.read_text(), 40)}"
        for i, path in enumerate(paths) if path.exists()
    )
