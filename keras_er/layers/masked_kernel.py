"""The mask mechanics shared by every ER layer (private base class).

Modelled on how Keras' Dense adds LoRA: the layer keeps its trainable
``_kernel`` variable and the ``kernel`` property returns the effective weight,
here ``_kernel * mask``. On top of that the kernel is kept truly sparse:

* entries outside the mask are zeroed whenever a mask is set;
* the forward pass multiplies by the mask, so their gradient is zero;
* a projection ``kernel <- kernel * mask`` is installed as the kernel
  variable's constraint, which every Keras optimizer applies after every
  update, in ``fit``, in a custom ``train_step`` and in a custom loop alike.
  Zero gradients alone do not keep an entry at zero: Muon orthogonalizes the
  whole update matrix, a regularizer may have a non-zero gradient at 0, and
  momentum or moments loaded with an optimizer, or left from before a mask
  change, move entries whose gradient is zero.

`set_mask` also zeroes the optimizer state (momentum, moments, EMA averages,
gradient accumulators) of the entries a new mask removes when it is given the
optimizer. Keras copies EMA averages into the weights at the end of ``fit``
(``optimizer.finalize_variable_values``) without running the projection, and
an average is updated before the projection of its step; importing this
module therefore wraps ``keras.optimizers.Optimizer.finalize_variable_values``
so that it re-projects the ER kernels it finalized (`_project_masked_after`).
"""

import contextlib
import functools
import json

import keras
import numpy as np
from keras import ops

from keras_er import masks as masks_lib
from keras_er.layers import compact_storage
from keras_er.optimizer_state import reset_slots, unwrap
from keras_er.processes import host_array, random_seed
from keras_er.distribute import (
    check_mask_dtype_supported,
    scope_of_variable,
)
from keras_er._checks import check_seed, describe
from keras_er.ratios import check_density


class MaskInitializer(keras.initializers.Initializer):
    """Fills a new mask variable with a mask drawn on the host.

    A callable object, not a lambda: Keras ``jit``s the initializer of a
    variable it creates already sharded (JAX, big variables).
    Not serialized: the mask is saved as a variable.
    """

    def __init__(self, value):
        self.value = value

    def __call__(self, shape, dtype=None):
        return ops.cast(self.value, dtype)


_LOADING = []


@contextlib.contextmanager
def loading_saved_masks():
    """Context: ER layers built inside it get their masks from a file.

    `keras_er.load_model` enters it: every mask it builds is replaced by the
    saved one right away, so drawing a random mask first would only cost
    time (and, with ``seed=None`` on several processes, a collective).
    """
    _LOADING.append(True)
    try:
        yield
    finally:
        _LOADING.pop()


def _loading_saved_masks():
    return bool(_LOADING)


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
        return self.layer._project(kernel)


class _MaskedRegularizer:
    """Kernel regularizer: the user's, applied to ``kernel * mask``."""

    def __init__(self, layer, user_regularizer):
        self.layer = layer
        self.user_regularizer = user_regularizer

    def __call__(self, kernel):
        mask = ops.cast(self.layer.mask, kernel.dtype)
        return self.user_regularizer(ops.multiply(kernel, mask))


def _project_masked_after(finalize):
    """Wraps ``Optimizer.finalize_variable_values``: EMA copies re-masked.

    With ``use_ema=True`` Keras' ``fit`` ends with
    ``optimizer.finalize_variable_values(model.trainable_weights)``, which
    assigns each variable its moving average directly, without the
    variable's constraint. The average of an ER kernel is updated before the
    after-update projection runs, so where an update moves entries outside
    the mask (Muon orthogonalizes the whole update matrix) the average is
    not zero there. The wrapper projects every ER kernel among the finalized
    variables onto its mask again, so ``fit`` with EMA ends with entries
    outside the masks exactly zero, with or without keras_er callbacks.
    """

    @functools.wraps(finalize)
    def finalize_variable_values(self, var_list):
        result = finalize(self, var_list)
        if getattr(self, "use_ema", False):
            for variable in var_list:
                projection = getattr(variable, "constraint", None)
                if isinstance(projection, _MaskProjection):
                    projection.layer.apply_mask()
        return result

    finalize_variable_values._keras_er_masked = True
    return finalize_variable_values


