"""`EdgePopupScores`: edge-popup's trainable scores inside an ER mask.

Edge-popup (Ramanujan et al. 2020) searches a *strong lottery ticket*: the
weights stay frozen at their random initialization and a score ``s`` is
trained for every weight. The forward pass uses

    w * topk_mask(|s|, k)

where ``topk_mask`` keeps the ``k`` entries of largest ``|s|``. Starting from
an ER network (Gadhikar et al. 2023, sec. 2.2 and A.11) the top-k is taken
*only among the entries of the ER mask*: an entry outside the mask is never
kept, whatever its score. ``k`` lives in a non-trainable int variable, so a
density schedule changes it by assignment and a compiled (``jit_compile``)
train step is not retraced.

The backward pass is a straight-through estimator: the hard top-k mask is
treated as the identity of ``|s|``, so ``dL/d|s| = dL/d(effective) * w`` and
``dL/ds = sign(s) * dL/d(effective) * w`` (inside the ER mask; zero outside).

Use `keras_er.callbacks.EdgePopup.prepare` rather than installing this by
hand: it also re-initializes the frozen weights.
"""

import keras
import numpy as np
from keras import ops

from keras_er.algorithms._select import count as _count
from keras_er.algorithms.edge_popup import subnetwork_mask  # noqa: F401 (re-exported)
from keras_er.layers.reparameterization import KernelReparameterization

#: edge-popup's score init, torch's ``kaiming_uniform_(a=sqrt(5))``:
#: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
DEFAULT_SCORE_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_in",
               "distribution": "uniform"},
}


@keras.saving.register_keras_serializable(package="keras_er")
class EdgePopupScores(KernelReparameterization):
    """Edge-popup reparameterization of an ER layer's kernel.

    ``build`` adds to the layer a trainable ``edge_popup_scores`` variable
    (the kernel's shape) and a non-trainable int32 scalar ``edge_popup_k``
    (entries kept; initialized to the number of entries in the ER mask),
    and freezes the kernel (and, with ``freeze_bias``, the bias) by setting
    ``trainable = False`` on those variables. Both new variables are saved
    and loaded with the layer, and building a loaded layer freezes the
    weights again.

    The effective kernel is ``kernel * topk_mask(|scores| inside mask, k)``
    with a straight-through gradient to the scores (see the module doc).

    Args:
        score_initializer: Keras initializer (or identifier/config) of the
            scores. Defaults to U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as in
            the edge-popup paper. Give it a seed for reproducible scores.
        freeze_bias: Also freeze the layer's bias (strong lottery tickets
            train no weights at all). Defaults to True.

    Example:

    ```python
    layer = keras_er.ERDense(32, density=0.5, seed=0)
    layer.build((None, 16))
    layer.set_reparameterization(EdgePopupScores())
    layer.edge_popup_k.assign(40)   # keep 40 of the ~256 ER entries
    ```
    """

    def __init__(self, score_initializer=None, freeze_bias=True):
        if score_initializer is None:
            score_initializer = DEFAULT_SCORE_INITIALIZER
        self.score_initializer = keras.initializers.get(score_initializer)
        self.freeze_bias = bool(freeze_bias)

    def build(self, layer):
        """Adds the scores and ``k`` to ``layer`` and freezes its weights.

        Args:
            layer: A built ER layer.

        Returns:
            ``["edge_popup_scores", "edge_popup_k"]``.
        """
        # Shaped and sharded like the kernel (see add_kernel_like_weight).
        layer.edge_popup_scores = layer.add_kernel_like_weight(
            "edge_popup_scores", self.score_initializer, trainable=True,
        )
        nnz = self.mask_changed(layer)
        layer.edge_popup_k = layer.add_weight(
            name="edge_popup_k",
            shape=(),
            dtype="int32",
            initializer=keras.initializers.Constant(nnz),
            trainable=False,
        )
        # Only the scores learn; the weights are the random source network.
        layer._kernel.trainable = False
        if self.freeze_bias and getattr(layer, "bias", None) is not None:
            layer.bias.trainable = False
        return ["edge_popup_scores", "edge_popup_k"]

    def mask_changed(self, layer):
        """Bounds the sort by the ER mask's size (``k`` never exceeds it).

        Args:
            layer: The ER layer.

        Returns:
            The number of entries of the layer's mask.
        """
        nnz = _count(layer.mask)
        # A Python int: the bound is part of the traced step. A stale one
        # (after a mask change, until the next trace) only costs speed.
        object.__setattr__(layer, "_edge_popup_max_k", nnz)
        return nnz

    def effective_kernel(self, layer, kernel, mask):
        """``kernel * hard`` forward; gradient ``kernel * upstream`` to |s|.

        Args:
            layer: The ER layer.
            kernel: The frozen kernel.
            mask: The ER mask, cast to the kernel dtype.

        Returns:
            The effective kernel, zero outside the selected subnetwork.
        """
        kernel = ops.convert_to_tensor(kernel)
        scores = ops.cast(layer.edge_popup_scores, kernel.dtype)
        hard = subnetwork_mask(
            scores, mask, layer.edge_popup_k,
            max_k=getattr(layer, "_edge_popup_max_k", None),
        )
        # Straight-through: a - stop_gradient(a) is exactly 0 forward (so the
        # forward pass is exactly kernel * hard) and has gradient 1 w.r.t. a.
        # `a` is |s| inside the ER mask only, so scores outside get zero.
        a = ops.multiply(ops.abs(scores), mask)
        straight_through = ops.subtract(a, ops.stop_gradient(a))
        return ops.multiply(kernel, ops.add(hard, straight_through))

    def subnetwork(self, layer):
        """The current 0/1 subnetwork mask of ``layer`` (a numpy array)."""
        hard = subnetwork_mask(
            layer.edge_popup_scores, layer.mask, layer.edge_popup_k,
            max_k=getattr(layer, "_edge_popup_max_k", None),
        )
        return np.asarray(ops.convert_to_numpy(hard), dtype=np.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            score_initializer=keras.initializers.serialize(
                self.score_initializer
            ),
            freeze_bias=self.freeze_bias,
        )
        return config
