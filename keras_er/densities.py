"""`layer_densities`: the density of each maskable layer of a model."""

import numpy as np

from keras_er import ratios as ratios_lib
from keras_er._checks import (
    accepted_keywords,
    check_layers,
    check_model,
    check_names,
    check_options,
)
from keras_er.model_walk import kernel_shape, select_layers, unit_name
from keras_er.ratios import check_density

# Ratios borrowed from one-shot pruning scores (keras_er.scores): they need the
# model's weights (and data for SNIP), not just the kernel shapes.
BORROWED_RATIOS = ("snip", "synflow")
# The options each of them takes (SynFlow ignores ``data``).
BORROWED_OPTIONS = {
    "snip": ("data", "loss", "training"),
    "synflow": ("data", "rounds", "input_shape", "dtype"),
}


def check_ratio_options(ratio, options):
    """Raises TypeError for ``**options`` that ``ratio`` does not take.

    Unknown options would otherwise fail deep inside the ratio method
    (or, for a ratio dict, be silently ignored).
    """
    if isinstance(ratio, dict):
        check_options(options, (), "nothing when ratio is a dict")
    elif isinstance(ratio, str) and ratio.lower() in BORROWED_RATIOS:
        check_options(
            options, BORROWED_OPTIONS[ratio.lower()],
            f"the {ratio.lower()!r} scores",
        )
    elif isinstance(ratio, str) and ratio.lower() in ratios_lib.METHODS:
        check_options(
            options,
            accepted_keywords(ratios_lib.METHODS[ratio.lower()], skip=2),
            f"the ratio method {ratio.lower()!r}",
        )
    elif callable(ratio):
        check_options(
            options, accepted_keywords(ratio, skip=2), "the ratio callable"
        )


def resolve_dense_layers(dense_layers, chosen):
    """Names of the layers kept dense; ``"first"``/``"last"`` are resolved.

    Raises:
        ValueError: For a name that is not among the chosen layers.
    """
    dense_layers = check_names(
        dense_layers, "dense_layers", " (or 'first', 'last')"
    )
    if isinstance(dense_layers, str):
        dense_layers = (dense_layers,)
    names = [unit_name(layer) for layer in chosen]
    resolved = []
    for entry in dense_layers:
        if entry == "first":
            entry = names[0]
        elif entry == "last":
            entry = names[-1]
        if entry not in names:
            raise ValueError(
                f"dense_layers names {entry!r}, which is not a maskable layer "
                f"being sparsified. Use 'first', 'last' or one of {names}."
            )
        resolved.append(entry)
    return set(resolved)


def _check_custom(densities, names):
    """Validates a ``{name: density}`` dict against the layer names."""
    unknown = sorted(set(densities) - set(names))
    if unknown:
        raise ValueError(
            f"The ratio dict names layers {unknown} that are not maskable "
            f"layers of the model. Maskable layers: {names}."
        )
    missing = [name for name in names if name not in densities]
    if missing:
        raise ValueError(
            f"The ratio dict gives no density for layers {missing}. Add them, "
            "or leave them out of sparsification with `layers=`."
        )
    return {
        name: check_density(densities[name], f"density of layer {name!r}")
        for name in names
    }


def layer_densities(
    model,
    ratio="erk",
    density=0.1,
    *,
    dense_layers=(),
    layers=None,
    **options,
):
    """Computes the density of every maskable layer of ``model``.

    The densities are computed, not sampled: with every named method,
    ``sum_l p_l N_l / sum_l N_l`` equals ``density`` (within 1e-6) over the
    maskable weights, layers in ``dense_layers`` included.

    Args:
        model: A built Keras model.
        ratio: ``"uniform"``, ``"er"``, ``"erk"``, ``"balanced"``,
            ``"pyramidal"`` (see `keras_er.ratios`), ``"snip"`` or
            ``"synflow"`` (the layer densities of the one-shot pruning mask,
            see `keras_er.scores`; SNIP needs ``data=(x, y)``), a dict
            ``{layer_name: density}`` covering every selected layer (then
            ``density`` is ignored), or a callable
            ``fn(shapes, density, **options) -> list[float]``.
        density: Target overall density in ``(0, 1]``.
        dense_layers: Layer names (or ``"first"``, ``"last"``) kept at
            density 1; the rest of the budget is spent on the other layers.
        layers: Which layers are maskable at all (names, a regex or a
            callable; see `keras_er.sparsify`). Others do not count.
        **options: Passed to the ratio function (e.g. ``power`` for ERK;
            ``data``, ``loss``, ``rounds`` for SNIP / SynFlow).

    Returns:
        ``{layer_name: density}`` in forward order.

    Raises:
        ValueError: For a density outside ``(0, 1]``, an unknown ratio, a
            bad ratio dict, a model without maskable layers, or a density
            below what ``dense_layers`` already spend.

    Example:

    ```python
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(300),
                              keras.layers.Dense(100), keras.layers.Dense(10)])
    keras_er.layer_densities(model, "pyramidal", 0.1)
    # {'dense': 0.1116, 'dense_1': 0.01245, 'dense_2': 0.00139}
    ```
    """
    check_model(model)
    density = check_density(density)
    check_layers(layers)
    check_names(dense_layers, "dense_layers", " (or 'first', 'last')")
    check_ratio_options(ratio, options)
    chosen = select_layers(model, layers)
    names = [unit_name(layer) for layer in chosen]
    shapes = [kernel_shape(layer) for layer in chosen]
    if isinstance(ratio, dict):
        return _check_custom(ratio, names)
    if isinstance(ratio, str) and ratio.lower() in BORROWED_RATIOS:
        method = None  # Needs the model and data: see keras_er.scores.
    elif isinstance(ratio, str):
        method = ratios_lib.get(ratio)
    elif callable(ratio):
        method = ratio
    else:
        raise ValueError(
            f"ratio must be a method name, a dict or a callable, got "
            f"{ratio!r}. Names: {sorted(ratios_lib.METHODS)}."
        )
    keep_dense = resolve_dense_layers(dense_layers, chosen)
    sizes = np.array([float(np.prod(s)) for s in shapes])
    is_dense = np.array([name in keep_dense for name in names])
    dense_share = sizes[is_dense].sum() / sizes.sum()
    result = {name: 1.0 for name in names}
    if is_dense.all():
        if density < 1.0:
            raise ValueError(
                f"All sparsified layers are in dense_layers, so the density "
                f"is 1, not {density}. Keep fewer layers dense."
            )
        return result
    rest = (density * sizes.sum() - sizes[is_dense].sum()) / sizes[
        ~is_dense
    ].sum()
    if rest <= 0:
        raise ValueError(
            f"density={density} is below what dense_layers "
            f"{sorted(keep_dense)} already spend ({dense_share:.4g} of the "
            "maskable weights). Raise the density above that, or keep fewer "
            "layers dense."
        )
    rest_shapes = [s for s, d in zip(shapes, is_dense) if not d]
    rest_names = [n for n, d in zip(names, is_dense) if not d]
    if method is None:
        from keras_er.scores import borrowed_densities

        values = borrowed_densities(
            model, ratio.lower(), rest_names, min(rest, 1.0), **options
        )
    else:
        values = list(method(rest_shapes, min(rest, 1.0), **options))
    if len(values) != len(rest_shapes):
        raise ValueError(
            f"The ratio callable returned {len(values)} densities for "
            f"{len(rest_shapes)} layers."
        )
    for name, value in zip(rest_names, values):
        result[name] = check_density(value, f"density of layer {name!r}")
    return result
