"""Runs examples/mnist_lenet.py end to end on the shipped MNIST files.

The example runs in a subprocess, exactly as a user starts it, so its absl
flags never collide with flags of other modules imported by the test run.
"""

import json
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_er.research.data import load_mnist

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "mnist_lenet.py"


def _run(*flags, timeout=180):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    if keras.backend.backend() == "torch":
        pytest.skip("the run exports a SavedModel: TensorFlow or JAX backend")
    export_dir = tmp_path_factory.mktemp("export") / "lenet"
    # 10k examples, 1 epoch, small batches: about 300 steps, enough for a
    # clear margin above chance in a few seconds of training.
    result = _run(
        "--train_size=10000",
        "--epochs=1",
        "--batch_size=32",
        "--verbose=2",
        f"--export_dir={export_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result, export_dir


def test_prints_accuracy_summary_and_json(quick_run):
    result, export_dir = quick_run
    lines = result.stdout.strip().splitlines()
    results = json.loads(lines[-1])
    assert results["model"] == "lenet300_100"
    assert results["ratio"] == "pyramidal"
    assert results["density"] == 0.1
    assert results["seed"] == 0
    assert results["epochs"] == 1
    assert results["train_size"] == 10000
    assert results["export_dir"] == str(export_dir)
    assert results["wall_time_s"] >= results["train_time_s"] > 0
    # Ten classes: chance is 0.1.
    assert results["accuracy"] > 0.8
    # Bernoulli masks plus flow repair: close to, not exactly, the target.
    assert results["actual_density"] == pytest.approx(0.1, abs=0.01)

    printed = re.search(r"^Test accuracy: ([0-9.]+)$", result.stdout, re.M)
    assert printed is not None
    assert float(printed.group(1)) == pytest.approx(
        results["accuracy"], abs=1e-4
    )

    header = next(i for i, line in enumerate(lines) if line.startswith("Layer"))
    assert "Nonzeros" in lines[header] and "Density" in lines[header]
    rows = [line.split() for line in lines[header + 2:header + 5]]
    assert [row[0] for row in rows] == ["fc1", "fc2", "fc3"]
    assert [row[2] for row in rows] == ["784x300", "300x100", "100x10"]
    assert all(row[1] == "ERDense" for row in rows)
    total = lines[header + 6].split()
    assert total[0] == "total"
    assert float(total[3]) == pytest.approx(results["actual_density"], 1e-3)


def test_exported_model_is_the_trained_one(quick_run):
    _, export_dir = quick_run
    import tensorflow as tf

    assert (export_dir / "saved_model.pb").is_file()
    reloaded = tf.saved_model.load(str(export_dir))
    _, (x_test, y_test) = load_mnist(source="idx")
    x = x_test[:2000].astype("float32") / 255.0
    logits = np.asarray(reloaded.serve(tf.constant(x)))
    assert logits.shape == (2000, 10)
    assert np.mean(logits.argmax(axis=1) == y_test[:2000]) > 0.8


def test_bad_flags_fail_with_a_clear_message():
    result = _run("--density=0", timeout=60)
    assert result.returncode != 0
    assert "--density must be in (0, 1]" in result.stderr
    assert "Test accuracy" not in result.stdout
    result = _run("--ratio=random", timeout=60)
    assert result.returncode != 0
    assert "--ratio" in result.stderr


def test_help_lists_every_ratio_method():
    import keras_er

    # absl prints the help to stdout and exits with status 1.
    result = _run("--help", timeout=60)
    assert "--density" in result.stdout, result.stderr[-2000:]
    choices = "<" + "|".join(sorted(keras_er.ratios.METHODS)) + ">"
    assert choices in result.stdout
