r"""Trains a sparse (ER) network with one of keras_er's methods.

One command for every data set, model and method: the flags are the fields
of `keras_er.research.experiment.Config` (same names, same defaults) and the
work is done by `keras_er.research.experiment.run_experiment`, which a
benchmark can call in-process. Prints the Keras progress bar, the test
accuracy, the `keras_er.summary` table and, as the last line on stdout, one
JSON object with the results. See ``docs/examples.md`` for a command per method.

Offline data: ``--dataset=digits`` (scikit-learn) and ``--dataset=mnist``
(the idx files in ``../shared/datasets/mnist``, or a TFDS copy prepared from
them with ``--data_source=tfds``). Other TFDS names need internet or their
files in TFDS's manual dir.

Usage, from the repository root:

    python examples/train.py --dataset=digits --method=static --epochs=20
    python examples/train.py --dataset=mnist --model=lenet300 \
        --ratio=pyramidal --density=0.1 --method=rigl --optimizer=adam \
        --lr=1e-3 --epochs=3 --rigl_target_density=0.01
"""

import dataclasses
import json
import sys

from absl import app, flags

# keras_er (and so Keras and TensorFlow) is imported in `main`, after the
# flags are parsed, so that --help and flag errors answer at once.

FLAGS = flags.FLAGS

METHODS = ["static", "imp", "str", "gmp", "rigl", "set", "edgepopup"]
MODELS = ["lenet300", "conv_small", "conv4", "vgg16", "resnet18", "resnet20"]
RATIOS = ["uniform", "er", "erk", "balanced", "pyramidal", "snip", "synflow"]

# Data.
flags.DEFINE_string(
    "dataset", "digits",
    "digits or mnist (offline), or any TFDS image classification name "
    "(e.g. cifar10, fashion_mnist).",
)
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_enum(
    "data_source", "auto", ["auto", "tfds", "idx"],
    "mnist only: auto = a prepared TFDS copy if any, else the idx files; "
    "tfds = prepare the TFDS copy offline from the idx files (once, about "
    "a minute); idx = the idx files.",
)
flags.DEFINE_boolean(
    "download", True,
    "Allow TFDS to download data sets other than mnist (needs internet).",
)
flags.DEFINE_string("train_split", "train", "Split to train on.")
flags.DEFINE_string("test_split", "test", "Split to evaluate on.")
flags.DEFINE_integer(
    "train_size", None, "Train on a random subset of this many examples.",
    lower_bound=1,
)
flags.DEFINE_integer(
    "test_size", None, "Evaluate on a random subset of this many examples.",
    lower_bound=1,
)

# Model and mask.
flags.DEFINE_enum(
    "model", "lenet300", MODELS, "Model of keras_er.research.models."
)
flags.DEFINE_integer(
    "width", 1, "lenet300 only: multiplies its hidden widths 300 and 100.",
    lower_bound=1,
)
flags.DEFINE_enum(
    "ratio", "erk", RATIOS, "Layerwise density method of keras_er.sparsify."
)
flags.DEFINE_float(
    "density", 0.1, "Overall ER density at the start, in (0, 1] (1: dense)."
)
flags.DEFINE_enum(
    "sampling", "bernoulli", ["bernoulli", "exact"], "How masks are drawn."
)
flags.DEFINE_enum(
    "flow", "addition", ["addition", "rejection", "none"],
    "Flow preservation of the masks.",
)
flags.DEFINE_enum(
    "init", "keep", ["keep", "sparse_he_normal"],
    "Kernel init of the sparse layers.",
)
flags.DEFINE_integer("seed", 0, "Seed of masks, weights and data order.")
flags.DEFINE_boolean(
    "eval_each_epoch", False,
    "Also evaluate on the test split after every epoch (reported as "
    "test_accuracy_per_epoch, to check convergence).",
)

