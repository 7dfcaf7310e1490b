"""The sparse-training algorithms as pure functions on tensors.

Modelled on jaxpruner: each method's math is a set of functions that take
and return tensors and use `keras.ops`, so they run where the kernels live
(no host copy of a kernel; only counts and scalars come back). The Keras
callbacks in `keras_er.callbacks` are thin integration around them: they
read the layers' variables, call these functions, assign the results and
keep schedules and resume state.

Where each method lives:

* `keras_er.algorithms.magnitude`: magnitude pruning masks (IMP,
  `keras_er.callbacks.MagnitudePruning`): `magnitude_masks` (global or
  layerwise top-k of ``|w|`` among unmasked entries, never reviving masked
  ones), `allocate` (layerwise split of a keep count), `top_k_mask`.
* `keras_er.algorithms.rigl`: RiGL / SET drop-and-grow on one kernel,
  `rewire` (and `random_scores` for SET).
* `keras_er.algorithms.edge_popup`: `subnetwork_mask`, edge-popup's top-k
  subnetwork inside the ER mask (also imported by
  `keras_er.layers.edge_popup_scores`, which holds the trainable scores).
* `keras_er.algorithms.soft_threshold`: STR's effective kernel, survivors,
  folding and the global threshold shift (`threshold_shift`); the layer
  variables are in `keras_er.layers.soft_threshold`.
* `keras_er.algorithms.saliency`: SNIP / SynFlow connection scores
  ``|w * dF/dw|`` (`connection_scores`), the global top-k of SynFlow's
  rounds and of the one-shot masks (`global_top_k`) and mask densities;
  `keras_er.scores` computes the gradients on the model and calls them.

Tie-breaking is deterministic: magnitude pruning and edge-popup keep the
lowest flat index among tied entries; RiGL / SET break ties in a seeded
random order (lowest index with ``seed=None``).
"""

from keras_er.algorithms.edge_popup import subnetwork_mask
from keras_er.algorithms.magnitude import (
    SCOPES,
    allocate,
    check_scope,
    magnitude_masks,
    top_k_mask,
)
from keras_er.algorithms.rigl import random_scores, rewire
from keras_er.algorithms.saliency import connection_scores, global_top_k
from keras_er.algorithms.soft_threshold import (
    effective_kernel,
    fold_kernel,
    survivors,
    threshold_shift,
)

__all__ = [
    "SCOPES",
    "allocate",
    "check_scope",
    "connection_scores",
    "effective_kernel",
    "fold_kernel",
    "global_top_k",
    "magnitude_masks",
    "random_scores",
    "rewire",
    "subnetwork_mask",
    "survivors",
    "threshold_shift",
    "top_k_mask",
]
