"""Exact top-k selection on device, with a fixed tie-breaking rule.

Shared by the magnitude, RiGL/SET and STR algorithms. Everything runs with
`keras.ops` where the tensors live; only scalars (counts) come to the host.
"""

import keras
import numpy as np
from keras import ops


def flat(x, dtype=None):
    """``x`` as a 1-D tensor (optionally cast)."""
    x = ops.convert_to_tensor(x)
    if dtype is not None:
        x = ops.cast(x, dtype)
    return ops.reshape(x, (-1,))


def count(x):
    """Number of nonzero / True entries of ``x``, as a Python int."""
    nonzero = ops.not_equal(ops.convert_to_tensor(x), 0)
    return int(ops.convert_to_numpy(ops.sum(ops.cast(nonzero, "int32"))))


def nan_to(x, value):
    """``x`` with NaN replaced by ``value`` (a float, may be +-inf)."""
    return ops.where(ops.isnan(x), ops.full_like(x, value), x)


def first_k_largest(score, eligible, k):
    """Boolean flat mask of the ``k`` largest ``score`` among ``eligible``.

    Exactly ``min(k, count(eligible))`` entries are chosen, all eligible.
    Among entries tied at the boundary value the ones with the *lowest flat
    index* are chosen, on every backend (the rule does not depend on how a
    backend's ``top_k`` orders ties).

    Args:
        score: 1-D float tensor (no NaN; ``-inf`` allowed).
        eligible: 1-D bool tensor of the same length.
        k: Python int.

    Returns:
        A 1-D bool tensor.
    """
    n = int(score.shape[0])
    if k <= 0 or n == 0:
        return ops.zeros((n,), "bool")
    k = min(int(k), n)
    ranked = ops.where(eligible, score, ops.full_like(score, -np.inf))
    values, _ = ops.top_k(ranked, k=k, sorted=True)
    kth = values[k - 1]
    above = ops.logical_and(eligible, ops.greater(score, kth))
    tied = ops.logical_and(eligible, ops.equal(score, kth))
    needed = k - ops.sum(ops.cast(above, "int32"))
    # The first `needed` tied entries in index order (inclusive cumsum).
    rank = ops.cumsum(ops.cast(tied, "int32"))
    chosen = ops.logical_and(tied, ops.less_equal(rank, needed))
    return ops.logical_or(above, chosen)


def select_largest(score, eligible, k, order=None):
    """`first_k_largest`, with ties broken in the order ``order``.

    Args:
        score: 1-D float tensor (no NaN).
        eligible: 1-D bool tensor.
        k: Python int.
        order: Optional permutation of ``range(n)`` (int tensor). Ties go to
            the entry that comes first in ``order``; a random permutation
            breaks ties uniformly at random. ``None``: lowest index first.

    Returns:
        A 1-D bool tensor with exactly ``min(k, count(eligible))`` True.
    """
    if order is None:
        return first_k_largest(score, eligible, k)
    n = int(score.shape[0])
    chosen = first_k_largest(
        ops.take(score, order), ops.take(eligible, order), k
    )
    back = ops.scatter(
        ops.expand_dims(order, -1), ops.cast(chosen, "int32"), (n,)
    )
    return ops.greater(back, 0)


def as_seed_generator(seed):
    """A `keras.random.SeedGenerator` from an int, a generator or ``None``.

    A ``numpy.random.Generator`` is accepted too: one int is drawn from it.
    ``None`` returns ``None`` (deterministic rules, no randomness).
    """
    if seed is None or isinstance(seed, keras.random.SeedGenerator):
        return seed
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2**31 - 1))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(
            "seed must be an int, a keras.random.SeedGenerator, a "
            f"numpy.random.Generator or None; got {seed!r}."
        )
    return keras.random.SeedGenerator(int(seed))


def random_order(n, seed):
    """A random permutation of ``range(n)`` (int32 tensor), or ``None``."""
    if seed is None:
        return None
    return keras.random.shuffle(ops.arange(n, dtype="int32"), seed=seed)
