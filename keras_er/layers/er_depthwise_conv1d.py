"""`ERDepthwiseConv1D`: a depthwise 1-D convolution with a fixed ER mask."""

import keras

from keras_er.layers.masked_kernel import MaskedKernelMixin


@keras.saving.register_keras_serializable(package="keras_er")
class ERDepthwiseConv1D(MaskedKernelMixin, keras.layers.DepthwiseConv1D):
    """Drop-in replacement of `keras.layers.DepthwiseConv1D`, sparse kernel.

    The kernel has shape ``(k, c_in, depth_multiplier)``: output channel
    ``(c, m)`` is computed from input channel ``c`` alone through the ``k``
    taps ``kernel[:, c, m]``. The layer owns a
    non-trainable 0/1 ``mask`` of that shape and convolves with
    ``kernel * mask``; entries outside the mask stay exactly zero through
    training.

    Flow preservation works on output channels: the unit axes are
    ``in_axes=()`` and ``out_axes=(-2, -1)``, so an output channel with all
    its taps masked gets one random tap back (its only possible fan-in).
    There is no separate input-channel repair: an input channel is alive as
    soon as one of its output channels is. ER counts ``n_in = 1`` and
    ``n_out = c_in * depth_multiplier`` (so ER keeps depthwise layers nearly
    dense); ERK uses all three dims.

    Args:
        kernel_size: As in `keras.layers.DepthwiseConv1D`.
        density: Fraction of kernel entries kept, in ``(0, 1]``. Defaults to
            1.0.
        seed: Optional int seed of the mask drawn at build time.
        sampling: ``"bernoulli"`` or ``"exact"``.
        flow: ``"addition"``, ``"rejection"`` or ``None``.
        reparameterization: Optional `KernelReparameterization` (or its
            serialized config) changing how the effective kernel is computed.
        mask_dtype: dtype of the mask variable: ``"bool"`` (default)
            or ``"uint8"`` (one byte per entry), or ``"float32"`` (four);
            the forward pass casts it to the kernel's dtype.
        **kwargs: Every other `keras.layers.DepthwiseConv1D` argument
            (``depth_multiplier``, ``depthwise_initializer``, ...).

    Example:

    ```python
    dw = keras_er.ERDepthwiseConv1D(3, depth_multiplier=2, padding="same",
                                    density=0.5, seed=0)
    y = dw(keras.ops.ones((1, 8, 4)))  # (1, 8, 8)
    ```
    """

    UNIT_AXES = ((), (-2, -1))

    def __init__(
        self,
        kernel_size,
        density=1.0,
        seed=None,
        sampling="bernoulli",
        flow="addition",
        reparameterization=None,
        mask_dtype="bool",
        **kwargs,
    ):
        self._init_mask_options(
            density, seed, sampling, flow, reparameterization,
            mask_dtype,
        )
        super().__init__(kernel_size, **kwargs)
