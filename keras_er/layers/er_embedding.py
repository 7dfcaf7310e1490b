"""`EREmbedding`: an Embedding layer with a fixed random (Erdős–Rényi) mask."""

import keras
from keras import ops

from keras_er.layers.masked_kernel import MaskedKernelMixin


@keras.saving.register_keras_serializable(package="keras_er")
class EREmbedding(MaskedKernelMixin, keras.layers.Embedding):
    """Drop-in replacement of `keras.layers.Embedding` with a sparse table.

    The layer owns a non-trainable 0/1 variable ``mask`` with the shape of
    the embedding table, ``(input_dim, output_dim)``; token ``i`` is embedded
    as ``embeddings[i] * mask[i]``. Like every ER layer, the table is
    ``_kernel`` before masking and ``kernel`` (here also ``embeddings``)
    after, so the callbacks (IMP, RiGL, ...) prune and rewire it like any
    other kernel.

    The forward pass gathers the rows of the table and of the mask for the
    tokens of the batch and multiplies those, so a step costs no more than
    a lookup, whatever the vocabulary size, and the gradient stays a row
    gradient (``IndexedSlices`` on TensorFlow).

    Units for the layerwise ratios and flow preservation: tokens (rows) are
    the inputs and embedding features (columns) the outputs, so ER/ERK give
    the table a density that grows with ``1/input_dim + 1/output_dim``, and
    flow preservation keeps at least one feature for every token and one
    token for every feature. A lookup has no multiply-adds: the summary
    counts 0 FLOPs.

    Args:
        input_dim: As in `keras.layers.Embedding` (vocabulary size).
        output_dim: As in `keras.layers.Embedding`.
        density: Fraction of table entries kept, in ``(0, 1]``. Defaults to
            1.0 (a full mask, e.g. as the start of dense-to-sparse pruning).
        seed: Optional int seed of the mask drawn at build time.
        sampling: ``"bernoulli"`` or ``"exact"`` (see `ERDense`).
        flow: ``"addition"``, ``"rejection"`` or ``None`` (see `ERDense`).
        reparameterization: Optional `KernelReparameterization` (STR,
            edge-popup); the whole effective table is then computed before
            the lookup.
        mask_dtype: ``"bool"`` (default), ``"uint8"`` or ``"float32"``.
        **kwargs: Every other `keras.layers.Embedding` argument, except
            LoRA and quantization (call `keras_er.strip` first).

    Example:

    ```python
    layer = keras_er.EREmbedding(1000, 64, density=0.1, seed=0)
    vectors = layer(keras.ops.convert_to_tensor([[3, 14, 15]]))  # (1, 3, 64)
    ```
    """

    # The base layer has no bias; the shared mask code reads this one.
    bias = None

    def __init__(
        self,
        input_dim,
        output_dim,
        density=1.0,
        seed=None,
        sampling="bernoulli",
        flow="addition",
        reparameterization=None,
        mask_dtype="bool",
        **kwargs,
    ):
        for option in ("lora_rank", "quantization_config"):
            if kwargs.get(option) is not None:
                raise NotImplementedError(
                    f"EREmbedding does not support {option}: call "
                    "keras_er.strip(model) first to get a plain Embedding."
                )
        self._init_mask_options(
            density, seed, sampling, flow, reparameterization, mask_dtype,
        )
        super().__init__(input_dim, output_dim, **kwargs)

    def build(self, input_shape=None):
        # Keras' Embedding builds without an input shape (`build()`).
        super().build(input_shape)

    @property
    def _kernel(self):
        # The shared mask code calls the masked variable `_kernel`.
        return self._embeddings

    @property
    def embeddings(self):
        """The masked table (``_embeddings * mask``, or reparameterized)."""
        return self.kernel

    def call(self, inputs):
        if self.reparameterization is not None:
            return super().call(inputs)  # Looks up the effective table.
        if keras.backend.standardize_dtype(inputs.dtype) not in (
            "int32", "int64"
        ):
            inputs = ops.cast(inputs, "int32")
        mask = self._forward_mask()
        table = self._embeddings
        rows = ops.take(table, inputs, axis=0)
        keep = ops.take(mask, inputs, axis=0)
        outputs = ops.multiply(rows, ops.cast(keep, rows.dtype))
        return ops.cast(outputs, self.compute_dtype)
