"""Exact top-k selection on device, with a fixed tie-breaking rule.

Shared by the magnitude, RiGL/SET, saliency and STR algorithms. Everything
runs with `keras.ops` where the tensors live (compiled on JAX); only scalars
(counts) come to the host, and no step sorts or gathers the whole tensor.
"""

import keras
import numpy as np
from keras import ops

from keras_er.algorithms._jit import compiled


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


_INT32_MIN = -(2**31)
# Entries from which a selection is compiled (see `compiled`).
COMPILE_FROM = 1 << 18
# Multiplier of the index hash (a well-mixing odd 32-bit constant).
_HASH_MULTIPLIER = 0x45D9F3B


def _sortable(score):
    """Float32 scores as int32 keys in the same order (``-0.0`` as ``0.0``).

    IEEE floats of one sign are ordered like their bit patterns; flipping
    the magnitude bits of negative ones makes the whole line monotone.
    """
    score = ops.cast(score, "float32")
    score = ops.where(ops.equal(score, 0.0), ops.zeros_like(score), score)
    bits = ops.view(score, "int32")
    return ops.where(
        ops.less(bits, 0), ops.bitwise_xor(bits, 2**31 - 1), bits
    )


def _tie_keys(n, seed):
    """Per-entry int32 keys that order tied entries.

    ``seed=None``: the lowest index gets the largest key. Otherwise a hash
    of ``(index, seed)``: counter-based, so any shard of the keys is
    computed without the others, identically on every process and backend.
    """
    index = ops.arange(n, dtype="int32")
    if seed is None:
        return ops.bitwise_not(index)
    x = ops.bitwise_xor(index, ops.cast(seed, "int32"))
    for _ in range(2):
        x = ops.bitwise_xor(x, ops.right_shift(x, 16))
        x = ops.multiply(x, _HASH_MULTIPLIER)
    return ops.bitwise_xor(x, ops.right_shift(x, 16))


def _histogram(values, bins):
    """Counts of each int in ``range(bins)`` among ``values`` (int32)."""
    if keras.backend.backend() == "jax":
        # jnp.bincount needs a concrete input under jit; segment_sum takes a
        # static number of segments.
        return ops.segment_sum(ops.ones_like(values), values,
                               num_segments=bins)
    # bincount is 10-25x faster than segment_sum on TensorFlow and torch.
    return ops.cast(ops.bincount(values, minlength=bins), "int32")


def _kth_largest_key(key, eligible, k):
    """The ``k``-th largest int32 ``key`` among ``eligible`` (``k >= 1``,
    at most the eligible count): a radix select, four passes over 8-bit
    digits from the top, each a 256-bin histogram of the entries whose
    higher digits match the ones chosen so far."""
    # Flipping the sign bit orders the bit patterns as unsigned numbers.
    bits = ops.bitwise_xor(key, _INT32_MIN)
    prefix = ops.convert_to_tensor(0, "int32")
    for shift in (24, 16, 8, 0):
        digit = ops.bitwise_and(ops.right_shift(bits, shift), 255)
        candidate = eligible
        if shift < 24:
            high = ops.bitwise_and(bits, -(1 << (shift + 8)))
            candidate = ops.logical_and(eligible, ops.equal(high, prefix))
        histogram = _histogram(
            ops.where(candidate, digit, ops.full_like(digit, 256)), 257
        )[:256]
        # at_least[d]: candidates whose digit is d or more.
        at_least = ops.flip(ops.cumsum(ops.flip(histogram, 0)), 0)
        chosen = ops.sum(ops.cast(ops.greater_equal(at_least, k), "int32"))
        chosen = chosen - 1
        # Candidates with a larger digit are above the k-th value.
        larger = ops.greater(ops.arange(256, dtype="int32"), chosen)
        k = k - ops.sum(ops.where(larger, histogram, 0))
        prefix = ops.bitwise_or(prefix, ops.left_shift(chosen, shift))
    return ops.bitwise_xor(prefix, _INT32_MIN)


