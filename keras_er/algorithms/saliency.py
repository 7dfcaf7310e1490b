"""Pruning-at-initialization scores (SNIP, SynFlow) as functions on tensors.

Both methods score a connection by ``|w * dF/dw|``: SNIP with ``F`` the loss
on a batch (Lee et al., 2019), SynFlow with ``F = R``, the sum of the output
of the network whose parameters are replaced by their absolute values, fed
an all-ones input (Tanaka et al., 2020). Getting the gradient needs the
model (`keras_er.scores` does it); what happens to the tensors afterwards is
here, with `keras.ops` where the tensors live: only counts come to the host.

Ranking keeps the scores' dtype (float64 SynFlow scores are not rounded to
float32); ties at the boundary go to the lower flat index, the earlier layer
first, on every backend.
"""

import keras
import numpy as np
from keras import ops

from keras_er.algorithms._select import count, first_k_largest, flat, nan_to


def connection_scores(kernel, gradient):
    """``|kernel * gradient|``: the SNIP / SynFlow score of each entry.

    Args:
        kernel: Kernel tensor (for SynFlow: ``|w|`` times the current mask).
        gradient: ``dF/dkernel``, same shape.

    Returns:
        A tensor of the kernel's shape and the dtype of ``kernel``.
    """
    kernel = ops.convert_to_tensor(kernel)
    gradient = ops.cast(ops.convert_to_tensor(gradient), kernel.dtype)
    return ops.abs(ops.multiply(kernel, gradient))


def _flat_scores(score):
    score = flat(score)
    if not keras.backend.standardize_dtype(score.dtype).startswith("float"):
        score = ops.cast(score, "float32")
    return nan_to(score, np.inf)


def global_top_k(scores, k, alive=None, per_layer=0):
    """Masks of the ``k`` highest scores over all layers together.

    Args:
        scores: List of score tensors (any shapes, one float dtype).
        k: Total number of entries to keep (clipped to the candidates).
        alive: Optional list of 0/1 or bool tensors: only these entries are
            candidates (SynFlow's pruned entries never come back).
        per_layer: Each layer first keeps its ``per_layer`` best candidates
            (so no layer is emptied); the rest of ``k`` goes to the global
            ranking.

    Returns:
        A list of bool tensors, one per score tensor, with ``max(k, kept per
        layer)`` True entries in total (clipped to the candidates).

    Example:

    ```python
    masks = global_top_k([s1, s2], k=100, per_layer=1)
    ```
    """
    shapes = [tuple(s.shape) for s in scores]
    sizes = [int(np.prod(shape)) for shape in shapes]
    dtype = ops.convert_to_tensor(scores[0]).dtype
    flat_scores = [ops.cast(_flat_scores(s), dtype) for s in scores]
    if alive is None:
        candidates = [ops.ones((n,), "bool") for n in sizes]
    else:
        candidates = [ops.not_equal(flat(a), 0) for a in alive]
    chosen = [ops.zeros((n,), "bool") for n in sizes]
    if per_layer:
        chosen = [
            first_k_largest(s, c, int(per_layer))
            for s, c in zip(flat_scores, candidates)
        ]
    rest = int(k) - sum(count(c) for c in chosen)
    if rest > 0:
        score = ops.concatenate(flat_scores)
        eligible = ops.logical_and(
            ops.concatenate(candidates),
            ops.logical_not(ops.concatenate(chosen)),
        )
        extra = first_k_largest(score, eligible, rest)
        start, pieces = 0, []
        for n in sizes:
            pieces.append(extra[start:start + n])
            start += n
        chosen = [ops.logical_or(c, e) for c, e in zip(chosen, pieces)]
    return [ops.reshape(c, shape) for c, shape in zip(chosen, shapes)]


def densities(masks):
    """The density (fraction of nonzero entries) of each mask, as floats."""
    return [count(m) / int(np.prod(tuple(m.shape))) for m in masks]
