"""Drawing random (Erdős–Rényi) masks and preserving flow through them.

Masks are drawn with NumPy from a seeded generator, independent of the Keras
backend, so the same seed gives the same masks on TensorFlow, JAX and torch and
on every replica of a distributed job. Layer ``i`` of a model uses the
generator ``numpy.random.default_rng([seed, i])``.

A kernel of shape ``(..., n_in, n_out)`` (Dense ``(n_in, n_out)``, Conv2D
``(kh, kw, c_in, c_out)``) is reduced to a unit graph ``(n_in, n_out)`` by
"any" over the leading (spatial) dims. A unit with zero in-degree (an output
that receives nothing) or zero out-degree (an input that feeds nothing) is
dead; flow preservation (paper, appendix A.1) repairs them.

Other layouts name their unit axes with ``axes=(in_axes, out_axes)``: the
input units are indexed by the ``in_axes`` dims, the output units by the
``out_axes`` dims, and every other dim is a position that is reduced by
"any". The transposed convolutions (Conv1DTranspose ``(k, c_out, c_in)``,
Conv2DTranspose ``(kh, kw, c_out, c_in)``, Conv3DTranspose) use
``((-1,), (-2,))``; the depthwise ones (DepthwiseConv1D ``(k, c_in, m)``,
DepthwiseConv2D ``(kh, kw, c_in, m)``) use ``((), (-2, -1))`` (each output
channel has one input channel, so only its taps form its fan-in).
A ``ratios.KernelShape`` carries its axes, and ``draw_masks`` reads them.
"""

import numpy as np

from keras_er._checks import check_seed, describe
from keras_er.ratios import check_density

SAMPLING_MODES = ("bernoulli", "exact")
FLOW_MODES = ("addition", "rejection", None)
#: dtypes a mask variable may have (the first is the default). 1-byte masks
#: use a quarter of the memory of float32 ones at the same train step time
#: (docs/performance.md); the forward pass casts them to the kernel's dtype.
MASK_DTYPES = ("bool", "uint8", "float32")

# Rejection sampling gives up on a unit after this many redraws and falls back
# to adding one edge, so that tiny densities cannot loop forever.
_MAX_REDRAWS = 100


def parse_n_m(sampling):
    """``(n, m)`` of an N:M sampling mode such as ``"2:4"``, else None."""
    if not isinstance(sampling, str) or sampling.count(":") != 1:
        return None
    n, m = sampling.split(":")
    if not (n.strip().isdigit() and m.strip().isdigit()):
        return None
    n, m = int(n), int(m)
    if not 1 <= n <= m:
        raise ValueError(
            f"sampling={sampling!r}: an N:M pattern keeps N of every M "
            "weights and needs 1 <= N <= M, e.g. '2:4'."
        )
    return n, m


def check_sampling(sampling):
    """Raises ValueError unless ``sampling`` is a known sampling mode.

    The modes are ``"bernoulli"``, ``"exact"`` and N:M patterns such as
    ``"2:4"`` (see `draw_mask`).

    Example:

    >>> keras_er.masks.check_sampling("exact")
    'exact'
    >>> keras_er.masks.check_sampling("2:4")
    '2:4'
    """
    if sampling not in SAMPLING_MODES and parse_n_m(sampling) is None:
        raise ValueError(
            f"sampling must be one of {SAMPLING_MODES} or an N:M pattern "
            f"such as '2:4', got {sampling!r}."
        )
    return sampling


def check_flow(flow):
    """Raises ValueError unless ``flow`` is a known flow-preservation mode.

    Example:

    >>> keras_er.masks.check_flow("addition")
    """
    if flow not in FLOW_MODES:
        raise ValueError(
            f"flow must be one of {FLOW_MODES}, got {flow!r}. Use None to "
            "keep the mask exactly as drawn."
        )
    return flow


def check_mask_dtype(mask_dtype):
    """Raises ValueError unless ``mask_dtype`` is a supported mask dtype.

    Example:

    >>> keras_er.masks.check_mask_dtype("uint8")
    'uint8'
    """
    name = getattr(mask_dtype, "name", mask_dtype)  # np.dtype -> its name
    if name not in MASK_DTYPES:
        raise ValueError(
            f"mask_dtype must be one of {MASK_DTYPES}, got {mask_dtype!r}. "
            '"bool" (default) and "uint8" take a quarter of float32\'s memory.'
        )
    return name


