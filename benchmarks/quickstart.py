r"""The README Quickstart's choices, measured: ratio x optimizer x init.

Trains the Quickstart's LeNet-300-100 (MNIST from the shipped idx files,
inputs scaled to [0, 1], batch 32, 5 epochs, seed 0) for every row of the
README's table and prints the test accuracy after epochs 1, 3 and 5 as a
Markdown table (about 15 min on 2 CPU cores). The Quickstart row itself is
``pyramidal / adam / sparse_he_normal``.

With ``--readme`` it instead runs the README's Quickstart block itself, as
written and trained in full, and exits with status 1 unless the test
accuracy it prints is at least 0.95 (about 2 min).

Usage, from the repository root:

    python benchmarks/quickstart.py
    python benchmarks/quickstart.py --epochs=3 --seed=1
    python benchmarks/quickstart.py --readme
"""

import contextlib
import io
import json
import os
import re
import tempfile

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("epochs", 5, "Training epochs.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the masks and the weights.")
flags.DEFINE_string("out", None, "Also append each row as JSON to this file.")
flags.DEFINE_boolean(
    "readme", False,
    "Run the README's Quickstart block as written; fail below 0.95.",
)

README = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "README.md")


def run_readme_quickstart():
    """Runs the README's first Python block; returns the accuracy printed."""
    text = open(README).read()
    block = re.search(r"^```python\n(.*?)^```", text, re.S | re.M).group(1)
    printed = io.StringIO()
    with tempfile.TemporaryDirectory() as directory:
        cwd = os.getcwd()
        os.chdir(directory)  # The block writes m.keras and exported/.
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(block, "README.md, Quickstart", "exec"), {})
        finally:
            os.chdir(cwd)
    values = re.findall(r"^(0\.\d+)$", printed.getvalue(), re.M)
    if not values:
        raise SystemExit("The Quickstart printed no accuracy.")
    return float(values[-1])

ROWS = [
    ("pyramidal", "sgd", "keep"),
    ("pyramidal", "sgd", "sparse_he_normal"),
    ("pyramidal", "adam", "keep"),
    ("pyramidal", "adam", "sparse_he_normal"),
    ("erk", "sgd", "keep"),
    ("erk", "adam", "keep"),
    ("dense", "sgd", None),
    ("dense", "adam", None),
]
REPORTED = (1, 3, 5)


def quickstart_model():
    import keras

    return keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Flatten(),
        keras.layers.Dense(300, activation="relu"),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def run_row(ratio, optimizer, init, data, epochs, seed):
    """Test accuracy after every epoch of one Quickstart variant."""
    import keras
    import keras_er

    (x, y), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = quickstart_model()
    if ratio != "dense":
        model = keras_er.sparsify(model, ratio=ratio, density=0.1, seed=seed,
                                  init=init)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    accuracies = []
    evaluate = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: accuracies.append(
            model.evaluate(x_test, y_test, verbose=0, return_dict=True)[
                "accuracy"]))
    model.fit(x, y, epochs=epochs, callbacks=[evaluate], verbose=0)
    return accuracies


def main(argv):
    del argv
    if FLAGS.readme:
        accuracy = run_readme_quickstart()
        print(f"README Quickstart test accuracy: {accuracy:.4f}")
        if accuracy < 0.95:
            raise SystemExit("Below the 0.95 the README promises.")
        return
    from keras_er.research.data import load_mnist

    (x, y), (x_test, y_test) = load_mnist()
    data = ((x / 255.0, y), (x_test / 255.0, y_test))
    shown = [e for e in REPORTED if e <= FLAGS.epochs]
    print("| ratio at density 0.1 | optimizer | `init` | "
          + " | ".join(f"epoch {e}" for e in shown) + " |")
    print("|---|---|---|" + "---|" * len(shown))
    for ratio, optimizer, init in ROWS:
        accuracies = run_row(ratio, optimizer, init, data, FLAGS.epochs,
                             FLAGS.seed)
        cells = " | ".join(f"{accuracies[e - 1]:.3f}" for e in shown)
        print(f"| {ratio} | {optimizer} | {init or '-'} | {cells} |",
              flush=True)
        if FLAGS.out:
            with open(FLAGS.out, "a") as f:
                f.write(json.dumps({
                    "ratio": ratio, "optimizer": optimizer, "init": init,
                    "seed": FLAGS.seed, "accuracy": accuracies}) + "\n")


if __name__ == "__main__":
    app.run(main)
