"""Masking a built Keras layer where it sits, and unmasking it (private).

Like Keras' own ``Dense.quantize`` and ``Dense.enable_lora``, the layer is
changed in place: the same object, name and variable paths, with one more
non-trainable variable, ``<layer path>/mask``. Its class becomes the ER
class of its Keras class (``Dense`` -> `ERDense`), which reads the kernel
through the mask, keeps the entries outside it at zero after every update,
and saves and loads the mask. This reaches layers that no model-level clone
can replace: the Dense and EinsumDense layers inside keras-hub blocks and
other custom layers.
"""

import functools
import json
import types

import keras
import numpy as np

from keras_er.layers import ER_LAYER_FOR, KERAS_LAYER_FOR, is_composite_type
from keras_er.layers.masked_kernel import (
    ER_CONFIG_ENTRY,
    MaskedKernelMixin,
    _base_has_kernel_property,
)
from keras_er.layers.multi_kernel import MultiKernelHolderMixin, _Unlocked

#: The method a custom layer defines to have a kernel masked (see
#: `declared_kernels`).
PROTOCOL_METHOD = "maskable_kernels"

# Attributes the ER mixin adds to a layer; removed again by `detach_mask`.
_ER_ATTRIBUTES = (
    "density", "seed", "sampling", "flow", "mask_dtype", "_initial_mask",
    "flow_edges_added", "reparameterization", "_reparam_attributes",
    "_pending_reparameterization", "_user_kernel_constraint", "_projection",
    "_step_mask",
)


def declared_kernels(layer):
    """The kernels a custom layer declares maskable, or None.

    A custom layer with a raw weight matrix of its own opts in by defining
    ``maskable_kernels()``, returning ``{attribute: (in_axes, out_axes)}``:
    the attribute that holds the kernel variable (and that ``call`` reads)
    and the axes of its input and output units (``((0,), (1,))`` for an
    ``(n_in, n_out)`` matrix), as in `keras_er.masks.preserve_flow`. This
    is keras_er's counterpart of tfmot's ``PrunableLayer``. A layer may
    declare several kernels: each is masked on its own, as a unit named
    ``"<layer>-<attribute>"`` (see `keras_er.layers.multi_kernel`).

    Raises:
        ValueError: If the declaration is malformed.
    """
    if isinstance(layer, MaskedKernelMixin):
        base = getattr(type(layer), "_er_base_class", None)
        if base is None:
            return None
    method = getattr(layer, PROTOCOL_METHOD, None)
    if not callable(method):
        return None
    kernels = method()
    where = f"{type(layer).__name__}.{PROTOCOL_METHOD}()"
    if not isinstance(kernels, dict) or not kernels:
        raise ValueError(
            f"{where} must return a dict {{attribute: (in_axes, out_axes)}}, "
            f"got {kernels!r}."
        )
    for attribute, axes in kernels.items():
        variable = vars(layer).get(attribute)
        if not isinstance(variable, keras.Variable) or len(
            variable.shape
        ) < 2:
            raise ValueError(
                f"{where} names {attribute!r}, which must be an attribute "
                "holding a weight of rank >= 2 (set in build with "
                "`self.<attribute> = self.add_weight(...)`)."
            )
        if not (
            isinstance(axes, (tuple, list)) and len(axes) == 2
            and all(
                isinstance(side, (tuple, list))
                and all(isinstance(a, int) for a in side)
                for side in axes
            )
        ):
            raise ValueError(
                f"{where} gives unit axes {axes!r} for {attribute!r}; they "
                "must be (in_axes, out_axes), tuples of ints, e.g. "
                "((0,), (1,)) for an (n_in, n_out) matrix."
            )
    return {
        attribute: (tuple(axes[0]), tuple(axes[1]))
        for attribute, axes in kernels.items()
    }


def can_attach(layer):
    """Whether `attach_mask` can mask ``layer`` where it sits.

    A built plain layer with one kernel whose exact type has an ER class,
    or a built custom layer that declares one kernel (`declared_kernels`).
    Layers with several kernels are masked by
    `keras_er.layers.multi_kernel.attach_units`.
    """
    if isinstance(layer, (MaskedKernelMixin, MultiKernelHolderMixin)) or (
        not layer.built
    ):
        return False
    cls = type(layer)
    if cls in ER_LAYER_FOR:
        return not is_composite_type(cls)
    declared = declared_kernels(layer)
    return declared is not None and len(declared) == 1


