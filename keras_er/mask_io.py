"""`get_masks` and `set_masks`: read and write every mask of a model."""

import collections.abc

import keras
import numpy as np

from keras_er._checks import check_model, describe
from keras_er.layers import is_er_layer
from keras_er.model_walk import iter_maskable, unit_name
from keras_er.processes import host_array


def er_layers(model):
    """The ER layers of ``model`` (nested models included), forward order.

    A layer with several masked kernels (`ERSeparableConv1D/2D`, the ER
    recurrent layers, custom layers declaring several kernels) contributes
    one `KernelUnit` per kernel (`ERMultiHeadAttention` one ER sublayer),
    named ``"<layer>-<role>"``.

    Args:
        model: A Keras model.

    Returns:
        A list of ER layers; each has ``mask``, ``mask_density`` and
        ``set_mask``.

    Raises:
        ValueError: If the model has no ER layer.

    Example:

    ```python
    for layer in keras_er.er_layers(sparse):
        print(layer.name, layer.mask.dtype, layer.mask_density)
    ```
    """
    check_model(model)
    found = [layer for layer in iter_maskable(model) if is_er_layer(layer)]
    if not found:
        raise ValueError(
            "The model has no keras_er layers. Call keras_er.sparsify(model, "
            "...) first, or build it with keras_er.ERDense / ERConv2D."
        )
    return found


def get_masks(model):
    """Returns every mask of ``model``.

    Args:
        model: A model with ER layers.

    Returns:
        ``{layer_name: float32 numpy array of 0.0/1.0}`` in forward order,
        whatever the layers' ``mask_dtype``.

    Example:

    ```python
    masks = keras_er.get_masks(sparse)
    {name: m.mean() for name, m in masks.items()}  # layer densities
    ```
    """
    return {
        unit_name(layer): host_array(layer.mask).astype(np.float32)
        for layer in er_layers(model)
    }


def set_masks(model, masks):
    """Assigns masks to the ER layers of ``model``.

    Kernel entries outside a new mask are set to zero; entries that a new mask
    switches on keep their current value (zero if they were masked before).
    The state that the model's optimizer (if compiled) keeps for the entries
    a new mask removes (momentum, moments, EMA averages) is zeroed too.

    Args:
        model: A model with ER layers.
        masks: ``{layer_name: 0/1 array}`` for some or all ER layers.

    Raises:
        ValueError: For an unknown layer name, a shape mismatch or values
            other than 0 and 1.

    Example:

    ```python
    keras_er.set_masks(other, keras_er.get_masks(sparse))
    ```
    """
    by_name = {unit_name(layer): layer for layer in er_layers(model)}
    if not isinstance(masks, collections.abc.Mapping):
        raise ValueError(
            "masks must be a dict {layer_name: 0/1 array} (as returned by "
            f"keras_er.get_masks), got {describe(masks)}."
        )
    unknown = sorted(set(masks) - set(by_name))
    if unknown:
        raise ValueError(
            f"set_masks got masks for {unknown}, which are not ER layers of "
            f"the model. ER layers: {sorted(by_name)}."
        )
    optimizer = getattr(model, "optimizer", None)
    for name, mask in masks.items():
        by_name[name].set_mask(mask, optimizer=optimizer)
