"""`sparsify`: random ER masks on every weight layer of a model, in place."""

import logging
import warnings

import keras
import numpy as np

from keras_er import masks as masks_lib
from keras_er._checks import (
    check_bool,
    check_layers,
    check_model,
    check_names,
    check_seed,
)
from keras_er.densities import (
    check_ratio_options,
    layer_densities,
    resolve_dense_layers,
)
from keras_er.ratios import check_density
from keras_er.distribute import scope_of_model
from keras_er.processes import random_seed
from keras_er.layers import (
    ER_LAYER_FOR,
    is_er_composite,
    is_er_layer,
)
from keras_er.layers.attach import attach_mask, can_attach
from keras_er.layers.multi_kernel import attach_units
from keras_er.model_walk import (
    KernelSlot,
    copy_model,
    is_maskable,
    iter_layers,
    iter_maskable,
    kernel_shape,
    walk_layers,
    _children,
    select_layers,
    unit_name,
)

logger = logging.getLogger("keras_er")


def unmaskable_weight_layers(model):
    """Layers with weight matrices that `sparsify` leaves dense.

    Layers with a trainable weight of rank >= 2 of their own that keras_er
    has no ER layer for (ConvLSTM2D, keras-hub's ReversibleEmbedding, custom
    layers that declare no kernels, ...). 1-D weights (biases,
    normalization scales) are never masked and not listed.

    Returns:
        ``{unit name: (class name, entries in its weights of rank >= 2)}``.
    """
    found = {}

    def matrix_entries(weights):
        return sum(
            int(np.prod(w.shape)) for w in weights if len(w.shape) >= 2
        )

    for name, layer, _ in walk_layers(model, containers=True):
        if is_maskable(layer):
            continue
        inner = {
            id(w) for child in _children(layer) for w in child.weights
        }
        own = [w for w in layer.trainable_weights if id(w) not in inner]
        if matrix_entries(own):
            found[name] = (
                type(layer).__name__, matrix_entries(layer.trainable_weights)
            )
    return found


INITS = ("keep", "sparse_he_normal")


def sparse_he_normal(mask, density, seed, index, fan_in=None):
    """He-normal kernel for the expected sparse fan-in, zero outside ``mask``.

    ``std = sqrt(2 / (fan_in * density))`` with ``fan_in`` by default the
    product of all kernel dims but the last (give it for other layouts:
    ``N / n_out``); drawn from ``default_rng([seed, index, 1])``.
    """
    if fan_in is None:
        fan_in = float(np.prod(mask.shape[:-1]))
    fan_in = float(fan_in)
    std = np.sqrt(2.0 / (fan_in * density))
    rng = np.random.default_rng([int(seed), int(index), 1])
    return (rng.standard_normal(mask.shape) * std).astype(np.float32) * mask