def _install_ema_projection():
    """Installs `_project_masked_after` on Keras' optimizer base (once)."""
    cls = keras.optimizers.Optimizer
    current = cls.finalize_variable_values
    if not getattr(current, "_keras_er_masked", False):
        cls.finalize_variable_values = _project_masked_after(current)


_install_ema_projection()


def _jax_tracer_error():
    import jax

    return jax.errors.UnexpectedTracerError


@functools.lru_cache(maxsize=None)
def _base_has_kernel_property(cls):
    """Whether a Keras base class of ``cls`` defines ``kernel`` itself."""
    mro = cls.__mro__
    after = mro[mro.index(MaskedKernelMixin) + 1:]
    return any("kernel" in vars(base) for base in after)


#: The entry of an ER layer's saved variables that records its unit name and
#: mask options (a JSON string as uint8), read by `keras_er.load_model`.
ER_CONFIG_ENTRY = "keras_er_config"


class StripFirstMixin:
    """Quantization and LoRA refuse masked layers and point to `strip`."""

    def quantize(self, mode=None, **kwargs):
        # A ValueError, not NotImplementedError: `Model.quantize` turns the
        # latter into a warning and quantizes the other layers, leaving a
        # half-quantized model whose masked layers stay float.
        raise ValueError(
            f"{type(self).__name__} {self.name!r} cannot be quantized with "
            "its mask. Fix: quantize the stripped model, "
            "`keras_er.strip(model).quantize(mode)` (plain Keras layers with "
            "the sparse weights; zeros stay zero), or export a quantized "
            "TFLite file with keras_er.export(model, 'm.tflite', "
            "format='tflite', quantize=...). `model.quantize` may have "
            "quantized the layers before this one already."
        )

    def enable_lora(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} does not support LoRA: a low-rank update "
            "would be dense. Call `keras_er.strip(model)` first if you want "
            "a dense LoRA update on top of the sparse weights."
        )


