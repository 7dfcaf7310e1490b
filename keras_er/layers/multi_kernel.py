"""Masks on layers with several kernels, where they sit (private).

A `SeparableConv1D/2D` has a depthwise and a pointwise kernel, a recurrent
cell an input ``kernel`` and a ``recurrent_kernel``, and a custom layer may
declare several (``maskable_kernels()``). keras_er masks each kernel on its
own, in place, like a single-kernel layer (see `keras_er.layers.attach`):

* the layer that holds the kernel variables (the *holder*: the
  SeparableConv itself, the cell of an RNN, the custom layer) gets one more
  non-trainable variable per masked kernel, ``<attribute>_mask``, beside
  the kernel (``sep/depthwise_kernel_mask``,
  ``lstm/lstm_cell/recurrent_kernel_mask``); every other variable keeps its
  object and its path;
* the holder's class becomes a masked subclass whose kernel attributes are
  properties returning ``stored kernel * mask`` (what ``call`` reads);
* each masked kernel is presented by a `KernelUnit`, a view with the
  single-kernel ER layer interface (``mask``, ``_kernel``, ``kernel``,
  ``set_mask``, ``set_reparameterization``, ...) and the after-update
  projection as the kernel variable's constraint. Units are named
  ``"<layer>-<role>"`` (``"sep-depthwise"``, ``"lstm-recurrent_kernel"``,
  ``"block-w_in"``): the keys of `get_masks`, ratio dicts and callbacks.
"""

import json

import keras
import numpy as np
from keras import ops

from keras_er.distribute import scope_of_variable
from keras_er.layers.composite import (
    check_role_reparameterizations,
    role_name,
    role_seed,
)
from keras_er.layers.masked_kernel import (
    ER_CONFIG_ENTRY,
    MaskedKernelMixin,
    _MaskedRegularizer,
)
from keras_er.masks import check_flow, check_mask_dtype, check_sampling
from keras_er._checks import check_seed
from keras_er.ratios import check_density

#: Attribute suffix of a kernel's mask variable (``depthwise_kernel_mask``).
MASK_SUFFIX = "_mask"

# Attributes of an owner a unit reads through (summary: FLOPs per example).
_DELEGATED = frozenset({
    "output", "input", "data_format", "get_build_config",
    "compute_output_shape", "dtype_policy", "compute_dtype",
    "variable_dtype",
})


class _Unlocked:
    """Lets a built layer track new variables (as Keras' quantize does)."""

    def __init__(self, layer):
        self.tracker = getattr(layer, "_tracker", None)

    def __enter__(self):
        self.locked = self.tracker is not None and self.tracker.locked
        if self.locked:
            self.tracker.unlock()

    def __exit__(self, *exc):
        if self.locked:
            self.tracker.lock()


