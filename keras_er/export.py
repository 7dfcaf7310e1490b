"""`export`: write a stripped, deployable copy of a sparse model.

TensorFlow-only: the SavedModel format needs TensorFlow installed (Keras can
write it from the TensorFlow and JAX backends).
"""

import os

from keras_er.strip import strip

FORMATS = ("tf_saved_model", "keras")


def export(model, path, format="tf_saved_model", verbose=False):
    """Strips ``model`` and writes it to ``path``.

    Args:
        model: A sparsified model (or any Sequential/Functional model).
        path: Output directory (``tf_saved_model``) or ``.keras`` file.
        format: ``"tf_saved_model"`` (a TensorFlow SavedModel whose ``serve``
            endpoint reproduces the model's outputs) or ``"keras"``.
        verbose: Whether Keras prints what it exports.

    Returns:
        The stripped `keras.Model` that was written.

    Raises:
        ValueError: For an unknown format, or a ``.keras`` path that does not
            end in ``.keras``.
        ImportError: For ``tf_saved_model`` without TensorFlow installed.

    Example:

    ```python
    keras_er.export(sparse, "exported/")
    import tensorflow as tf
    reloaded = tf.saved_model.load("exported/")
    reloaded.serve(x)  # == sparse(x)
    ```
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}.")
    path = os.fspath(path)
    if format == "keras" and not path.endswith(".keras"):
        raise ValueError(
            f"A .keras export needs a path ending in '.keras', got {path!r}."
        )
    stripped = strip(model)
    if format == "keras":
        stripped.save(path)
        return stripped
    try:
        import tensorflow  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "Exporting a SavedModel needs TensorFlow: pip install tensorflow."
        ) from error
    stripped.export(path, format="tf_saved_model", verbose=verbose)
    return stripped
