"""The mask mechanics shared by every ER layer (private base class).

Modelled on how Keras' Dense adds LoRA: the layer keeps its trainable
``_kernel`` variable and the ``kernel`` property returns the effective weight,
here ``_kernel * mask``. On top of that the kernel is kept truly sparse:

* entries outside the mask are zeroed whenever a mask is set;
* the forward pass multiplies by the mask, so their gradient is zero;
* a projection ``kernel <- kernel * mask`` is installed as the kernel
  variable's constraint, which every Keras optimizer applies after its update.
  Zero gradients alone do not guarantee zeros for every optimizer (Muon
  orthogonalizes the whole update matrix, say); the projection does.

The projection costs a read, a multiply and a write of every kernel per step
(about 4 % of a small MLP's CPU step without XLA) and changes nothing for an
element-wise optimizer (SGD, Adam, ...): a zero gradient on a zero weight with
zero optimizer state gives a zero update. So when a layer is traced inside
Keras' own ``train_step`` of a model compiled with such an optimizer, the
projection is left out of that step, and ``set_mask`` zeroes the optimizer
state of the entries a new mask removes (their momentum would otherwise move
them). Everything else keeps it (see `set_mask_projection`).
"""

import contextlib
import functools
import inspect
import sys
import weakref

import keras
import numpy as np
from keras import ops

from keras_er import masks as masks_lib
from keras_er.layers import compact_storage
from keras_er.optimizer_state import reset_slots, unwrap
from keras_er.distribute import (
    check_mask_dtype_supported,
    scope_of_variable,
)
from keras_er.ratios import check_density

try:  # Not public in Keras 3; only needed on the JAX backend.
    from keras.src.backend.common.stateless_scope import get_stateless_scope
except ImportError:  # pragma: no cover
    def get_stateless_scope():
        return None


class _MaskProjection:
    """Kernel constraint: the user's constraint, then ``* mask``.

    Not serialized: the user's constraint stays in the layer config and the
    projection is re-installed at build time.
    """

    def __init__(self, layer, user_constraint):
        self.layer = layer
        self.user_constraint = user_constraint

    def __call__(self, kernel):
        if self.user_constraint is not None:
            kernel = self.user_constraint(kernel)
        mask = _mask_for_update(self.layer)
        return ops.multiply(kernel, ops.cast(mask, kernel.dtype))


def _mask_for_update(layer):
    """The mask value an optimizer step projects onto.

    JAX `fit` runs the optimizer in a StatelessScope that maps only trainable
    and optimizer variables, and the mask variable holds no value during
    `fit`: use the value the forward pass of the same train step read.
    """
    mask = layer.mask
    if keras.backend.backend() == "jax":
        scope = get_stateless_scope()
        step_mask = getattr(layer, "_step_mask", None)
        if (
            scope is not None
            and scope.get_current_value(mask) is None
            and step_mask is not None
        ):
            object.__setattr__(layer, "_step_mask", None)  # One use per step.
            return step_mask
    return mask


PROJECTION_MODES = ("auto", "always")
_projection = {"mode": "auto"}

#: Optimizers whose update of an entry depends only on that entry's gradient
#: and state, and is zero when both are zero. Exact types: a subclass may
#: change the update rule. Not here: Muon (orthogonalized updates), Lamb (a
#: per-layer trust ratio over stale state), Adafactor (factored moments),
#: Ftrl, ScheduleFreeAdamW, MultiOptimizer.
ELEMENTWISE_OPTIMIZERS = tuple(
    getattr(keras.optimizers, name)
    for name in (
        "SGD", "Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad",
        "Adadelta", "Lion",
    )
    if hasattr(keras.optimizers, name)
)


def set_mask_projection(mode):
    """Chooses when ER layers re-zero their kernel after optimizer updates.

    Every ER layer keeps the kernel entries outside its mask at exactly zero.
    With ``"auto"`` (the default) the after-update projection
    ``kernel <- kernel * mask`` is skipped in a train step where it cannot
    change anything: the model is trained by Keras' own ``train_step``
    (``fit``), its optimizer is one of `ELEMENTWISE_OPTIMIZERS` (also inside
    a `keras.optimizers.LossScaleOptimizer`) without ``use_ema``, and the
    layer has no kernel constraint of its own and no reparameterization.
    Training is then bit-for-bit the same, one multiply and one write of
    every kernel cheaper. ``"always"`` projects in every step, which is what
    a custom ``train_step`` or a custom training loop gets anyway.

    Masks changed with ``set_mask`` while the projection is skipped also
    reset the optimizer state (momentum, moments) of the entries they
    remove. Takes effect the next time a train step is traced (a new
    ``compile``, or the first ``fit``).

    Args:
        mode: ``"auto"`` or ``"always"``.

    Raises:
        ValueError: For any other mode.

    Example:

    ```python
    keras_er.set_mask_projection("always")
    model.compile(optimizer=MyOptimizer(), loss=...)
    ```
    """
    if mode not in PROJECTION_MODES:
        raise ValueError(
            f"mask projection mode must be one of {PROJECTION_MODES}, got "
            f"{mode!r}."
        )
    _projection["mode"] = mode


