"""Magnitude pruning masks (IMP, gradual magnitude pruning).

Pure functions on tensors. A new mask keeps the ``keep`` largest ``|w|``
among the currently unmasked entries, ranked over all layers together
(``"global"``) or with ``keep`` split over the layers in proportion to their
unmasked counts (``"layerwise"``, `allocate`). Masked entries are never
chosen, so every new mask is a subset of the old one. The ranking runs with
`keras.ops` where the kernels live; only counts come to the host.

Ties: among entries of equal ``|w|`` at the boundary, the one with the lower
flat index (global: lower layer first, then lower index) is kept, on every
backend. NaN weights rank above every finite one (they are kept).
"""

import numpy as np
from keras import ops

from keras_er.algorithms._select import count, first_k_largest, flat, nan_to

SCOPES = ("global", "layerwise")


def check_scope(scope):
    """Validates a ranking scope (``"global"`` or ``"layerwise"``)."""
    if scope not in SCOPES:
        raise ValueError(
            f"scope must be one of {SCOPES}, got {scope!r}."
        )
    return scope


def allocate(keep, counts):
    """Splits ``keep`` kept weights over layers in proportion to ``counts``.

    Largest-remainder rounding in integers, so the shares sum to exactly
    ``keep`` and no layer gets more than it has. Ties of the remainders go
    to the earlier layer.

    Args:
        keep: Total number of weights to keep, ``0 <= keep <= sum(counts)``.
        counts: Current number of unmasked weights per layer.

    Returns:
        A numpy int64 array, one count per layer.

    Raises:
        ValueError: If ``keep`` is negative or above ``sum(counts)``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    keep = int(keep)
    if not 0 <= keep <= total:
        raise ValueError(f"keep must be in [0, {total}], got {keep}.")
    if total == 0:
        return np.zeros_like(counts)
    # Python ints: counts * keep can overflow int64 for huge models.
    products = [int(c) * keep for c in counts]
    shares = np.array([p // total for p in products], dtype=np.int64)
    remainders = np.array([p % total for p in products], dtype=object)
    missing = keep - int(shares.sum())
    # Stable sort: ties go to the earlier layer, deterministically.
    order = sorted(range(len(counts)), key=lambda i: -remainders[i])
    for i in order[:missing]:
        shares[i] += 1
    return shares


def top_k_mask(scores, k, eligible=None):
    """Boolean mask of the ``k`` largest ``scores`` (ties: lower index).

    Args:
        scores: Float tensor of any shape.
        k: Python int number of entries to keep (clipped to the number of
            eligible entries).
        eligible: Optional bool tensor of the same shape; only these entries
            can be chosen.

    Returns:
        A bool tensor of the shape of ``scores`` with exactly
        ``min(k, count(eligible))`` True entries.
    """
    scores = ops.convert_to_tensor(scores)
    shape = tuple(scores.shape)
    values = nan_to(flat(scores, "float32"), np.inf)
    if eligible is None:
        eligible = ops.ones(values.shape, "bool")
    else:
        eligible = ops.not_equal(flat(eligible), 0)
    return ops.reshape(first_k_largest(values, eligible, int(k)), shape)


def magnitude_masks(kernels, masks, keep, scope="global"):
    """New masks keeping the ``keep`` largest ``|kernel|`` inside ``masks``.

    Args:
        kernels: List of kernel tensors (or variables).
        masks: List of their current 0/1 masks (any dtype), same shapes.
        keep: Total number of weights to keep; clipped to
            ``[0, number currently unmasked]``.
        scope: ``"global"`` ranks all layers together; ``"layerwise"`` keeps
            in every layer the share `allocate` gives it (the same fraction
            of its unmasked weights, up to rounding).

    Returns:
        A list of bool tensors, one per kernel: each a subset of its old
        mask, with exactly ``keep`` (clipped) True entries in total.

    Example:

    ```python
    new = magnitude_masks([layer._kernel], [layer.mask], keep=100)
    ```
    """
    check_scope(scope)
    kernels = [ops.convert_to_tensor(k) for k in kernels]
    old = [ops.not_equal(ops.convert_to_tensor(m), 0) for m in masks]
    if len(kernels) != len(old):
        raise ValueError("kernels and masks must have the same length.")
    counts = np.array([count(m) for m in old], dtype=np.int64)
    keep = int(min(max(int(keep), 0), int(counts.sum())))
    if scope == "layerwise":
        shares = allocate(keep, counts)
        return [
            top_k_mask(ops.abs(k), int(s), eligible=m)
            for k, m, s in zip(kernels, old, shares)
        ]
    scores = ops.concatenate(
        [nan_to(ops.abs(flat(k, "float32")), np.inf) for k in kernels]
    )
    eligible = ops.concatenate([flat(m) for m in old])
    chosen = first_k_largest(scores, eligible, keep)
    result, start = [], 0
    for m in old:
        size = int(np.prod(m.shape))
        piece = chosen[start:start + size]
        result.append(ops.reshape(piece, tuple(m.shape)))
        start += size
    return result
