"""`EREinsumDense`: an EinsumDense layer with a fixed random (ER) mask."""

import keras

from keras_er.layers.masked_kernel import MaskedKernelMixin


def einsum_unit_axes(equation, kernel_rank):
    """``(in_axes, out_axes)`` of an EinsumDense kernel.

    A kernel letter that also indexes the input but not the output is
    contracted: an input-unit axis. A letter that indexes the output is an
    output-unit axis (also when it indexes the input, as a depthwise
    channel does). Letters in neither are summed out like a conv's spatial
    taps. A kernel without an output letter falls back to the last two
    dims.

    Args:
        equation: The EinsumDense equation, e.g. ``"abc,cde->abde"``.
        kernel_rank: Number of kernel dims.

    Returns:
        Two tuples of non-negative axes.

    Example:

    >>> einsum_unit_axes("abc,cde->abde", 3)
    ((0,), (1, 2))
    """
    inputs, output = equation.replace(" ", "").split("->")
    input_spec, kernel_spec = inputs.split(",")
    kernel_spec = kernel_spec.replace("...", "")
    in_axes = tuple(
        axis for axis, letter in enumerate(kernel_spec)
        if letter in input_spec and letter not in output
    )
    out_axes = tuple(
        axis for axis, letter in enumerate(kernel_spec) if letter in output
    )
    if len(kernel_spec) != kernel_rank or not out_axes:
        return ((kernel_rank - 2,), (kernel_rank - 1,))
    return in_axes, out_axes


@keras.saving.register_keras_serializable(package="keras_er")
class EREinsumDense(MaskedKernelMixin, keras.layers.EinsumDense):
    """Drop-in replacement of `keras.layers.EinsumDense` with a sparse kernel.

    The kernel can have any shape (the equation decides); the layer owns a
    non-trainable 0/1 ``mask`` of that shape and computes
    ``einsum(equation, x, kernel * mask)``. Entries outside the mask stay
    exactly zero through training.

    Units follow the equation (see `einsum_unit_axes`): for the query
    projection ``"abc,cde->abde"`` of a `MultiHeadAttention` with kernel
    ``(d_model, heads, key_dim)``, the input units are the ``d_model``
    features and the output units the ``heads * key_dim`` features. Flow
    preservation and ER use those; ERK uses every kernel dim.

    Args:
        equation: As in `keras.layers.EinsumDense`.
        output_shape: As in `keras.layers.EinsumDense`.
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
        **kwargs: Every other `keras.layers.EinsumDense` argument.

    Example:

    ```python
    proj = keras_er.EREinsumDense("abc,cde->abde", output_shape=(None, 4, 8),
                                  bias_axes="de", density=0.2, seed=0)
    y = proj(keras.ops.ones((2, 10, 32)))  # (2, 10, 4, 8)
    ```
    """

    def __init__(
        self,
        equation,
        output_shape,
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
        super().__init__(equation, output_shape, **kwargs)

    @classmethod
    def unit_axes_for(cls, layer):
        return einsum_unit_axes(layer.equation, len(layer._kernel.shape))
