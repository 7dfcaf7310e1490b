"""`export`: write a stripped, deployable copy of a sparse model.

Three formats, all of the stripped model (plain Keras layers, zeros where
masked), so that the file follows the density of the sparse model:

* ``"tf_saved_model"``: a TensorFlow SavedModel (needs TensorFlow installed;
  Keras writes it from the TensorFlow and JAX backends). Its variables are
  dense tensors, so the directory shrinks only once compressed (see
  `gzipped_size`).
* ``"tflite"``: a TFLite flatbuffer converted with TensorFlow's sparsity
  encoding, so the file itself shrinks (TensorFlow backend only).
* ``"keras"``: a ``.keras`` file that loads without keras_er.

TensorFlow is imported lazily, here only: the rest of keras_er runs on any
Keras backend. Measured sizes are in ``docs/export.md``.
"""

import gzip
import os
import tarfile
import tempfile

import keras

from keras_er._checks import check_model, check_path
from keras_er.strip import strip

FORMATS = ("tf_saved_model", "tflite", "keras")


def export(model, path, format="tf_saved_model", verbose=False):
    """Strips ``model`` and writes it to ``path``.

    Args:
        model: A sparsified model (or any Sequential/Functional model).
        path: Output directory (``tf_saved_model``), ``.tflite`` file
            (``tflite``) or ``.keras`` file (``keras``).
        format: One of:

            * ``"tf_saved_model"``: a TensorFlow SavedModel whose ``serve``
              endpoint reproduces the model's outputs.
            * ``"tflite"``: a TFLite model converted from that SavedModel
              with ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``: Dense and
              convolution kernels with at least 30 % zeros are stored in a
              compressed sparse (CSR) form. The TFLite runtime densifies
              unstructured ones once, at load time, so only the file (not the
              memory at run time) shrinks. Needs the TensorFlow backend.
            * ``"keras"``: a ``.keras`` file that loads with Keras alone.
        verbose: Whether to print what is written.

    Returns:
        The stripped `keras.Model` that was written.

    Raises:
        ValueError: For an unknown format, a path with the wrong suffix, or
            ``tflite`` on a backend other than TensorFlow, or either
            TensorFlow format on the torch backend.
        ImportError: For ``tf_saved_model`` or ``tflite`` without TensorFlow
            installed.

    Example:

    ```python
    keras_er.export(sparse, "exported/")
    import tensorflow as tf
    tf.saved_model.load("exported/").serve(x)  # == sparse(x)

    keras_er.export(sparse, "model.tflite", format="tflite")
    interpreter = tf.lite.Interpreter(model_path="model.tflite")
    ```
    """
    check_model(model)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}.")
    path = check_path(path)
    suffix = {"keras": ".keras", "tflite": ".tflite"}.get(format)
    if suffix is not None and not path.endswith(suffix):
        raise ValueError(
            f"A {format} export needs a path ending in {suffix!r}, got "
            f"{path!r}."
        )
    if format != "keras" and keras.backend.backend() == "torch":
        # Keras exports torch models through torch.export and torch_xla,
        # which fail on these models: name what works instead.
        raise ValueError(
            f"format={format!r} is not available on the torch backend. Fix: "
            "export format='keras' here (keras_er.export(model, "
            "'m.keras', format='keras')), then convert that file with "
            "KERAS_BACKEND=tensorflow: keras_er.export("
            f"keras.saving.load_model('m.keras'), path, format={format!r})."
        )
    if format == "tflite" and keras.backend.backend() != "tensorflow":
        # Checked before stripping: fail fast, before any work.
        raise ValueError(
            "format='tflite' needs the TensorFlow backend (set "
            "KERAS_BACKEND=tensorflow); the current backend is "
            f"{keras.backend.backend()!r}. You can export "
            "format='tf_saved_model' and convert that SavedModel with "
            "tf.lite.TFLiteConverter.from_saved_model."
        )
    if format != "keras":
        _import_tensorflow(format)
    stripped = strip(model)
    if format == "keras":
        stripped.save(path)
    elif format == "tf_saved_model":
        stripped.export(path, format="tf_saved_model", verbose=verbose)
    else:
        _write_tflite(stripped, path)
    if verbose and format != "tf_saved_model":  # Keras prints its own.
        print(f"Saved the stripped model ({format}) at {path!r}.")
    return stripped


def _import_tensorflow(format):
    try:
        import tensorflow
    except ImportError as error:
        raise ImportError(
            f"Exporting format={format!r} needs TensorFlow: "
            "pip install tensorflow."
        ) from error
    return tensorflow


def _write_tflite(model, path):
    tf = _import_tensorflow("tflite")
    # Keras 3 models reach the converter through a SavedModel: the
    # converter's from_keras_model expects tf.keras (Keras 2) models.
    with tempfile.TemporaryDirectory() as saved_model_dir:
        model.export(saved_model_dir, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        # Encodes sparse weights in CSR form; without it a sparse model's
        # .tflite file is exactly as big as the dense one's.
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        flatbuffer = converter.convert()
    with open(path, "wb") as f:
        f.write(flatbuffer)


class _ByteCounter:
    """A write-only file object that only counts the bytes written to it."""

    def __init__(self):
        self.count = 0

    def write(self, data):
        self.count += len(data)
        return len(data)

    def flush(self):
        pass


def gzipped_size(path, compresslevel=9):
    """Size in bytes of ``path`` once gzip-compressed, the size of a download.

    A file is gzip-compressed as it is. A directory (a SavedModel) is first
    packed into a tar archive (members sorted by name, owner and time zeroed,
    so the result is reproducible), which is then gzip-compressed, like
    ``tar -cf - -C path . | gzip -9 | wc -c``. Nothing is written to disk.

    Args:
        path: A file or directory.
        compresslevel: gzip level, 1 (fast) to 9 (smallest; the default).

    Returns:
        The number of bytes of the compressed stream.

    Example:

    ```python
    keras_er.export(sparse, "exported/")
    keras_er.gzipped_size("exported/")  # 0.15x the dense one's at density 0.1
    ```
    """
    path = os.fspath(path)
    counter = _ByteCounter()
    with gzip.GzipFile(
        fileobj=counter, mode="wb", compresslevel=compresslevel, mtime=0
    ) as stream:
        if os.path.isdir(path):
            with tarfile.open(fileobj=stream, mode="w|") as tar:
                for name in _sorted_tree(path):
                    tar.add(
                        os.path.join(path, name),
                        arcname=name,
                        recursive=False,
                        filter=_normalized,
                    )
        else:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    stream.write(chunk)
    return counter.count


def _sorted_tree(root):
    """Paths under ``root`` (relative), directories before their contents."""
    names = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        relative = os.path.relpath(directory, root)
        for name in sorted(subdirs) + sorted(files):
            names.append(os.path.normpath(os.path.join(relative, name)))
    return sorted(names)


def _normalized(info):
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info
