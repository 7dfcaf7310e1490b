"""`strip`: turn ER layers back into plain Keras layers with sparse weights."""

from keras_er.layers import KERAS_LAYER_FOR, is_er_layer
from keras_er.layers.masked_kernel import MaskedKernelMixin
from keras_er.model_walk import clone_layerwise, copy_all_weights, plain_clone


def strip(model):
    """Returns the same network built from plain Keras layers.

    Every ER layer becomes its Keras base layer (`ERDense` -> `Dense`,
    `ERConv2D` -> `Conv2D`) with kernel ``kernel * mask``, so the outputs are
    equal and the model loads anywhere Keras does. The input model is left
    untouched.

    Args:
        model: A Sequential or Functional model, possibly sparsified.

    Returns:
        A new `keras.Model` without keras_er layers.

    Example:

    ```python
    plain = keras_er.strip(sparse)
    plain.save("plain.keras")  # loads without keras_er installed
    ```
    """

    def make_layer(layer):
        if not is_er_layer(layer):
            return plain_clone(layer)
        config = layer.get_config()
        for key in MaskedKernelMixin.ER_CONFIG_KEYS:
            config.pop(key)
        return KERAS_LAYER_FOR[type(layer)].from_config(config)

    def copy_weights(old_layer, new_layer):
        if not is_er_layer(old_layer):
            copy_all_weights(old_layer, new_layer)
            return
        values = [old_layer.kernel]
        if old_layer.bias is not None:
            values.append(old_layer.bias)
        new_layer.set_weights([_to_numpy(v) for v in values])

    return clone_layerwise(model, make_layer, copy_weights)


def _to_numpy(value):
    import keras

    return keras.ops.convert_to_numpy(value)
