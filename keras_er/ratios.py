"""Layerwise density ("ratio") methods.

Each method maps a list of kernel shapes (Keras layout: Dense ``(n_in, n_out)``,
Conv2D ``(kh, kw, c_in, c_out)``) and a target overall density ``d`` to one
density ``p_l`` in ``(0, 1]`` per layer such that

    sum_l p_l * N_l == d * sum_l N_l        (N_l = number of kernel entries)

up to floating-point error. Where a formula asks for ``p_l > 1`` the layer is
made dense and the remaining budget is redistributed over the other layers
until no layer exceeds 1 (the public reference code skips this for ``balanced``
and its simple ERK, and so undershoots the target at high density).

The functions work on shapes alone, so the math is testable without a model.
``keras_er.layer_densities`` applies them to a model.

Example:

>>> import keras_er
>>> keras_er.ratios.pyramidal([(784, 300), (300, 100), (100, 10)], 0.1)
[0.1116..., 0.01245..., 0.00139...]
"""

import math

import numpy as np

from keras_er._checks import check_real, describe

__all__ = [
    "METHODS",
    "KernelShape",
    "balanced",
    "er",
    "erk",
    "from_model",
    "get",
    "pyramidal",
    "uniform",
]


class KernelShape(tuple):
    """A kernel shape that also names its input and output unit axes.

    A plain tuple; ``in_axes`` / ``out_axes`` say which dims index the input
    and output units (neurons, channels) when the layout is not
    ``(..., n_in, n_out)``: a transposed convolution (Conv1DTranspose,
    Conv2DTranspose ``(kh, kw, c_out, c_in)``, Conv3DTranspose) has
    ``in_axes=(-1,)``, ``out_axes=(-2,)``; a depthwise one (DepthwiseConv1D,
    DepthwiseConv2D ``(kh, kw, c_in, m)``) has ``in_axes=()``,
    ``out_axes=(-2, -1)`` (each output channel sees one input channel).
    ``er`` uses ``n_in`` and ``n_out``; flow preservation (`keras_er.masks`)
    uses the axes; ERK and the other methods use the dims alone.

    Args:
        shape: The kernel shape.
        in_axes: Axes of the input units (default ``(-2,)``).
        out_axes: Axes of the output units (default ``(-1,)``).

    Example:

    >>> s = KernelShape((3, 3, 16, 8), in_axes=(-1,), out_axes=(-2,))
    >>> s.n_in, s.n_out
    (8, 16)
    """

    def __new__(cls, shape, in_axes=(-2,), out_axes=(-1,)):
        self = super().__new__(cls, (int(d) for d in shape))
        self.in_axes = tuple(int(a) for a in in_axes)
        self.out_axes = tuple(int(a) for a in out_axes)
        return self

    def __getnewargs__(self):
        return (tuple(self), self.in_axes, self.out_axes)

    @property
    def axes(self):
        """``(in_axes, out_axes)``."""
        return self.in_axes, self.out_axes

    @property
    def n_in(self):
        """Number of input units (1 when no axis indexes them)."""
        return int(np.prod([self[a] for a in self.in_axes]))

    @property
    def n_out(self):
        """Number of output units."""
        return int(np.prod([self[a] for a in self.out_axes]))

    def __repr__(self):
        return (
            f"KernelShape({tuple(self)}, in_axes={self.in_axes}, "
            f"out_axes={self.out_axes})"
        )


def _units(shape):
    """``(n_in, n_out)`` of a shape; plain tuples use the last two dims."""
    if isinstance(shape, KernelShape):
        return shape.n_in, shape.n_out
    return shape[-2], shape[-1]


def check_density(density, name="density"):
    """Validates a density and returns it as a float.

    Args:
        density: The value to check.
        name: How the value is called in the error message.

    Returns:
        ``float(density)``.

    Raises:
        ValueError: If ``density`` is not a number in ``(0, 1]``.

    Example:

    >>> keras_er.ratios.check_density(0.1)
    0.1
    """
    # A bool is an int (True == 1) and a string may parse as a float: both
    # are mistakes (e.g. a flag passed in the density's position).
    is_text = isinstance(density, (str, bytes))
    try:
        value = None if is_text or isinstance(density, (bool, np.bool_)) \
            else float(density)
    except (TypeError, ValueError):
        value = None
    if value is None:
        raise ValueError(
            f"{name} must be a number in (0, 1], got {describe(density)}. "
            "A density is the fraction of weights kept (1 - sparsity): use "
            "e.g. 0.1 for 90% sparsity."
        )
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise ValueError(
            f"{name} must be in (0, 1], got {density!r}. A density is the "
            "fraction of weights kept (1 - sparsity): use e.g. 0.1 for 90% "
            "sparsity."
        )
    return value


def _check_shapes(shapes):
    """Raises unless ``shapes`` is a list of kernel shapes (tuples of ints)."""
    fix = (
        "shapes must be a list of kernel shapes, one per layer, e.g. "
        "[(784, 300), (300, 10)]"
    )
    if isinstance(shapes, (str, bytes)) or not hasattr(shapes, "__len__"):
        raise ValueError(f"{fix}; got {describe(shapes)}.")
    for shape in shapes:
        if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") \
                or not all(
                    isinstance(d, (int, np.integer))
                    and not isinstance(d, (bool, np.bool_)) for d in shape
                ):
            raise ValueError(
                f"{fix}; got the entry {describe(shape)} (each shape is a "
                "tuple of ints)."
            )


