"""`ERDense`: a Dense layer with a fixed random (Erdős–Rényi) mask."""

import keras

from keras_er.layers.masked_kernel import MaskedKernelMixin


@keras.saving.register_keras_serializable(package="keras_er")
class ERDense(MaskedKernelMixin, keras.layers.Dense):
    """Drop-in replacement of `keras.layers.Dense` with a sparse kernel.

    The layer owns a non-trainable 0/1 variable ``mask`` with the kernel's
    shape ``(n_in, n_out)``; the forward pass uses ``kernel * mask``. Kernel
    entries outside the mask are zero and stay exactly zero through training
    with any Keras optimizer (the mask is re-applied as a kernel constraint
    after each update).

    When the layer is built on its own, it draws its mask from ``density``,
    ``seed``, ``sampling`` and ``flow``. `keras_er.sparsify` instead hands
    every layer a mask drawn for the whole model.

    Args:
        units: As in `keras.layers.Dense`.
        density: Fraction of kernel entries kept, in ``(0, 1]``. Defaults to
            1.0 (a full mask, e.g. as the start of dense-to-sparse pruning).
        seed: Optional int seed of the mask drawn at build time.
        sampling: ``"bernoulli"`` (each entry kept with probability
            ``density``) or ``"exact"`` (exactly ``round(density * N)``
            entries).
        flow: ``"addition"``, ``"rejection"`` or ``None``: how units left
            without inputs or outputs are repaired (see
            `keras_er.masks.preserve_flow`).
        reparameterization: Optional `KernelReparameterization` (or its
            serialized config) changing how the effective kernel is computed
            (used by STR and edge-popup).
        mask_dtype: dtype of the mask variable: ``"bool"`` (default)
            or ``"uint8"`` (one byte per entry), or ``"float32"`` (four);
            the forward pass casts it to the kernel's dtype.
        **kwargs: Every other `keras.layers.Dense` argument.

    Example:

    ```python
    layer = keras_er.ERDense(64, density=0.1, seed=0, activation="relu")
    y = layer(keras.ops.ones((2, 32)))
    layer.mask_density  # about 0.1
    ```
    """

    def __init__(
        self,
        units,
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
        super().__init__(units, **kwargs)
