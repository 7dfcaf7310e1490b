"""`ERConv2D`: a Conv2D layer with a fixed random (Erdős–Rényi) mask."""

import keras

from keras_er.layers.masked_kernel import MaskedKernelMixin


@keras.saving.register_keras_serializable(package="keras_er")
class ERConv2D(MaskedKernelMixin, keras.layers.Conv2D):
    """Drop-in replacement of `keras.layers.Conv2D` with a sparse kernel.

    The layer owns a non-trainable 0/1 variable ``mask`` with the kernel's
    shape ``(kh, kw, c_in, c_out)``; the convolution uses ``kernel * mask``.
    Kernel entries outside the mask are zero and stay exactly zero through
    training with any Keras optimizer.

    Flow preservation treats input and output channels as the units: a
    filter is alive when some ``(kh, kw, c_in)`` entry is kept.

    Args:
        filters: As in `keras.layers.Conv2D`.
        kernel_size: As in `keras.layers.Conv2D`.
        density: Fraction of kernel entries kept, in ``(0, 1]``. Defaults to
            1.0.
        seed: Optional int seed of the mask drawn at build time.
        sampling: ``"bernoulli"`` or ``"exact"``.
        flow: ``"addition"``, ``"rejection"`` or ``None``.
        reparameterization: Optional `KernelReparameterization` (or its
            serialized config) changing how the effective kernel is computed
            (used by STR and edge-popup).
        mask_dtype: dtype of the mask variable: ``"bool"`` (default)
            or ``"uint8"`` (one byte per entry), or ``"float32"`` (four);
            the forward pass casts it to the kernel's dtype.
        **kwargs: Every other `keras.layers.Conv2D` argument.

    Example:

    ```python
    layer = keras_er.ERConv2D(16, 3, density=0.2, seed=0, padding="same")
    y = layer(keras.ops.ones((1, 8, 8, 3)))
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
        self._init_mask_options(
            density, seed, sampling, flow, reparameterization,
            mask_dtype,
        )
        super().__init__(filters, kernel_size, **kwargs)