def check_reparameterization(reparameterization):
    """Raises unless it is None, a `KernelReparameterization` or its config."""
    from keras_er.layers.reparameterization import KernelReparameterization

    if reparameterization is not None and not isinstance(
        reparameterization, (dict, KernelReparameterization)
    ):
        raise ValueError(
            "reparameterization must be None, a KernelReparameterization "
            "(e.g. keras_er.layers.soft_threshold.SoftThreshold()) or its "
            f"serialized config dict, got {describe(reparameterization)}."
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
        self.seed = check_seed(seed)  # Fails now, not at build.
        check_reparameterization(reparameterization)
        self.sampling = masks_lib.check_sampling(sampling)
        self.flow = masks_lib.check_flow(flow)
        self.mask_dtype = masks_lib.check_mask_dtype(mask_dtype)
        # A mask drawn elsewhere (`keras_er.sparsify` draws all masks up
        # front; a composite layer hands each role its own), so that build
        # does not draw one only to replace it.
        self._initial_mask = None
        self.flow_edges_added = 0
        # JAX: the mask value the last forward pass read (see `_project`).
        self._step_mask = None
        self.reparameterization = None
        self._reparam_attributes = []
        if isinstance(reparameterization, dict):
            reparameterization = keras.saving.deserialize_keras_object(
                reparameterization
            )
        self._pending_reparameterization = reparameterization

    def _draw_own_mask(self, shape):
        if self._initial_mask is not None:
            mask = np.asarray(self._initial_mask)  # Any 0/1 dtype.
            if mask.shape != tuple(shape):
                raise ValueError(
                    f"Layer {self.name!r}: initial mask shape {mask.shape} "
                    f"does not match kernel shape {tuple(shape)}."
                )
            self._initial_mask = None
            return mask
        if _loading_saved_masks():
            # The saved mask replaces it right away: no throwaway draw.
            return np.zeros(shape, dtype=bool)
        # seed=None: a random seed, the same on every process.
        seed = random_seed() if self.seed is None else self.seed
        mask, self.flow_edges_added = masks_lib.draw_layer_mask(
            shape, self.density, np.random.default_rng(seed),
            self.sampling, self.flow, axes=self.unit_axes,
        )
        return mask

    def build(self, input_shape):
        # The Keras base layer creates `_kernel` (some bases assign
        # `self.kernel`, which the setter below stores as `_kernel`); the
        # mask comes right after it.
        super().build(input_shape)
        self._build_mask()

    def get_config(self):
        config = super().get_config()
        config.update(self._mask_config())
        return config

    def _build_mask(self):
        shape = tuple(self._kernel.shape)
        check_mask_dtype_supported(self.mask_dtype)
        self.mask = self.add_kernel_like_weight(
            "mask", MaskInitializer(self._draw_own_mask(shape)),
            dtype=self.mask_dtype, trainable=False,
        )
        # The variable's own constraint is the user's (kernel_constraint,
        # depthwise_constraint, ...), whatever the layer calls it.
        user_constraint = self._kernel.constraint
        if isinstance(user_constraint, _MaskProjection):
            user_constraint = user_constraint.user_constraint
        self._user_kernel_constraint = user_constraint
        self._projection = _MaskProjection(self, user_constraint)
        self._kernel.constraint = self._projection
        # A kernel regularizer sees ``kernel * mask``: the same loss (the
        # entries outside are zero), and no gradient on those entries, so
        # their EMA average stays zero too.
        regularizer = getattr(self._kernel, "regularizer", None)
        if isinstance(regularizer, _MaskedRegularizer):
            regularizer = regularizer.user_regularizer
        if regularizer is not None:
            self._kernel.regularizer = _MaskedRegularizer(self, regularizer)
        self.apply_mask()
        pending, self._pending_reparameterization = (
            getattr(self, "_pending_reparameterization", None),
            None,
        )
        if pending is not None:
            self.set_reparameterization(pending)

    def add_kernel_like_weight(self, name, initializer, dtype=None,
                               trainable=False):
        """A new variable of the layer with the kernel's shape and layout.

        Masks, edge-popup scores and any other per-entry state of a kernel
        use it. Under a `keras.distribution` (JAX) the variable is created
        with the kernel's own `TensorLayout`, whatever its path: sharded
        like the kernel under `ModelParallel` (the user's `LayoutMap` names
        kernels, not masks), and already sharded at creation when Keras
        shards the kernel at init (big variables).

        Args:
            name: The variable's name (its path is ``<layer path>/<name>``).
            initializer: A Keras initializer object (a callable object, so
                Keras can ``jit`` it for sharded creation).
            dtype: The variable's dtype; default the layer's variable dtype.
            trainable: Whether the optimizer trains it.

        Returns:
            The tracked variable.
        """
        shape = tuple(self._kernel.shape)
        distribution = keras.distribution.distribution()
        if distribution is None:
            return self.add_weight(
                name=name, shape=shape, initializer=initializer, dtype=dtype,
                trainable=trainable,
            )
        owner, name = self._variable_owner(name)
        layout = distribution.get_variable_layout(self._kernel)
        # What `add_weight` does, with the kernel's layout.
        with keras.name_scope(owner.name, caller=owner):
            variable = keras.Variable(
                initializer, shape=shape,
                dtype=dtype or owner.variable_dtype, trainable=trainable,
                name=name, layout=layout,
            )
        locked = owner._tracker.locked
        owner._tracker.unlock()
        try:
            owner._track_variable(variable)
        finally:
            if locked:
                owner._tracker.lock()
        return variable

    def _variable_owner(self, name):
        """The Keras layer that holds this kernel's variables, and the name."""
        return self, name

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

        Every forward read goes through here. On JAX it also remembers the
        value read, for the projection of the same train step (`_project`).
        """
        mask = self.mask
        if keras.backend.backend() == "jax":
            object.__setattr__(self, "_step_mask", mask.value)
        return mask

    def _project(self, kernel):
        """``kernel * mask``: the after-update projection (every backend).

        On JAX, ``fit`` (and a stateless ``train_step``) applies the
        optimizer with `keras.optimizers.Optimizer.stateless_apply`, whose
        scope maps only the trainable and optimizer variables: the mask
        variable has no current value there (``fit`` even drops the stored
        one, and reading it gives its initial value). The forward pass of
        the same step read the step's mask (a tracer under ``jit``), so that
        value is used, once. A value traced in a trace that has ended (a
        jitted forward pass followed by an eager update) raises JAX's
        ``UnexpectedTracerError``: the variable itself is current then.
        """
        if keras.backend.backend() == "jax":
            step = getattr(self, "_step_mask", None)
            object.__setattr__(self, "_step_mask", None)  # One use per step.
            if step is not None:
                try:
                    return ops.multiply(kernel, ops.cast(step, kernel.dtype))
                except _jax_tracer_error():
                    pass
        return ops.multiply(kernel, ops.cast(self.mask, kernel.dtype))

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
        # A mask value remembered by a forward pass may be stale now.
        object.__setattr__(self, "_step_mask", None)
        self._kernel.assign(
            ops.multiply(self._kernel, ops.cast(self.mask, self._kernel.dtype))
        )

    def set_mask(self, mask, optimizer=None):
        """Replaces the mask and zeroes the kernel outside it.

        Args:
            mask: A 0/1 array with the kernel's shape.
            optimizer: Optional optimizer training the layer (the model's
                ``optimizer``): the state it keeps for the entries the new
                mask removes (momentum, moments, EMA averages, accumulated
                gradients) is zeroed too. The after-update projection keeps
                those entries at zero anyway, but Keras copies EMA averages
                into the weights at the end of ``fit`` without it, and stale
                momentum would move an entry a later mask grows back.

        Raises:
            ValueError: If the shape differs or the values are not 0/1.
        """
        if not (
            isinstance(mask, (np.ndarray, np.generic, list, tuple))
            or ops.is_tensor(mask)
        ):
            mask = np.asarray(keras.ops.convert_to_numpy(mask))
        # Checked and assigned where the mask lives (a tensor on an
        # accelerator stays there); only scalars come to the host.
        mask = ops.convert_to_tensor(mask)
        expected = tuple(self.mask.shape)
        if tuple(mask.shape) != expected:
            raise ValueError(
                f"Layer {self.name!r}: mask shape {tuple(mask.shape)} does "
                f"not match kernel shape {expected}."
            )
        if mask.dtype != "bool":
            binary = ops.logical_or(ops.equal(mask, 0), ops.equal(mask, 1))
            if not bool(ops.convert_to_numpy(ops.all(binary))):
                raise ValueError(
                    f"Layer {self.name!r}: a mask must contain only 0 and 1."
                )
        new = ops.not_equal(mask, 0)
        if optimizer is not None:
            removed = ops.logical_and(
                ops.not_equal(self.mask, 0), ops.logical_not(new)
            )
        self.mask.assign(ops.cast(new, self.mask.dtype))
        self.apply_mask()
        if optimizer is not None and bool(
            ops.convert_to_numpy(ops.any(removed))
        ):
            reset_slots(
                unwrap(optimizer), self._kernel,
                where=ops.cast(removed, "float32"),
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
        # What `keras_er.load_model` needs to mask this layer again where
        # the model's config rebuilds it plain (inside a custom layer).
        store[ER_CONFIG_ENTRY] = np.frombuffer(
            json.dumps(self._attach_config()).encode("utf-8"), dtype=np.uint8
        )

    def _attach_config(self):
        """The unit name and mask options, as `keras_er.load_model` reads."""
        config = self._mask_config()
        config.pop("seed")
        config["unit"] = getattr(self, "_er_unit_name", None) or self.name
        config["class_name"] = type(self).__name__
        config["flow_edges_added"] = int(self.flow_edges_added)
        return config

    def _compact_encoding(self):
        """Store slots written compactly, by index (see `compact_storage`).

        The mask as packed bits and the kernel as its in-mask values, so that
        a saved file shrinks with density (float masks alone would make a
        sparse ``.keras`` file bigger than the dense one).
        """
        # Whole arrays on the host: a file holds them (every process
        # gathers those sharded over several, see `host_array`).
        mask = host_array(self.mask)
        encoded = {self._mask_store_index(): compact_storage.pack_mask(mask)}
        values = compact_storage.compact_kernel(host_array(self._kernel), mask)
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
        stored = [key for key in store.keys() if key != ER_CONFIG_ENTRY]
        if len(stored) != len(variables):
            raise ValueError(
                f"Layer {self.name!r} expected {len(variables)} variables "
                f"({[v.name for v in variables]}), but the file has "
                f"{len(stored)}. Was it saved with a different "
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