def _sizes(shapes):
    _check_shapes(shapes)
    if len(shapes) == 0:
        raise ValueError(
            "No maskable layers: the model (or the `layers` filter) selects "
            "no Dense/Conv2D layer to sparsify."
        )
    sizes = []
    for shape in shapes:
        shape = tuple(int(s) for s in shape)
        if len(shape) < 2 or any(s <= 0 for s in shape):
            raise ValueError(
                f"Kernel shapes must have at least 2 positive dims, got "
                f"{shape}."
            )
        sizes.append(float(np.prod(shape)))
    return np.asarray(sizes, dtype=np.float64)


def uniform(shapes, density):
    """Same density in every layer: ``p_l = d``.

    Args:
        shapes: List of kernel shapes.
        density: Target overall density in ``(0, 1]``.

    Returns:
        A list of per-layer densities.

    Example:

    >>> keras_er.ratios.uniform([(4, 3), (3, 2)], 0.5)
    [0.5, 0.5]
    """
    density = check_density(density)
    _sizes(shapes)
    return [density] * len(shapes)


def _scaled(raw, sizes, density):
    """Solves ``p_l = min(1, eps * raw_l)`` for the overall density.

    Layers whose ``eps * raw_l`` exceeds 1 are made dense and ``eps`` is
    re-solved for the rest. Making a layer dense only raises ``eps`` for the
    others, so all layers over the cap can be fixed at once.
    """
    raw = np.asarray(raw, dtype=np.float64)
    budget = density * sizes.sum()
    dense = np.zeros(len(sizes), dtype=bool)
    while True:
        free = ~dense
        remaining = budget - sizes[dense].sum()
        eps = remaining / (raw[free] * sizes[free]).sum()
        over = free & (eps * raw > 1.0)
        if not over.any():
            break
        dense |= over
        if dense.all():
            return [1.0] * len(sizes)
    return [1.0 if d else float(eps * r) for d, r in zip(dense, raw)]


def er(shapes, density):
    """Erdős–Rényi (Mocanu et al., 2017): ``p_l ∝ (n_in + n_out) / (n_in n_out)``.

    ``n_in, n_out`` are the last two kernel dims (for a convolution, the input
    and output channels; the kernel size is ignored, as in the dense-layer
    form), or the unit counts of a `KernelShape` (e.g. ``c_in`` and ``c_out``
    of a transposed conv, ``d`` and ``heads * key_dim`` of an attention
    projection). Layers capped at density 1 are redistributed.

    Args:
        shapes: List of kernel shapes.
        density: Target overall density in ``(0, 1]``.

    Returns:
        A list of per-layer densities.

    Example:

    >>> keras_er.ratios.er([(784, 300), (300, 100), (100, 10)], 0.1)
    [0.0796..., 0.2302..., 1.0]
    """
    density = check_density(density)
    sizes = _sizes(shapes)
    raw = [(n_in + n_out) / (n_in * n_out)
           for n_in, n_out in map(_units, shapes)]
    return _scaled(raw, sizes, density)


def erk(shapes, density, power=1.0):
    """Erdős–Rényi-Kernel (Evci et al., 2020): ``p_l ∝ sum(dims) / prod(dims)``.

    All kernel dims count (conv: ``(kh + kw + c_in + c_out) / (kh kw c_in
    c_out)``). ``eps`` is solved so that the total matches ``density``; layers
    with ``eps * raw_l > 1`` become dense and ``eps`` is re-solved (the RigL
    algorithm).

    Args:
        shapes: List of kernel shapes.
        density: Target overall density in ``(0, 1]``.
        power: Optional power applied to the raw scores (RigL's
            ``erk_power_scale``); 1 is plain ERK, 0 is uniform.

    Returns:
        A list of per-layer densities.

    Example:

    >>> keras_er.ratios.erk([(3, 3, 3, 64), (3, 3, 64, 64), (4096, 10)], 0.1)
    [0.0779..., 0.0067..., 0.1849...]
    """
    density = check_density(density)
    sizes = _sizes(shapes)
    power = check_real(power, "power", "power is ERK's exponent, >= 0.")
    if power < 0:
        raise ValueError(
            f"power must be >= 0, got {power}: ERK's exponent (1 is plain "
            "ERK, 0 is uniform)."
        )
    raw = [(sum(s) / float(np.prod(s))) ** power for s in shapes]
    return _scaled(raw, sizes, density)


