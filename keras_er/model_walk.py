"""Finding maskable layers in a model and cloning a model layer by layer.

The unit of masking is one kernel. Most layers have one; a
`SeparableConv1D/2D`, a recurrent layer or a custom layer declaring several
kernels has several, each a *role*, named ``"<layer>-<role>"``. In a
sparsified model every masked role is a `KernelUnit` (a view with the ER
layer interface, see `keras_er.layers.multi_kernel`); a role without a mask
is a `KernelSlot`, a light view that looks like a layer (``name``,
``_kernel``, ``kernel``, ``bias``) to the ratio, scoring and summary code.
"""

import keras
import numpy as np

from keras_er.layers import (
    ER_LAYER_FOR,
    is_composite_type,
    is_er_layer,
    is_er_sublayer_composite,
)
from keras_er.layers.attach import attach_mask, can_attach, declared_kernels
from keras_er.layers.composite import role_name
from keras_er.layers.multi_kernel import (
    MultiKernelOwnerMixin,
    _units,
    attach_units,
    custom_kernel_specs,
    is_multi_owner,
    owner_er_units,
)
from keras_er.masks import DEFAULT_AXES
from keras_er.processes import host_array
from keras_er.ratios import KernelShape


def is_graph_model(model):
    # Keras exposes no public name for Functional models.
    from keras.src.models.functional import Functional

    return isinstance(model, (keras.Sequential, Functional))


def _children(container):
    if isinstance(container, keras.Model):
        return container.layers
    return list(getattr(container, "_layers", ()))


def walk_layers(model, containers=False):
    """Yields ``(unit name, layer, reachable)`` for every leaf layer.

    Leaves are layers without sublayers, and layers keras_er treats as one
    piece (an ER layer with several kernels, or a plain Keras layer that
    has one: SeparableConv1D/2D, SimpleRNN/LSTM/GRU). Every other layer
    that holds layers (a custom block, a keras-hub transformer layer, a
    MultiHeadAttention, TimeDistributed) is entered, at any depth, in any
    kind of model. A layer shared between call sites is yielded once.

    The unit name is the layer's name for a layer held by a model, and
    ``"<holder's unit name>/<name>"`` inside a layer (the ``query`` of a
    keras-hub block is ``"transformer_layer_0/self_attention_layer/query"``),
    so names stay unique where blocks reuse sublayer names.

    ``reachable`` says whether `sparsify` can replace a layer with several
    kernels there (it swaps whole layers only where a model holds them, or
    anywhere inside a subclassed model); single-kernel layers are masked in
    place wherever they sit. With ``containers=True`` the layers that are
    entered are yielded too (before their sublayers).
    """
    seen = set()
    subclassed_root = not is_graph_model(model)

    def walk(container, prefix):
        holder_is_model = isinstance(container, keras.Model)
        for layer in _children(container):
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            name = prefix + layer.name
            if isinstance(layer, keras.Model):
                yield from walk(layer, "")
            elif (
                _children(layer)
                and not is_er_sublayer_composite(layer)
                and not isinstance(layer, MultiKernelOwnerMixin)
                and not is_composite_type(type(layer))
            ):
                if containers or _declares_kernels(layer):
                    yield name, layer, holder_is_model or subclassed_root
                yield from walk(layer, name + "/")
            else:
                yield name, layer, holder_is_model or subclassed_root

    yield from walk(model, "")


def _declares_kernels(layer):
    return declared_kernels(layer) is not None


def has_several_kernels(layer):
    """Whether ``layer`` is (plain or masked) a layer with several kernels
    masked in place: SeparableConv1D/2D, SimpleRNN/LSTM/GRU (exact types or
    their ER classes), or a custom layer declaring several kernels."""
    if is_multi_owner(layer) or (
        not is_er_sublayer_composite(layer)
        and is_composite_type(type(layer))
    ):
        return True
    if is_er_layer(layer) or is_er_sublayer_composite(layer):
        return False
    declared = declared_kernels(layer)
    return declared is not None and len(declared) > 1


def kernel_specs_of(layer):
    """``[(role, holder, attribute, unit axes, bias attribute)]`` of a layer
    with several kernels (see `has_several_kernels`)."""
    if isinstance(layer, MultiKernelOwnerMixin):
        return type(layer).kernel_specs(layer)
    er_class = ER_LAYER_FOR.get(type(layer))
    if er_class is not None and issubclass(er_class, MultiKernelOwnerMixin):
        return er_class.kernel_specs(layer)
    return custom_kernel_specs(layer)


