"""Mask mechanics shared by ERSimpleRNN, ERLSTM and ERGRU (private).

A recurrent cell has two kernels: ``kernel`` (inputs to gates, ``(n_in,
gates * units)``) and ``recurrent_kernel`` (state to gates, ``(units, gates *
units)``). As for the other layers with several kernels (see
`keras_er.layers.composite`), each is masked on its own: the ER layer's cell
holds one `ERDense` unit per role, named ``"<layer>-kernel"`` and
``"<layer>-recurrent_kernel"``. The layer masks both kernels once per
sequence and the cell reads them in every time step. The units are never called; they only hold the kernel (and
the bias), so everything keras_er does with an ER layer (ratios, masks,
callbacks, saving, strip) works on them unchanged.
"""

import keras
import numpy as np
from keras import ops

from keras_er.layers.composite import MaskedCompositeMixin
from keras_er.layers.er_dense import ERDense

ROLES = ("kernel", "recurrent_kernel")


class _RowOf:
    """Row ``row`` of a 2-D variable, assignable (GRU's ``(2, 3u)`` bias).

    `plain_kernels` hands it out as a role's bias: reading it (``__array__``)
    gives the row, ``assign`` writes only that row.
    """

    def __init__(self, variable, row):
        self.variable = variable
        self.row = row
        self.shape = tuple(variable.shape[1:])

    def __array__(self, dtype=None, copy=None):
        value = np.asarray(ops.convert_to_numpy(self.variable))[self.row]
        return value if dtype is None else value.astype(dtype)

    def assign(self, value):
        full = np.array(ops.convert_to_numpy(self.variable))
        full[self.row] = np.asarray(value)
        self.variable.assign(full)


def _split_bias(layer):
    """``(input bias, recurrent bias)`` of a plain cell (either may be None).

    GRU with ``reset_after=True`` keeps both in one ``(2, 3 * units)``
    variable; every other cell has one input-side bias.
    """
    bias = getattr(layer.cell, "bias", None)
    if bias is None:
        return None, None
    if len(bias.shape) == 2:
        return _RowOf(bias, 0), _RowOf(bias, 1)
    return bias, None


class _ForgetGateBias:
    """LSTM's ``unit_forget_bias``: 1 for the forget gate, else ``base``."""

    def __init__(self, base, units):
        self.base = keras.initializers.get(base)
        self.units = units

    def __call__(self, shape, dtype=None):
        u = self.units
        return ops.concatenate([
            self.base((u,), dtype=dtype),
            ops.ones((u,), dtype=dtype),
            self.base((2 * u,), dtype=dtype),
        ])


class MaskedCellMixin:
    """A Keras RNN cell whose kernels live in ER units (set by the layer).

    While the layer runs a sequence, ``_sequence_weights`` holds the masked
    kernels and the bias, computed once for all time steps.
    """

    _sequence_weights = None

    def build(self, input_shape):
        # The ER layer created the units before the RNN built this cell.
        self.built = True

    def current_weights(self):
        """``(kernel, recurrent_kernel, bias)`` from the units, masked."""
        bias = None
        if self.use_bias:
            bias = self.kernel_unit.bias
            if self.recurrent_unit.bias is not None:
                # GRU with reset_after: (2, 3 * units), input bias first.
                bias = ops.concatenate([
                    ops.expand_dims(bias, 0),
                    ops.expand_dims(self.recurrent_unit.bias, 0),
                ])
        return self.kernel_unit.kernel, self.recurrent_unit.kernel, bias

    def _weights(self):
        if self._sequence_weights is not None:
            return self._sequence_weights
        return self.current_weights()

    @property
    def kernel(self):
        return self._weights()[0]

    @property
    def recurrent_kernel(self):
        return self._weights()[1]

    @property
    def bias(self):
        return self._weights()[2]


class MaskedRecurrentMixin(MaskedCompositeMixin):
    """Per-kernel masks for SimpleRNN, LSTM and GRU.

    Subclasses set ``CELL`` (their masked cell class) and ``GATES``; the
    mask arguments come before the Keras layer's own (after ``units``), as
    in every ER layer.
    """

    ROLES = ROLES
    SEED_KEY = "mask_seed"  # `seed` is Keras' dropout seed.
    CELL = None
    GATES = 1

    def __init__(
        self,
        units,
        density=1.0,
        mask_seed=None,
        sampling="bernoulli",
        flow="addition",
        reparameterization=None,
        mask_dtype="bool",
        **kwargs,
    ):
        self._init_composite_options(
            density, mask_seed, sampling, flow, reparameterization,
            mask_dtype,
        )
        super().__init__(units, **kwargs)
        # Keras' __init__ made a plain cell; swap in the masked twin (same
        # config) before anything is built.
        plain = self.cell
        self._tracker.untrack(plain)
        self.cell = self.CELL.from_config(plain.get_config())

    def _bias_initializer(self):
        cell = self.cell
        if getattr(cell, "unit_forget_bias", False):
            return _ForgetGateBias(cell.bias_initializer, cell.units)
        return cell.bias_initializer

    def build(self, sequences_shape, initial_state_shape=None):
        cell = self.cell
        width = self.GATES * cell.units
        steps = sequences_shape[1]
        # A second bias row on the recurrent side (GRU, reset_after=True).
        recurrent_bias = cell.use_bias and getattr(cell, "reset_after", False)
        for role, attribute, fan_in, options in (
            ("kernel", "kernel_unit", sequences_shape[-1], dict(
                use_bias=cell.use_bias,
                kernel_initializer=cell.kernel_initializer,
                kernel_regularizer=cell.kernel_regularizer,
                kernel_constraint=cell.kernel_constraint,
            )),
            ("recurrent_kernel", "recurrent_unit", cell.units, dict(
                use_bias=recurrent_bias,
                kernel_initializer=cell.recurrent_initializer,
                kernel_regularizer=cell.recurrent_regularizer,
                kernel_constraint=cell.recurrent_constraint,
            )),
        ):
            unit = self._make_unit(role, ERDense, keras.layers.Dense, dict(
                options,
                units=width,
                bias_initializer=self._bias_initializer(),
                bias_regularizer=cell.bias_regularizer,
                bias_constraint=cell.bias_constraint,
                dtype=cell.dtype_policy,
            ))
            # Built on the whole sequence: the summary counts the kernel
            # once per time step.
            unit.build((sequences_shape[0], steps, fan_in))
            setattr(cell, attribute, unit)
        super().build(sequences_shape, initial_state_shape)

    def inner_loop(self, *args, **kwargs):
        # The cell reads its kernels in every time step: mask them once per
        # sequence, not once per step. Not tracked: plain tensors.
        cell = self.cell
        object.__setattr__(cell, "_sequence_weights", cell.current_weights())
        try:
            return super().inner_loop(*args, **kwargs)
        finally:
            object.__setattr__(cell, "_sequence_weights", None)

    def er_units(self):
        return [
            ("kernel", self.cell.kernel_unit),
            ("recurrent_kernel", self.cell.recurrent_unit),
        ]

    @classmethod
    def plain_kernels(cls, layer):
        input_bias, recurrent_bias = _split_bias(layer)
        return [
            ("kernel", layer.cell.kernel, input_bias, ((-2,), (-1,)), layer),
            ("recurrent_kernel", layer.cell.recurrent_kernel, recurrent_bias,
             ((-2,), (-1,)), layer),
        ]

    def get_config(self):
        config = super().get_config()
        config.update(self._composite_config())
        return config