def select_k(score, eligible, k, seed):
    """`first_k_largest` on tensors: ``k`` and ``seed`` (or ``None``) may be
    traced, so it can run inside a compiled function."""
    n = int(score.shape[0])
    k = ops.minimum(
        ops.cast(k, "int32"), ops.sum(ops.cast(eligible, "int32"))
    )
    wanted = ops.maximum(k, 1)  # k = 0 selects nothing (masked below)
    key = _sortable(score)
    kth = _kth_largest_key(key, eligible, wanted)
    above = ops.logical_and(eligible, ops.greater(key, kth))
    tied = ops.logical_and(eligible, ops.equal(key, kth))
    needed = wanted - ops.sum(ops.cast(above, "int32"))
    # Among the tied entries, the `needed` ones of largest tie key; equal
    # tie keys (hash collisions) go to the lowest index.
    order = _tie_keys(n, seed)
    order_kth = _kth_largest_key(order, tied, ops.maximum(needed, 1))
    first = ops.logical_and(tied, ops.greater(order, order_kth))
    level = ops.logical_and(tied, ops.equal(order, order_kth))
    needed = needed - ops.sum(ops.cast(first, "int32"))
    rank = ops.cumsum(ops.cast(level, "int32"))
    last = ops.logical_and(level, ops.less_equal(rank, needed))
    chosen = ops.logical_or(above, ops.logical_or(first, last))
    return ops.logical_and(chosen, ops.greater(k, 0))


def first_k_largest(score, eligible, k, seed=None):
    """Boolean flat mask of the ``k`` largest ``score`` among ``eligible``.

    Exactly ``min(k, count(eligible))`` entries are chosen, all eligible,
    without sorting: a radix select finds the ``k``-th largest value in
    four histogram passes (a full sort or ``top_k`` with a large ``k`` costs
    ``O(n log n)`` and, on XLA's CPU backend, minutes for 10^7 entries).
    Among entries tied at the boundary value, the ones with the *lowest flat
    index* are chosen (``seed=None``), or a uniformly random subset from
    ``seed`` (a hash of each entry's index and the seed, the same on every
    backend and for every sharding). On JAX a selection over 2**18 entries
    or more is compiled, once per length.

    Args:
        score: 1-D float tensor (no NaN; ``-inf`` allowed).
        eligible: 1-D bool tensor of the same length.
        k: Python int.
        seed: ``None``, or an int (or int tensor) seeding the tie-breaking.

    Returns:
        A 1-D bool tensor.
    """
    n = int(score.shape[0])
    if k <= 0 or n == 0:
        return ops.zeros((n,), "bool")
    if n >= 2**31:
        raise ValueError(
            f"Selecting among {n} entries needs 64-bit counts; kernels up to "
            "2**31 - 1 entries are supported."
        )
    score = ops.convert_to_tensor(score)
    eligible = ops.convert_to_tensor(eligible, "bool")
    # Counts and seeds as tensors: a compiled function is traced once per
    # length. Small tensors run eagerly: compiling would cost more.
    k = ops.convert_to_tensor(int(k), "int32")
    fn = compiled(select_k) if n >= COMPILE_FROM else select_k
    return fn(score, eligible, k,
              None if seed is None else ops.convert_to_tensor(seed, "int32"))


def tie_seed(seed):
    """An int (or int32 tensor) seeding `first_k_largest`'s tie-breaking,
    from an int, a ``numpy.random.Generator`` or a
    `keras.random.SeedGenerator` (one value is drawn from either); ``None``
    stays ``None`` (lowest index first)."""
    if seed is None:
        return None
    if isinstance(seed, keras.random.SeedGenerator):
        return keras.random.randint((), 0, 2**31 - 1, dtype="int32",
                                    seed=seed)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**31 - 1))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(
            "seed must be an int, a keras.random.SeedGenerator, a "
            f"numpy.random.Generator or None; got {seed!r}."
        )
    return int(seed) % (2**31 - 1)


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
