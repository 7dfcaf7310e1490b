"""`ERMultiHeadAttention`: multi-head attention with ER-masked projections."""

import keras

from keras_er.layers.composite import MaskedCompositeMixin
from keras_er.layers.er_einsum_dense import EREinsumDense, einsum_unit_axes

# Role -> attribute of the Keras layer holding that projection.
_PROJECTIONS = (
    ("query", "_query_dense"),
    ("key", "_key_dense"),
    ("value", "_value_dense"),
    ("gate", "_gate_dense"),
    ("attention_output", "_output_dense"),
)


@keras.saving.register_keras_serializable(package="keras_er")
class ERMultiHeadAttention(
    MaskedCompositeMixin, keras.layers.MultiHeadAttention
):
    """Drop-in replacement of `keras.layers.MultiHeadAttention`, sparse.

    Each projection (roles ``"query"``, ``"key"``, ``"value"``,
    ``"attention_output"``, and ``"gate"`` with ``use_gate=True``) is an
    `EREinsumDense` sublayer named ``"<name>-<role>"`` with its own mask;
    the attention computation itself is Keras'. The ratio methods,
    `keras_er.get_masks`, `keras_er.summary` and the callbacks count each
    projection as its own maskable tensor. Its units are features: the query
    kernel ``(d_model, heads, key_dim)`` connects ``d_model`` inputs to
    ``heads * key_dim`` outputs (ER uses those; ERK all three dims), and
    flow preservation keeps every input feature and every head feature
    connected.

    Args:
        num_heads: As in `keras.layers.MultiHeadAttention`.
        key_dim: As in `keras.layers.MultiHeadAttention`.
        density: Fraction of entries kept in every projection, or a dict
            ``{role: p}``; a role missing from the dict stays a dense, plain
            `EinsumDense`. Defaults to 1.0.
        mask_seed: Optional int seed of the masks drawn at build time (each
            role draws from its own stream). ``seed`` stays Keras' dropout
            seed.
        sampling: ``"bernoulli"`` or ``"exact"``.
        flow: ``"addition"``, ``"rejection"`` or ``None``.
        reparameterization: Optional dict ``{role: serialized
            KernelReparameterization}`` (written by `get_config`).
        mask_dtype: dtype of the mask variable: ``"bool"`` (default)
            or ``"uint8"`` (one byte per entry), or ``"float32"`` (four);
            the forward pass casts it to the kernel's dtype.
        **kwargs: Every other `keras.layers.MultiHeadAttention` argument.

    Example:

    ```python
    mha = keras_er.ERMultiHeadAttention(num_heads=2, key_dim=8, density=0.2,
                                        mask_seed=0)
    x = keras.ops.ones((1, 5, 16))
    y = mha(x, x)                             # (1, 5, 16)
    [name for name, _ in mha.er_units()]      # query, key, value, ...
    ```
    """

    ROLES = tuple(role for role, _ in _PROJECTIONS)
    SEED_KEY = "mask_seed"

    def __init__(
        self,
        num_heads,
        key_dim,
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
        super().__init__(num_heads, key_dim, **kwargs)

    def build(self, query_shape, value_shape, key_shape=None):
        # Keras builds the projections (the equations depend on the input
        # ranks); each is then swapped for its masked twin, same config.
        super().build(query_shape, value_shape, key_shape)
        for role, attribute in _PROJECTIONS:
            plain = getattr(self, attribute, None)
            if plain is None:
                continue
            config = plain.get_config()
            config.pop("name")
            unit = self._make_unit(
                role, EREinsumDense, keras.layers.EinsumDense, config
            )
            shape = tuple(plain.get_build_config()["input_shape"])
            if role == "attention_output":
                # Keras builds it on (batch, None, heads, dim); keep the
                # query's known dims (summary FLOPs need them).
                rank = len(query_shape) - 1
                shape = tuple(query_shape[:rank]) + shape[rank:]
            unit.build(shape)
            self._tracker.untrack(plain)
            setattr(self, attribute, unit)

    def er_units(self):
        units = []
        for role, attribute in _PROJECTIONS:
            unit = getattr(self, attribute, None)
            if unit is not None:
                units.append((role, unit))
        return units

    @classmethod
    def plain_kernels(cls, layer):
        kernels = []
        for role, attribute in _PROJECTIONS:
            unit = getattr(layer, attribute, None)
            if unit is None:
                continue
            axes = einsum_unit_axes(unit.equation, len(unit._kernel.shape))
            kernels.append((role, unit._kernel, unit.bias, axes, unit))
        return kernels

    def get_config(self):
        config = super().get_config()
        config.update(self._composite_config())
        return config