def check_rng(rng, name="rng"):
    """Raises ValueError unless ``rng`` is a ``numpy.random.Generator``.

    Example:

    >>> keras_er.masks.check_rng(numpy.random.default_rng(0))
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"{name} must be a numpy.random.Generator, e.g. "
            f"numpy.random.default_rng(0); got {describe(rng)}."
        )
    return rng


def check_shape(shape, name="shape"):
    """A kernel shape as a tuple of positive ints.

    Example:

    >>> keras_er.masks.check_shape((784, 300))
    (784, 300)
    """
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        dims = None
    else:
        dims = tuple(shape)
    if dims is None or not all(
        isinstance(d, (int, np.integer))
        and not isinstance(d, (bool, np.bool_)) and d > 0 for d in dims
    ):
        raise ValueError(
            f"{name} must be a tuple of positive ints (a kernel shape such "
            f"as (784, 300)), got {describe(shape)}."
        )
    return tuple(int(d) for d in dims)


def layer_rng(seed, index):
    """The generator used for layer number ``index`` under ``seed``.

    Example:

    >>> keras_er.masks.layer_rng(0, 1).random()  # same on every backend
    """
    seed = check_seed(seed, allow_none=False)
    return np.random.default_rng([int(seed), int(index)])


def draw_mask(shape, density, rng, sampling="bernoulli", axes=None):
    """Draws one random 0/1 mask.

    Args:
        shape: Kernel shape.
        density: Probability (``"bernoulli"``) or fraction (``"exact"``) of
            entries kept, in ``(0, 1]``.
        rng: A ``numpy.random.Generator``.
        sampling: ``"bernoulli"`` keeps each entry independently with
            probability ``density`` (the paper's ER definition);
            ``"exact"`` keeps exactly ``max(1, round(density * N))`` entries
            chosen uniformly without replacement; ``"N:M"`` (e.g. ``"2:4"``,
            the structured sparsity of GPU sparse tensor cores) keeps ``N``
            random entries of every ``M`` consecutive inputs of each output
            unit, and needs ``density == N / M`` (see `draw_n_m_mask`).
        axes: ``(in_axes, out_axes)`` of the kernel's units, for N:M groups
            (default: the last two axes, as for Dense and Conv kernels).

    Returns:
        A ``float32`` NumPy array of 0s and 1s with the given shape.

    Example:

    >>> rng = numpy.random.default_rng(0)
    >>> keras_er.masks.draw_mask((784, 300), 0.1, rng, "exact").sum()
    23520.0
    """
    density = check_density(density)
    check_sampling(sampling)
    check_rng(rng)
    shape = check_shape(shape)
    n_m = parse_n_m(sampling)
    if n_m is not None:
        n, m = n_m
        if abs(density - n / m) > 1e-6:
            raise ValueError(
                f"sampling={sampling!r} keeps {n} of every {m} weights, a "
                f"density of {n / m:g} in every layer, but this layer's "
                f"density is {density:g}. Fix: ratio='uniform', "
                f"density={n / m:g}."
            )
        return draw_n_m_mask(shape, n, m, rng, axes)
    size = int(np.prod(shape))
    if density == 1.0:
        return np.ones(shape, dtype=np.float32)
    if sampling == "bernoulli":
        return (rng.random(shape, dtype=np.float32) < density).astype(
            np.float32
        )
    keep = max(1, int(round(density * size)))
    flat = np.zeros(size, dtype=np.float32)
    flat[rng.choice(size, size=keep, replace=False)] = 1.0
    return flat.reshape(shape)


DEFAULT_AXES = ((-2,), (-1,))


def draw_n_m_mask(shape, n, m, rng, axes=None):
    """A random N:M mask: ``n`` of every ``m`` consecutive inputs per output.

    For every output unit (and kernel position, e.g. each of a convolution's
    ``kh x kw`` taps), the input units are cut into groups of ``m``
    consecutive ones, and ``n`` entries of each group are kept, uniformly at
    random: the pattern that sparse tensor cores (2:4) and
    tensorflow-model-optimization's ``sparsity_m_by_n`` use. A last, shorter
    group of ``r`` inputs keeps ``max(1, round(n * r / m))``. Every output
    unit keeps inputs, so flow preservation is not needed (and would break
    the pattern).

    Args:
        shape: Kernel shape.
        n: Entries kept per group.
        m: Group size.
        rng: A ``numpy.random.Generator``.
        axes: ``(in_axes, out_axes)`` (default: the last two axes).

    Returns:
        A ``float32`` NumPy array of 0s and 1s.

    Example:

    >>> mask = keras_er.masks.draw_n_m_mask(
    ...     (8, 3), 2, 4, numpy.random.default_rng(0))
    >>> mask.reshape(2, 4, 3).sum(axis=1).tolist()
    [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]
    """
    shape = check_shape(shape)
    empty = np.zeros(shape, dtype=np.float32)
    view, layout = _to_units(empty, axes)
    positions, n_in, n_out = view.shape
    for start in range(0, n_in, m):
        size = min(m, n_in - start)
        keep = n if size == m else min(size, max(1, round(n * size / m)))
        ranks = np.argsort(
            np.argsort(rng.random((positions, size, n_out)), axis=1), axis=1
        )
        view[:, start:start + size, :] = ranks < keep
    return _from_units(view, layout).astype(np.float32)


def draw_layer_mask(shape, density, rng, sampling="bernoulli",
                    flow="addition", axes=None):
    """`draw_mask`, then `preserve_flow` (not for N:M patterns).

    Returns:
        ``(mask, edges_added)``.
    """
    mask = draw_mask(shape, density, rng, sampling, axes)
    if parse_n_m(sampling) is not None:
        return mask, 0
    return preserve_flow(mask, density, rng, flow, axes=axes)


def _check_axes(ndim, axes):
    """``axes`` as non-negative ``(in_axes, out_axes)`` tuples of ints."""
    if axes is None:
        axes = DEFAULT_AXES
    in_axes, out_axes = (tuple(int(a) for a in group) for group in axes)
    normalized = []
    for group in (in_axes, out_axes):
        for axis in group:
            if not -ndim <= axis < ndim:
                raise ValueError(
                    f"Unit axis {axis} is out of range for a kernel of rank "
                    f"{ndim}."
                )
        normalized.append(tuple(a % ndim for a in group))
    in_axes, out_axes = normalized
    if not out_axes or len(set(in_axes + out_axes)) != len(in_axes + out_axes):
        raise ValueError(
            f"Unit axes {axes} must name distinct axes and at least one "
            "output axis."
        )
    return in_axes, out_axes


def _to_units(mask, axes=None):
    """A copy of ``mask`` laid out as ``(positions, n_in, n_out)``.

    Returns the view and the permutation that ``_from_units`` undoes.
    """
    mask = np.asarray(mask)
    in_axes, out_axes = _check_axes(mask.ndim, axes)
    rest = [a for a in range(mask.ndim) if a not in in_axes + out_axes]
    order = rest + list(in_axes) + list(out_axes)
    moved = np.transpose(mask, order)
    n_in = int(np.prod([mask.shape[a] for a in in_axes]))
    n_out = int(np.prod([mask.shape[a] for a in out_axes]))
    return np.array(moved.reshape(-1, n_in, n_out)), (order, moved.shape)


def _from_units(view, layout):
    """Inverse of ``_to_units``: the mask in the kernel's own layout."""
    order, moved_shape = layout
    return np.transpose(view.reshape(moved_shape), np.argsort(order))


def _dead(view):
    dead_outputs = np.flatnonzero(view.sum(axis=(0, 1)) == 0)
    dead_inputs = np.flatnonzero(view.sum(axis=(0, 2)) == 0)
    return dead_inputs, dead_outputs


def dead_units(mask, axes=None):
    """Finds units without flow.

    Args:
        mask: A 0/1 array of shape ``(..., n_in, n_out)``.
        axes: Optional ``(in_axes, out_axes)`` for other layouts (see the
            module doc); default the last two dims.

    Returns:
        ``(dead_inputs, dead_outputs)``: index arrays of input units with zero
        out-degree and output units with zero in-degree (flat indices over
        the ``in_axes`` / ``out_axes`` dims).
    """
    view, _ = _to_units(mask, axes)
    return _dead(view)


def _add_edges(view, rng):
    """Switches on one random edge for every dead output, then input."""
    added = 0
    positions, n_in, n_out = view.shape
    _, dead_outputs = _dead(view)
    for j in dead_outputs:
        view[rng.integers(positions), rng.integers(n_in), j] = 1.0
        added += 1
    dead_inputs, _ = _dead(view)
    for i in dead_inputs:
        view[rng.integers(positions), i, rng.integers(n_out)] = 1.0
        added += 1
    return added


def preserve_flow(mask, density, rng, method="addition", axes=None):
    """Repairs a mask so that every unit has in- and out-degree >= 1.

    Args:
        mask: A 0/1 array of shape ``(..., n_in, n_out)``; not modified.
        density: The layer density the mask was drawn with (used by rejection
            sampling to redraw).
        rng: A ``numpy.random.Generator``.
        method: ``"addition"`` switches on one random entry in the fan-in of
            each output unit with zero in-degree (for a conv, a random
            ``(kh, kw, c_in)`` position) and then in the fan-out of each input
            unit with zero out-degree. ``"rejection"`` redraws the fan-in /
            fan-out of dead units from Bernoulli(``density``) until they are
            alive (after 100 failed redraws a unit gets one added edge).
            ``None`` returns the mask unchanged.
        axes: Optional ``(in_axes, out_axes)`` naming the unit dims of other
            kernel layouts (see the module doc); default the last two dims.

    Returns:
        ``(new_mask, edges_added)`` where ``edges_added`` is the change in the
        number of nonzeros (it can be negative for rejection sampling).

    Example:

    >>> mask, added = keras_er.masks.preserve_flow(mask, 0.01, rng)
    """
    check_flow(method)
    mask = np.array(mask, dtype=np.float32, copy=True)
    if method is None:
        return mask, 0
    check_rng(rng)
    before = int(mask.sum())
    view, layout = _to_units(mask, axes)
    if method == "addition":
        _add_edges(view, rng)
    else:
        density = check_density(density)
        for _ in range(_MAX_REDRAWS):
            dead_inputs, dead_outputs = _dead(view)
            if len(dead_inputs) == 0 and len(dead_outputs) == 0:
                break
            if len(dead_outputs):
                shape = (view.shape[0], view.shape[1], len(dead_outputs))
                view[:, :, dead_outputs] = rng.random(shape) < density
            dead_inputs, _ = _dead(view)
            if len(dead_inputs):
                shape = (view.shape[0], len(dead_inputs), view.shape[2])
                view[:, dead_inputs, :] = rng.random(shape) < density
        _add_edges(view, rng)
    mask = np.ascontiguousarray(_from_units(view, layout), dtype=np.float32)
    return mask, int(mask.sum()) - before


def draw_masks(
    shapes, densities, seed=0, sampling="bernoulli", flow="addition",
    dtype="float32",
):
    """Draws one flow-preserving random mask per layer.

    Args:
        shapes: List of kernel shapes in forward order. A
            `keras_er.ratios.KernelShape` also gives its unit axes to flow
            preservation (plain tuples use the last two dims).
        densities: One density per layer (e.g. from ``keras_er.ratios``).
        seed: Integer seed; layer ``i`` uses
            ``numpy.random.default_rng([seed, i])``.
        sampling: ``"bernoulli"``, ``"exact"`` or ``"N:M"`` (see
            ``draw_mask``).
        flow: ``"addition"``, ``"rejection"`` or ``None`` (see
            ``preserve_flow``; N:M masks need none).
        dtype: NumPy dtype of the returned masks. ``"bool"`` (what
            `keras_er.sparsify` uses) keeps one byte per entry: each mask
            is converted as soon as it is drawn, so only one layer's
            ``float32`` mask exists at a time.

    Returns:
        ``(masks, edges_added)``: two lists, one entry per layer.

    Example:

    >>> masks, added = keras_er.masks.draw_masks(
    ...     [(784, 300), (300, 10)], [0.1, 0.05], seed=0)
    """
    for name, value in (("shapes", shapes), ("densities", densities)):
        if isinstance(value, (str, bytes, dict)) or not hasattr(
            value, "__len__"
        ):
            raise ValueError(
                f"{name} must be a list with one entry per layer (shapes: "
                "kernel shapes, densities: numbers in (0, 1]), got "
                f"{describe(value)}."
            )
    if len(shapes) != len(densities):
        raise ValueError(
            f"Got {len(shapes)} shapes but {len(densities)} densities."
        )
    check_seed(seed, allow_none=False)
    check_sampling(sampling)
    check_flow(flow)
    masks, added = [], []
    for index, (shape, density) in enumerate(zip(shapes, densities)):
        mask, edges = draw_layer_mask(
            shape, density, layer_rng(seed, index), sampling, flow,
            axes=getattr(shape, "axes", None),
        )
        masks.append(mask.astype(dtype, copy=False))
        added.append(edges)
    return masks, added