def balanced(shapes, density):
    """The paper's *balanced* ratio: the same number of nonzeros per layer.

    Every layer gets ``x = d * sum N_l / L`` nonzeros, ``p_l = min(1, x / N_l)``;
    the budget of layers smaller than ``x`` (made dense) is redistributed
    equally over the others.

    Args:
        shapes: List of kernel shapes.
        density: Target overall density in ``(0, 1]``.

    Returns:
        A list of per-layer densities.

    Example:

    >>> keras_er.ratios.balanced([(784, 300), (300, 100), (100, 10)], 0.1)
    [0.0545..., 0.427, 1.0]
    """
    density = check_density(density)
    sizes = _sizes(shapes)
    budget = density * sizes.sum()
    dense = np.zeros(len(sizes), dtype=bool)
    while True:
        free = ~dense
        x = (budget - sizes[dense].sum()) / free.sum()
        over = free & (sizes <= x)
        if not over.any():
            break
        dense |= over
        if dense.all():
            return [1.0] * len(sizes)
    return [1.0 if d else float(x / n) for d, n in zip(dense, sizes)]


def pyramidal(shapes, density):
    """The paper's *pyramidal* ratio: ``p_l = p_1 ** l`` for ``l = 1..L``.

    The first layer is the densest; ``p_1`` in ``(0, 1]`` is the unique root
    of ``sum_l N_l x**l = d * sum_l N_l`` (the left side increases
    monotonically in ``x``), found by bisection to machine precision. Known
    weakness: the last layer becomes very sparse; use flow preservation.

    Args:
        shapes: List of kernel shapes in forward order.
        density: Target overall density in ``(0, 1]``.

    Returns:
        A list of per-layer densities.

    Example:

    >>> keras_er.ratios.pyramidal([(784, 300), (300, 100), (100, 10)], 0.1)
    [0.1116..., 0.01245..., 0.00139...]
    """
    density = check_density(density)
    sizes = _sizes(shapes)
    if density == 1.0:
        return [1.0] * len(sizes)
    powers = np.arange(1, len(sizes) + 1, dtype=np.float64)
    target = density * sizes.sum()

    def total(x):
        return float((sizes * x**powers).sum())

    low, high = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if total(mid) < target:
            low = mid
        else:
            high = mid
        if high - low < 1e-16:
            break
    p1 = 0.5 * (low + high)
    return [float(p1**l) for l in powers]


METHODS = {
    "uniform": uniform,
    "er": er,
    "erk": erk,
    "balanced": balanced,
    "pyramidal": pyramidal,
}


def get(name):
    """Returns the ratio function called ``name`` (see ``METHODS``).

    Args:
        name: One of ``"uniform"``, ``"er"``, ``"erk"``, ``"balanced"``,
            ``"pyramidal"`` (case-insensitive).

    Returns:
        The function ``fn(shapes, density, **options) -> list[float]``.

    Raises:
        ValueError: For an unknown name.

    Example:

    >>> keras_er.ratios.get("balanced")([(784, 300), (300, 10)], 0.1)
    """
    key = str(name).lower()
    if key not in METHODS:
        raise ValueError(
            f"Unknown ratio {name!r}. Use one of {sorted(METHODS)}, "
            "'snip' or 'synflow' (with data=...), a dict "
            "{layer_name: density}, or a callable(shapes, density) -> list."
        )
    return METHODS[key]


def from_model(model, layers=None, like=None):
    """Layer densities read from a pruned model ("ER IMP" ratios).

    Counts the nonzero entries of every maskable layer's effective kernel
    (``kernel * mask`` for ER layers, the kernel itself for plain Dense /
    Conv2D layers, e.g. of a stripped or externally pruned model). The result
    can be passed as ``ratio=`` to `keras_er.sparsify` to draw random masks
    with the same layerwise densities.

    Args:
        model: A built model that was pruned (e.g. by IMP).
        layers: Which maskable layers to read (names, regex or callable, see
            `keras_er.sparsify`); default all.
        like: Optional model to sparsify next whose layer names differ (e.g.
            a fresh copy with auto-generated names): the densities are
            assigned to its maskable layers in forward order.

    Returns:
        ``{layer_name: density}`` in forward order. A layer without any
        nonzero gets ``1 / N_l`` (one weight) so that every value is in
        ``(0, 1]``.

    Raises:
        ValueError: If the model has no maskable layers, or ``like`` has a
            different number of maskable layers or different kernel shapes.

    Example:

    ```python
    densities = keras_er.ratios.from_model(imp_pruned, like=fresh)
    er_imp = keras_er.sparsify(fresh, ratio=densities, seed=0)
    ```
    """
    import keras

    from keras_er._checks import check_layers, check_model
    from keras_er.model_walk import kernel_shape, select_layers, unit_name

    check_model(model)
    check_layers(layers)
    if like is not None:
        check_model(like, "like")
    chosen = select_layers(model, layers)
    densities = []
    for layer in chosen:
        kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel))
        densities.append(max(int(np.count_nonzero(kernel)), 1) / kernel.size)
    names = [unit_name(layer) for layer in chosen]
    if like is not None:
        targets = select_layers(like)
        source = [kernel_shape(layer) for layer in chosen]
        target = [kernel_shape(layer) for layer in targets]
        if source != target:
            raise ValueError(
                f"`like` must have maskable layers with the same kernel "
                f"shapes in the same order: got {target}, expected {source}."
            )
        names = [unit_name(layer) for layer in targets]
    return {name: float(d) for name, d in zip(names, densities)}
