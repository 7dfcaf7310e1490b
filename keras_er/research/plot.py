"""Plots of layerwise densities, accuracy vs sparsity and the width bound.

The paper's figures for keras_er models and benchmark results:

* `plot_layer_densities`: grouped bars of the density of every layer under
  several ratio methods (the paper's Fig. 7).
* `plot_accuracy_vs_sparsity`: accuracy against sparsity, one line per
  method with a band of one standard deviation over seeds (Fig. 3).
* `plot_overparameterization`: the source width Theorem 2.1 requires
  against sparsity (Fig. 2), from `keras_er.research.theory`.

Needs matplotlib (``pip install keras_er[plot]``), imported when a function
is called. Figures are made with matplotlib's object API, not pyplot: no
window opens, no global backend is changed, and they render headless with
Agg. Every function returns the `matplotlib.figure.Figure`; with
``path="x.png"`` (or ``.svg``, ``.pdf``) it is also saved there, the format
taken from the suffix. Pass ``ax=`` to draw into an axes of your own (e.g.
from ``plt.subplots()`` to show it interactively).
"""

import math
import numbers
import os

import numpy as np

from keras_er import ratios as ratios_lib
from keras_er.research import theory

__all__ = [
    "aggregate_results",
    "plot_accuracy_vs_sparsity",
    "plot_layer_densities",
    "plot_overparameterization",
]

DEFAULT_RATIOS = ("uniform", "erk", "balanced", "pyramidal")
# Line styles for the values of `style=` (e.g. flow on / off), in order.
_LINESTYLES = ("-", ":", "--", "-.")