class KernelUnit(MaskedKernelMixin):
    """One masked kernel of a layer with several (not a Keras layer).

    Has the interface of a single-kernel ER layer, over the ``holder``'s
    kernel variable (``vars(holder)[attribute]``) and its own mask variable,
    which the holder tracks (and saves).

    Attributes:
        owner: The layer that names the unit (the RNN layer for a cell).
        holder: The layer holding the variables.
        role: The kernel's role (``"depthwise"``, ``"recurrent_kernel"``,
            a declared attribute).
        attribute: The holder attribute of the kernel variable.
    """

    built = True

    def __init__(self, owner, holder, role, attribute, unit_axes,
                 bias_attribute=None):
        self.owner = owner
        self.holder = holder
        self.role = role
        self.attribute = attribute
        self._axes = (tuple(unit_axes[0]), tuple(unit_axes[1]))
        self._bias_attribute = bias_attribute
        self.mask = None

    def __getattr__(self, name):
        if name in _DELEGATED:
            return getattr(self.owner, name)
        raise AttributeError(name)

    def __repr__(self):
        return f"<KernelUnit {self.name} of {type(self.owner).__name__}>"

    @property
    def name(self):
        return role_name(self.owner.name, self.role)

    @property
    def unit_axes(self):
        return self._axes

    @property
    def _kernel(self):
        return vars(self.holder)[self.attribute]

    @property
    def bias(self):
        if self._bias_attribute is None:
            return None
        return vars(self.holder).get(self._bias_attribute)

    @property
    def _tracker(self):
        return self.holder._tracker

    @property
    def _keras_er_callback_states(self):
        # Callback state lives in the holder's slot, which Keras saves.
        from keras_er.callbacks.callback_state import slot_of

        return slot_of(self.holder)

    def _variable_owner(self, name):
        return self.holder, f"{self.attribute}_{name}"

    def add_weight(self, name, **kwargs):
        """A variable of the holder, named ``<attribute>_<name>``."""
        with _Unlocked(self.holder):
            return self.holder.add_weight(
                name=f"{self.attribute}_{name}", **kwargs
            )

    def set_reparameterization(self, reparameterization):
        holder = self.holder
        with _Unlocked(holder):
            for name in self._reparam_attributes:
                holder._untrack_variable(getattr(self, name))
                delattr(self, name)
            self._reparam_attributes = []
            self.reparameterization = None
            if reparameterization is not None:
                with scope_of_variable(self.mask):
                    self._reparam_attributes = list(
                        reparameterization.build(self)
                    )
                self.reparameterization = reparameterization

    def set_weights(self, weights):
        raise NotImplementedError(
            f"{self.name!r} is one kernel of {self.owner.name!r}: set the "
            "weights of that layer, or use set_mask."
        )

    def build(self, input_shape=None):
        pass

    def _attach_config(self):
        config = super()._attach_config()
        config["layer"] = getattr(self, "_er_owner_name", None) or (
            self.owner.name
        )
        config["role"] = self.role
        return config


def _masked_property(attribute):
    """``attribute`` reads ``stored * mask`` (or the sequence cache)."""

    def get(self):
        state = vars(self)
        cache = state.get("_sequence_weights")
        if cache is not None and attribute in cache:
            return cache[attribute]
        unit = _units(self).get(attribute)
        if unit is None or unit.mask is None:
            return state.get(attribute)
        return unit.kernel

    def set(self, value):
        # Keras' __setattr__ tracked it already.
        vars(self)[attribute] = value

    return property(get, set)


def _units(holder):
    """``{attribute: KernelUnit}`` of a holder (empty if none)."""
    return vars(holder).get("_er_kernel_units") or {}


class MultiKernelHolderMixin:
    """The masked class of a layer holding several kernel variables.

    Subclasses (made by `holder_class`) define one `_masked_property` per
    kernel attribute. The units are in ``_er_kernel_units`` (untracked).
    """

    _sequence_weights = None

    def kernel_units(self):
        return list(_units(self).values())

    def masked_weights(self):
        """``{attribute: masked kernel}``: each mask read once."""
        return {a: u.kernel for a, u in _units(self).items()}

    def apply_masks(self):
        for unit in _units(self).values():
            unit.apply_mask()
            unit._notify_mask_changed()

    @property
    def _keras_er_callback_states(self):
        from keras_er.callbacks.callback_state import slot_of

        return slot_of(self)

    def _saved_variables(self):
        """``{store key: variable}``: by name (the order in which masks and
        reparameterizations were added does not matter), else by index."""
        variables = self._trainable_variables + self._non_trainable_variables
        names = [v.name for v in variables]
        if len(set(names)) == len(names) and ER_CONFIG_ENTRY not in names:
            return dict(zip(names, variables))
        return {str(i): v for i, v in enumerate(variables)}

    def save_own_variables(self, store):
        for key, variable in self._saved_variables().items():
            store[key] = variable
        record = {"units": [u._attach_config() for u in self.kernel_units()]}
        store[ER_CONFIG_ENTRY] = np.frombuffer(
            json.dumps(record).encode("utf-8"), dtype=np.uint8
        )

    def load_own_variables(self, store):
        variables = self._saved_variables()
        keys = {key for key in store.keys() if key != ER_CONFIG_ENTRY}
        if keys != set(variables):
            raise ValueError(
                f"Layer {self.name!r} expected the variables "
                f"{sorted(variables)}, but the file has {sorted(keys)}. Was "
                "it saved with other masks or reparameterizations?"
            )
        for key, variable in variables.items():
            variable.assign(store[key])
        self.apply_masks()

    def quantize(self, mode=None, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} cannot be quantized directly. Call "
            "`keras_er.strip(model)` first."
        )


