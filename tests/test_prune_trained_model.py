"""examples/prune_trained_model.py: tfmot's tutorial flow with keras_er
(tiny settings). The side-by-side run with tfmot itself
(``--framework=both``, the default) is measured for
docs/migrating_from_tfmot.md; it takes two more TensorFlow processes, so
the test suite runs the keras_er side."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "prune_trained_model.py")

pytestmark = [pytest.mark.tf_only, pytest.mark.heavy]


def test_keras_er_prunes_the_trained_model_like_tfmot():
    done = subprocess.run(
        [sys.executable, SCRIPT, "--framework=keras_er", "--train_size=1000",
         "--test_size=500", "--epochs=1", "--prune_epochs=2",
         "--frequency=4"],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads(done.stdout.strip().splitlines()[-1])
    assert run["framework"] == "keras_er"
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