_MASKED_CLASSES = {}
# The real `__class__` slot: the classes made by `masked_class` shadow it.
_CLASS_SLOT = object.__dict__["__class__"]


def _set_class(layer, cls):
    _CLASS_SLOT.__set__(layer, cls)


def masked_class(cls, attribute, unit_axes):
    """The ER class of a custom layer class that declares a kernel.

    A subclass of ``cls`` with the ER mask mechanics: ``attribute`` reads
    ``stored kernel * mask``, like ``kernel`` of `ERDense`. It keeps the
    name, module and config of ``cls``, so a saved model names ``cls``;
    `keras_er.load_model` masks the rebuilt layer again.
    """
    key = (cls, attribute, unit_axes)
    if key not in _MASKED_CLASSES:

        def stored(self):
            return vars(self)[attribute]

        def masked(self):
            return MaskedKernelMixin.kernel.fget(self)

        namespace = {
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            # Keras serializes `obj.__class__` (name, module, registered
            # name): a saved model names `cls` itself.
            "__class__": property(lambda self: cls),
            "_er_base_class": cls,
            "UNIT_AXES": unit_axes,
            "_kernel": property(stored),
            "bias": None,  # A `bias` of the layer's own takes precedence.
            "get_config": lambda self: cls.get_config(self),
            "save_own_variables": _save_declared,
            "load_own_variables": _load_declared,
        }
        namespace[attribute] = property(masked)
        if attribute != "kernel":
            namespace["kernel"] = property(masked)
        _MASKED_CLASSES[key] = type(
            cls.__name__, (MaskedKernelMixin, cls), namespace
        )
    return _MASKED_CLASSES[key]


def _save_declared(self, store):
    # Keras' own layout (every variable by index, the mask last), plus the
    # record `keras_er.load_model` reads.
    keras.layers.Layer.save_own_variables(self, store)
    store[ER_CONFIG_ENTRY] = np.frombuffer(
        json.dumps(self._attach_config()).encode("utf-8"), dtype=np.uint8
    )


def _load_declared(self, store):
    # The mirror of Keras' default `load_own_variables`, skipping the record.
    variables = self._trainable_variables + self._non_trainable_variables
    keys = [key for key in store.keys() if key != ER_CONFIG_ENTRY]
    if len(keys) != len(variables):
        raise ValueError(
            f"Layer {self.name!r} expected {len(variables)} variables, but "
            f"the file has {len(keys)}."
        )
    for i, variable in enumerate(variables):
        variable.assign(store[str(i)])
    self.apply_mask()
    self._notify_mask_changed()


def _rebind_quantize(layer):
    """Points the layer's ``quantize`` at the method of its new class.

    Keras binds ``quantize`` on each instance (`Layer.__new__` wraps the
    method of the class the layer was created with, adding argument checks
    and tracker unlocking). After a class swap that wrapper would still call
    the old class's method: ``Model.quantize`` would then quantize an ER
    layer as a plain one, or refuse a stripped one. The same wrapper code is
    re-bound to the new class's method; if Keras' wrapper ever changes shape,
    the instance attribute is dropped and the class method is called as is.
    """
    state = vars(layer)
    wrapper = state.get("quantize")
    if wrapper is None:
        return
    method = type(layer).quantize.__get__(layer)
    code = getattr(wrapper, "__code__", None)
    cells = {"obj": layer, "original_quantize_method": method}
    if code is None or set(code.co_freevars) != set(cells):
        state.pop("quantize")
        return
    closure = tuple(types.CellType(cells[name]) for name in code.co_freevars)
    rebound = types.FunctionType(
        code, wrapper.__globals__, wrapper.__name__, wrapper.__defaults__,
        closure,
    )
    state["quantize"] = functools.wraps(method)(rebound)


