"""Keras callbacks that train sparse networks inside their ER masks."""

# The base class every pruning callback below derives from.
from keras_er.callbacks.base import SparseTrainingCallback
# Sparse-to-sparse pruning (IMP, STR, gradual magnitude pruning).
from keras_er.callbacks import schedules
from keras_er.callbacks.imp import IMP, CyclicCosine
from keras_er.callbacks.magnitude_pruning import MagnitudePruning
from keras_er.callbacks.str_callback import STR
# Dynamic sparse training and strong lottery tickets (RiGL, SET, EdgePopup).
from keras_er.callbacks.rigl import RiGL, SET
from keras_er.callbacks.edge_popup import EdgePopup
# TensorBoard scalars of masks and pruning state.
from keras_er.callbacks.sparsity_summaries import SparsitySummaries
