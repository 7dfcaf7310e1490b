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
#: Post-training quantization of a TFLite export (``quantize=``).
QUANTIZATIONS = ("dynamic_range", "float16", "int8")


def export(
    model, path, format="tf_saved_model", verbose=False, quantize=None,
    representative_data=None,
):
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
        quantize: ``format="tflite"`` only: post-training quantization on
            top of the sparse encoding (zeros stay exactly zero: weights are
            quantized symmetrically, so 0 maps to 0).

            * ``None`` (default): float32 weights.
            * ``"dynamic_range"``: int8 weights, float activations (about
              4x smaller weights; no data needed).
            * ``"float16"``: float16 weights (2x smaller).
            * ``"int8"``: full-integer: int8 weights and activations, all
              ops in int8; needs ``representative_data``. The model's inputs
              and outputs stay float32 (the converter adds the (de)quantize
              ops), so it is called like the float model.
        representative_data: For ``quantize="int8"``: a few hundred
            typical inputs, to calibrate the activation ranges. A NumPy
            array (or a tuple/list of arrays for a model with several
            inputs; a dict for named inputs) whose first axis indexes the
            examples, or a callable returning an iterable of input lists
            (TFLite's ``representative_dataset``).

    Returns:
        The stripped `keras.Model` that was written.

    Raises:
        ValueError: For an unknown format, a path with the wrong suffix, or
            ``tflite`` on a backend other than TensorFlow, or either
            TensorFlow format on the torch backend; for ``quantize``
            without ``format="tflite"``, an unknown ``quantize``, or
            ``"int8"`` without ``representative_data``.
        ImportError: For ``tf_saved_model`` or ``tflite`` without TensorFlow
            installed.

    Example:

    ```python
    keras_er.export(sparse, "exported/")
    import tensorflow as tf
    tf.saved_model.load("exported/").serve(x)  # == sparse(x)

    keras_er.export(sparse, "model.tflite", format="tflite")
    keras_er.export(sparse, "model_int8.tflite", format="tflite",
                    quantize="int8", representative_data=x[:256])
    from ai_edge_litert.interpreter import Interpreter  # or tf.lite's
    interpreter = Interpreter(model_path="model_int8.tflite")
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
    _check_quantize(format, quantize, representative_data)
    if format != "keras":
        _import_tensorflow(format)
    stripped = strip(model)
    if format == "keras":
        stripped.save(path)
    elif format == "tf_saved_model":
        stripped.export(path, format="tf_saved_model", verbose=verbose)
    else:
        _write_tflite(stripped, path, quantize, representative_data)
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


def _check_quantize(format, quantize, representative_data):
    if quantize is None:
        if representative_data is not None:
            raise ValueError(
                "representative_data is only used with quantize='int8'; "
                "pass quantize='int8' or drop representative_data."
            )
        return
    if format != "tflite":
        raise ValueError(
            f"quantize={quantize!r} needs format='tflite', got "
            f"format={format!r}. Fix: export format='tflite', or quantize "
            "the stripped model yourself (keras_er.strip(model).quantize"
            "('int8'))."
        )
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            f"quantize must be None or one of {QUANTIZATIONS}, got "
            f"{quantize!r}."
        )
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "quantize='int8' (full-integer) needs representative_data: a "
            "few hundred typical inputs to calibrate the activation ranges, "
            "e.g. representative_data=x_train[:256]. For int8 weights "
            "without data use quantize='dynamic_range'."
        )
    if representative_data is not None and quantize != "int8":
        raise ValueError(
            f"representative_data is only used with quantize='int8', got "
            f"quantize={quantize!r}."
        )


def _representative_dataset(data):
    """TFLite's ``representative_dataset`` from arrays or a callable."""
    import numpy as np

    if callable(data):
        return data
    if isinstance(data, dict):
        names = list(data)
        arrays = [np.asarray(data[name]) for name in names]
    elif isinstance(data, (tuple, list)):
        arrays = [np.asarray(a) for a in data]
    else:
        arrays = [np.asarray(data)]
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(
            "representative_data: every input array must have the same "
            f"number of examples (first axis), got {sorted(lengths)}."
        )

    count = lengths.pop()

    def examples():
        for i in range(count):
            batch = [a[i : i + 1].astype(np.float32) for a in arrays]
            yield dict(zip(names, batch)) if isinstance(data, dict) else batch

    return examples


def _write_tflite(model, path, quantize=None, representative_data=None):
    tf = _import_tensorflow("tflite")
    # Keras 3 models reach the converter through a SavedModel: the
    # converter's from_keras_model expects tf.keras (Keras 2) models.
    with tempfile.TemporaryDirectory() as saved_model_dir:
        model.export(saved_model_dir, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
        converter.optimizations = []
        if quantize in (None, "float16"):
            # Encodes sparse weights in CSR form; without it a sparse model's
            # .tflite file is exactly as big as the dense one's. Not for int8
            # weights: TFLite's default (XNNPACK) delegate, in TensorFlow
            # 2.21 and LiteRT 2.3, fails to prepare a fully-connected layer
            # with sparse int8 weights. Those stay dense, zeros included, so
            # the gzip'd file still shrinks with the density.
            converter.optimizations.append(
                tf.lite.Optimize.EXPERIMENTAL_SPARSITY
            )
        if quantize is not None:
            converter.optimizations.append(tf.lite.Optimize.DEFAULT)
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            converter.representative_dataset = _representative_dataset(
                representative_data
            )
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8
            ]
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