# Method.
flags.DEFINE_enum("method", "static", METHODS, "Sparse training method.")
flags.DEFINE_float("imp_target_density", None, "IMP: final density.")
flags.DEFINE_float(
    "imp_prune_fraction", 0.2, "IMP: fraction pruned per cycle."
)
flags.DEFINE_integer(
    "imp_epochs_per_cycle", None,
    "IMP: epochs per cycle (default: --epochs spread over the cycles).",
    lower_bound=1,
)
flags.DEFINE_string(
    "imp_rewind", "init", "IMP: 'init' or the step to rewind to."
)
flags.DEFINE_enum(
    "imp_scope", "global", ["global", "layerwise"], "IMP: pruning scope."
)
flags.DEFINE_float(
    "str_target_density", None, "STR: target density (default: plain STR)."
)
flags.DEFINE_float("str_s_init", -200.0, "STR: initial threshold parameter.")
flags.DEFINE_float(
    "str_s_weight_decay", 5e-4, "STR: weight decay on the threshold."
)
flags.DEFINE_float("gmp_final_density", None, "GMP: final density.")
flags.DEFINE_float(
    "gmp_begin_fraction", 0.0, "GMP: fraction of training before pruning."
)
flags.DEFINE_float(
    "gmp_end_fraction", 0.75,
    "GMP: fraction of training at which the final density is reached.",
)
flags.DEFINE_integer(
    "gmp_frequency", 100, "GMP: steps between mask updates.", lower_bound=1
)
flags.DEFINE_enum(
    "gmp_scope", "global", ["global", "layerwise"], "GMP: pruning scope."
)
flags.DEFINE_integer(
    "rigl_update_every", 100, "RiGL/SET: steps between mask updates.",
    lower_bound=1,
)
flags.DEFINE_float(
    "rigl_drop_fraction", 0.3, "RiGL/SET: initial drop fraction."
)
flags.DEFINE_float(
    "rigl_end_fraction", 0.75,
    "RiGL/SET: fraction of training after which masks are frozen.",
)
flags.DEFINE_enum(
    "rigl_schedule", "cosine", ["cosine", "constant"],
    "RiGL/SET: drop fraction schedule.",
)
flags.DEFINE_float(
    "rigl_target_density", None,
    "RiGL/SET: final density (prune and rewire); default: keep it.",
)
flags.DEFINE_float("ep_final_density", None, "Edge-popup: final density.")
flags.DEFINE_integer(
    "ep_levels", 1, "Edge-popup: annealing levels.", lower_bound=1
)
flags.DEFINE_enum(
    "ep_weight_init", "signed_constant", ["signed_constant", "kaiming_normal"],
    "Edge-popup: init of the frozen weights.",
)

# Training.
flags.DEFINE_integer("epochs", 10, "Training epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Global batch size.", lower_bound=1)
flags.DEFINE_enum("optimizer", "sgd", ["sgd", "adam"], "Optimizer.")
flags.DEFINE_float(
    "lr", None, "Learning rate (default: 0.1 for sgd, 1e-3 for adam)."
)
flags.DEFINE_float("momentum", 0.9, "SGD momentum.")
flags.DEFINE_float("weight_decay", 0.0, "Optimizer weight decay.")
flags.DEFINE_enum(
    "lr_schedule", "constant", ["constant", "cosine"],
    "Learning rate schedule (cosine restarts every IMP cycle).",
)
flags.DEFINE_boolean("jit_compile", False, "Compile the train step with XLA.")
flags.DEFINE_enum(
    "strategy", "default", ["default", "mirrored"],
    "tf.distribute strategy (mirrored: all local GPUs).",
)
flags.DEFINE_enum(
    "verbose", "1", ["0", "1", "2"],
    "Keras fit verbosity: 1 = progress bar, 2 = one line per epoch.",
)

# Outputs.
flags.DEFINE_string(
    "export_dir", None, "Write the stripped model there (SavedModel)."
)
flags.DEFINE_string(
    "tensorboard_dir", None,
    "TensorBoard logs (Keras' TensorBoard and keras_er SparsitySummaries).",
)
flags.DEFINE_string("results_json", None, "Write the results there as JSON.")

flags.register_validator(
    "density", lambda d: 0.0 < d <= 1.0, "--density must be in (0, 1]."
)
flags.register_validator(
    "lr", lambda lr: lr is None or lr > 0.0, "--lr must be > 0."
)


def config_from_flags(experiment):
    """The `Config` whose fields are the flags of the same names."""
    values = {}
    for field in dataclasses.fields(experiment.Config):
        values[field.name] = FLAGS[field.name].value
    values["verbose"] = int(values["verbose"])
    if values["flow"] == "none":
        values["flow"] = None
    return experiment.Config(**values)


def _usage_error(message):
    """Exits with one line on stderr (absl's UsageError prints every flag)."""
    sys.exit(f"train.py: error: {message} (see --helpfull for every flag)")


def main(argv):
    if len(argv) > 1:
        _usage_error(f"unexpected arguments {argv[1:]}")
    from keras_er.research import experiment

    config = config_from_flags(experiment)
    try:
        config.validate()
    except ValueError as error:
        _usage_error(error)
    results = experiment.run_experiment(config)
    # Last line on stdout, for scripts that collect results.
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    app.run(main)