def _figure(ax, figsize):
    """``(figure, axes)``: ``ax``'s, or a new pyplot-free figure."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "keras_er.research.plot needs matplotlib. Install it with "
            "`pip install keras_er[plot]` (or `pip install matplotlib`)."
        ) from None
    if ax is not None:
        return ax.figure, ax
    figure = Figure(figsize=figsize, layout="constrained")
    return figure, figure.add_subplot()


def _save(figure, path):
    if path is not None:
        path = os.fspath(path)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        # No date in SVG/PDF files, so regenerated docs images only change
        # when the plot does.
        suffix = os.path.splitext(path)[1].lower()
        metadata = {"Date": None} if suffix in (".svg", ".pdf") else None
        figure.savefig(path, dpi=150, metadata=metadata)
    return figure


# -- Fig. 7: layerwise densities -------------------------------------------


def _layers_of(model_or_shapes):
    """``(names, shapes, model)`` of a model or of a list/dict of shapes."""
    if hasattr(model_or_shapes, "layers"):
        from keras_er.model_walk import (
            kernel_shape,
            select_layers,
            unit_name,
        )

        chosen = select_layers(model_or_shapes)
        names = [unit_name(layer) for layer in chosen]
        return names, [kernel_shape(layer) for layer in chosen], (
            model_or_shapes
        )
    if isinstance(model_or_shapes, dict):
        names = [str(name) for name in model_or_shapes]
        shapes = list(model_or_shapes.values())
    else:
        shapes = list(model_or_shapes)
        names = [f"layer {i}" for i in range(1, len(shapes) + 1)]
    shapes = [tuple(int(s) for s in shape) for shape in shapes]
    ratios_lib.uniform(shapes, 1.0)  # Validates the shapes.
    return names, shapes, None


def _is_layer_dict(spec):
    """Whether ``spec`` is ``{layer: density}`` (not ``{label: method}``)."""
    return isinstance(spec, dict) and bool(spec) and all(
        isinstance(v, numbers.Real) for v in spec.values()
    )


def _label(spec):
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        return "custom"
    return getattr(spec, "__name__", type(spec).__name__)


def _mask_densities(model):
    from keras_er.summary import summary

    return {row["name"]: row["density"] for row in summary(model, None)[:-1]}


def _densities(spec, names, shapes, model, density):
    """The densities of ``spec`` for the layers ``names``, in order."""
    if isinstance(spec, str) and spec.lower() == "mask":
        if model is None:
            raise ValueError(
                "ratio 'mask' plots a model's own masks: pass a model, not "
                "shapes."
            )
        found = _mask_densities(model)
        return [found[name] for name in names]
    if model is not None:
        from keras_er.densities import layer_densities

        found = layer_densities(model, spec, density)
        return [found[name] for name in names]
    if isinstance(spec, dict):
        missing = [name for name in names if name not in spec]
        if missing:
            raise ValueError(f"The ratio dict has no density for {missing}.")
        return [ratios_lib.check_density(spec[name]) for name in names]
    method = ratios_lib.get(spec) if isinstance(spec, str) else spec
    return [float(value) for value in method(shapes, density)]


def plot_layer_densities(
    model_or_shapes,
    ratios=DEFAULT_RATIOS,
    density=0.1,
    *,
    ax=None,
    path=None,
    log_scale=False,
    title=None,
):
    """Grouped bars of the density of each layer under several ratios.

    The paper's Fig. 7: one group of bars per layer (in forward order), one
    bar per ratio method, all at the same overall density.

    Args:
        model_or_shapes: A built Keras model (its maskable layers, as in
            `keras_er.layer_densities`), a list of kernel shapes (layers
            named ``layer 1``, ``layer 2``, ...), or ``{name: shape}``.
        ratios: Ratio methods: a sequence of names (see `keras_er.ratios`),
            ``{layer_name: density}`` dicts or callables, or a dict
            ``{label: method}`` to choose the legend labels. With a model,
            ``"mask"`` plots its current masks (e.g. after IMP or STR).
        density: The overall density the ratios are computed for.
        ax: Optional matplotlib axes to draw into.
        path: Optional file to save the figure to (``.png``, ``.svg``, ...).
        log_scale: Logarithmic density axis (for very sparse layers).
        title: Axes title; default names the overall density.

    Returns:
        The `matplotlib.figure.Figure`. Its axes hold one bar container per
        ratio (``ax.containers``), in the order given.

    Raises:
        ImportError: Without matplotlib.
        ValueError: For bad shapes, ratios or density.

    Example:

    ```python
    from keras_er.research import plot

    shapes = {"fc1": (784, 300), "fc2": (300, 100), "fc3": (100, 10)}
    plot.plot_layer_densities(shapes, density=0.1, path="lenet_densities.png")
    ```
    """
    density = ratios_lib.check_density(density)
    names, shapes, model = _layers_of(model_or_shapes)
    if isinstance(ratios, str) or _is_layer_dict(ratios):
        ratios = [ratios]  # One method, e.g. "erk" or {layer: density}.
    items = (
        list(ratios.items()) if isinstance(ratios, dict)
        else [(_label(spec), spec) for spec in ratios]
    )
    if not items:
        raise ValueError("ratios is empty: give at least one ratio method.")
    values = [
        _densities(spec, names, shapes, model, density) for _, spec in items
    ]
    bars = len(names) * len(items)
    figure, ax = _figure(ax, (min(12.0, max(6.4, 0.2 * bars + 2.0)), 4.2))
    positions = np.arange(len(names))
    width = 0.8 / len(items)
    for i, ((label, _), heights) in enumerate(zip(items, values)):
        offset = (i - (len(items) - 1) / 2) * width
        ax.bar(positions + offset, heights, width, label=label)
    ax.set_xticks(positions, names, rotation=45 if len(names) > 6 else 0,
                  ha="right" if len(names) > 6 else "center")
    ax.set_xlabel("layer")
    ax.set_ylabel("layer density")
    if log_scale:
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, 1.05)
    ax.set_title(
        title if title is not None
        else f"Layerwise density at overall density {density:g}"
    )
    ax.legend()
    return _save(figure, path)


# -- Fig. 3: accuracy vs sparsity ------------------------------------------


def _label_of(result, label):
    if callable(label):
        return str(label(result))
    if label is None:
        if "label" in result:
            return str(result["label"])
        keys = [k for k in ("method", "ratio") if k in result]
        if not keys:
            raise ValueError(
                f"Result {result!r} has no 'label', 'method' or 'ratio' key; "
                "pass label=<key> or a callable."
            )
        return " / ".join(str(result[k]) for k in keys)
    keys = (label,) if isinstance(label, str) else tuple(label)
    missing = [k for k in keys if k not in result]
    if missing:
        raise ValueError(f"Result {result!r} has no key {missing[0]!r}.")
    return " / ".join(str(result[k]) for k in keys)


def _sparsity_of(result):
    if "sparsity" in result:
        value = result["sparsity"]
    elif "density" in result:
        value = 1.0 - float(result["density"])
    else:
        raise ValueError(f"Result {result!r} has no 'sparsity' or 'density'.")
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"Sparsity must be in [0, 1), got {value} in "
                         f"{result!r}.")
    return value


def aggregate_results(results, label=None, style=None, metric="accuracy"):
    """Mean and standard deviation of a metric per method and sparsity.

    Args:
        results: Dicts such as ``{"method": "erk", "sparsity": 0.9,
            "accuracy": 0.97, "seed": 0}``; ``"density"`` may replace
            ``"sparsity"`` (sparsity = 1 - density).
        label: What names a line: a key, a tuple of keys (joined with
            ``" / "``) or a callable ``fn(result) -> str``. Default: the
            ``"label"`` key, else ``"method"`` and/or ``"ratio"``.
        style: Optional key whose value splits a line in line styles (e.g.
            ``"flow"`` for the paper's Fig. 3: with and without flow
            preservation).
        metric: The key of the value averaged.

    Returns:
        A list of dicts ``{"label", "style", "sparsity", "mean", "std",
        "n"}``, lines in the order they first appear in ``results``, points
        by increasing sparsity. ``std`` is the sample standard deviation
        (``ddof=1``) over the ``n`` results of the point, 0 when ``n = 1``.

    Raises:
        ValueError: For a result without the keys needed, or a non-numeric
            metric.

    Example:

    >>> aggregate_results([
    ...     {"ratio": "erk", "sparsity": 0.9, "accuracy": 0.5},
    ...     {"ratio": "erk", "density": 0.1, "accuracy": 1.0}])
    [{'label': 'erk', 'style': None, 'sparsity': 0.9, 'mean': 0.75, ...}]
    """
    groups = {}
    for result in results:
        if metric not in result:
            raise ValueError(f"Result {result!r} has no {metric!r} value.")
        value = result[metric]
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(
                f"{metric} must be a number, got {value!r} in {result!r}."
            )
        key = (
            _label_of(result, label),
            None if style is None else result.get(style),
            # Rounded, so 1 - 0.01 and 0.99 are the same point.
            round(_sparsity_of(result), 12),
        )
        groups.setdefault(key, []).append(float(value))
    lines = list(dict.fromkeys(key[:2] for key in groups))
    rows = []
    for line in lines:
        points = sorted(key[2] for key in groups if key[:2] == line)
        for sparsity in points:
            values = np.asarray(groups[line + (sparsity,)])
            rows.append({
                "label": line[0],
                "style": line[1],
                "sparsity": sparsity,
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "n": len(values),
            })
    return rows


def _sparsity_axis(ax, sparsities, log_scale):
    """Sparsity on x; in log scale, density ``1 - s`` decreasing to the right.

    A log axis of the density spreads 0.9, 0.99, 0.995, 0.999 apart as in
    the paper's figures, while the ticks still read as sparsities.
    """
    ticks = sorted(set(sparsities))
    if log_scale:
        ax.set_xscale("log")
        high, low = 1 - ticks[0], 1 - ticks[-1]
        # Reversed limits: sparsity grows to the right.
        ax.set_xlim(high * 1.25, low / 1.25)
        # Low sparsities crowd together on this axis: label a tick only if
        # it is 1/25 of the axis away from the last labelled one.
        gap = math.log10(high * 1.25 * 1.25 / low) / 25
        shown = []
        for s in ticks:
            if not shown or math.log10((1 - shown[-1]) / (1 - s)) >= gap:
                shown.append(s)
        ax.set_xticks([1 - s for s in shown], [f"{s:g}" for s in shown])
        ax.minorticks_off()
    else:
        ax.set_xticks(ticks, [f"{s:g}" for s in ticks])
    ax.set_xlabel("sparsity")


def plot_accuracy_vs_sparsity(
    results,
    path=None,
    *,
    label=None,
    style=None,
    metric="accuracy",
    ax=None,
    log_scale=True,
    title=None,
):
    """Accuracy against sparsity, averaged over seeds (the paper's Fig. 3).

    One line per label through the mean at each sparsity, with a band of
    plus or minus one standard deviation; a line per value of ``style`` in
    the same color with another line style (solid first).

    Args:
        results: Result dicts, see `aggregate_results` (e.g. the JSON lines
            of ``examples/train.py`` or a benchmark).
        path: Optional file to save the figure to (``.png``, ``.svg``, ...).
        label: What names a line (see `aggregate_results`).
        style: Optional key drawn as line styles (e.g. ``"flow"``).
        metric: The key plotted (e.g. ``"test_accuracy"``).
        ax: Optional matplotlib axes to draw into.
        log_scale: Space sparsities by ``log(1 - sparsity)`` so that 0.9,
            0.99 and 0.999 are evenly apart; sparsity then must be below 1.
        title: Axes title.

    Returns:
        The `matplotlib.figure.Figure`; ``ax.lines`` holds one line per
        (label, style), in order, with x the sparsity (or density ``1 - s``
        in log scale) and y the means.

    Raises:
        ImportError: Without matplotlib.
        ValueError: For empty or malformed results.

    Example:

    ```python
    from keras_er.research import plot

    results = [{"ratio": "erk", "sparsity": s, "accuracy": a, "seed": k}
               for (s, a, k) in runs]
    plot.plot_accuracy_vs_sparsity(results, "accuracy.png")
    ```
    """
    rows = aggregate_results(results, label=label, style=style, metric=metric)
    if not rows:
        raise ValueError("results is empty: nothing to plot.")
    figure, ax = _figure(ax, (6.4, 4.2))
    labels = list(dict.fromkeys(row["label"] for row in rows))
    styles = list(dict.fromkeys(row["style"] for row in rows))
    # "C0", "C1", ...: the colors of matplotlib's default cycle.
    color_of = {name: f"C{i % 10}" for i, name in enumerate(labels)}
    for line in dict.fromkeys((row["label"], row["style"]) for row in rows):
        points = [row for row in rows if (row["label"], row["style"]) == line]
        x = np.array([p["sparsity"] for p in points])
        if log_scale:
            x = 1.0 - x
        mean = np.array([p["mean"] for p in points])
        std = np.array([p["std"] for p in points])
        name = line[0] if style is None else f"{line[0]} ({style}={line[1]})"
        color = color_of[line[0]]
        ax.plot(x, mean, marker="o", color=color, label=name,
                linestyle=_LINESTYLES[styles.index(line[1]) % 4])
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2,
                        linewidth=0)
    _sparsity_axis(ax, [row["sparsity"] for row in rows], log_scale)
    ax.set_ylabel(metric.replace("_", " "))
    if title is not None:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(figure, path)


# -- Fig. 2: the overparameterization the theory requires --------------------


def plot_overparameterization(
    sparsities=theory.FIGURE2_SPARSITIES,
    hidden_width=128,
    output_width=10,
    delta=1e-3,
    *,
    ax=None,
    path=None,
    title=None,
):
    """The source width Theorem 2.1 requires, against sparsity (Fig. 2).

    Plots ``n_{S,1} = q_1 n_{T,1}`` of
    `keras_er.research.theory.figure2_data` on a log axis, next to the
    target width ``n_{T,1}``, with sparsity spaced by ``log(1 - sparsity)``.
    The ratio of the two is the number of copies
    ``q_1``, proportional to the overparameterization factor
    ``1 / log(1 / (1 - p))``.

    Args:
        sparsities: Sparsities in ``(0, 1)``.
        hidden_width: Target hidden width ``n_{T,1}`` (paper: 128).
        output_width: Target output width ``n_{T,2}`` (paper: 10).
        delta: Failure probability (paper: 0.001).
        ax: Optional matplotlib axes to draw into.
        path: Optional file to save the figure to.
        title: Axes title; default names the target and ``1 - delta``.

    Returns:
        The `matplotlib.figure.Figure`; ``ax.lines[0]`` is the required
        width.

    Example:

    ```python
    from keras_er.research import plot

    plot.plot_overparameterization(path="fig2.png")
    ```
    """
    data = theory.figure2_data(sparsities, hidden_width, output_width, delta)
    figure, ax = _figure(ax, (6.4, 4.2))
    ax.plot(data["density"], data["width"], marker="o",
            label=r"required ER width $n_{S,1} = q_1 n_{T,1}$ (Thm. 2.1)")
    ax.axhline(hidden_width, color="gray", linestyle="--",
               label=f"target width $n_{{T,1}}$ = {hidden_width}")
    ax.set_yscale("log")
    ax.set_ylabel("width of layer 1")
    _sparsity_axis(ax, list(data["sparsity"]), log_scale=True)
    ax.set_title(
        title if title is not None else
        f"Target {hidden_width}-{output_width}, confidence "
        f"1 - δ = {1 - delta:g}"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(figure, path)
