"""How much wider a random (ER) network must be: the paper's width bounds.

Gadhikar, Mukherjee & Burkholz (ICML 2023), section 2.1. An ER source
network keeps each edge of layer ``l`` with probability ``p_l`` (its
density). It contains a subnetwork that represents a given target network
exactly if every target neuron has enough copies in the source, so that each
target edge is realized by at least one surviving source edge. The number of
copies grows with the *overparameterization factor*

    1 / log(1 / (1 - p))

which is about ``1 / p`` for sparsities ``1 - p >= 0.9`` (Fig. 2): a network
at density 0.01 must be about 100 times wider than its target.

Notation (the paper's): the target ``f_T`` has depth ``L``, widths
``n_{T,l}`` (``n_{T,0} = d`` inputs) and ``m_{T,l}`` nonzero weights in
layer ``l``; the source ``f_S`` has one more layer, ``l = 0``, which copies
every input ``q_0`` times, and widths ``n_{S,0} = q_0 d``,
``n_{S,l} = q_l n_{T,l}``, ``q_L = 1``. ``delta`` is the allowed failure
probability.

Example:

>>> from keras_er.research import theory
>>> round(theory.overparameterization_factor(0.1), 3)
9.491
>>> theory.single_hidden_layer_source_widths(784, 128, 10, 0.1).widths
(179536, 18048, 10)
"""

import collections
import math
import numbers

import numpy as np

__all__ = [
    "FIGURE2_SPARSITIES",
    "SourceWidths",
    "figure2_data",
    "lower_bound_width",
    "overparameterization_factor",
    "required_source_widths",
    "single_hidden_layer_source_widths",
]

#: The sparsities at which `figure2_data` evaluates the bound by default.
FIGURE2_SPARSITIES = (
    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995,
    0.999,
)

SourceWidths = collections.namedtuple("SourceWidths", ["copies", "widths"])
SourceWidths.__doc__ = """Sizes of an ER source network that suffices.

Attributes:
    copies: ``(q_0, q_1, ..., q_L)``, copies of each target neuron per layer
        (``q_0``: of each input; ``q_L = 1``).
    widths: ``(n_{S,0}, ..., n_{S,L}) = (q_0 d, q_1 n_{T,1}, ...,
        n_{T,L})``, the source widths.
"""


