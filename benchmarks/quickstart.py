r"""The README Quickstart's choices, measured: ratio x optimizer x init.

Trains the Quickstart's LeNet-300-100 (MNIST from the shipped idx files,
inputs scaled to [0, 1], batch 32, 5 epochs, seed 0) for every row of the
README's table and prints the test accuracy after epochs 1, 3 and 5 as a
Markdown table (about 15 min on 2 CPU cores). The Quickstart row itself is
``pyramidal / adam / sparse_he_normal``.

Usage, from the repository root:

    python benchmarks/quickstart.py
    python benchmarks/quickstart.py --epochs=3 --seed=1
"""

import json

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("epochs", 5, "Training epochs.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the masks and the weights.")
flags.DEFINE_string("out", None, "Also append each row as JSON to this file.")

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
