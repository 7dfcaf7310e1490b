"""Compiling the selection functions where eager dispatch is slow.

The one backend-specific piece of the algorithms: on JAX, each eager op
over a tensor of 10^7 entries is dispatched and materialized on its own,
about 5x slower than the same function compiled with XLA (which also fuses
the passes and keeps the temporaries small). TensorFlow and torch run their
eager kernels directly.
"""

import keras

_CACHE = {}


def compiled(fn):
    """``fn`` compiled with ``jax.jit`` on JAX (traced once per input
    shape; every argument is traced, so counts and seeds that change
    between calls do not recompile), ``fn`` itself on other backends."""
    if keras.backend.backend() != "jax":
        return fn
    if fn not in _CACHE:
        import jax

        _CACHE[fn] = jax.jit(fn)
    return _CACHE[fn]
