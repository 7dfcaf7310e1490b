r"""Prunes a *trained* dense MNIST conv net, tfmot's tutorial flow, with keras_er.

The flow of tensorflow-model-optimization's "Pruning in Keras" tutorial:

1. train a small dense conv net on MNIST (4 epochs);
2. prune it from 50 % to 80 % sparsity with a `PolynomialDecay` schedule
   while fine-tuning (2 epochs), each layer to the schedule's sparsity;
3. strip the pruning state (plain Keras layers with zeros);
4. compare gzip'd sizes: the dense and pruned weights files (HDF5), and
   TFLite files, also with int8 post-training quantization (dynamic range);
5. the test accuracy at each stage (Keras, then the TFLite files).

With ``--framework=tfmot`` the same flow runs with tfmot itself (in a
subprocess with ``TF_USE_LEGACY_KERAS=1``: tfmot needs Keras 2); with
``--framework=both`` (the default) both run and the last lines are the
table side by side. Each run prints, as its last line, a JSON object.

MNIST comes from the shipped idx files (no download). Usage, from the
repository root:

    python examples/prune_trained_model.py
    python examples/prune_trained_model.py --framework=keras_er --epochs=1 \
        --prune_epochs=1 --train_size=6000
"""

import gzip
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "framework", "both", ["keras_er", "tfmot", "both"],
    "Which library prunes: keras_er (Keras 3), tfmot (Keras 2), or both.",
)
flags.DEFINE_integer("epochs", 4, "Epochs of dense training.", lower_bound=1)
flags.DEFINE_integer(
    "prune_epochs", 2, "Epochs of pruning (fine-tuning).", lower_bound=1
)
flags.DEFINE_float("initial_sparsity", 0.5, "Sparsity when pruning starts.")
flags.DEFINE_float("final_sparsity", 0.8, "Sparsity when pruning ends.")
flags.DEFINE_integer(
    "frequency", 100, "Prune every this many steps (tfmot's default).",
    lower_bound=1,
)
flags.DEFINE_integer("batch_size", 128, "Batch size.", lower_bound=1)
flags.DEFINE_integer(
    "train_size", None, "Train on the first N images (quick runs).",
    lower_bound=1,
)
flags.DEFINE_integer(
    "test_size", None, "Evaluate on the first N test images (quick runs).",
    lower_bound=1,
)
flags.DEFINE_integer("seed", 0, "Seed of the weights and the data order.")


def load_data(train_size):
    from keras_er.research.data import load_mnist

    (x, y), (x_test, y_test) = load_mnist(source="idx")
    if train_size is not None:
        x, y = x[:train_size], y[:train_size]
    if FLAGS.test_size is not None:
        x_test, y_test = x_test[:FLAGS.test_size], y_test[:FLAGS.test_size]
    return (x / 255.0, y), (x_test / 255.0, y_test)


def gzipped(path):
    """Bytes of ``path`` once gzip'd (what a download costs)."""
    with open(path, "rb") as f:
        return len(gzip.compress(f.read(), compresslevel=9, mtime=0))


