"""keras_er: sparse neural networks that start sparse, for Keras 3.

The pipeline, one module (or package) per step:

``ratios`` (layerwise densities from kernel shapes)
    -> ``masks`` (seeded random ER masks with flow preservation)
    -> ``layers`` (ERDense, ERConv2D, ... : masked Keras layers)
    -> ``sparsify`` (a dense Keras model to its ER counterpart)
    -> ``scores`` / ``callbacks`` (the algorithms: SNIP/SynFlow at init; IMP,
       STR, MagnitudePruning, RiGL/SET, EdgePopup while training)
    -> ``summary`` / ``strip`` / ``export`` (inspect, back to plain Keras,
       SavedModel / TFLite / .keras).

The research tooling (experiment runner, data loaders, model zoo, plots and
the paper's width bounds) lives in `keras_er.research`, which
``import keras_er`` does not load.
"""

from keras_er import callbacks, masks, ratios
from keras_er.densities import layer_densities
from keras_er.export import export, gzipped_size
from keras_er.layers import (
    ERConv1D,
    ERConv1DTranspose,
    ERConv2D,
    ERConv2DTranspose,
    ERConv3D,
    ERConv3DTranspose,
    ERDense,
    ERDepthwiseConv1D,
    ERDepthwiseConv2D,
    EREinsumDense,
    EREmbedding,
    ERGRU,
    ERLSTM,
    ERMultiHeadAttention,
    ERSeparableConv1D,
    ERSeparableConv2D,
    ERSimpleRNN,
)
from keras_er.mask_io import er_layers, get_masks, set_masks
from keras_er.saving import load_model
from keras_er.scores import prune_at_init
from keras_er.sparsify import sparsify
from keras_er.strip import strip
from keras_er.summary import summary

__version__ = "0.1.0"

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
    "callbacks",
    "er_layers",
    "export",
    "gzipped_size",
    "get_masks",
    "layer_densities",
    "load_model",
    "masks",
    "prune_at_init",
    "ratios",
    "set_masks",
    "sparsify",
    "strip",
    "summary",
]
