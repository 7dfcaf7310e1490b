"""`strip`: turn ER layers back into plain Keras layers with sparse weights."""

import keras

from keras_er._checks import check_bool, check_model
from keras_er.layers import (
    KERAS_LAYER_FOR,
    is_er_layer,
    is_er_sublayer_composite as is_er_composite,
)
from keras_er.layers.attach import detach_mask, positive_zeros
from keras_er.layers.multi_kernel import detach_units, is_multi_owner
from keras_er.model_walk import (
    clone_layerwise,
    convert_in_place,
    copy_all_weights,
    copy_model,
    is_graph_model,
    iter_layers,
    plain_clone,
)


def strip(model, in_place=False):
    """Returns the same network built from plain Keras layers.

    Every ER layer becomes its Keras base layer (`ERDense` -> `Dense`,
    `ERConv2D` -> `Conv2D`) with kernel ``kernel * mask``, so the outputs are
    equal and the model loads anywhere Keras does. Layers with several
    masked kernels (`ERSeparableConv1D/2D`, `ERSimpleRNN/ERLSTM/ERGRU`,
    custom layers declaring several kernels) turn back into their plain
    class where they sit, with the same variable paths;
    `ERMultiHeadAttention` is swapped for a `MultiHeadAttention`. The input
    model is left untouched (unless ``in_place=True``).

    Args:
        model: A Sequential or Functional model, possibly sparsified.
        in_place: For a subclassed model (see ``sparsify(in_place=True)``):
            swap its ER layers for plain ones in place and return it.

    Returns:
        A new `keras.Model` without keras_er layers (with ``in_place=True``,
        ``model`` itself).

    Example:

    ```python
    plain = keras_er.strip(sparse)
    plain.save("plain.keras")  # loads without keras_er installed
    ```
    """

    check_model(model)
    check_bool(in_place, "in_place")

    # Single-kernel ER layers turn back into their Keras class where they
    # sit; layers with several kernels are swapped for their Keras layer.
    target = model if in_place else copy_model(model)
    for layer in iter_layers(target):
        if is_er_layer(layer):
            detach_mask(layer)
        elif is_multi_owner(layer):
            detach_units(layer, positive_zeros)
    if not any(is_er_composite(layer) for layer in iter_layers(target)):
        return target

    def make_layer(layer):
        if not is_er_composite(layer):
            return plain_clone(layer)
        config = layer.get_config()
        for key in type(layer).ER_CONFIG_KEYS:
            config.pop(key)
        return KERAS_LAYER_FOR[type(layer)].from_config(config)

    def copy_weights(old_layer, new_layer):
        if is_er_composite(old_layer):
            _copy_composite(old_layer, new_layer)
        else:
            copy_all_weights(old_layer, new_layer)

    if is_graph_model(target):
        return clone_layerwise(target, make_layer, copy_weights)
    convert_in_place(target, is_er_composite, make_layer, copy_weights)
    return target


def _copy_composite(er_layer, plain_layer):
    """Masked kernels and biases of each role into the plain Keras layer."""
    targets = {
        role: (kernel, bias)
        for role, kernel, bias, _, _ in type(er_layer).plain_kernels(
            plain_layer
        )
    }
    for role, unit in er_layer.er_units():
        kernel, bias = targets[role]
        kernel.assign(positive_zeros(unit.kernel))  # On device.
        if bias is not None:
            # A copy: JAX donates a model's buffers when it runs.
            bias.assign(keras.ops.copy(unit.bias.value))
