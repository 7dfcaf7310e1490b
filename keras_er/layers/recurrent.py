"""Mask mechanics shared by ERSimpleRNN, ERLSTM and ERGRU (private).

A recurrent cell has two kernels: ``kernel`` (inputs to gates, ``(n_in,
gates * units)``) and ``recurrent_kernel`` (state to gates, ``(units, gates *
units)``). Each is masked on its own, in place (see
`keras_er.layers.multi_kernel`): the cell holds the masks beside the kernels
(``<layer>/<cell>/kernel_mask``, ``<layer>/<cell>/recurrent_kernel_mask``)
and every Keras variable keeps its path. The units are named
``"<layer>-kernel"`` and ``"<layer>-recurrent_kernel"``. The layer masks
both kernels once per sequence and the cell reads them in every time step.
"""

from keras_er.layers.multi_kernel import (
    MultiKernelHolderMixin,
    MultiKernelOwnerMixin,
)

ROLES = ("kernel", "recurrent_kernel")
AXES = ((-2,), (-1,))


class MaskedRecurrentMixin(MultiKernelOwnerMixin):
    """Per-kernel masks for SimpleRNN, LSTM and GRU.

    The mask arguments come before the Keras layer's own (after ``units``),
    as in every ER layer.
    """

    ROLES = ROLES
    SEED_KEY = "mask_seed"  # `seed` is Keras' dropout seed.

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
        self._init_multi_options(
            density, mask_seed, sampling, flow, reparameterization,
            mask_dtype,
        )
        super().__init__(units, **kwargs)

    @classmethod
    def kernel_specs(cls, layer):
        cell = layer.cell
        return [
            ("kernel", cell, "kernel", AXES, "bias"),
            ("recurrent_kernel", cell, "recurrent_kernel", AXES, None),
        ]

    def build(self, sequences_shape, initial_state_shape=None):
        super().build(sequences_shape, initial_state_shape)
        self._build_units()

    def _on_attach(self):
        pass

    def _on_detach(self):
        pass

    def inner_loop(self, *args, **kwargs):
        # The cell reads its kernels in every time step: mask them once per
        # sequence, not once per step. Not tracked: plain tensors.
        cell = self.cell
        if not isinstance(cell, MultiKernelHolderMixin):
            return super().inner_loop(*args, **kwargs)
        object.__setattr__(cell, "_sequence_weights", cell.masked_weights())
        try:
            return super().inner_loop(*args, **kwargs)
        finally:
            object.__setattr__(cell, "_sequence_weights", None)

    def get_config(self):
        config = super().get_config()
        config.update(self._multi_config())
        return config

