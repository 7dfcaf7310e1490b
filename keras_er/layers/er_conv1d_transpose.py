"""`ERConv1DTranspose`: a transposed 1-D convolution with a fixed ER mask."""

import keras

from keras_er.layers.masked_kernel import MaskedKernelMixin


@keras.saving.register_keras_serializable(package="keras_er")
class ERConv1DTranspose(MaskedKernelMixin, keras.layers.Conv1DTranspose):
    """Drop-in replacement of `keras.layers.Conv1DTranspose`, sparse kernel.

    Keras stores a transposed convolution's kernel as
    ``(k, c_out, c_in)``: the *last* dim indexes the input channels.
    The layer owns a non-trainable 0/1 ``mask`` of that shape and convolves
    with ``kernel * mask``; entries outside the mask stay exactly zero
    through training.

    The unit axes are ``in_axes=(-1,)`` (``c_in``) and ``out_axes=(-2,)``
    (``c_out``): flow preservation keeps every input channel feeding some
    output channel and every output channel fed by some input channel; ER
    uses ``c_in`` and ``c_out``; ERK all three dims.

    Args:
        filters: As in `keras.layers.Conv1DTranspose`.
        kernel_size: As in `keras.layers.Conv1DTranspose`.
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
        **kwargs: Every other `keras.layers.Conv1DTranspose` argument.

    Example:

    ```python
    up = keras_er.ERConv1DTranspose(8, 3, strides=2, padding="same",
                                    density=0.3, seed=0)
    y = up(keras.ops.ones((1, 4, 16)))  # (1, 8, 8)
    ```
    """

    UNIT_AXES = ((-1,), (-2,))

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
        self._init_mask_options(
            density, seed, sampling, flow, reparameterization,
            mask_dtype,
        )
        super().__init__(filters, kernel_size, **kwargs)