def attach_mask(
    layer, mask, *, density, sampling="bernoulli", flow="addition",
    mask_dtype="bool", kernel=None, flow_edges_added=0,
):
    """Turns a built plain Keras layer into its ER layer, in place.

    Args:
        layer: A built layer whose exact type has an ER layer with one
            kernel (Dense, EinsumDense, Conv*, DepthwiseConv*, Embedding),
            or a custom layer that declares its kernel (`declared_kernels`).
        mask: The 0/1 mask, of the kernel's shape.
        density: The layer's target density (kept in its config).
        sampling: Recorded in the config, as for a directly built layer.
        flow: Recorded in the config.
        mask_dtype: dtype of the new mask variable.
        kernel: New kernel values (e.g. a sparse He init), or None to keep
            the current kernel. Either way entries outside ``mask`` become 0.
        flow_edges_added: Recorded as ``layer.flow_edges_added``.

    Returns:
        ``layer``, now an instance of its ER class.

    Raises:
        ValueError: If the layer cannot be masked in place.
    """
    if not can_attach(layer):
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) cannot be masked "
            "in place: it must be a built layer of one of the types "
            f"{sorted(c.__name__ for c in ER_LAYER_FOR)} (exact type) with "
            f"one kernel, or a custom layer defining {PROTOCOL_METHOD}()."
        )
    declared = declared_kernels(layer)
    state = vars(layer)
    if declared is not None:
        (attribute, axes), = declared.items()
        er_class = masked_class(type(layer), attribute, axes)
    else:
        er_class = ER_LAYER_FOR[type(layer)]
        if not _base_has_kernel_property(er_class) and "kernel" in state:
            # DepthwiseConv and ConvTranspose hold the variable as `kernel`;
            # the ER class reads it as `_kernel` and serves `kernel` masked.
            state["_kernel"] = state.pop("kernel")
    _set_class(layer, er_class)
    _rebind_quantize(layer)
    layer._init_mask_options(density, None, sampling, flow, None, mask_dtype)
    layer._initial_mask = np.asarray(mask)
    if kernel is not None:
        layer._kernel.assign(kernel)
    with _Unlocked(layer):
        layer._build_mask()
    layer.flow_edges_added = int(flow_edges_added)
    return layer


def positive_zeros(kernel):
    """``kernel`` as a new tensor, every -0.0 replaced by +0.0.

    ``kernel * mask`` leaves -0.0 wherever a negative weight was masked. Its
    sign bit breaks the runs of zero bytes that gzip compresses: LeNet-300-100
    at density 0.1 gzips to 0.15x of the dense size with +0.0, 0.19x with
    -0.0 (see docs/export.md). The outputs are equal.
    """
    # On device (a kernel sharded over processes never reaches one host).
    kernel = keras.ops.convert_to_tensor(kernel)
    return keras.ops.where(
        keras.ops.equal(kernel, 0), keras.ops.zeros_like(kernel), kernel
    )


def detach_mask(layer):
    """Turns an ER layer back into its plain Keras layer, in place.

    The kernel becomes the effective kernel (``kernel * mask``, or the
    reparameterized one), with +0.0 for every zero; the mask variable and
    any reparameterization variables go; names and paths stay.

    Args:
        layer: A built single-kernel ER layer.

    Returns:
        ``layer``, now an instance of its Keras (or custom) class.
    """
    er_class = type(layer)
    declared_base = getattr(er_class, "_er_base_class", None)
    plain_class = declared_base or KERAS_LAYER_FOR[er_class]
    kernel = positive_zeros(layer.kernel)
    if layer.reparameterization is not None:
        layer.set_reparameterization(None)
    variable = layer._kernel
    variable.constraint = layer._user_kernel_constraint
    regularizer = getattr(variable, "regularizer", None)
    if regularizer is not None and hasattr(regularizer, "user_regularizer"):
        variable.regularizer = regularizer.user_regularizer
    variable.assign(keras.ops.cast(kernel, variable.dtype))
    with _Unlocked(layer):
        layer._untrack_variable(layer.mask)
    state = vars(layer)
    state.pop("mask", None)
    # The TensorFlow backend lists tracked attributes (lists, dicts) in
    # `_tracked` and reads them when exporting: those stay.
    tracked = set(getattr(layer, "_tracked", ()))
    for name in _ER_ATTRIBUTES:
        if name not in tracked:
            state.pop(name, None)
    _set_class(layer, plain_class)
    _rebind_quantize(layer)
    if declared_base is None and (
        not _base_has_kernel_property(er_class) and "_kernel" in state
    ):
        state["kernel"] = state.pop("_kernel")
    return layer
