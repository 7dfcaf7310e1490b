"""STR, soft threshold reparameterization (Kusupati et al. 2020), as math.

Pure functions on tensors (`keras.ops`, where the kernels live). The layer
side (the learnable ``s_l``, the frozen gate) is
`keras_er.layers.soft_threshold`; the callback is `keras_er.callbacks.STR`.

* `effective_kernel`: ``mask * sign(w) * relu(|w| - tau)``.
* `survivors`: the entries that effective kernel keeps, ``mask & |w| > tau``.
* `fold_kernel`: the ``(mask, kernel)`` pair of an ordinary masked layer with
  the same effective kernel.
* `threshold_shift`: the common shift ``delta`` of all thresholds that lets
  exactly a given number of entries survive.
"""

import numpy as np
from keras import ops

from keras_er.algorithms._select import count, flat


def effective_kernel(kernel, mask, tau):
    """``mask * sign(kernel) * relu(|kernel| - tau)``.

    Args:
        kernel: The kernel tensor.
        mask: Its 0/1 mask, cast to the kernel's dtype.
        tau: Scalar threshold (tensor or float) of the kernel's dtype.

    Returns:
        The effective kernel (zero outside the mask and below ``tau``).
    """
    magnitude = ops.relu(ops.abs(kernel) - tau)
    return ops.sign(kernel) * magnitude * mask


def survivors(kernel, mask, tau):
    """Bool tensor: inside ``mask`` and ``|kernel| > tau``."""
    kernel = ops.convert_to_tensor(kernel)
    tau = ops.cast(tau, kernel.dtype)
    return ops.logical_and(
        ops.cast(mask, "bool"), ops.greater(ops.abs(kernel), tau)
    )


def fold_kernel(kernel, mask, tau):
    """The plain ``(mask, kernel)`` with the same effective kernel.

    ``mask := mask * (|w| > tau)``, ``kernel := sign(w) * relu(|w| - tau)``
    on the kept entries: the effective kernel is unchanged bit for bit.

    Args:
        kernel: The kernel tensor.
        mask: Its 0/1 mask (any dtype).
        tau: Scalar threshold.

    Returns:
        ``(new_mask, new_kernel)``: the mask as 0/1 of the kernel's dtype
        and the folded kernel.
    """
    kernel = ops.convert_to_tensor(kernel)
    tau = ops.cast(tau, kernel.dtype)
    mask = ops.cast(mask, kernel.dtype)
    keep = ops.cast(ops.greater(ops.abs(kernel), tau), kernel.dtype) * mask
    value = ops.sign(kernel) * ops.relu(ops.abs(kernel) - tau) * keep
    return keep, value


def threshold_shift(kernels, masks, taus, budget):
    """Common threshold shift that keeps ``budget`` entries alive.

    Each candidate (inside its mask, nonzero) has the margin
    ``|w| - tau_l``; with every threshold moved to ``tau_l + delta`` exactly
    the candidates of margin ``> delta`` survive. ``delta`` is midway between
    the ``budget``-th and the next largest margin, so float rounding in the
    forward pass flips neither (up to ties among the margins).

    Args:
        kernels: List of kernel tensors.
        masks: List of their masks.
        taus: List of their current thresholds (floats).
        budget: Python int number of entries to keep alive.

    Returns:
        ``delta`` as a Python float: ``-inf`` when ``budget`` is at least the
        number of candidates (keep every nonzero), one above the largest
        margin when ``budget`` is 0.
    """
    if not kernels:
        return float("-inf")
    margins, inside_all, candidates = [], [], 0
    for kernel, mask, tau in zip(kernels, masks, taus):
        magnitude = ops.abs(flat(kernel, "float32"))
        inside = ops.logical_and(
            ops.not_equal(flat(mask), 0), ops.greater(magnitude, 0)
        )
        candidates += count(inside)
        margins.append(magnitude - np.float32(tau))
        inside_all.append(inside)
    budget = int(budget)
    if budget >= candidates:
        return float("-inf")
    margins = ops.concatenate(margins)
    inside = ops.concatenate(inside_all)
    outside = ops.full_like(margins, -np.inf)
    if budget + 1 <= candidates - budget + 1:
        # The budget + 1 largest margins, descending.
        values, _ = ops.top_k(
            ops.where(inside, margins, outside), k=budget + 1, sorted=True
        )
        values = ops.convert_to_numpy(values[max(budget - 1, 0):budget + 1])
        largest = [float(v) for v in values]
    else:
        # Fewer to sort from the small end: the candidates - budget + 1
        # smallest margins, ascending; the last two are the ones needed.
        k = candidates - budget + 1
        values, _ = ops.top_k(
            ops.where(inside, -margins, outside), k=k, sorted=True
        )
        values = ops.convert_to_numpy(values[k - 2:k])
        largest = [-float(values[1]), -float(values[0])]
    if budget == 0:
        return largest[0] + 1.0
    return 0.5 * (largest[0] + largest[1])