def _multi_units(layer, name):
    """The units (masked) and slots (not) of a built multi-kernel layer."""
    for role, holder, attribute, axes, bias in kernel_specs_of(layer):
        unit = _units(holder).get(attribute)
        if unit is None:
            unit = KernelSlot(
                layer, role, vars(holder)[attribute],
                None if bias is None else vars(holder).get(bias), axes,
                attribute=attribute,
            )
        _name_unit(unit, role_name(name, role))
        object.__setattr__(unit, "_er_owner_name", name)
        yield unit


def iter_layers(model):
    """Yields every leaf layer of ``model`` once, in forward order.

    Nested models and every layer that holds layers are entered (see
    `walk_layers`); layers with several kernels (SeparableConv1D/2D,
    recurrent layers, keras_er's composite layers) are leaves:
    `iter_maskable` splits them into kernels.
    """
    for _, layer, _ in walk_layers(model):
        yield layer


def unit_name(unit):
    """The name keras_er gives a maskable kernel (keys of `get_masks`).

    The layer's name, or for a layer inside another layer the path of
    names from the model (see `walk_layers`); ``"<layer>-<role>"`` for one
    kernel of a layer with several.
    """
    return getattr(unit, "_er_unit_name", None) or unit.name


def _name_unit(layer, name):
    # Remembered on the layer, so that code holding only the layer (the
    # callbacks) uses the same name as the walk.
    if name != layer.name or "_er_unit_name" in vars(layer):
        object.__setattr__(layer, "_er_unit_name", name)


class KernelSlot:
    """One kernel of a plain Keras layer that has several (a view).

    Looks like a maskable layer to keras_er's ratio, scoring and summary
    code: ``name`` is ``"<layer name>-<role>"`` (the name of the ER sublayer
    `keras_er.sparsify` makes for it), ``_kernel`` and ``kernel`` are the
    kernel variable, ``bias`` its bias (or None). Other attributes are read
    from ``holder``, the layer that applies the kernel (the projection
    sublayer of a MultiHeadAttention, the SeparableConv1D/2D itself).

    Attributes:
        owner: The Keras layer (e.g. a `keras.layers.MultiHeadAttention`).
        role: The kernel's role (``"query"``, ``"depthwise"``, ...).
        unit_axes: ``(in_axes, out_axes)`` of the kernel.
    """

    built = True

    def __init__(self, owner, role, kernel, bias, unit_axes, holder=None,
                 attribute=None):
        self.attribute = attribute
        self.owner = owner
        self.holder = owner if holder is None else holder
        self.role = role
        self.name = role_name(owner.name, role)
        self._kernel = kernel
        self.kernel = kernel
        self.bias = bias
        self.unit_axes = unit_axes

    def __getattr__(self, name):
        if name.startswith("__") or name in ("holder", "maskable_kernels"):
            raise AttributeError(name)
        return getattr(self.holder, name)

    def __repr__(self):
        return f"<KernelSlot {self.name} of {type(self.owner).__name__}>"


def iter_maskable(model):
    """Yields every maskable kernel of ``model`` once, in forward order.

    Single-kernel layers (plain or ER) are yielded as themselves, wherever
    they sit (inside custom layers and keras-hub blocks too); an ER layer
    with several kernels yields its sublayers (ER, or plain for a role kept
    dense); a plain layer with several kernels yields one `KernelSlot` per
    kernel (the layer itself while it is unbuilt, so that `kernel_shape`
    can say so) where `sparsify` can replace it. `unit_name` gives each its
    name.
    """
    for name, layer, reachable in walk_layers(model):
        if is_er_sublayer_composite(layer):
            if not layer.built:
                yield layer
                continue
            for _, unit in layer.er_units():
                if is_maskable(unit):
                    yield unit
        elif has_several_kernels(layer):
            if not layer.built:
                yield layer
                continue
            yield from _multi_units(layer, name)
        elif is_maskable(layer):
            _name_unit(layer, name)
            yield layer


