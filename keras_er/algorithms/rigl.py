"""RiGL / SET drop-and-grow on one kernel (Evci et al. 2020; Mocanu et al. 2018).

Pure functions on tensors, run with `keras.ops` where the kernel lives. One
step drops the ``n_drop`` active entries of smallest ``|w|`` and grows the
``n_grow`` inactive entries (just-dropped ones included) of largest score:
``|dL/dW|``, the dense gradient of the effective kernel, for RiGL; random
scores for SET (``grow_scores=None``). An entry dropped and grown back in
the same step keeps its value; grown entries start at 0.

Ties at either boundary are broken uniformly at random from ``seed`` (a hash
of each entry's index and the seed ranks the tied entries), or by lowest
flat index with ``seed=None``. Nothing is sorted: the selections are radix
selects (`keras_er.algorithms._select.first_k_largest`), linear in the
kernel's size. The same seed gives the same masks on every backend, except
SET's random growth scores, whose streams differ between backends.
"""

import keras
import numpy as np
from keras import ops

from keras_er.algorithms._jit import compiled
from keras_er.algorithms._select import (
    COMPILE_FROM,
    as_seed_generator,
    count,
    flat,
    nan_to,
    select_k,
    tie_seed,
)

# Grow ties are broken with another stream than drop ties.
_GROW_STREAM = 0x5BD1E995


def random_scores(shape, seed):
    """Uniform random growth scores (SET), drawn on device from ``seed``."""
    return keras.random.uniform(tuple(shape), seed=as_seed_generator(seed))


def rewire(kernel, mask, grow_scores, n_drop, n_grow, seed=None):
    """One drop-and-grow step on a single kernel.

    Args:
        kernel: The kernel tensor (or variable).
        mask: Its 0/1 mask (any dtype), same shape.
        grow_scores: Scores of the same shape (e.g. ``|dL/dW|``), or
            ``None`` for random scores (SET). NaN scores rank last.
        n_drop: Number of active entries to drop (at most the active count).
            NaN weights are dropped last.
        n_grow: Number of entries to grow (at most the inactive count after
            the drop).
        seed: An int, a `keras.random.SeedGenerator` or a
            ``numpy.random.Generator`` (one int is drawn from it) for the
            random tie-breaking and random scores; ``None`` breaks ties by
            lowest flat index (random scores then need a seed).

    Returns:
        ``(new_mask, new_kernel, grown, dropped)``: the new mask (the mask's
        dtype) and kernel (zero at newly grown entries and outside the new
        mask), and bool tensors of the entries switched on and off.

    Raises:
        ValueError: If ``n_drop`` exceeds the active count or ``n_grow`` the
            inactive count after the drop.

    Example:

    ```python
    new_mask, new_kernel, grown, dropped = rewire(
        w, m, ops.abs(grad), n_drop=10, n_grow=10, seed=0)
    ```
    """
    kernel = ops.convert_to_tensor(kernel)
    mask = ops.convert_to_tensor(mask)
    shape = tuple(kernel.shape)
    n = int(np.prod(shape))
    n_drop, n_grow = int(n_drop), int(n_grow)
    # One int (or int tensor) for the tie-breaking; the random scores of
    # SET come from a generator.
    ties = tie_seed(seed)
    generator = (
        seed if isinstance(seed, keras.random.SeedGenerator)
        else as_seed_generator(ties)
    )
    active = ops.not_equal(flat(mask), 0)
    nnz = count(active)
    if not 0 <= n_drop <= nnz:
        raise ValueError(f"n_drop={n_drop} is not in [0, {nnz}].")
    if not 0 <= n_grow <= n - (nnz - n_drop):
        raise ValueError(f"n_grow={n_grow} exceeds the inactive entries.")
    if grow_scores is None:
        if generator is None:
            raise ValueError("Random growth (grow_scores=None) needs a seed.")
        grow_scores = random_scores(shape, generator)
    ties = None if ties is None else ops.convert_to_tensor(ties, "int32")
    grow_ties = None if ties is None else ops.bitwise_xor(ties, _GROW_STREAM)
    # One compiled function per kernel shape on JAX for big kernels: XLA
    # fuses the passes and keeps few whole-kernel temporaries.
    step = compiled(_rewire) if n >= COMPILE_FROM else _rewire
    new, new_kernel, grown, dropped = step(
        kernel, active, grow_scores, ops.convert_to_tensor(n_drop, "int32"),
        ops.convert_to_tensor(n_grow, "int32"), ties, grow_ties,
    )
    return (
        ops.cast(ops.reshape(new, shape), mask.dtype),
        ops.reshape(new_kernel, shape),
        ops.reshape(grown, shape),
        ops.reshape(dropped, shape),
    )


def _rewire(kernel, active, grow_scores, n_drop, n_grow, ties, grow_ties):
    """`rewire` on flat tensors (counts and seeds may be traced)."""
    # The smallest magnitudes are the largest negated ones; NaN drops last.
    magnitude = nan_to(ops.abs(flat(kernel, "float32")), np.inf)
    drop = select_k(ops.negative(magnitude), active, n_drop, ties)
    after = ops.logical_and(active, ops.logical_not(drop))
    scores = nan_to(flat(grow_scores, "float32"), -np.inf)
    grow = select_k(scores, ops.logical_not(after), n_grow, grow_ties)
    new = ops.logical_or(after, grow)
    grown = ops.logical_and(new, ops.logical_not(active))
    dropped = ops.logical_and(active, ops.logical_not(new))
    kept = ops.logical_and(new, ops.logical_not(grown))
    new_kernel = ops.where(kept, flat(kernel), ops.zeros_like(flat(kernel)))
    return new, new_kernel, grown, dropped
