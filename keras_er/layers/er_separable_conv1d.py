"""`ERSeparableConv1D`: a separable 1-D convolution with two ER masks."""

import keras

from keras_er.layers.separable import MaskedSeparableMixin


@keras.saving.register_keras_serializable(package="keras_er")
class ERSeparableConv1D(MaskedSeparableMixin, keras.layers.SeparableConv1D):
    """Drop-in replacement of `keras.layers.SeparableConv1D`, sparse kernels.

    A separable convolution has two kernels, and each gets its own mask,
    a variable beside it: role ``"depthwise"`` masks ``depthwise_kernel``
    (``(k, c_in, depth_multiplier)``; mask ``<name>/depthwise_kernel_mask``),
    role ``"pointwise"`` masks ``pointwise_kernel`` (``(1, c_in *
    depth_multiplier, filters)``; mask ``<name>/pointwise_kernel_mask``).
    Every Keras variable keeps its path. The forward pass is Keras' own with
    the two masked kernels; the units are named ``"<name>-<role>"``.

    The ratio methods, `keras_er.get_masks`, `keras_er.summary` and the
    callbacks count the two kernels as two maskable tensors, each with its
    own density (ER: the depthwise kernel as in `ERDepthwiseConv1D`, the
    pointwise one as a width-1 conv; ERK: all dims of each). Flow preservation
    applies to each: every depthwise output channel keeps a tap, and the
    pointwise kernel is repaired like a width-1 conv.

    Args:
        filters: As in `keras.layers.SeparableConv1D`.
        kernel_size: As in `keras.layers.SeparableConv1D`.
        density: Fraction of entries kept in both kernels, or a dict
            ``{"depthwise": p, "pointwise": q}``; a role missing from the
            dict stays a dense, plain Keras sublayer. Defaults to 1.0.
        seed: Optional int seed of the masks drawn at build time (each role
            draws from its own stream derived from it).
        sampling: ``"bernoulli"`` or ``"exact"``.
        flow: ``"addition"``, ``"rejection"`` or ``None``.
        reparameterization: Optional dict ``{role: serialized
            KernelReparameterization}`` (written by `get_config`).
        mask_dtype: dtype of the mask variable: ``"bool"`` (default)
            or ``"uint8"`` (one byte per entry), or ``"float32"`` (four);
            the forward pass casts it to the kernel's dtype.
        **kwargs: Every other `keras.layers.SeparableConv1D` argument.

    Example:

    ```python
    sep = keras_er.ERSeparableConv1D(16, 3, padding="same",
                                     density={"depthwise": 0.5,
                                              "pointwise": 0.1}, seed=0)
    y = sep(keras.ops.ones((1, 8, 4)))          # (1, 8, 16)
    [name for name, _ in sep.er_units()]         # depthwise, pointwise
    ```
    """

    def __init__(
        self,
        filters,
        kernel_size,
        density=1.0,
        seed=None,
        sampling="bernoulli",
        flow="addition",
        reparameterization=None,
        mask_dtype="bool",
        **kwargs,
    ):
        self._init_multi_options(
            density, seed, sampling, flow, reparameterization,
            mask_dtype,
        )
        super().__init__(filters, kernel_size, **kwargs)