def is_maskable(layer):
    """Whether ``sparsify`` can mask ``layer`` (or it already has a mask)."""
    if isinstance(layer, KernelSlot) or is_er_layer(layer):
        return True
    if _declares_kernels(layer):  # A custom layer that opts in.
        return True
    if type(layer) is keras.layers.EinsumDense and layer.built:
        # A rank-1 kernel (a per-feature scale) has no fan-in/fan-out.
        return len(layer._kernel.shape) >= 2
    return type(layer) in ER_LAYER_FOR or is_er_sublayer_composite(layer) or (
        has_several_kernels(layer)
    )


def kernel_axes(layer):
    """``(in_axes, out_axes)`` of a maskable unit's kernel."""
    if isinstance(layer, KernelSlot) or is_er_layer(layer):
        return layer.unit_axes
    declared = declared_kernels(layer)
    if declared is not None and len(declared) == 1:
        return next(iter(declared.values()))
    er_class = ER_LAYER_FOR.get(type(layer))
    if er_class is not None and hasattr(er_class, "unit_axes_for"):
        return er_class.unit_axes_for(layer)
    return DEFAULT_AXES


def kernel_variable(layer):
    """The kernel variable of a maskable unit (before any mask).

    ``_kernel`` for ER layers and for Keras layers whose ``kernel`` is a
    property (Dense, Conv, EinsumDense); ``kernel`` for the Keras layers that
    store it directly (DepthwiseConv1D/2D, Conv1D/2D/3DTranspose); the
    table ``_embeddings`` of an Embedding.
    """
    declared = None if is_er_layer(layer) else declared_kernels(layer)
    if declared is not None and len(declared) == 1:
        return vars(layer)[next(iter(declared))]
    variable = getattr(layer, "_kernel", None)
    if variable is None and isinstance(layer, keras.layers.Embedding):
        return layer._embeddings  # `embeddings` may be a LoRA sum.
    return layer.kernel if variable is None else variable


def kernel_shape(layer):
    """The shape of a built layer's kernel, as a `ratios.KernelShape`.

    The shape also carries the kernel's unit axes (see
    `keras_er.ratios.KernelShape`); it compares equal to a plain tuple.

    Raises:
        ValueError: If the layer is not built yet.
    """
    if not layer.built:
        raise ValueError(
            f"Layer {layer.name!r} is not built, so its kernel shape is "
            "unknown. Give the model an input shape first (start it with "
            "`keras.Input(shape)`, or call `model.build(input_shape)`)."
        )
    in_axes, out_axes = kernel_axes(layer)
    return KernelShape(kernel_variable(layer).shape, in_axes, out_axes)


def select_layers(model, layers=None):
    """The maskable layers of ``model`` that pass the ``layers`` filter.

    Args:
        model: A Keras model.
        layers: ``None`` (all maskable layers), a list of layer names, a
            regex string matched against names with ``re.fullmatch``, or a
            callable ``fn(layer) -> bool``.

    Returns:
        A list of layers in forward order.

    Raises:
        ValueError: If a named layer does not exist or is not maskable, or if
            nothing is selected.
    """
    import re

    candidates = list(iter_maskable(model))
    if layers is None:
        chosen = candidates
    elif callable(layers):
        chosen = [layer for layer in candidates if layers(layer)]
    elif isinstance(layers, str):
        try:
            pattern = re.compile(layers)
        except re.error as error:
            raise ValueError(
                f"layers={layers!r} is not a valid regular expression: {error}"
            ) from None
        chosen = [c for c in candidates if pattern.fullmatch(unit_name(c))]
    else:
        names = list(layers)
        by_name = {unit_name(layer): layer for layer in candidates}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise ValueError(
                f"layers names {unknown} are not maskable layers of the model."
                f" Maskable layers: {sorted(by_name)}."
            )
        chosen = [c for c in candidates if unit_name(c) in set(names)]
    if not chosen:
        supported = ", ".join(sorted(cls.__name__ for cls in ER_LAYER_FOR))
        raise ValueError(
            "The model has no maskable layer"
            + ("" if layers is None else f" matching layers={layers!r}")
            + f". keras_er masks these layer types: {supported}."
        )
    return chosen