def _keras_train_step_optimizer():
    """The optimizer of the model whose Keras ``train_step`` runs this call.

    Returns ``(found, optimizer)``: ``found`` is False outside a train step
    (inference, a custom loop, a callback); ``optimizer`` is None when the
    step is not Keras' own (a model overriding ``train_step`` may apply other
    optimizers than ``model.optimizer``).
    """
    frame = sys._getframe(1)
    for _ in range(200):  # Layer calls sit a few dozen frames deep.
        if frame is None:
            break
        if frame.f_code.co_name == "train_step":
            model = frame.f_locals.get("self")
            if isinstance(model, keras.Model):
                owner = next(
                    cls for cls in type(model).__mro__
                    if "train_step" in vars(cls)
                )
                if not owner.__module__.startswith("keras.src.backend."):
                    return True, None
                return True, getattr(model, "optimizer", None)
        frame = frame.f_back
    return False, None


def _is_elementwise(optimizer):
    cls = type(optimizer)
    if cls.__module__.startswith("keras.src.backend."):
        # A backend's own version of a Keras optimizer (torch swaps in
        # `TorchAdam` for `Adam`, say): the Keras class it implements.
        cls = next(
            (base for base in cls.__mro__ if base in ELEMENTWISE_OPTIMIZERS),
            cls,
        )
    return cls in ELEMENTWISE_OPTIMIZERS


def _projection_needed(layer, optimizer):
    """Whether ``layer`` must project after updates by ``optimizer``."""
    optimizer = unwrap(optimizer)
    return (
        _projection["mode"] == "always"
        or not _is_elementwise(optimizer)
        or getattr(optimizer, "use_ema", False)
        or layer._user_kernel_constraint is not None
        or layer.reparameterization is not None
    )


@contextlib.contextmanager
def _variables_from(layer, values):
    """Makes the base layer's build create its variables from ``values``.

    The i-th `add_weight` call of the build gets an initializer returning
    ``values[i]`` when the shapes match. No random initialization runs and
    no copy is needed afterwards (`keras_er.sparsify` hands each layer its
    final, masked weights this way). Yields a dict whose ``"all"`` entry says
    whether every variable came from ``values``.
    """
    remaining = list(values)
    report = {"all": True}
    original = layer.add_weight
    signature = inspect.signature(original)

    def add_weight(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        value = remaining.pop(0) if remaining else None
        shape = bound.arguments.get("shape")
        if value is None or shape is None or tuple(shape) != value.shape:
            report["all"] = False
            return original(*args, **kwargs)
        bound.arguments["initializer"] = (
            lambda shape, dtype=None: ops.cast(value, dtype)
        )
        return original(*bound.args, **bound.kwargs)

    # An instance attribute shadows the method during build only.
    layer.__dict__["add_weight"] = add_weight
    try:
        yield report
    finally:
        del layer.__dict__["add_weight"]
        report["all"] = report["all"] and not remaining


@functools.lru_cache(maxsize=None)
def _base_has_kernel_property(cls):
    """Whether a Keras base class of ``cls`` defines ``kernel`` itself."""
    mro = cls.__mro__
    after = mro[mro.index(MaskedKernelMixin) + 1:]
    return any("kernel" in vars(base) for base in after)


class StripFirstMixin:
    """Quantization and LoRA refuse masked layers and point to `strip`."""

    def quantize(self, mode=None, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} cannot be quantized directly. Call "
            "`keras_er.strip(model)` to get plain Keras layers with the "
            "sparse weights, then quantize that model."
        )

    def enable_lora(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} does not support LoRA: a low-rank update "
            "would be dense. Call `keras_er.strip(model)` first if you want "
            "a dense LoRA update on top of the sparse weights."
        )