_HOLDER_CLASSES = {}
# The real `__class__` slot: dynamic classes shadow it.
_CLASS_SLOT = object.__dict__["__class__"]


def set_class(layer, cls):
    _CLASS_SLOT.__set__(layer, cls)


def holder_class(cls, attributes, *, reports_base=True, custom=False):
    """The masked class of holder class ``cls`` for kernel ``attributes``.

    With ``reports_base``, ``__class__`` and the config are those of
    ``cls`` (saved models name ``cls``; `keras_er.load_model` masks the
    rebuilt layer again), as for a single-kernel custom layer.
    """
    attributes = tuple(attributes)
    key = (cls, attributes, reports_base, custom)
    if key not in _HOLDER_CLASSES:
        namespace = {
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "_er_base_class": cls,
            "_er_kernel_attributes": attributes,
            "_er_custom": custom,
        }
        if reports_base:
            namespace["__class__"] = property(lambda self: cls)
            namespace["get_config"] = lambda self: cls.get_config(self)
        for attribute in attributes:
            namespace[attribute] = _masked_property(attribute)
        _HOLDER_CLASSES[key] = type(
            cls.__name__, (MultiKernelHolderMixin, cls), namespace
        )
    return _HOLDER_CLASSES[key]


def add_unit(owner, holder, role, attribute, unit_axes, *, mask, density,
             seed=None, sampling="bernoulli", flow="addition",
             mask_dtype="bool", kernel=None, flow_edges_added=0,
             bias_attribute=None):
    """Masks kernel ``attribute`` of the (masked-class) ``holder``.

    ``mask`` None draws one from ``seed`` (with flow preservation).
    """
    unit = KernelUnit(owner, holder, role, attribute, unit_axes,
                      bias_attribute)
    unit._init_mask_options(density, seed, sampling, flow, None, mask_dtype)
    unit._initial_mask = None if mask is None else np.asarray(mask)
    units = vars(holder).get("_er_kernel_units")
    if units is None:
        units = {}
        object.__setattr__(holder, "_er_kernel_units", units)
    if kernel is not None:
        unit._kernel.assign(kernel)
    unit._build_mask()  # add_weight: `<attribute>_mask`, on the holder.
    if mask is not None:
        unit.flow_edges_added = int(flow_edges_added)
    units[attribute] = unit
    return unit


def remove_units(holder, positive_zeros):
    """Drops every mask of ``holder`` (kernels become ``kernel * mask``)."""
    for unit in list(_units(holder).values()):
        kernel = positive_zeros(unit.kernel)
        if unit.reparameterization is not None:
            unit.set_reparameterization(None)
        variable = unit._kernel
        variable.constraint = unit._user_kernel_constraint
        regularizer = getattr(variable, "regularizer", None)
        if isinstance(regularizer, _MaskedRegularizer):
            variable.regularizer = regularizer.user_regularizer
        variable.assign(ops.cast(kernel, variable.dtype))
        with _Unlocked(holder):
            holder._untrack_variable(unit.mask)
    vars(holder).pop("_er_kernel_units", None)
    vars(holder).pop("_sequence_weights", None)


def check_role_density(density, roles, owner):
    """A density or ``{role: density}`` (checked); a missing role is dense."""
    if isinstance(density, dict):
        unknown = sorted(set(density) - set(roles))
        if unknown:
            raise ValueError(
                f"density names unknown roles {unknown}; the roles of "
                f"{owner} are {list(roles)}."
            )
        return {
            role: check_density(value, f"density of role {role!r}")
            for role, value in density.items()
        }
    return check_density(density)


