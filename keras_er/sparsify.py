"""`sparsify`: replace a model's weight layers by ER layers with random masks."""

import logging
import warnings

import keras
import numpy as np

from keras_er import masks as masks_lib
from keras_er.densities import layer_densities, resolve_dense_layers
from keras_er.distribute import scope_of_model
from keras_er.layers import (
    ER_LAYER_FOR,
    is_composite_type,
    is_er_composite,
    is_er_layer,
)
from keras_er.model_walk import (
    clone_layerwise,
    convert_in_place,
    copy_all_weights,
    is_maskable,
    iter_layers,
    kernel_shape,
    plain_clone,
    select_layers,
    unit_key,
)

logger = logging.getLogger("keras_er")


def unmaskable_weight_layers(model):
    """Leaf layers with weight matrices that keras_er has no ER layer for.

    Layers with a trainable weight of rank >= 2 (ConvLSTM2D, Bidirectional,
    custom layers, ...) that `sparsify` leaves dense; 1-D weights (biases,
    normalization scales) are never masked and not listed.

    Returns:
        ``{layer name: (class name, entries in its weights of rank >= 2)}``.
    """
    found = {}
    for layer in iter_layers(model):
        if is_maskable(layer):  # Composite types included.
            continue
        size = sum(
            int(np.prod(w.shape)) for w in layer.trainable_weights
            if len(w.shape) >= 2
        )
        if size:
            found[layer.name] = (type(layer).__name__, size)
    return found


