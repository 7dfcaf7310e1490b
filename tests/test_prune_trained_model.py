"""examples/prune_trained_model.py: tfmot's tutorial flow with keras_er,
and with tfmot itself, side by side (tiny settings)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "prune_trained_model.py")

pytestmark = pytest.mark.tf_only


def test_keras_er_and_tfmot_prune_the_trained_model_alike():
    pytest.importorskip("tensorflow_model_optimization")
    done = subprocess.run(
        [sys.executable, SCRIPT, "--train_size=1000", "--test_size=500",
         "--epochs=1", "--prune_epochs=2", "--frequency=4"],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    keras_er_run, tfmot_run = json.loads(done.stdout.strip().splitlines()[-1])
    assert "| kernel sparsity after pruning |" in done.stdout
    for run in (keras_er_run, tfmot_run):
        # The schedule ends at 80 % (its last pruning step is the end step).
        assert run["sparsity"] == pytest.approx(0.8, abs=0.01), run
        # The stripped TFLite file computes what the pruned model does.
        assert run["pruned_tflite_accuracy"] == pytest.approx(
            run["pruned_accuracy"], abs=0.005)
        assert run["pruned_int8_tflite_accuracy"] == pytest.approx(
            run["pruned_accuracy"], abs=0.02)
        # Zeros compress: the pruned weights gzip to well under the dense.
        assert (run["pruned_weights_gzip_bytes"]
                < 0.5 * run["dense_weights_gzip_bytes"])
        assert (run["pruned_int8_tflite_gzip_bytes"]
                < run["pruned_tflite_gzip_bytes"])
    # The same data, seed and model: the dense stage is the same network.
    assert keras_er_run["dense_accuracy"] == pytest.approx(
        tfmot_run["dense_accuracy"], abs=0.03)