def clone_layerwise(model, make_layer, copy_weights):
    """Clones a Sequential/Functional model, nested models included.

    Args:
        model: The model to clone; it is not modified.
        make_layer: ``fn(layer) -> new_layer`` for every leaf layer.
        copy_weights: ``fn(old_layer, new_layer)`` called once per leaf layer
            after the new model is built.

    Returns:
        The new model.

    Raises:
        ValueError: For a subclassed model, which Keras cannot clone.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"Expected a keras.Model, got {type(model).__name__}.")
    if not is_cloneable(model):
        raise ValueError(
            f"Cannot rebuild the subclassed model {type(model).__name__!r}: "
            "keras_er replaces layers by cloning Sequential and Functional "
            "models. For a built subclassed model pass `in_place=True` "
            "(`keras_er.sparsify(model, ..., in_place=True)` converts its "
            "layers in place), build it with keras_er layers directly (e.g. "
            "`keras_er.ERDense(units, density=0.1)` instead of "
            "`keras.layers.Dense(units)`), or express it as a Functional "
            "model."
        )
    pairs = []

    def clone_function(layer):
        new_layer = make_layer(layer)
        pairs.append((layer, new_layer))
        return new_layer

    new_model = keras.models.clone_model(
        model, clone_function=clone_function, recursive=True
    )
    for old_layer, new_layer in pairs:
        copy_weights(old_layer, new_layer)
    return new_model


def convert_in_place(model, should_replace, make_layer, copy_weights):
    """Replaces layers of a built subclassed model, in place.

    Every attribute of the model, and of the custom layers it holds, that
    refers to a layer with ``should_replace(layer)`` (directly, or inside a
    list, tuple or dict) is pointed at ``make_layer(layer)``, built like the
    old layer and filled by ``copy_weights(old_layer, new_layer)``. A layer
    referenced from several places (shared) is replaced by one new layer.
    Nested Sequential/Functional models are replaced by a clone made with
    the same functions (their graph does not read attributes).

    Nothing is changed unless every layer to replace is found.

    Args:
        model: A built subclassed `keras.Model`.
        should_replace: ``fn(leaf_layer) -> bool``.
        make_layer: ``fn(layer) -> new_layer`` (unbuilt).
        copy_weights: ``fn(old_layer, new_layer)`` once the new layer is
            built.

    Returns:
        The number of layers replaced (a cloned nested model counts once).

    Raises:
        ValueError: For a Sequential/Functional model (use a clone), an
            unbuilt model or layer, or a layer that is tracked but not
            referenced from an attribute (so it cannot be swapped).
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Expected a keras.Model, got {type(model).__name__}."
        )
    if is_graph_model(model):
        raise ValueError(
            "in_place=True is for subclassed models. A Sequential or "
            "Functional model is rebuilt as a new model: call without "
            "in_place."
        )
    if not model.built:
        raise ValueError(
            f"The subclassed model {type(model).__name__!r} is not built. "
            "Call it once on a batch (or `model.build(input_shape)`) first, "
            "so that every layer has its weights."
        )
    replacements = {}  # id(old) -> (old, new)

    def replacement(layer):
        if id(layer) in replacements:
            return replacements[id(layer)][1]
        new = None
        if isinstance(layer, keras.Model) and is_graph_model(layer):
            if any(should_replace(leaf) for leaf in iter_layers(layer)):
                new = clone_layerwise(layer, make_layer, copy_weights)
        elif should_replace(layer):
            build_config = layer.get_build_config() if layer.built else None
            if build_config is None:
                raise ValueError(
                    f"Layer {layer.name!r} is not built (or was built "
                    "without a recorded input shape), so keras_er cannot "
                    "build its replacement. Call the model on a batch "
                    "first."
                )
            new = make_layer(layer)
            new.build_from_config(build_config)
            copy_weights(layer, new)
        replacements[id(layer)] = (layer, new)
        return new

    def swap(value):
        """``(new value, changed)`` for an attribute value or container."""
        if isinstance(value, keras.layers.Layer):
            new = replacement(value)
            return (value, False) if new is None else (new, True)
        if isinstance(value, (list, tuple)):
            items = [swap(v) for v in value]
            if not any(changed for _, changed in items):
                return value, False
            if isinstance(value, list):
                return [v for v, _ in items], True
            return type(value)(v for v, _ in items), True
        if isinstance(value, dict):
            items = {k: swap(v) for k, v in value.items()}
            if not any(changed for _, changed in items.values()):
                return value, False
            return {k: v for k, (v, _) in items.items()}, True
        return value, False

    # Phase 1: find every reference and make the new layers.
    edits = []  # (owner, attribute, old value, new value)
    owners, queue, seen = [], [model], set()
    while queue:
        owner = queue.pop(0)
        if id(owner) in seen:
            continue
        seen.add(id(owner))
        owners.append(owner)
        for name, value in list(vars(owner).items()):
            if name in ("_layers", "_tracker") or name.startswith("_self_"):
                continue
            new_value, changed = swap(value)
            if changed:
                edits.append((owner, name, value, new_value))
        for child in _children(owner):
            if isinstance(child, keras.Model) and is_graph_model(child):
                continue  # Replaced whole, or left alone.
            if id(child) in replacements and replacements[id(child)][1]:
                continue
            if isinstance(child, keras.Model) or _children(child):
                queue.append(child)
    missing = [
        child.name
        for owner in owners
        for child in _children(owner)
        if id(child) not in replacements
        and (
            should_replace(child)
            or (
                isinstance(child, keras.Model)
                and is_graph_model(child)
                and any(should_replace(leaf) for leaf in iter_layers(child))
            )
        )
    ]
    if missing:
        raise ValueError(
            f"Cannot convert layers {missing} in place: they are tracked by "
            "the model but not held in an attribute (or a list, tuple or "
            "dict attribute) that keras_er can reassign. Build the model "
            "with keras_er layers directly instead."
        )
    # Phase 2: point the attributes and the trackers at the new layers.
    for owner in owners:
        tracker = getattr(owner, "_tracker", None)
        for child in list(_children(owner)):
            old, new = replacements.get(id(child), (None, None))
            if new is not None and tracker is not None:
                if tracker.is_in_store("layers", old):
                    tracker.replace_tracked_value("layers", old, new)
    for owner, name, old_value, new_value in edits:
        if isinstance(old_value, list):
            # Keep the (tracked) list object: reassign its items.
            list.__setitem__(old_value, slice(None), new_value)
        elif isinstance(old_value, dict):
            for key, value in new_value.items():
                dict.__setitem__(old_value, key, value)
        else:
            was_locked = getattr(owner, "_tracker", None) is not None and (
                owner._tracker.locked
            )
            if was_locked:
                owner._tracker.unlock()
            try:
                setattr(owner, name, new_value)
            finally:
                if was_locked:
                    owner._tracker.lock()
    return sum(1 for _, new in replacements.values() if new is not None)


