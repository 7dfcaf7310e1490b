r"""Trains a sparse LeNet-300-100 on MNIST with a fixed random (ER) mask.

The dense model from `keras_er.research.models.lenet300_100` is sparsified
once with `keras_er.sparsify` (layerwise densities from ``--ratio``, overall
density ``--density``) and trained with Adam; the mask never changes. The script
prints the test accuracy, the `keras_er.summary` table and, as its last line
on stdout, a JSON object with the results.

It runs offline: MNIST comes from a prepared TFDS directory if there is one,
else from the idx files shipped in ``../shared/datasets/mnist`` (see
`keras_er.research.data.load_mnist`).

Usage, from the repository root:

    python examples/mnist_lenet.py
    python examples/mnist_lenet.py --ratio=erk --density=0.05 --epochs=5
    python examples/mnist_lenet.py --train_size=5000 --epochs=1 \
        --export_dir=/tmp/lenet_sparse
"""

import json
import time

import numpy as np
from absl import app, flags

# Keras, TensorFlow and keras_er are imported in `run`, after the flags are
# parsed, so that --help and flag errors answer at once instead of after
# seconds of TensorFlow start-up.

FLAGS = flags.FLAGS

# The names of keras_er.ratios.METHODS (kept in sync by the example's test).
RATIOS = ["balanced", "er", "erk", "pyramidal", "uniform"]

flags.DEFINE_enum(
    "ratio", "pyramidal", RATIOS,
    "Layerwise density method passed to keras_er.sparsify.",
)
flags.DEFINE_float(
    "density", 0.1, "Overall density (1 - sparsity) of the kernels, in (0, 1]."
)
flags.DEFINE_integer(
    "seed", 0, "Seed of the ER masks, the weight init and the data order."
)
flags.DEFINE_integer("epochs", 3, "Training epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Batch size.", lower_bound=1)
# Higher than Adam's usual 1e-3: with 90% of the kernel masked, the sparse
# layers start with smaller activations and train slower; 3e-3 reaches a
# better accuracy in the few default epochs.
flags.DEFINE_float("lr", 3e-3, "Adam learning rate (> 0).")
flags.DEFINE_string(
    "data_dir", None,
    "MNIST directory: a prepared TFDS data dir or the four idx files. "
    "Default: TFDS's default dir, else the shipped ../shared/datasets/mnist.",
)
flags.DEFINE_enum(
    "source", "auto", ["auto", "tfds", "idx"],
    "Where MNIST is read from (see keras_er.research.data.load_mnist).",
)
flags.DEFINE_string(
    "export_dir", None,
    "If set, the trained model is stripped and written there as a TF "
    "SavedModel with keras_er.export.",
)
flags.DEFINE_enum(
    "sampling", "bernoulli", ["bernoulli", "exact"],
    "How masks are drawn (see keras_er.sparsify).",
)
flags.DEFINE_enum(
    "flow", "addition", ["addition", "rejection", "none"],
    "Flow preservation of the masks; 'none' keeps them as drawn.",
)
flags.DEFINE_integer(
    "train_size", None,
    "Train on a random subset of this many examples (quick runs); default: "
    "all 60000.",
    lower_bound=1,
)
flags.DEFINE_enum(
    "verbose", "1", ["0", "1", "2"],
    "Keras fit verbosity: 1 = progress bar, 2 = one line per epoch (logs).",
)

# Checked at parse time so a bad value fails before any data is loaded.
flags.register_validator(
    "density", lambda d: 0.0 < d <= 1.0, "--density must be in (0, 1]."
)
flags.register_validator("lr", lambda lr: lr > 0.0, "--lr must be > 0.")


def run(
    ratio="pyramidal",
    density=0.1,
    seed=0,
    epochs=3,
    batch_size=128,
    lr=3e-3,
    data_dir=None,
    source="auto",
    export_dir=None,
    sampling="bernoulli",
    flow="addition",
    train_size=None,
    verbose=1,
):
    """Loads MNIST, trains the sparse LeNet and returns a results dict.

    The arguments mirror the command-line flags (``flow`` takes ``None``
    instead of ``"none"``; ``verbose`` is Keras' fit verbosity). Prints the
    test accuracy and the `keras_er.summary` table, not the JSON line (`main`
    prints that).

    Raises:
        ValueError: If ``train_size`` exceeds the training set.
    """
    import keras

    import keras_er
    from keras_er.research.data import load_mnist
    from keras_er.research.models import lenet300_100

    start = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = load_mnist(data_dir, source)
    if train_size is not None:
        if train_size > len(x_train):
            raise ValueError(
                f"train_size={train_size} exceeds the {len(x_train)} "
                "training examples; pass a smaller --train_size or leave it "
                "unset to use all of them."
            )
        # A seeded random subset keeps the classes balanced, unlike the
        # first examples of the file.
        rng = np.random.default_rng(seed)
        keep = rng.permutation(len(x_train))[:train_size]
        x_train, y_train = x_train[keep], y_train[keep]
    x_train = x_train.astype("float32") / 255.0
    x_test = x_test.astype("float32") / 255.0
    print(
        f"MNIST: {len(x_train)} training and {len(x_test)} test examples."
    )

    # Same seed, same initial weights and batch order on every run.
    keras.utils.set_random_seed(seed)
    dense = lenet300_100(input_shape=x_train.shape[1:], num_classes=10)
    model = keras_er.sparsify(
        dense,
        ratio=ratio,
        density=density,
        seed=seed,
        sampling=sampling,
        flow=flow,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train_start = time.perf_counter()
    model.fit(
        x_train, y_train, batch_size=batch_size, epochs=epochs,
        verbose=verbose,
    )
    train_time = time.perf_counter() - train_start
    scores = model.evaluate(
        x_test, y_test, batch_size=1024, verbose=0, return_dict=True
    )
    print(f"Test accuracy: {scores['accuracy']:.4f}")
    rows = keras_er.summary(model, print_fn=print)
    if export_dir is not None:
        keras_er.export(model, export_dir)
        print(f"Exported the stripped model to {export_dir}")
    return {
        "model": "lenet300_100",
        "accuracy": float(scores["accuracy"]),
        "loss": float(scores["loss"]),
        "ratio": ratio,
        "density": float(density),
        "actual_density": float(rows[-1]["density"]),
        "seed": int(seed),
        "sampling": sampling,
        "flow": flow,
        "epochs": int(epochs),
        "train_size": int(len(x_train)),
        "flow_edges_added": int(
            model.sparsify_report["total_edges_added"]
        ),
        "train_time_s": round(train_time, 3),
        "wall_time_s": round(time.perf_counter() - start, 3),
        "backend": keras.backend.backend(),
        "export_dir": export_dir,
    }


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    results = run(
        ratio=FLAGS.ratio,
        density=FLAGS.density,
        seed=FLAGS.seed,
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        lr=FLAGS.lr,
        data_dir=FLAGS.data_dir,
        source=FLAGS.source,
        export_dir=FLAGS.export_dir,
        sampling=FLAGS.sampling,
        flow=None if FLAGS.flow == "none" else FLAGS.flow,
        train_size=FLAGS.train_size,
        verbose=int(FLAGS.verbose),
    )
    # Last line on stdout, for scripts that collect results.
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    app.run(main)
