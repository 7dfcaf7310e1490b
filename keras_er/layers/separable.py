"""Mask mechanics of separable convolutions (private base class).

`ERSeparableConv1D` and `ERSeparableConv2D` are Keras' SeparableConv1D/2D
with one mask per kernel, beside it (see `keras_er.layers.multi_kernel`):
role ``"depthwise"`` masks ``depthwise_kernel`` (mask variable
``<layer>/depthwise_kernel_mask``), role ``"pointwise"`` masks
``pointwise_kernel`` (``<layer>/pointwise_kernel_mask``). Every Keras
variable keeps its path.
"""

from keras_er.layers.multi_kernel import (
    MultiKernelHolderMixin,
    MultiKernelOwnerMixin,
    _masked_property,
)

# (in_axes, out_axes): a depthwise kernel (*k, c_in, m) has one input per
# output channel; the pointwise kernel (1.., c_in * m, filters) is a conv.
DEPTHWISE_AXES = ((), (-2, -1))
POINTWISE_AXES = ((-2,), (-1,))


class MaskedSeparableMixin(MultiKernelOwnerMixin, MultiKernelHolderMixin):
    """Per-kernel masks of a Keras ``SeparableConv{1,2}D``, in place."""

    ROLES = ("depthwise", "pointwise")
    depthwise_kernel = _masked_property("depthwise_kernel")
    pointwise_kernel = _masked_property("pointwise_kernel")

    @classmethod
    def kernel_specs(cls, layer):
        return [
            ("depthwise", layer, "depthwise_kernel", DEPTHWISE_AXES, None),
            ("pointwise", layer, "pointwise_kernel", POINTWISE_AXES, "bias"),
        ]

    def build(self, input_shape):
        super().build(input_shape)  # Keras' own variables and paths.
        self._build_units()

    def _on_attach(self):
        pass

    def _on_detach(self):
        pass

    def get_config(self):
        config = super().get_config()
        config.update(self._multi_config())
        return config