def tflite_accuracy(path, x, y):
    """Test accuracy of a .tflite file, one example at a time."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # LiteRT does not install everywhere.
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    correct = 0
    for image, label in zip(x.astype(np.float32), y):
        interpreter.set_tensor(inp["index"], image[np.newaxis])
        interpreter.invoke()
        correct += int(np.argmax(interpreter.get_tensor(out["index"])) == label)
    return correct / len(y)


def conv_net(keras):
    """The tutorial's model (the same code for Keras 3 and tf_keras)."""
    return keras.Sequential([
        keras.layers.InputLayer(input_shape=(28, 28, 1))
        if keras.__name__ == "tf_keras" else keras.Input((28, 28, 1)),
        keras.layers.Conv2D(12, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])


def _compile(keras, model):
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def train_dense(keras, framework):
    """Stage 1, the same for both libraries: the trained dense model.

    Returns:
        ``(train, test, dense, results)``, ``results`` with its accuracy.
    """
    (x, y), (x_test, y_test) = load_data(FLAGS.train_size)
    keras.utils.set_random_seed(FLAGS.seed)
    dense = conv_net(keras)
    _compile(keras, dense)
    dense.fit(x, y, epochs=FLAGS.epochs, validation_split=0.1, verbose=2)
    results = {"framework": framework}
    results["dense_accuracy"] = dense.evaluate(
        x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    return (x, y), (x_test, y_test), dense, results


def measure_files(paths, results, x_test, y_test):
    """Adds the gzip'd size of every file and the TFLite accuracies."""
    for name, path in paths.items():
        results[f"{name}_gzip_bytes"] = gzipped(path)
    for name in ("pruned_tflite", "pruned_int8_tflite"):
        results[f"{name}_accuracy"] = tflite_accuracy(
            paths[name], x_test, y_test)
    return results


def _end_step(n_train):
    return math.ceil(n_train * 0.9 / FLAGS.batch_size) * FLAGS.prune_epochs


def run_keras_er(directory):
    import keras

    import keras_er
    from keras_er.callbacks import MagnitudePruning, schedules

    (x, y), (x_test, y_test), dense, results = train_dense(keras, "keras_er")

    # Full masks on the trained model (weights kept), then tfmot's schedule,
    # each layer pruned to the schedule's sparsity ("layerwise").
    model = keras_er.sparsify(dense, "uniform", density=1.0)
    _compile(keras, model)
    schedule = schedules.PolynomialDecay(
        initial_sparsity=FLAGS.initial_sparsity,
        final_sparsity=FLAGS.final_sparsity,
        begin_step=0, end_step=_end_step(len(x)), frequency=FLAGS.frequency,
    )
    model.fit(
        x, y, batch_size=FLAGS.batch_size, epochs=FLAGS.prune_epochs,
        validation_split=0.1, verbose=2,
        callbacks=[MagnitudePruning(schedule, scope="layerwise")],
    )
    results["pruned_accuracy"] = model.evaluate(
        x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    stripped = keras_er.strip(model)
    results["sparsity"] = 1.0 - keras_er.summary(
        model, print_fn=None)[-1]["density"]

    paths = {
        "dense_weights": os.path.join(directory, "dense.weights.h5"),
        "pruned_weights": os.path.join(directory, "pruned.weights.h5"),
        "pruned_tflite": os.path.join(directory, "pruned.tflite"),
        "pruned_int8_tflite": os.path.join(directory, "pruned_int8.tflite"),
    }
    # Keras 3 also writes a compiled model's optimizer state into its
    # weights file (tf_keras does not): save an uncompiled copy.
    weights_only = keras.models.clone_model(dense)
    weights_only.set_weights(dense.get_weights())
    weights_only.save_weights(paths["dense_weights"])
    stripped.save_weights(paths["pruned_weights"])
    keras_er.export(model, paths["pruned_tflite"], format="tflite")
    keras_er.export(model, paths["pruned_int8_tflite"], format="tflite",
                    quantize="dynamic_range")
    return measure_files(paths, results, x_test, y_test)


def run_tfmot(directory):
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    (x, y), (x_test, y_test), dense, results = train_dense(keras, "tfmot")

    # Saved now: tfmot's wrappers share the layers of `dense`, so pruning
    # changes its kernels too. An uncompiled copy: no optimizer state.
    dense_weights = os.path.join(directory, "dense.weights.h5")
    weights_only = keras.models.clone_model(dense)
    weights_only.set_weights(dense.get_weights())
    weights_only.save_weights(dense_weights)

    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=FLAGS.initial_sparsity,
        final_sparsity=FLAGS.final_sparsity,
        begin_step=0, end_step=_end_step(len(x)), frequency=FLAGS.frequency,
    )
    model = tfmot.sparsity.keras.prune_low_magnitude(
        dense, pruning_schedule=schedule)
    _compile(keras, model)
    model.fit(
        x, y, batch_size=FLAGS.batch_size, epochs=FLAGS.prune_epochs,
        validation_split=0.1, verbose=2,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    results["pruned_accuracy"] = model.evaluate(
        x_test, y_test, verbose=0, return_dict=True)["accuracy"]
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    kernels = [w for layer in stripped.layers for w in layer.get_weights()
               if w.ndim > 1]
    results["sparsity"] = float(
        sum(int(np.sum(k == 0)) for k in kernels)
        / sum(k.size for k in kernels))

    paths = {
        "dense_weights": dense_weights,
        "pruned_weights": os.path.join(directory, "pruned.weights.h5"),
        "pruned_tflite": os.path.join(directory, "pruned.tflite"),
        "pruned_int8_tflite": os.path.join(directory, "pruned_int8.tflite"),
    }
    stripped.save_weights(paths["pruned_weights"])
    for name, optimizations in (
        ("pruned_tflite", [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]),
        ("pruned_int8_tflite", [tf.lite.Optimize.DEFAULT]),
    ):
        converter = tf.lite.TFLiteConverter.from_keras_model(stripped)
        converter.optimizations = optimizations
        with open(paths[name], "wb") as f:
            f.write(converter.convert())
    return measure_files(paths, results, x_test, y_test)


ROWS = [
    ("dense_accuracy", "test accuracy, dense (trained)"),
    ("pruned_accuracy", "test accuracy, pruned"),
    ("sparsity", "kernel sparsity after pruning"),
    ("pruned_tflite_accuracy", "test accuracy, pruned TFLite"),
    ("pruned_int8_tflite_accuracy", "test accuracy, pruned TFLite int8"),
    ("dense_weights_gzip_bytes", "gzip'd dense weights file (bytes)"),
    ("pruned_weights_gzip_bytes", "gzip'd pruned weights file (bytes)"),
    ("pruned_tflite_gzip_bytes", "gzip'd pruned TFLite (bytes)"),
    ("pruned_int8_tflite_gzip_bytes", "gzip'd pruned TFLite int8 (bytes)"),
]


def _cell(value):
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"prune_trained_model.py: error: unexpected {argv[1:]}")
    if FLAGS.framework == "both":
        runs = []
        for framework in ("keras_er", "tfmot"):
            command = [sys.executable, __file__, f"--framework={framework}"]
            command += [
                f"--{name}={FLAGS[name].value}"
                for name in ("epochs", "prune_epochs", "initial_sparsity",
                             "final_sparsity", "frequency", "batch_size",
                             "seed")
            ]
            for name in ("train_size", "test_size"):
                if FLAGS[name].value:
                    command.append(f"--{name}={FLAGS[name].value}")
            done = subprocess.run(command, check=True, capture_output=True,
                                  text=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print("| | keras_er (Keras 3) | tfmot (tf_keras) |")
        print("|---|---|---|")
        for key, label in ROWS:
            print(f"| {label} | {_cell(runs[0][key])} | "
                  f"{_cell(runs[1][key])} |")
        print(json.dumps(runs))
        return
    with tempfile.TemporaryDirectory() as directory:
        run = run_keras_er if FLAGS.framework == "keras_er" else run_tfmot
        results = run(directory)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    app.run(main)
