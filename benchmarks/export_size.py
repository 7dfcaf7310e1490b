r"""Exported file sizes against density: SavedModel, .keras and TFLite.

For each model (LeNet-300-100 and `keras.applications.ResNet50(weights=None)`)
and each density, the model is sparsified (seed 0) and written four ways:

* SavedModel: ``keras_er.export(m, dir)`` (stripped), size = tar + gzip -9
  of the directory (`keras_er.gzipped_size`);
* .keras (export): ``keras_er.export(m, "x.keras", format="keras")``, the
  stripped model that loads without keras_er, size = gzip -9 of the file;
* .keras (model.save): ``m.save("x.keras")``, the sparse model itself with its
  ER layers and masks (packed bits, in-mask kernel values), gzip -9;
* TFLite: ``keras_er.export(m, "x.tflite", format="tflite")`` (sparsity
  encoding on), the raw file size: a .tflite file is deployed as it is.

Every size is printed in KB (1000 bytes) with its ratio to the same format of
the dense model (the model before sparsify, exported the same way). A second
table gives the raw (not compressed) sizes. Sizes do not depend on the
machine's speed; TensorFlow and Keras versions can move them slightly.

Usage, from the repository root (about 11 minutes on 2 busy CPU cores,
mostly ResNet50's TFLite conversions and gzip):

    python benchmarks/export_size.py
    python benchmarks/export_size.py --models=lenet300_100 --densities=0.1
"""

import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_list(
    "models", ["lenet300_100", "resnet50"], "Models to measure (comma list)."
)
flags.DEFINE_list(
    "densities", ["0.5", "0.1", "0.01"], "Overall densities (comma list)."
)
flags.DEFINE_string(
    "ratio", None,
    "Layerwise ratio for every model; by default pyramidal for "
    "LeNet-300-100 (as in the README) and erk for ResNet50.",
)
flags.DEFINE_integer("seed", 0, "Seed of sparsify (and of the dense init).")

DEFAULT_RATIO = {"lenet300_100": "pyramidal", "resnet50": "erk"}
KINDS = ("saved_model", "keras_export", "keras_save", "tflite")
HEADERS = {
    "saved_model": "SavedModel",
    "keras_export": ".keras (export)",
    "keras_save": ".keras (model.save)",
    "tflite": "TFLite",
}


def _build(name):
    import keras

    if name == "lenet300_100":
        from keras_er.research.models import lenet300_100

        return lenet300_100()
    if name == "resnet50":
        return keras.applications.ResNet50(weights=None)
    raise ValueError(f"Unknown model {name!r}.")


def _tree_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(directory, name))
        for directory, _, files in os.walk(path) for name in files
    )


def _measure(model, workdir):
    """Writes ``model`` in every format; returns {kind: (gzip'd, raw)}."""
    import keras_er
    from keras_er.export import gzipped_size

    paths = {
        "saved_model": os.path.join(workdir, "saved_model"),
        "keras_export": os.path.join(workdir, "export.keras"),
        "keras_save": os.path.join(workdir, "save.keras"),
        "tflite": os.path.join(workdir, "model.tflite"),
    }
    keras_er.export(model, paths["saved_model"])
    keras_er.export(model, paths["keras_export"], format="keras")
    model.save(paths["keras_save"])
    keras_er.export(model, paths["tflite"], format="tflite")
    sizes = {}
    for kind, path in paths.items():
        raw = _tree_size(path)
        # A .tflite file ships as is; the others are compared gzip'd.
        packed = raw if kind == "tflite" else gzipped_size(path)
        sizes[kind] = (packed, raw)
    shutil.rmtree(workdir)
    os.makedirs(workdir)
    return sizes


def _row(model_name, density, kernel_density, sizes, dense, index):
    cells = [model_name, density, f"{kernel_density:.4f}"]
    for kind in KINDS:
        size, reference = sizes[kind][index], dense[kind][index]
        cells.append(f"{size / 1000:,.0f} ({size / reference:.3f})")
    return "| " + " | ".join(cells) + " |"


def _table(rows, index, title):
    header = ["model", "density", "kernel density"]
    header += [HEADERS[kind] for kind in KINDS]
    lines = [title, "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += [_row(*row, index) for row in rows]
    return "\n".join(lines)


def main(argv):
    del argv
    import keras

    import keras_er

    logging.set_verbosity(logging.WARNING)
    keras.utils.set_random_seed(FLAGS.seed)
    densities = [float(d) for d in FLAGS.densities]
    rows = []
    workdir = tempfile.mkdtemp(prefix="keras_er_export_size_")
    try:
        for name in FLAGS.models:
            start = time.perf_counter()
            dense = _build(name)
            dense_sizes = _measure(dense, workdir)
            rows.append((name, "dense", 1.0, dense_sizes, dense_sizes))
            ratio = FLAGS.ratio or DEFAULT_RATIO.get(name, "erk")
            for density in densities:
                sparse = keras_er.sparsify(
                    dense, ratio, density, seed=FLAGS.seed
                )
                totals = keras_er.summary(sparse, print_fn=None)[-1]
                rows.append((
                    name, f"{density:g} ({ratio})", totals["density"],
                    _measure(sparse, workdir), dense_sizes,
                ))
                del sparse
                keras.backend.clear_session(free_memory=True)
            print(f"[{name}: {time.perf_counter() - start:.0f} s]",
                  flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(_table(
        rows, 0,
        "gzip'd sizes, KB (ratio to dense): SavedModel tar + gzip -9, "
        ".keras gzip -9, TFLite raw",
    ))
    print()
    print(_table(rows, 1, "Raw sizes on disk, KB (ratio to dense)"))
    print()
    import tensorflow as tf

    print(f"Keras {keras.__version__}, TensorFlow {tf.__version__}, gzip "
          f"level 9, seed {FLAGS.seed}.")


if __name__ == "__main__":
    app.run(main)