class MaskedKernelMixin(StripFirstMixin):
    """Adds a non-trainable 0/1 ``mask`` variable to a layer's ``_kernel``.

    Subclasses put this mixin first in their bases, before the Keras layer,
    and call ``_init_mask_options`` from ``__init__``; the mixin's ``build``
    adds the mask after the base layer's variables and its ``get_config``
    adds the mask options.
    """

    ER_CONFIG_KEYS = (
        "density", "seed", "sampling", "flow", "reparameterization",
        "mask_dtype",
    )

    #: ``(in_axes, out_axes)`` of the kernel's units (see `keras_er.masks`);
    #: layers whose layout is not ``(..., n_in, n_out)`` override it.
    UNIT_AXES = ((-2,), (-1,))

    @classmethod
    def unit_axes_for(cls, layer):
        """The unit axes of ``layer``'s kernel (this class or its Keras base).

        `keras_er.sparsify` asks the ER class about the plain layer it will
        replace, so layouts that depend on the config (EinsumDense) are read
        from ``layer``.
        """
        return cls.UNIT_AXES

    @property
    def unit_axes(self):
        """``(in_axes, out_axes)`` of the kernel, for flow and ER ratios."""
        return self.unit_axes_for(self)

    def _init_mask_options(
        self, density, seed, sampling, flow, reparameterization=None,
        mask_dtype="bool",
    ):
        self.density = check_density(density)
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an int or None, got {seed!r}.")
        self.seed = None if seed is None else int(seed)
        self.sampling = masks_lib.check_sampling(sampling)
        self.flow = masks_lib.check_flow(flow)
        self.mask_dtype = masks_lib.check_mask_dtype(mask_dtype)
        # `keras_er.sparsify` draws all masks up front and hands each layer
        # its own here, so that build does not draw one only to replace it.
        self._initial_mask = None
        # And, optionally, the final (masked) values of the base layer's
        # variables, in creation order (kernel, bias).
        self._initial_values = None
        self._built_from_values = False
        self.flow_edges_added = 0
        # The optimizer whose train step runs without the projection (a
        # weak reference), whose state `set_mask` must clean; else None.
        self._projection_skipped_for = None
        self.reparameterization = None
        self._reparam_attributes = []
        if isinstance(reparameterization, dict):
            reparameterization = keras.saving.deserialize_keras_object(
                reparameterization
            )
        self._pending_reparameterization = reparameterization

    def _draw_own_mask(self, shape):
        if self._initial_mask is not None:
            mask = np.asarray(self._initial_mask, dtype=np.float32)
            if mask.shape != tuple(shape):
                raise ValueError(
                    f"Layer {self.name!r}: initial mask shape {mask.shape} "
                    f"does not match kernel shape {tuple(shape)}."
                )
            self._initial_mask = None
            return mask
        rng = np.random.default_rng(self.seed)
        mask = masks_lib.draw_mask(shape, self.density, rng, self.sampling)
        mask, self.flow_edges_added = masks_lib.preserve_flow(
            mask, self.density, rng, self.flow, axes=self.unit_axes
        )
        return mask

    def build(self, input_shape):
        # The Keras base layer creates `_kernel` (some bases assign
        # `self.kernel`, which the setter below stores as `_kernel`); the
        # mask comes right after it.
        values, self._initial_values = self._initial_values, None
        if values is None:
            super().build(input_shape)
        else:
            with _variables_from(self, values) as report:
                super().build(input_shape)
            self._built_from_values = report["all"]
        self._build_mask()

    def get_config(self):
        config = super().get_config()
        config.update(self._mask_config())
        return config

    def _build_mask(self):
        shape = tuple(self._kernel.shape)
        check_mask_dtype_supported(self.mask_dtype)
        value = self._draw_own_mask(shape)
        self.mask = self.add_weight(
            name="mask",
            shape=shape,
            initializer=lambda shape, dtype=None: ops.cast(value, dtype),
            dtype=self.mask_dtype,
            trainable=False,
        )
        # The variable's own constraint is the user's (kernel_constraint,
        # depthwise_constraint, ...), whatever the layer calls it.
        user_constraint = self._kernel.constraint
        if isinstance(user_constraint, _MaskProjection):
            user_constraint = user_constraint.user_constraint
        self._user_kernel_constraint = user_constraint
        self._projection = _MaskProjection(self, user_constraint)
        self._kernel.constraint = self._projection
        if not self._built_from_values:  # Given values are already masked.
            self.apply_mask()
        pending, self._pending_reparameterization = (
            getattr(self, "_pending_reparameterization", None),
            None,
        )
        if pending is not None:
            self.set_reparameterization(pending)

    @property
    def kernel(self):
        kernel = self._stored_kernel()
        if getattr(self, "mask", None) is None:  # Still building.
            return kernel
        mask = ops.cast(self._forward_mask(), kernel.dtype)
        if self.reparameterization is not None:
            return self.reparameterization.effective_kernel(self, kernel, mask)
        return ops.multiply(kernel, mask)

    def _forward_mask(self):
        """The mask variable, read by a forward pass.

        Every forward read goes through here: it decides the after-update
        projection for the train step being traced, and on JAX remembers
        the step's mask value for `_mask_for_update`.
        """
        mask = self.mask
        self._choose_projection()
        if keras.backend.backend() == "jax":
            scope = get_stateless_scope()
            if scope is not None and scope.get_current_value(mask) is not None:
                object.__setattr__(
                    self, "_step_mask", scope.get_current_value(mask)
                )
        return mask

    def _choose_projection(self):
        """Installs or removes the projection for the train step being run.

        Called whenever the kernel is read; only a read inside Keras'
        ``train_step`` (at trace time, or every step on torch) decides.
        """
        found, optimizer = _keras_train_step_optimizer()
        if not found:
            return
        if optimizer is None or _projection_needed(self, optimizer):
            self._kernel.constraint = self._projection
            self._projection_skipped_for = None
        else:
            self._kernel.constraint = None
            self._projection_skipped_for = weakref.ref(unwrap(optimizer))

    @property
    def projects_after_update(self):
        """Whether optimizer updates are followed by ``kernel *= mask``.

        True until a Keras ``train_step`` decides otherwise (see
        `set_mask_projection`).
        """
        return self._kernel.constraint is not None

    @kernel.setter
    def kernel(self, value):
        # DepthwiseConv and ConvTranspose build with `self.kernel = ...`:
        # keep that variable as `_kernel`, so `kernel` stays the masked one.
        self._kernel = value

    def _stored_kernel(self):
        """The kernel before masking (the Keras base layer's `kernel`)."""
        if _base_has_kernel_property(type(self)):
            return super().kernel  # Dense, Conv, EinsumDense (LoRA-aware).
        return self._kernel

    def set_reparameterization(self, reparameterization):
        """Installs a `KernelReparameterization` (or removes it with None).

        Call it before ``model.compile``: the optimizer only trains the
        variables that exist when it is built. On an unbuilt layer the
        reparameterization is installed at build time.

        Args:
            reparameterization: A `KernelReparameterization` or ``None``.
        """
        # Not `self.built`: some Keras bases (DepthwiseConv, ConvTranspose)
        # set it only after build returns, i.e. after `_build_mask`.
        if getattr(self, "mask", None) is None:
            self._pending_reparameterization = reparameterization
            return
        self._tracker.unlock()
        try:
            for name in self._reparam_attributes:
                # Keras' Layer.__delattr__ runs a full gc.collect() per
                # variable (seconds with TensorFlow loaded); untrack and
                # delete without it.
                self._untrack_variable(getattr(self, name))
                super(keras.layers.Layer, self).__delattr__(name)
            self._reparam_attributes = []
            self.reparameterization = None
            if reparameterization is not None:
                # Its variables go to the strategy of the layer's own
                # (prepare may be called outside `strategy.scope()`).
                with scope_of_variable(self.mask):
                    self._reparam_attributes = list(
                        reparameterization.build(self)
                    )
                self.reparameterization = reparameterization
        finally:
            self._tracker.lock()

    def apply_mask(self):
        """Sets the kernel entries outside the mask to exactly zero."""
        self._kernel.assign(
            ops.multiply(self._kernel, ops.cast(self.mask, self._kernel.dtype))
        )

    def set_mask(self, mask):
        """Replaces the mask and zeroes the kernel outside it.

        Args:
            mask: A 0/1 array with the kernel's shape.

        Raises:
            ValueError: If the shape differs or the values are not 0/1.
        """
        mask = np.asarray(keras.ops.convert_to_numpy(mask))
        expected = tuple(self.mask.shape)
        if mask.shape != expected:
            raise ValueError(
                f"Layer {self.name!r}: mask shape {mask.shape} does not "
                f"match kernel shape {expected}."
            )
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(
                f"Layer {self.name!r}: a mask must contain only 0 and 1."
            )
        # While the projection is skipped, the optimizer state of entries
        # the new mask removes must go: their momentum would move them.
        optimizer = (
            None if self._projection_skipped_for is None
            else self._projection_skipped_for()
        )
        if optimizer is not None:
            removed = (
                np.asarray(ops.convert_to_numpy(self.mask)) != 0
            ) & (mask == 0)
        self.mask.assign(mask.astype(self.mask.dtype))
        self.apply_mask()
        if optimizer is not None and removed.any():
            reset_slots(
                optimizer, self._kernel, where=removed.astype(np.float32)
            )
        self._notify_mask_changed()

    def _notify_mask_changed(self):
        # Duck-typed reparameterizations may not define the hook.
        hook = getattr(self.reparameterization, "mask_changed", None)
        if hook is not None:
            hook(self)

    def set_weights(self, weights):
        """As Keras' ``set_weights``, then zeroes the kernel outside the mask.

        Args:
            weights: The layer's weights, in the order of ``layer.weights``.
        """
        super().set_weights(weights)
        self.apply_mask()

    @property
    def mask_density(self):
        """The realized density of the mask (nonzeros / entries)."""
        return float(np.mean(keras.ops.convert_to_numpy(self.mask)))

    def _mask_store_index(self):
        # The base layer stores the kernel at "0" and the bias at "1".
        return 2 if self.bias is not None else 1

    def _extra_variables(self):
        """Variables saved after kernel and bias: mask, reparameterization."""
        extra = [self.mask]
        extra += [getattr(self, name) for name in self._reparam_attributes]
        return extra

    def _stored_variables(self):
        """Kernel, bias (if any), mask, reparameterization: the saved order."""
        variables = [self._kernel]
        if self.bias is not None:
            variables.append(self.bias)
        return variables + self._extra_variables()

    def save_own_variables(self, store):
        # Same layout as the Keras base layer (kernel "0", bias "1"), but the
        # raw kernel variable: Keras would store the `kernel` property, which
        # a reparameterization changes.
        if not self.built:
            return
        variables = self._stored_variables()
        encoded = self._compact_encoding()
        for i, variable in enumerate(variables):
            store[str(i)] = encoded.get(i, variable)

    def _compact_encoding(self):
        """Store slots written compactly, by index (see `compact_storage`).

        The mask as packed bits and the kernel as its in-mask values, so that
        a saved file shrinks with density (float masks alone would make a
        sparse ``.keras`` file bigger than the dense one).
        """
        mask = np.asarray(ops.convert_to_numpy(self.mask))
        encoded = {self._mask_store_index(): compact_storage.pack_mask(mask)}
        values = compact_storage.compact_kernel(
            ops.convert_to_numpy(self._kernel), mask
        )
        if values is not None:  # Else the full kernel (lossless either way).
            encoded[0] = values
        return encoded

    def _decode_compact(self, values):
        """Inverse of `_compact_encoding`; plain (older) values pass through."""
        index = self._mask_store_index()
        expected = tuple(self._kernel.shape)
        mask = values[index]
        if compact_storage.is_packed_mask(mask):
            mask = values[index] = compact_storage.unpack_mask(mask)
        if np.shape(mask) != expected:
            raise ValueError(
                f"Layer {self.name!r}: the stored mask has shape "
                f"{np.shape(mask)}, the kernel {expected}."
            )
        if np.shape(values[0]) != expected:
            values[0] = compact_storage.expand_kernel(values[0], mask)
        return values

    def load_own_variables(self, store):
        # The mirror of save_own_variables, for every base layer: Keras'
        # default loads in tracking order, which a reparameterization's
        # trainable variables would shift.
        if not self.built:
            return
        variables = self._stored_variables()
        if len(store.keys()) != len(variables):
            raise ValueError(
                f"Layer {self.name!r} expected {len(variables)} variables "
                f"({[v.name for v in variables]}), but the file has "
                f"{len(store.keys())}. Was it saved with a different "
                "reparameterization?"
            )
        values = self._decode_compact(
            [store[str(i)] for i in range(len(variables))]
        )
        for variable, value in zip(variables, values):
            variable.assign(value)
        self.apply_mask()
        self._notify_mask_changed()

    def _mask_config(self):
        reparameterization = self.reparameterization
        if reparameterization is None:
            reparameterization = getattr(
                self, "_pending_reparameterization", None
            )
        return {
            "density": self.density,
            "seed": self.seed,
            "sampling": self.sampling,
            "flow": self.flow,
            "mask_dtype": self.mask_dtype,
            "reparameterization": None
            if reparameterization is None
            else keras.saving.serialize_keras_object(reparameterization),
        }
