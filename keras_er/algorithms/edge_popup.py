"""Edge-popup's subnetwork: the top-k scores inside the ER mask.

Ramanujan et al. (2020); Gadhikar et al. (2023, sec. 2.2 and A.11) take the
top-k *only among the entries of the ER mask*. `subnetwork_mask` is a pure
function on tensors, built from `keras.ops` with static shapes so that it
runs inside a compiled train step and ``k`` can be a variable (no retrace
when the density schedule changes it). The layer side (trainable scores,
straight-through gradient) is `keras_er.layers.edge_popup_scores`.
"""

import numpy as np
from keras import ops


def subnetwork_mask(scores, mask, k, max_k=None):
    """The 0/1 mask of the ``k`` largest ``|scores|`` inside ``mask``.

    Entries outside ``mask`` are never selected, and exactly
    ``min(k, nnz(mask))`` entries are kept, tied scores included. Ties are
    broken by position on TensorFlow and JAX (their ``top_k`` ranks the lower
    index first); torch's ``topk`` breaks them in no fixed order.

    Args:
        scores: Float tensor of the kernel's shape.
        mask: 0/1 tensor of the same shape (the ER mask).
        k: Scalar int (tensor or variable) number of entries to keep.
        max_k: Optional Python int bound on ``k``, e.g. the number of
            entries of the ER mask. While ``k <= max_k`` only the ``max_k``
            largest entries are sorted instead of all of them; a larger
            ``k`` falls back to the full sort, so the result never depends
            on ``max_k``, only the speed does.

    Returns:
        A float tensor of 0/1 with the dtype of ``scores``.

    Example:

    ```python
    subnetwork_mask(ops.array([[3., -5.], [1., 9.]]),
                    ops.array([[1., 1.], [1., 0.]]), 2)
    # [[1, 1], [0, 0]]: 9 is outside the mask
    ```
    """
    scores = ops.convert_to_tensor(scores)
    shape = tuple(scores.shape)
    n = int(np.prod(shape))
    inside = ops.greater(ops.cast(mask, scores.dtype), 0)
    # |s| >= 0 inside, -1 outside: outside entries rank after every inside
    # one, so they are picked only if k exceeds the mask's size, and the
    # final `* mask` drops them even then.
    ranked = ops.stop_gradient(ops.reshape(
        ops.where(inside, ops.abs(scores), -ops.ones_like(scores)), (n,)
    ))
    k = ops.cast(k, "int32")

    def first_k(length):
        # A descending sort of static length; keep its first k positions.
        # Comparing ranks with k (a variable) avoids a slice of dynamic
        # length, so k can change without retracing, and the count is exact
        # even with tied scores. The first k of the `length` largest are the
        # first k of a full sort (on torch, up to the order of ties).
        _, order = ops.top_k(ranked, k=length, sorted=True)
        keep = ops.cast(
            ops.less(ops.arange(length, dtype="int32"), k), scores.dtype
        )
        return ops.scatter(ops.expand_dims(order, -1), keep, (n,))

    if max_k is None or int(max_k) >= n:
        hard = first_k(n)
    else:
        bound = max(int(max_k), 1)
        hard = ops.cond(
            ops.less_equal(k, bound),
            lambda: first_k(bound),
            lambda: first_k(n),
        )
    inside = ops.cast(inside, scores.dtype)
    return ops.multiply(ops.reshape(hard, shape), inside)