class MultiKernelOwnerMixin:
    """Mask options and units of an ER layer with several kernels.

    Subclasses define ``ROLES`` and `kernel_specs` (class method, also
    for the plain layer), call ``_init_multi_options`` from ``__init__`` and
    ``_build_units`` once the kernels exist.
    """

    ROLES = ()
    SEED_KEY = "seed"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.ER_CONFIG_KEYS = (
            "density", cls.SEED_KEY, "sampling", "flow",
            "reparameterization", "mask_dtype",
        )

    @classmethod
    def kernel_specs(cls, layer):
        """``[(role, holder, attribute, unit axes, bias attribute)]``."""
        raise NotImplementedError

    def _init_multi_options(self, density, seed, sampling, flow,
                            reparameterization=None, mask_dtype="bool"):
        state = {
            "density": check_role_density(
                density, self.ROLES, type(self).__name__
            ),
            "mask_seed": check_seed(seed, self.SEED_KEY),
            "sampling": check_sampling(sampling),
            "flow": check_flow(flow),
            "mask_dtype": check_mask_dtype(mask_dtype),
        }
        state["role_reparameterizations"] = check_role_reparameterizations(
            reparameterization
        )
        # Masks handed over by `keras_er.sparsify` (role -> mask).
        state["initial_masks"] = {}
        object.__setattr__(self, "_er_options", state)

    @property
    def density(self):
        return self._er_options["density"]

    def masked_roles(self):
        density = self._er_options["density"]
        if isinstance(density, dict):
            return [role for role in self.ROLES if role in density]
        return list(self.ROLES)

    def _build_units(self):
        options = self._er_options
        density = options["density"]
        specs = type(self).kernel_specs(self)
        holders = {}
        for index, (role, holder, attribute, axes, bias) in enumerate(specs):
            holders.setdefault(id(holder), holder)
        for holder in holders.values():
            attributes = [a for _, h, a, _, _ in specs if h is holder]
            if not isinstance(holder, MultiKernelHolderMixin):
                set_class(holder, holder_class(
                    type(holder), attributes,
                    reports_base=holder is not self,
                ))
        added = []
        for index, (role, holder, attribute, axes, bias) in enumerate(specs):
            if role not in self.masked_roles():
                continue
            added.append(add_unit(
                self, holder, role, attribute, axes,
                mask=options["initial_masks"].pop(role, None),
                density=density[role] if isinstance(density, dict)
                else density,
                seed=role_seed(options["mask_seed"], self.ROLES.index(role)),
                sampling=options["sampling"], flow=options["flow"],
                mask_dtype=options["mask_dtype"], bias_attribute=bias,
            ))
        # Reparameterizations after every mask, as `prepare` adds them.
        for unit in added:
            reparameterization = options["role_reparameterizations"].get(
                unit.role
            )
            if reparameterization is not None:
                unit.set_reparameterization(
                    keras.saving.deserialize_keras_object(reparameterization)
                )

    def er_units(self):
        """``[(role, KernelUnit)]`` of the masked kernels, in role order."""
        by_role = {}
        for _, holder, attribute, _, _ in type(self).kernel_specs(self):
            unit = _units(holder).get(attribute)
            if unit is not None:
                by_role[unit.role] = unit
        return [(r, by_role[r]) for r in self.ROLES if r in by_role]

    def _multi_config(self):
        options = self._er_options
        reparameterizations = {}
        for role, unit in self.er_units():
            config = unit._mask_config()["reparameterization"]
            if config is not None:
                reparameterizations[role] = config
        density = options["density"]
        return {
            "density": dict(density) if isinstance(density, dict)
            else density,
            self.SEED_KEY: options["mask_seed"],
            "sampling": options["sampling"],
            "flow": options["flow"],
            "mask_dtype": options["mask_dtype"],
            "reparameterization": reparameterizations or None,
        }

    @classmethod
    def plain_kernels(cls, layer):
        """``[(role, kernel variable, bias variable or None, axes, layer)]``
        of a built (plain or ER) layer."""
        return [
            (role, vars(holder)[attribute],
             None if bias is None else vars(holder).get(bias), axes, layer)
            for role, holder, attribute, axes, bias in cls.kernel_specs(layer)
        ]

    def quantize(self, mode=None, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} cannot be quantized directly. Call "
            "`keras_er.strip(model)` to get plain Keras layers with the "
            "sparse weights, then quantize that model."
        )


