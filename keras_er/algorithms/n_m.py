"""N:M magnitude masks (structured sparsity, e.g. 2:4).

Pure functions on tensors. For every output unit (and kernel position, e.g.
each tap of a convolution), the input units are cut into groups of ``m``
consecutive ones, and the ``n`` entries of largest ``|w|`` in each group are
kept, among the entries the current mask keeps (a new mask is a subset of
the old one). This is the pattern of sparse tensor cores and of
tensorflow-model-optimization's ``sparsity_m_by_n``. A last, shorter group
of ``r`` inputs keeps ``max(1, round(n * r / m))``, as
`keras_er.masks.draw_n_m_mask` draws it.
"""

import numpy as np
from keras import ops

from keras_er.masks import DEFAULT_AXES


def check_n_m(n_m, name="m_by_n"):
    """``(n, m)`` as two ints with ``1 <= n <= m``, else a ValueError."""
    if (
        not isinstance(n_m, (tuple, list)) or len(n_m) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(
            v, bool) for v in n_m)
    ):
        raise ValueError(
            f"{name} must be a pair (n, m) of ints, e.g. (2, 4) to keep 2 "
            f"of every 4 weights, got {n_m!r}."
        )
    n, m = int(n_m[0]), int(n_m[1])
    if not 1 <= n <= m:
        raise ValueError(f"{name}=({n}, {m}) needs 1 <= n <= m.")
    return n, m


def _layout(shape, axes):
    """Permutation to ``(rest, in, out)`` and the sizes of the three."""
    ndim = len(shape)
    in_axes, out_axes = ((a % ndim for a in group) for group in axes)
    in_axes, out_axes = tuple(in_axes), tuple(out_axes)
    rest = [a for a in range(ndim) if a not in in_axes + out_axes]
    order = rest + list(in_axes) + list(out_axes)
    sizes = [int(np.prod([shape[a] for a in group]) if group else 1)
             for group in (rest, in_axes, out_axes)]
    return order, sizes


def _keep_top(scores, keep):
    """0/1 of the ``keep`` largest scores along axis 1 of a 3-D tensor."""
    # Each entry's rank in the descending order is where it landed.
    ranks = ops.argsort(ops.argsort(-scores, axis=1), axis=1)
    return ops.cast(ranks < keep, "float32")


def n_m_magnitude_mask(kernel, mask, n, m, axes=None):
    """The N:M mask keeping the largest ``|kernel|`` of each group.

    Args:
        kernel: The (effective) kernel tensor.
        mask: Its current 0/1 mask; only its entries can be kept.
        n: Entries kept per group.
        m: Group size (consecutive input units).
        axes: ``(in_axes, out_axes)`` of the kernel's units (default: the
            last two axes).

    Returns:
        A float32 0/1 tensor of the kernel's shape, a subset of ``mask``.
        Where a group has fewer than ``n`` unmasked entries, all of them
        are kept (never more than the current mask).
    """
    axes = DEFAULT_AXES if axes is None else axes
    shape = tuple(int(d) for d in kernel.shape)
    order, (positions, n_in, n_out) = _layout(shape, axes)
    alive = ops.cast(mask, "float32")
    # Masked entries score -1, below every |w| >= 0: never kept before an
    # unmasked one, and dropped below by `* alive`.
    scores = ops.where(alive > 0, ops.abs(ops.cast(kernel, "float32")), -1.0)
    scores = ops.reshape(ops.transpose(scores, order),
                         (positions, n_in, n_out))
    parts = []
    full = n_in // m * m
    if full:
        grouped = ops.reshape(
            scores[:, :full, :], (positions * (full // m), m, n_out))
        kept = _keep_top(grouped, n)
        parts.append(ops.reshape(kept, (positions, full, n_out)))
    if full < n_in:
        rest = n_in - full
        keep = min(rest, max(1, round(n * rest / m)))
        parts.append(_keep_top(scores[:, full:, :], keep))
    kept = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=1)
    moved = [shape[a] for a in order]
    kept = ops.transpose(ops.reshape(kept, moved), list(np.argsort(order)))
    return kept * alive
