"""`load_model`: load a sparse `.keras` file, masks in custom layers too."""

import json
import os
import shutil
import tempfile
import zipfile

import keras
import numpy as np

from keras_er.layers.masked_kernel import (
    ER_CONFIG_ENTRY,
    loading_saved_masks,
)
from keras_er.model_walk import attach_recorded

_CONFIG_FILE = "config.json"
_WEIGHTS_FILE = "model.weights.h5"


def saved_masked_units(weights_path):
    """``{unit name: mask options}`` of the ER layers in a weights file.

    Every ER layer records them with its variables (see
    ``MaskedKernelMixin.save_own_variables``); files written before that
    record nothing.
    """
    import h5py  # A Keras dependency.

    found = {}

    def visit(name, item):
        if name.rsplit("/", 1)[-1] == ER_CONFIG_ENTRY:
            config = json.loads(np.asarray(item).tobytes().decode("utf-8"))
            # A layer with several masked kernels records each.
            for unit in config.get("units", [config]):
                found[unit["unit"]] = unit

    with h5py.File(weights_path, "r") as handle:
        handle.visititems(visit)
    return found


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Loads a model saved with ``model.save(...)``, with every mask.

    `keras.saving.load_model` rebuilds each layer from the model's config.
    Layers that a model or Functional graph holds (the usual Sequential or
    Functional model) come back as ER layers and get their masks. Layers
    created inside a custom layer (the Dense and EinsumDense layers of a
    keras-hub transformer block, or of a MultiHeadAttention) are rebuilt by
    that layer, plain, and Keras then refuses the extra mask in the file.
    This function rebuilds the model from the same config, masks those
    layers again where they sit (same names and variable paths) and loads
    the weights, masks and optimizer state. No mask is drawn on the way
    (``keras.saving.load_model`` draws each ER layer's random mask before
    reading the saved one): faster for big models, and no agreement across
    processes is needed.

    Args:
        filepath: A `.keras` file written by ``model.save``.
        custom_objects: As in `keras.saving.load_model`.
        compile: Whether to compile the model with its saved compile
            config (and restore the optimizer state).
        safe_mode: As in `keras.saving.load_model`.

    Returns:
        The model, with every mask of the saved one.

    Raises:
        ValueError: If ``filepath`` is not a `.keras` file, or a masked layer
            of the file has no counterpart in the rebuilt model.

    Example:

    ```python
    sparse.save("sparse.keras")
    restored = keras_er.load_model("sparse.keras")
    ```
    """
    path = os.fspath(filepath)
    if not (path.endswith(".keras") and zipfile.is_zipfile(path)):
        raise ValueError(
            f"filepath must be a .keras file written by model.save(...), got "
            f"{filepath!r}. For weights files, build the sparse model and "
            "call model.load_weights(...)."
        )
    with tempfile.TemporaryDirectory() as folder:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read(_CONFIG_FILE))
            weights_path = os.path.join(folder, _WEIGHTS_FILE)
            with archive.open(_WEIGHTS_FILE) as source, open(
                weights_path, "wb"
            ) as target:
                shutil.copyfileobj(source, target)
            has_assets = any(
                name.startswith("assets/") for name in archive.namelist()
            )
        saved = saved_masked_units(weights_path)
        if not _needs_reattach(saved, config):
            # Every mask comes from the file: none is drawn first.
            with loading_saved_masks():
                return keras.saving.load_model(
                    path, custom_objects=custom_objects, compile=compile,
                    safe_mode=safe_mode,
                )
        if has_assets:
            raise ValueError(
                f"{filepath!r} has masked layers inside custom layers and "
                "saved assets (a preprocessor's vocabulary, say), which "
                "keras_er.load_model cannot restore yet. Save the model "
                "without its preprocessor and load that separately."
            )
        if not compile:
            config["compile_config"] = None
        with keras.saving.custom_object_scope(
            custom_objects or {}
        ), loading_saved_masks():
            model = keras.saving.deserialize_keras_object(
                config, safe_mode=safe_mode
            )
        _reattach(model, saved, filepath)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            # Keras' loader builds it before reading its state.
            optimizer.build(model.trainable_variables)
        model.load_weights(weights_path)
    return model


def _needs_reattach(saved, config):
    """Whether some masked unit was created inside a custom layer.

    The config of a model names the class of every layer it holds; a unit
    whose ER class the config does not name at its name was rebuilt plain.
    """
    if not saved:
        return False
    named = set()

    def collect(node):
        if isinstance(node, dict):
            class_name = node.get("class_name")
            inner = node.get("config")
            if isinstance(inner, dict) and isinstance(class_name, str):
                if class_name.startswith("ER") and "name" in inner:
                    named.add(inner["name"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(config)
    # A kernel of a layer with several is named "<layer>-<role>"; the
    # record names its layer.
    return any(
        options.get("layer", unit) not in named
        for unit, options in saved.items()
    )


def _reattach(model, saved, filepath):
    """Masks the plain layers of ``model`` that ``saved`` names."""
    found = attach_recorded(model, saved)
    missing = sorted(set(saved) - found)
    if missing:
        raise ValueError(
            f"{filepath!r} has masked layers {missing} that the model rebuilt "
            "from its config does not have (their names differ). Was the "
            "file saved from another version of the model's code?"
        )