def attach_units(owner, er_class, plan, *, sampling, flow, mask_dtype):
    """Masks the kernels of a built plain layer with several, in place.

    Args:
        owner: The plain layer (SeparableConv1D/2D, SimpleRNN/LSTM/GRU, or
            a custom layer declaring several kernels).
        er_class: Its ER class (`ERSeparableConv2D`, ...), or None for a
            custom layer.
        plan: ``{role: dict(mask=, density=, kernel=None, flow_edges_added=
            0)}`` for the roles to mask.
    """
    if er_class is not None:
        specs = er_class.kernel_specs(owner)
        set_class(owner, er_class)
        owner._init_multi_options(
            {role: entry["density"] for role, entry in plan.items()},
            None, sampling, flow, None, mask_dtype,
        )
        owner._on_attach()
    else:
        specs = custom_kernel_specs(owner)
    holders = {}
    for _, holder, attribute, _, _ in specs:
        holders.setdefault(id(holder), (holder, []))[1].append(attribute)
    for holder, attributes in holders.values():
        if isinstance(holder, MultiKernelHolderMixin):
            continue
        set_class(holder, holder_class(
            type(holder), attributes,
            reports_base=er_class is None or holder is not owner,
            custom=er_class is None,
        ))
    for role, holder, attribute, axes, bias in specs:
        entry = plan.get(role)
        if entry is None:
            continue
        add_unit(
            owner, holder, role, attribute, axes, mask=entry["mask"],
            density=entry["density"], sampling=sampling, flow=flow,
            mask_dtype=mask_dtype, kernel=entry.get("kernel"),
            flow_edges_added=entry.get("flow_edges_added", 0),
            bias_attribute=bias,
        )
    return owner


def custom_kernel_specs(layer):
    """Specs of a custom layer declaring several kernels (roles: names)."""
    from keras_er.layers.attach import declared_kernels

    declared = declared_kernels(layer)
    return [
        (attribute, layer, attribute, axes, None)
        for attribute, axes in declared.items()
    ]


def detach_units(owner, positive_zeros):
    """Reverses `attach_units` (and the ER class of a built layer)."""
    from keras_er.layers import KERAS_LAYER_FOR

    if isinstance(owner, MultiKernelOwnerMixin):
        specs = type(owner).kernel_specs(owner)
        plain = KERAS_LAYER_FOR[type(owner)]
    else:
        specs = custom_kernel_specs(owner)
        plain = None
    done = set()
    for _, holder, _, _, _ in specs:
        if id(holder) in done:
            continue
        done.add(id(holder))
        remove_units(holder, positive_zeros)
        base = getattr(type(holder), "_er_base_class", None)
        if base is not None:
            set_class(holder, base)
    if plain is not None:
        owner._on_detach()
        vars(owner).pop("_er_options", None)
        set_class(owner, plain)
    return owner


def is_multi_owner(layer):
    """Whether ``layer`` is a layer with several kernels carrying masks."""
    return isinstance(layer, MultiKernelOwnerMixin) or (
        isinstance(layer, MultiKernelHolderMixin)
        and getattr(type(layer), "_er_custom", False)
    )


def owner_er_units(layer):
    """``[(role, unit)]`` of a masked layer with several kernels."""
    if isinstance(layer, MultiKernelOwnerMixin):
        return layer.er_units()
    return [(u.role, u) for u in _units(layer).values()]
