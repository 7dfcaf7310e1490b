"""ER layers: Keras weight layers carrying a non-trainable mask variable."""

import keras

from keras_er.layers.er_conv2d import ERConv2D
from keras_er.layers.edge_popup_scores import EdgePopupScores
from keras_er.layers.er_dense import ERDense
from keras_er.layers.masked_kernel import MaskedKernelMixin
from keras_er.layers.reparameterization import KernelReparameterization
from keras_er.layers.soft_threshold import SoftThreshold

# Plain Keras layer class -> its ER replacement. Exact types only: a subclass
# of Dense may override `call`, so it is not silently converted.
ER_LAYER_FOR = {
    keras.layers.Dense: ERDense,
    keras.layers.Conv2D: ERConv2D,
}
# ER layer class -> the plain Keras layer it strips to.
KERAS_LAYER_FOR = {er: plain for plain, er in ER_LAYER_FOR.items()}


def is_er_layer(layer):
    """Whether ``layer`` carries a keras_er mask."""
    return isinstance(layer, MaskedKernelMixin)


__all__ = [
    "ERConv2D",
    "ERDense",
    "EdgePopupScores",
    "KernelReparameterization",
    "SoftThreshold",
    "ER_LAYER_FOR",
    "KERAS_LAYER_FOR",
    "is_er_layer",
]