def is_cloneable(model):
    """Whether ``model`` is a Sequential or Functional model (exact types,
    nested models too), which `keras.models.clone_model` copies layer by
    layer. A subclass (a keras-hub backbone) would come back as a plain
    Functional model."""
    # Keras exposes no public name for Functional models.
    from keras.src.models.functional import Functional

    if type(model) not in (keras.Sequential, Functional):
        return False
    return all(
        is_cloneable(layer)
        for layer in model.layers
        if isinstance(layer, keras.Model)
    )


def copy_model(model):
    """An exact copy of a built model: same classes, weights and masks.

    Sequential and Functional models are cloned layer by layer; any other
    model (a keras-hub backbone or task model, a subclassed model with a
    ``get_config``) is rebuilt from its config. Layers inside custom layers
    are rebuilt plain by their holder, so their masks are attached again
    (see `keras_er.layers.attach`) before the weights are copied.

    Raises:
        ValueError: If the model cannot be rebuilt from its config.
    """
    if is_cloneable(model):
        new_model = keras.models.clone_model(
            model, clone_function=plain_clone, recursive=True
        )
    else:
        try:
            new_model = type(model).from_config(model.get_config())
            if not new_model.built:
                new_model.build_from_config(model.get_build_config())
        except Exception as error:
            reason = str(error).strip().splitlines()[0][:200]
            raise ValueError(
                f"keras_er cannot copy the subclassed model "
                f"{type(model).__name__!r}: it cannot be rebuilt from its "
                f"config ({reason}). Pass in_place=True to mask its layers "
                "in place, build it with keras_er layers directly (e.g. "
                "`keras_er.ERDense(units, density=0.1)` instead of "
                "`keras.layers.Dense(units)`), or give it a get_config()."
            ) from error
    sources = [layer for layer in iter_maskable(model) if is_er_layer(layer)]
    attach_recorded(
        new_model,
        {unit_name(layer): layer._attach_config() for layer in sources},
        masks={
            unit_name(layer): host_array(layer.mask)
            for layer in sources
        },
    )
    copy_weights(model, new_model)
    return new_model