def _to_numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value))

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

    Every selected weight layer is replaced by its ER layer (`ERDense`,
    `ERConv1D/2D/3D`, `ERConv1DTranspose/2DTranspose/3DTranspose`,
    `ERDepthwiseConv1D/2D`, `EREinsumDense`, `EREmbedding`;
    `ERSeparableConv1D/2D`, `ERMultiHeadAttention`, `ERSimpleRNN`, `ERLSTM`
    and `ERGRU` mask each of their kernels, named ``"<layer>-<role>"``) with
    the same config and weights,
    and a mask drawn with the layer's density from
    `keras_er.layer_densities`. Kernel entries outside the mask are set to
    zero. Biases, BatchNorm and other normalization layers are never masked.
    Layers with weight matrices keras_er has no ER layer for (ConvLSTM,
    Bidirectional, custom layers) stay dense and do not count towards the
    density; with ``layers=None`` a warning names them. The input model is
    left untouched (unless ``in_place=True``).

    Layer ``i`` (in forward order among the selected layers) draws its mask
    from ``numpy.random.default_rng([seed, i])``: the same seed gives the same
    masks on every backend. The seed used, the number of edges added by
    flow preservation and the layers left dense for want of an ER layer
    (``"unmasked_layers"``) are in ``new_model.sparsify_report``.

    Args:
        model: A built Sequential or Functional model (nested models are
            sparsified recursively).
        ratio: Layerwise density method: ``"uniform"``, ``"er"``, ``"erk"``,
            ``"balanced"``, ``"pyramidal"``, a dict ``{layer_name: density}``
            or a callable (see `keras_er.layer_densities`).
        density: Target overall density (1 - sparsity) in ``(0, 1]``.
        seed: Integer seed for the masks; ``None`` picks a random one (read it
            back from ``sparsify_report["seed"]``).
        sampling: ``"bernoulli"`` keeps each entry with probability ``p_l``
            (the paper's ER definition); ``"exact"`` keeps exactly
            ``max(1, round(p_l N_l))`` entries per layer.
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
        in_place: For a built *subclassed* model, which Keras cannot clone:
            replace its layers in place (every attribute, or list/tuple/dict
            item, that holds a selected layer, in the model and in the
            custom layers it holds) and return the same model object.
            Call it before ``compile`` (or compile again): the optimizer
            must see the new variables.
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
            already sparsified model (without ``redraw=True``), a subclassed
            model without ``in_place=True``, or a layer ``in_place`` cannot
            reach.

    Example:

    ```python
    sparse = keras_er.sparsify(model, ratio="pyramidal", density=0.1, seed=0)
    sparse.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    sparse.fit(x, y)
    ```
    """
    masks_lib.check_sampling(sampling)
    masks_lib.check_flow(flow)
    mask_dtype = masks_lib.check_mask_dtype(mask_dtype)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}.")
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int or None, got {seed!r}.")
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
        seed = int(np.random.SeedSequence().generate_state(1)[0])
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
    chosen = [layer for layer in selected if layer.name not in keep_dense]
    shapes = [kernel_shape(layer) for layer in chosen]
    masks, edges = masks_lib.draw_masks(
        shapes,
        [densities[layer.name] for layer in chosen],
        seed=seed,
        sampling=sampling,
        flow=flow,
    )
    plan = {
        unit_key(layer): (mask, densities[layer.name], added, index)
        for index, (layer, mask, added) in enumerate(zip(chosen, masks, edges))
    }

    def he_normal(mask, layer_density, index):
        shape = shapes[index]
        fan_in = np.prod(shape) / shape.n_out
        return sparse_he_normal(mask, layer_density, seed, index, fan_in)

    def role_plan(layer):
        """``{role: plan entry}`` of a plain layer with several kernels."""
        roles = ER_LAYER_FOR[type(layer)].ROLES
        return {
            role: plan[(id(layer), role)]
            for role in roles if (id(layer), role) in plan
        }

    def is_planned(layer):
        if is_composite_type(type(layer)):
            return bool(role_plan(layer))
        return id(layer) in plan

    def make_composite(layer):
        er_class = ER_LAYER_FOR[type(layer)]
        roles = role_plan(layer)
        config = layer.get_config()
        config.update(
            {
                "density": {role: entry[1] for role, entry in roles.items()},
                er_class.SEED_KEY: None,
                "sampling": sampling,
                "flow": flow,
                "mask_dtype": mask_dtype,
            }
        )
        new_layer = er_class.from_config(config)
        new_layer._initial_masks = {
            role: entry[0] for role, entry in roles.items()
        }
        return new_layer

    def copy_composite(old_layer, new_layer):
        roles = role_plan(old_layer)
        sources = {
            role: (kernel, bias)
            for role, kernel, bias, _, _ in type(new_layer).plain_kernels(
                old_layer
            )
        }
        for role, unit in new_layer.er_units():
            kernel, bias = sources[role]
            values = [_to_numpy(kernel)]
            if bias is not None:
                values.append(_to_numpy(bias))
            if role in roles:
                mask, layer_density, added, index = roles[role]
                values = final_values(values, mask, layer_density, index)
                values.append(mask.astype(unit.mask.dtype))
                unit.flow_edges_added = added
            unit.set_weights(values)

    def make_layer(layer):
        if not is_planned(layer):
            return plain_clone(layer)
        if is_composite_type(type(layer)):
            return make_composite(layer)
        mask, layer_density, added, index = plan[id(layer)]
        config = layer.get_config()
        config.update(
            density=layer_density, seed=None, sampling=sampling, flow=flow,
            mask_dtype=mask_dtype,
        )
        new_layer = ER_LAYER_FOR[type(layer)].from_config(config)
        new_layer._initial_mask = mask
        # The new layer's variables are created from their final values:
        # no random initialization, no copy, no masking pass afterwards.
        new_layer._initial_values = final_values(
            layer.get_weights(), mask, layer_density, index
        )
        new_layer.flow_edges_added = added
        return new_layer

    def final_values(values, mask, layer_density, index):
        """``[kernel, bias...]`` as the ER layer holds them: the kernel
        (redrawn for ``sparse_he_normal``) times its mask."""
        values = list(values)
        # An embedding table is looked up, not summed over a fan-in.
        if init == "sparse_he_normal" and not isinstance(
            chosen[index], keras.layers.Embedding
        ):
            values[0] = he_normal(mask, layer_density, index)
        values[0] = values[0] * mask.astype(values[0].dtype)
        return values

    def copy_weights(old_layer, new_layer):
        if not is_planned(old_layer):
            copy_all_weights(old_layer, new_layer)
            return
        if is_er_composite(new_layer):
            copy_composite(old_layer, new_layer)
            return
        if new_layer._built_from_values:
            return
        # Built some other way (a base layer with extra variables, say).
        mask, layer_density, _, index = plan[id(old_layer)]
        values = final_values(
            old_layer.get_weights(), mask, layer_density, index
        )
        values.append(mask.astype(new_layer.mask.dtype))
        new_layer.set_weights(values)

    with strategy_scope:
        if in_place:
            convert_in_place(model, is_planned, make_layer, copy_weights)
            new_model = model
        else:
            new_model = clone_layerwise(model, make_layer, copy_weights)
    total_added = int(sum(edges))
    new_model.sparsify_report = {
        "seed": seed,
        "ratio": ratio if isinstance(ratio, str) else "custom",
        "density": float(density),
        "densities": dict(densities),
        "edges_added": {
            layer.name: int(added) for layer, added in zip(chosen, edges)
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

