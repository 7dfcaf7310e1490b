"""ER layers: Keras weight layers carrying a non-trainable mask variable."""

import keras

from keras_er.layers.composite import MaskedCompositeMixin
from keras_er.layers.er_conv1d import ERConv1D
from keras_er.layers.er_conv1d_transpose import ERConv1DTranspose
from keras_er.layers.er_conv2d import ERConv2D
from keras_er.layers.er_conv2d_transpose import ERConv2DTranspose
from keras_er.layers.er_conv3d import ERConv3D
from keras_er.layers.er_conv3d_transpose import ERConv3DTranspose
from keras_er.layers.edge_popup_scores import EdgePopupScores
from keras_er.layers.er_dense import ERDense
from keras_er.layers.er_depthwise_conv1d import ERDepthwiseConv1D
from keras_er.layers.er_depthwise_conv2d import ERDepthwiseConv2D
from keras_er.layers.er_einsum_dense import EREinsumDense
from keras_er.layers.er_gru import ERGRU
from keras_er.layers.er_lstm import ERLSTM
from keras_er.layers.er_embedding import EREmbedding
from keras_er.layers.er_multi_head_attention import ERMultiHeadAttention
from keras_er.layers.er_separable_conv1d import ERSeparableConv1D
from keras_er.layers.er_separable_conv2d import ERSeparableConv2D
from keras_er.layers.er_simple_rnn import ERSimpleRNN
from keras_er.layers.masked_kernel import MaskedKernelMixin
from keras_er.layers.multi_kernel import (
    KernelUnit,
    MultiKernelOwnerMixin,
    is_multi_owner,
)
from keras_er.layers.reparameterization import KernelReparameterization
from keras_er.layers.soft_threshold import SoftThreshold

# Plain Keras layer class -> its ER replacement. Exact types only: a subclass
# of Dense may override `call`, so it is not silently converted.
ER_LAYER_FOR = {
    keras.layers.Dense: ERDense,
    keras.layers.Conv1D: ERConv1D,
    keras.layers.Conv2D: ERConv2D,
    keras.layers.Conv3D: ERConv3D,
    keras.layers.Conv1DTranspose: ERConv1DTranspose,
    keras.layers.Conv2DTranspose: ERConv2DTranspose,
    keras.layers.Conv3DTranspose: ERConv3DTranspose,
    keras.layers.DepthwiseConv1D: ERDepthwiseConv1D,
    keras.layers.DepthwiseConv2D: ERDepthwiseConv2D,
    keras.layers.EinsumDense: EREinsumDense,
    keras.layers.Embedding: EREmbedding,
    # Several kernels: one mask per kernel, in place (layers/multi_kernel.py).
    keras.layers.SeparableConv1D: ERSeparableConv1D,
    keras.layers.SeparableConv2D: ERSeparableConv2D,
    # Input and recurrent kernel: one mask each (see layers/recurrent.py).
    keras.layers.SimpleRNN: ERSimpleRNN,
    keras.layers.LSTM: ERLSTM,
    keras.layers.GRU: ERGRU,
}
# ER layer class -> the plain Keras layer it strips to. `sparsify` masks a
# MultiHeadAttention's EinsumDense projections where they are (same names,
# same variable paths); ERMultiHeadAttention is for models built with it.
KERAS_LAYER_FOR = {er: plain for plain, er in ER_LAYER_FOR.items()}
KERAS_LAYER_FOR[ERMultiHeadAttention] = keras.layers.MultiHeadAttention


def is_er_layer(layer):
    """Whether ``layer`` carries a keras_er mask.

    Example:

    >>> is_er_layer(keras_er.ERDense(4, density=0.5))
    True
    """
    return isinstance(layer, MaskedKernelMixin)


def is_er_composite(layer):
    """Whether ``layer`` has several masked kernels (``er_units()``).

    ERSeparableConv1D/2D, ERSimpleRNN/ERLSTM/ERGRU and custom layers with
    several declared kernels (masked in place), and ERMultiHeadAttention
    (ER sublayers).

    Example:

    >>> is_er_composite(keras_er.ERSeparableConv2D(8, 3, density=0.5))
    True
    """
    return isinstance(layer, MaskedCompositeMixin) or is_multi_owner(layer)


def is_er_sublayer_composite(layer):
    """Whether ``layer`` holds its masked kernels in ER sublayers (ERMHA)."""
    return isinstance(layer, MaskedCompositeMixin)


def is_composite_type(cls):
    """Whether plain Keras layers of type ``cls`` hold several kernels."""
    er_class = ER_LAYER_FOR.get(cls, cls)
    return isinstance(er_class, type) and issubclass(
        er_class, (MaskedCompositeMixin, MultiKernelOwnerMixin)
    )


__all__ = [
    "ERConv1D",
    "ERConv1DTranspose",
    "ERConv2D",
    "ERConv2DTranspose",
    "ERConv3D",
    "ERConv3DTranspose",
    "ERDense",
    "ERDepthwiseConv1D",
    "ERDepthwiseConv2D",
    "EREinsumDense",
    "EREmbedding",
    "ERGRU",
    "ERLSTM",
    "ERMultiHeadAttention",
    "ERSeparableConv1D",
    "ERSeparableConv2D",
    "ERSimpleRNN",
    "EdgePopupScores",
    "KernelReparameterization",
    "KernelUnit",
    "SoftThreshold",
    "ER_LAYER_FOR",
    "KERAS_LAYER_FOR",
    "is_er_composite",
    "is_er_layer",
]