def copy_weights(source, target):
    """``target``'s weights take ``source``'s, variable by variable.

    Each value is copied from variable to variable where it lives (on
    device, keeping its layout), never through a host copy of the whole
    model as ``set_weights(get_weights())`` would: no host memory peak, and
    a variable sharded over several processes stays sharded.

    Raises:
        ValueError: If the two models' weights differ in number or shapes.
    """
    sources, targets = source.weights, target.weights
    shapes = [tuple(v.shape) for v in sources]
    if shapes != [tuple(v.shape) for v in targets]:
        raise ValueError(
            f"keras_er cannot copy the model {type(source).__name__!r}: the "
            "copy rebuilt from its config has other weights "
            f"({len(targets)} weights instead of {len(sources)}, or other "
            "shapes). Pass in_place=True to change the model itself."
        )
    for from_variable, to_variable in zip(sources, targets):
        # A copy: JAX's fit and predict donate a model's buffers, so two
        # models must never share one.
        to_variable.assign(keras.ops.copy(from_variable.value))


def attach_recorded(model, recorded, masks=None):
    """Masks the plain layers of ``model`` that ``recorded`` names, in place.

    For a copy, or a freshly deserialized model, whose layers inside custom
    layers were rebuilt plain by their holder (see `copy_model` and
    `keras_er.load_model`).

    Args:
        model: A built model.
        recorded: ``{unit name: mask options}``, as each ER layer records
            them beside its variables (``_attach_config``).
        masks: Optional ``{unit name: mask}``; else zero masks, which the
            weights loaded next replace.

    Returns:
        The recorded unit names found in ``model`` (masked here, or ER
        layers already).
    """
    found = set()
    several = {}  # id(owner) -> (owner, {role: (name, options)})
    for layer in iter_maskable(model):
        name = unit_name(layer)
        options = recorded.get(name)
        if options is None:
            continue
        found.add(name)
        if isinstance(layer, KernelSlot) and has_several_kernels(layer.owner):
            several.setdefault(id(layer.owner), (layer.owner, {}))[1][
                layer.role
            ] = (name, options, kernel_variable(layer).shape)
            continue
        if not can_attach(layer):
            continue  # Rebuilt as an ER layer from the config.
        mask = (
            masks[name] if masks is not None
            else np.zeros(kernel_variable(layer).shape, dtype=bool)
        )
        attach_mask(
            layer, mask, density=options["density"],
            sampling=options["sampling"], flow=options["flow"],
            mask_dtype=options["mask_dtype"],
            flow_edges_added=options.get("flow_edges_added", 0),
        )
        _set_recorded_reparameterization(layer, options)
    for owner, roles in several.values():
        first = next(iter(roles.values()))[1]
        plan = {
            role: {
                "mask": masks[name] if masks is not None
                else np.zeros(shape, dtype=bool),
                "density": options["density"],
                "flow_edges_added": options.get("flow_edges_added", 0),
            }
            for role, (name, options, shape) in roles.items()
        }
        er_class = ER_LAYER_FOR.get(type(owner))
        attach_units(
            owner, er_class, plan, sampling=first["sampling"],
            flow=first["flow"], mask_dtype=first["mask_dtype"],
        )
        # After every mask: the order the original layer created them in.
        units = dict(owner_er_units(owner))
        for role, (name, options, _) in roles.items():
            _set_recorded_reparameterization(units[role], options)
    return found


def _set_recorded_reparameterization(layer, options):
    if options.get("reparameterization") is not None:
        layer.set_reparameterization(
            keras.saving.deserialize_keras_object(
                options["reparameterization"]
            )
        )


def plain_clone(layer):
    """A fresh copy of ``layer`` from its config."""
    return layer.__class__.from_config(layer.get_config())


def copy_all_weights(old_layer, new_layer):
    """Copies every weight of ``old_layer`` into ``new_layer``."""
    new_layer.set_weights(old_layer.get_weights())