def sparsify(
    model,
    ratio="erk",
    density=0.1,
    *,
    seed=None,
    sampling="bernoulli",
    flow="addition",
    layers=None,
    dense_layers=(),
    redraw=False,
    init="keep",
    in_place=False,
    mask_dtype="bool",
    **options,
):
    """Returns a copy of ``model`` whose weight layers carry random ER masks.

    Every selected single-kernel layer (Dense, Conv1D/2D/3D and their
    transposes, DepthwiseConv1D/2D, EinsumDense, Embedding) is masked where
    it sits, at any depth: inside nested models, custom layers, keras-hub
    transformer blocks and MultiHeadAttention. Like Keras' own
    ``Dense.quantize``, the layer object stays and becomes its ER class
    (`ERDense`, ...), with one more variable ``<layer path>/mask``; names
    and variable paths do not change, so a `keras.distribution.LayoutMap`
    or a path-keyed checkpoint keeps matching. SeparableConv1D/2D and
    SimpleRNN/LSTM/GRU layers, wherever they sit (inside Bidirectional,
    TimeDistributed or custom layers too), become `ERSeparableConv1D`/2D,
    `ERSimpleRNN`, `ERLSTM`, `ERGRU` in place, with one mask per kernel
    beside it (``sep/depthwise_kernel_mask``; units named
    ``"<layer>-<role>"``), as do custom layers that declare several kernels
    (see `keras_er.layers.multi_kernel`). Kernel entries outside the masks
    are set to zero. Biases and normalization layers are never masked.
    Layers with weight matrices keras_er cannot mask (keras-hub's
    ReversibleEmbedding, ConvLSTM, custom layers with undeclared raw
    weights) stay dense and do not count towards the density; with ``layers=None``
    a warning names them.

    Each maskable kernel has a *unit name*, the key of `get_masks`, of
    ratio dicts and of ``layers=``: the layer's name for a layer a model
    holds, the path of names inside custom layers
    (``"transformer_layer_0/self_attention_layer/query"``).

    The input model is left untouched: the copy is a clone for Sequential
    and Functional models, or the model rebuilt from its config (keras-hub
    backbones and task models keep their class). With ``in_place=True`` the
    model itself is changed and returned. Load a saved sparse model with
    `keras_er.load_model` (plain `keras.saving.load_model` cannot rebuild
    masks inside custom layers).

    Layer ``i`` (in forward order among the selected layers) draws its mask
    from ``numpy.random.default_rng([seed, i])``: the same seed gives the same
    masks on every backend. The seed used, the number of edges added by
    flow preservation and the layers left dense for want of an ER layer
    (``"unmasked_layers"``) are in ``new_model.sparsify_report``.

    Args:
        model: A built `keras.Model`: Sequential, Functional, a subclass
            of either (keras-hub models), or a subclassed model (which is
            copied through its config, or changed with ``in_place=True``).
        ratio: Layerwise density method: ``"uniform"``, ``"er"``, ``"erk"``,
            ``"balanced"``, ``"pyramidal"``, a dict ``{layer_name: density}``
            or a callable (see `keras_er.layer_densities`).
        density: Target overall density (1 - sparsity) in ``(0, 1]``.
        seed: Integer seed for the masks; ``None`` picks a random one (read it
            back from ``sparsify_report["seed"]``).
        sampling: ``"bernoulli"`` keeps each entry with probability ``p_l``
            (the paper's ER definition); ``"exact"`` keeps exactly
            ``max(1, round(p_l N_l))`` entries per layer; ``"N:M"``, e.g.
            ``"2:4"``, keeps ``N`` random entries of every ``M``
            consecutive inputs of each output unit (structured sparsity,
            with ``ratio="uniform", density=N/M``; no flow repair needed).
        flow: ``"addition"`` (default), ``"rejection"`` or ``None``: make
            sure no unit is left with zero in- or out-degree (paper,
            appendix A.1; see `keras_er.masks.preserve_flow`).
        layers: Which maskable layers to sparsify: ``None`` for all, a list
            of names, a regex (``re.fullmatch`` on names) or a callable
            ``fn(layer) -> bool``. Other layers are left as they are and do
            not count towards the density.
        dense_layers: Names (or ``"first"``, ``"last"``) of layers kept dense
            (left as plain Keras layers); they count towards the overall
            density, and the rest of the budget goes to the other layers.
        init: ``"keep"`` (default) keeps the model's weights inside the
            masks; ``"sparse_he_normal"`` redraws each sparsified kernel from
            ``N(0, 2 / (fan_in * p_l))``, the He init for the *expected*
            fan-in of a layer of density ``p_l`` (keeps activations at the
            dense scale; from the ER_DST code), seeded like the masks.
            Embedding tables keep their values (a lookup has no fan-in).
        redraw: The model already has ER layers: draw fresh masks for it
            (from the current, already sparse weights: entries outside the
            old masks stay zero) instead of raising.
        in_place: Change ``model`` itself and return it: its layers are
            masked where they are. Call it before ``compile`` (or compile
            again): the optimizer must see the new variables.
        mask_dtype: dtype of the mask variables: ``"bool"`` (default),
            ``"uint8"`` or ``"float32"``. 1-byte masks take a quarter of the
            memory of float32 ones at the same step time (measured in
            docs/performance.md). ``"uint8"`` cannot be used under
            `tf.distribute.MultiWorkerMirroredStrategy`.
        **options: Passed to the ratio method (e.g. ``power`` for ERK).

    Returns:
        A new `keras.Model` (with ``in_place=True``, ``model`` itself).

    Raises:
        ValueError: For bad arguments, a model without maskable layers, an
            already sparsified model (without ``redraw=True``), or a model
            that cannot be copied (without ``in_place=True``).

    Example:

    ```python
    sparse = keras_er.sparsify(model, ratio="pyramidal", density=0.1, seed=0)
    sparse.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    sparse.fit(x, y)
    ```
    """
    check_model(model)
    check_density(density)
    check_layers(layers)
    check_names(dense_layers, "dense_layers", " (or 'first', 'last')")
    check_ratio_options(ratio, options)
    masks_lib.check_sampling(sampling)
    masks_lib.check_flow(flow)
    mask_dtype = masks_lib.check_mask_dtype(mask_dtype)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}.")
    seed = check_seed(seed)
    check_bool(redraw, "redraw")
    check_bool(in_place, "in_place")
    # A model built in `strategy.scope()` gives a sparse model in the same
    # strategy, even if sparsify is called outside the scope.
    strategy_scope = scope_of_model(model)
    if any(
        is_er_layer(layer) or is_er_composite(layer)
        for layer in iter_layers(model)
    ):
        if not redraw:
            raise ValueError(
                "The model is already sparsified (it has keras_er layers). "
                "Pass redraw=True to draw new masks, or call "
                "keras_er.strip(model) to get plain Keras layers back."
            )
        from keras_er.strip import strip

        model = strip(model, in_place=True) if in_place else strip(model)
    densities = layer_densities(
        model, ratio, density, dense_layers=dense_layers, layers=layers,
        **options,
    )
    if seed is None:
        # The same on every process (a TF multi-worker strategy is found
        # through the model's scope, as for the variables below).
        with scope_of_model(model):
            seed = random_seed()
    selected = select_layers(model, layers)
    unmaskable = unmaskable_weight_layers(model)
    if unmaskable and layers is None:
        listed = ", ".join(
            f"{name!r} ({kind}, {size} weights)"
            for name, (kind, size) in unmaskable.items()
        )
        warnings.warn(
            f"keras_er.sparsify leaves these layers dense, having no masked "
            f"version of them: {listed}. They do not count towards the "
            "density. Pass layers=... to choose the layers to mask and "
            "silence this warning.",
            stacklevel=2,
        )
    keep_dense = resolve_dense_layers(dense_layers, selected)
    chosen = [
        layer for layer in selected if unit_name(layer) not in keep_dense
    ]
    shapes = [kernel_shape(layer) for layer in chosen]
    masks, edges = masks_lib.draw_masks(
        shapes,
        [densities[unit_name(layer)] for layer in chosen],
        seed=seed,
        sampling=sampling,
        flow=flow,
        dtype=bool,  # One byte per entry while all masks wait to attach.
    )
    # Unit name -> (mask, density, edges added, index among chosen).
    plan = {
        unit_name(layer): (mask, densities[unit_name(layer)], added, index)
        for index, (layer, mask, added) in enumerate(zip(chosen, masks, edges))
    }

    def final_kernel(layer, mask, layer_density, index):
        """New kernel values for ``sparse_he_normal``, else None: the
        model's kernel stays where it lives and attaching the mask zeroes
        its entries outside (on device, no host copy)."""
        # An embedding table is looked up, not summed over a fan-in.
        if init != "sparse_he_normal" or isinstance(
            chosen[index], keras.layers.Embedding
        ):
            return None
        shape = shapes[index]
        fan_in = np.prod(shape) / shape.n_out
        kernel = sparse_he_normal(mask, layer_density, seed, index, fan_in)
        return kernel

    with strategy_scope:
        # 1. The model to mask: a copy (unless in_place).
        new_model = model if in_place else copy_model(model)
        # 2. Every kernel, wherever it sits, is masked in place (same
        # objects, names and variable paths; see layers/attach.py and
        # layers/multi_kernel.py).
        several = {}  # id(owner) -> (owner, {role: plan entry})
        for layer in iter_maskable(new_model):
            entry = plan.get(unit_name(layer))
            if entry is None:
                continue
            mask, layer_density, added, index = entry
            kernel = final_kernel(layer, mask, layer_density, index)
            if isinstance(layer, KernelSlot):
                several.setdefault(id(layer.owner), (layer.owner, {}))[1][
                    layer.role
                ] = {
                    "mask": mask, "density": layer_density,
                    "kernel": kernel, "flow_edges_added": added,
                }
                continue
            if not can_attach(layer):
                continue
            attach_mask(
                layer, mask, density=layer_density, sampling=sampling,
                flow=flow, mask_dtype=mask_dtype, kernel=kernel,
                flow_edges_added=added,
            )
        for owner, roles in several.values():
            attach_units(
                owner, ER_LAYER_FOR.get(type(owner)), roles,
                sampling=sampling, flow=flow, mask_dtype=mask_dtype,
            )
    total_added = int(sum(edges))
    new_model.sparsify_report = {
        "seed": seed,
        "ratio": ratio if isinstance(ratio, str) else "custom",
        "density": float(density),
        "densities": dict(densities),
        "edges_added": {
            unit_name(layer): int(added)
            for layer, added in zip(chosen, edges)
        },
        "total_edges_added": total_added,
        "unmasked_layers": sorted(unmaskable),
    }
    if flow is not None:
        logger.info(
            "keras_er.sparsify: seed=%d, flow preservation (%s) added %d "
            "edges.", seed, flow, total_added,
        )
    return new_model