def _open_unit(value, name):
    """``value`` as a float in ``(0, 1)``, else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}.")
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}.")
    return value


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (
        value < 1
    ):
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


def overparameterization_factor(p):
    """The factor ``1 / log(1 / (1 - p))`` by which an ER layer must be wider.

    ``p`` is the layer's density (1 - sparsity). The factor is about
    ``1 / p`` for small ``p`` and below 1 for ``p > 1 - 1/e ~ 0.63``.

    Args:
        p: Density in ``(0, 1)``: a number, or an array of them.

    Returns:
        A float, or a NumPy array for an array ``p``.

    Raises:
        ValueError: If any ``p`` is outside ``(0, 1)``.

    Example:

    >>> overparameterization_factor(0.5)   # 1 / log 2
    1.4426950408889634
    """
    if np.ndim(p) == 0:
        p = _open_unit(p, "p")
        return 1.0 / -math.log1p(-p)
    p = np.asarray(p)
    if p.dtype.kind not in "iuf" or not np.all((p > 0.0) & (p < 1.0)):
        raise ValueError(f"Every p must be a number in (0, 1), got {p}.")
    return 1.0 / -np.log1p(-p.astype(np.float64))


def _copies(density, nonzeros, next_copies, depth, delta):
    """``q_{l-1} = ceil(log(L m_{T,l} q_l / delta) / log(1/(1 - p_l)))``."""
    bound = overparameterization_factor(density) * math.log(
        depth * nonzeros * next_copies / delta
    )
    # At least one copy; the tolerance keeps an exact integer bound from
    # being rounded up by float error.
    return max(1, math.ceil(bound - 1e-9))


def required_source_widths(
    target_widths, density, delta=1e-3, target_nonzeros=None
):
    """Widths of an ER source that contains a depth-``L`` target network.

    Theorem 2.2 (appendix A.4) of the paper: an ``L + 1``-layer ER source
    with layer densities ``p_1, ..., p_L`` (its layer 0 only copies the
    inputs; its density does not matter) contains a subnetwork equal to the
    target with probability at least ``1 - delta`` if, with ``q_L = 1``,

        q_l >= 1 / log(1 / (1 - p_{l+1})) * log(L m_{T,l+1} q_{l+1} / delta)

    for ``l = L - 1, ..., 0``. Each ``q_l`` is taken as the smallest integer
    that satisfies its bound (the copies are whole neurons). For ``L = 2``
    this is Theorem 2.1; see `single_hidden_layer_source_widths`.

    Args:
        target_widths: ``(d, n_{T,1}, ..., n_{T,L})``: the target's input
            dimension and layer widths, ``L >= 1``.
        density: The source densities ``p_1, ..., p_L`` (a sequence), or
            one density for every layer; each in ``(0, 1)``.
        delta: Allowed failure probability in ``(0, 1)``.
        target_nonzeros: ``(m_{T,1}, ..., m_{T,L})``, the nonzero weights of
            each target layer (at most ``n_{T,l-1} n_{T,l}``). Default: a
            dense target.

    Returns:
        A `SourceWidths` ``(copies, widths)``.

    Raises:
        ValueError: For widths that are not positive ints, densities or
            ``delta`` outside ``(0, 1)``, or bad ``target_nonzeros``.

    Example:

    >>> required_source_widths((784, 300, 100, 10), 0.1).copies
    (245, 221, 142, 1)
    """
    widths = [_positive_int(w, "target width") for w in target_widths]
    depth = len(widths) - 1
    if depth < 1:
        raise ValueError(
            "target_widths needs the input dimension and at least one layer "
            f"width, got {tuple(target_widths)!r}."
        )
    if np.ndim(density) == 0:
        densities = [_open_unit(density, "density")] * depth
    else:
        densities = [_open_unit(p, "density") for p in density]
        if len(densities) != depth:
            raise ValueError(
                f"Got {len(densities)} densities for a target of depth "
                f"{depth}: give p_1..p_L, one per target layer."
            )
    delta = _open_unit(delta, "delta")
    dense = [widths[l - 1] * widths[l] for l in range(1, depth + 1)]
    if target_nonzeros is None:
        nonzeros = dense
    else:
        nonzeros = [_positive_int(m, "target_nonzeros") for m in
                    target_nonzeros]
        if len(nonzeros) != depth or any(
            m > full for m, full in zip(nonzeros, dense)
        ):
            raise ValueError(
                f"target_nonzeros must hold {depth} counts, each at most the "
                f"layer's size {dense}, got {tuple(target_nonzeros)!r}."
            )
    copies = [1] * (depth + 1)
    for l in range(depth, 0, -1):  # From the output back to the inputs.
        copies[l - 1] = _copies(
            densities[l - 1], nonzeros[l - 1], copies[l], depth, delta
        )
    source = [q * n for q, n in zip(copies, widths)]
    return SourceWidths(tuple(copies), tuple(source))


def single_hidden_layer_source_widths(
    input_dim, hidden_width, output_width, density, delta=1e-3,
    target_nonzeros=None,
):
    """Theorem 2.1: widths of an ER source for a one-hidden-layer target.

    The target is ``f_T(x) = W2 relu(W1 x + b1) + b2`` with ``d`` inputs,
    ``n_{T,1}`` hidden and ``n_{T,2}`` output neurons. A 2-layer ER source
    (plus the input-copying layer 0) with widths ``n_{S,0} = q_0 d``,
    ``n_{S,1} = q_1 n_{T,1}``, ``n_{S,2} = n_{T,2}`` and densities
    ``p_1, p_2`` contains the target with probability ``1 - delta`` if

        q_1 >= 1 / log(1 / (1 - p_2)) * log(2 m_{T,2} / delta),
        q_0 >= 1 / log(1 / (1 - p_1)) * log(2 m_{T,1} q_1 / delta),
        q_2 = 1.

    Fig. 2 of the paper plots ``n_{S,1}`` for ``n_{T,1} = 128``,
    ``n_{T,2} = 10`` and ``delta = 0.001`` (see `figure2_data`).

    Args:
        input_dim: ``d``.
        hidden_width: ``n_{T,1}``.
        output_width: ``n_{T,2}``.
        density: ``(p_1, p_2)`` or one density for both, in ``(0, 1)``.
        delta: Allowed failure probability in ``(0, 1)``.
        target_nonzeros: ``(m_{T,1}, m_{T,2})``; default dense,
            ``(d n_{T,1}, n_{T,1} n_{T,2})``.

    Returns:
        A `SourceWidths` with ``copies = (q_0, q_1, 1)`` and
        ``widths = (n_{S,0}, n_{S,1}, n_{S,2})``.

    Raises:
        ValueError: For bad arguments (see `required_source_widths`).

    Example:

    >>> single_hidden_layer_source_widths(784, 128, 10, 0.1)
    SourceWidths(copies=(229, 141, 1), widths=(179536, 18048, 10))
    """
    return required_source_widths(
        (input_dim, hidden_width, output_width), density, delta,
        target_nonzeros,
    )


def lower_bound_width(density, input_dim, delta=1e-3):
    """Theorem 2.3: a 1-hidden-layer ER network narrower than this can fail.

    Some univariate targets ``relu(w^T x + b)`` on ``d`` inputs cannot be
    represented with probability at least ``1 - delta`` by a 1-hidden-layer
    ER source network of density ``p`` whose width is below

        1 / log(1 / (1 - p)) * log(1 / (1 - (1 - delta)^(1/d)))

    so the overparameterization factor cannot be avoided in general.

    Args:
        density: ``p`` in ``(0, 1)``.
        input_dim: ``d``, a positive int.
        delta: ``delta`` in ``(0, 1)``.

    Returns:
        The bound, a float (not rounded).

    Example:

    >>> round(lower_bound_width(0.1, 784), 1)
    128.8
    """
    d = _positive_int(input_dim, "input_dim")
    delta = _open_unit(delta, "delta")
    # 1 - (1 - delta)^(1/d), without cancellation for large d.
    miss = -math.expm1(math.log1p(-delta) / d)
    return overparameterization_factor(density) * math.log(1.0 / miss)


def figure2_data(
    sparsities=FIGURE2_SPARSITIES, hidden_width=128, output_width=10,
    delta=1e-3,
):
    """The numbers behind the paper's Fig. 2.

    For a one-hidden-layer target with ``n_{T,1} = hidden_width`` and
    ``n_{T,2} = output_width`` (dense), the width ``n_{S,1} = q_1 n_{T,1}``
    of the first layer of an ER source network of uniform density
    ``p = 1 - sparsity`` that Theorem 2.1 requires, with confidence
    ``1 - delta``. ``n_{S,1}`` does not depend on the input dimension.

    Args:
        sparsities: Sparsities in ``(0, 1)``.
        hidden_width: ``n_{T,1}`` (paper: 128).
        output_width: ``n_{T,2}`` (paper: 10).
        delta: Failure probability (paper: 0.001).

    Returns:
        A dict of equal-length NumPy arrays: ``sparsity``, ``density``,
        ``factor`` (``1 / log(1 / (1 - p))``), ``copies`` (``q_1``) and
        ``width`` (``n_{S,1}``).

    Example:

    >>> figure2_data([0.5, 0.9])["width"]
    array([ 2816, 18048])
    """
    sparsities = np.asarray(sparsities, dtype=np.float64).reshape(-1)
    densities = 1.0 - sparsities
    copies = np.array([
        single_hidden_layer_source_widths(
            1, hidden_width, output_width, p, delta
        ).copies[1]
        for p in densities
    ], dtype=np.int64)
    return {
        "sparsity": sparsities,
        "density": densities,
        "factor": overparameterization_factor(densities),
        "copies": copies,
        "width": copies * int(hidden_width),
    }
