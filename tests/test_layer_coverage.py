"""Every supported layer type: masking, training, saving, stripping, shapes.

One case per Keras layer keras_er can mask beyond Dense/Conv2D (those are in
test_er_layers.py). Each case is a tiny model, so the whole file runs in
well under a minute.
"""

import keras
import numpy as np
import pytest

import keras_er
from keras_er import masks as masks_lib
from keras_er import ratios
from keras_er.layers import KERAS_LAYER_FOR, is_er_composite, is_er_layer
from keras_er.mask_io import er_layers
from keras_er.model_walk import iter_maskable, kernel_shape
from tests.conftest import to_numpy


def _mha(**kwargs):
    return keras.layers.MultiHeadAttention(2, 4, **kwargs)


# name -> (plain layer factory, ER class, input shape without batch,
#          expected (n_in, n_out) of each kernel in forward order)
CASES = {
    "conv1d": (
        lambda: keras.layers.Conv1D(6, 3, padding="same"),
        keras_er.ERConv1D, (10, 4), [(4, 6)],
    ),
    "conv3d": (
        lambda: keras.layers.Conv3D(4, 3, padding="same"),
        keras_er.ERConv3D, (4, 4, 4, 3), [(3, 4)],
    ),
    "conv1d_transpose": (
        # Kernel (3, c_out=5, c_in=4).
        lambda: keras.layers.Conv1DTranspose(5, 3, strides=2, padding="same"),
        keras_er.ERConv1DTranspose, (6, 4), [(4, 5)],
    ),
    "conv2d_transpose": (
        # Kernel (3, 3, c_out=5, c_in=4).
        lambda: keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same"),
        keras_er.ERConv2DTranspose, (5, 5, 4), [(4, 5)],
    ),
    "conv3d_transpose": (
        # Kernel (3, 3, 3, c_out=4, c_in=3).
        lambda: keras.layers.Conv3DTranspose(4, 3, strides=2, padding="same"),
        keras_er.ERConv3DTranspose, (3, 3, 3, 3), [(3, 4)],
    ),
    "depthwise_conv1d": (
        lambda: keras.layers.DepthwiseConv1D(3, depth_multiplier=2,
                                             padding="same"),
        keras_er.ERDepthwiseConv1D, (8, 4), [(1, 8)],
    ),
    "depthwise_conv2d": (
        lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2,
                                             padding="same"),
        keras_er.ERDepthwiseConv2D, (6, 6, 4), [(1, 8)],
    ),
    "separable_conv1d": (
        lambda: keras.layers.SeparableConv1D(6, 3, depth_multiplier=2,
                                             padding="same"),
        keras_er.ERSeparableConv1D, (8, 4), [(1, 8), (8, 6)],
    ),
    "separable_conv2d": (
        lambda: keras.layers.SeparableConv2D(6, 3, depth_multiplier=2,
                                             padding="same"),
        keras_er.ERSeparableConv2D, (6, 6, 4), [(1, 8), (8, 6)],
    ),
    "einsum_dense": (
        lambda: keras.layers.EinsumDense("abc,cde->abde",
                                         output_shape=(None, 3, 4),
                                         bias_axes="de"),
        keras_er.EREinsumDense, (5, 8), [(8, 12)],
    ),
    "multi_head_attention": (
        _mha, keras_er.ERMultiHeadAttention, (5, 8), [(8, 8)] * 4,
    ),
    # Input and recurrent kernels, (n_in | units, gates * units).
    "simple_rnn": (
        lambda: keras.layers.SimpleRNN(5), keras_er.ERSimpleRNN, (4, 3),
        [(3, 5), (5, 5)],
    ),
    "lstm": (
        lambda: keras.layers.LSTM(5, return_sequences=True), keras_er.ERLSTM,
        (4, 3), [(3, 20), (5, 20)],
    ),
    # reset_after=True (default): a (2, 3 * units) bias, one row per kernel.
    "gru": (
        lambda: keras.layers.GRU(5, bias_initializer="random_normal"),
        keras_er.ERGRU, (4, 3), [(3, 15), (5, 15)],
    ),
    "gru_reset_before": (
        lambda: keras.layers.GRU(5, reset_after=False), keras_er.ERGRU,
        (4, 3), [(3, 15), (5, 15)],
    ),
    # Tokens are the input units, features the output units.
    "embedding": (
        lambda: keras.layers.Embedding(12, 6), keras_er.EREmbedding, (5,),
        [(12, 6)],
    ),
}


def apply(layer, x):
    # Self-attention for MultiHeadAttention, a plain call otherwise.
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return layer(x, x)
    return layer(x)


def plain_model(name):
    make, _, shape, _ = CASES[name]
    inputs = keras.Input(shape)
    return keras.Model(inputs, apply(make(), inputs))


def batch(name, n=4, seed=0):
    make, _, shape, _ = CASES[name]
    rng = np.random.default_rng(seed)
    layer = make()
    if isinstance(layer, keras.layers.Embedding):
        # Token ids (as floats: the layer casts them, like Keras' own).
        return rng.integers(0, layer.input_dim, (n,) + shape).astype(
            "float32"
        )
    return rng.normal(size=(n,) + shape).astype("float32")


def plain_config(er_layer):
    return {
        key: value for key, value in er_layer.get_config().items()
        if key not in type(er_layer).ER_CONFIG_KEYS
    }


def er_units(layer):
    """``{role: unit}`` of an ER layer (one role, None, for one kernel)."""
    if is_er_composite(layer):
        return dict(layer.er_units())
    return {None: layer}


def assert_zero_outside_masks(model):
    for layer in er_layers(model):
        kernel = to_numpy(layer._kernel)
        outside = to_numpy(layer.mask) == 0
        assert outside.any(), layer.name  # The check must mean something.
        assert np.all(kernel[outside] == 0), layer.name


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_equals_plain_layer_with_masked_kernel(name):
    make, er_class, _, _ = CASES[name]
    config = make().get_config()
    config.pop("name")
    seed_key = getattr(er_class, "SEED_KEY", "seed")
    layer = er_class.from_config({**config, "density": 0.3, seed_key: 0})
    x = batch(name)
    apply(layer, x)
    rng = np.random.default_rng(1)
    masked = {}
    for role, unit in er_units(layer).items():
        assert is_er_layer(unit)
        # A dense raw kernel (set behind the constraint's back): the forward
        # pass itself must apply the mask.
        dense = rng.normal(size=unit._kernel.shape).astype("float32")
        unit._kernel.assign(dense)
        mask = to_numpy(unit.mask)
        assert 0 < mask.mean() < 1
        masked[role] = dense * mask
    plain = KERAS_LAYER_FOR[er_class].from_config(plain_config(layer))
    apply(plain, x)
    if is_er_composite(layer):
        units = dict(layer.er_units())
        for role, kernel, bias, _, _ in er_class.plain_kernels(plain):
            kernel.assign(masked[role])
            if bias is not None:
                bias.assign(to_numpy(units[role].bias))
    else:
        biases = [] if layer.bias is None else [to_numpy(layer.bias)]
        plain.set_weights([masked[None]] + biases)
    np.testing.assert_allclose(
        to_numpy(apply(layer, x)), to_numpy(apply(plain, x)),
        rtol=1e-5, atol=1e-5,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_train_save_load_and_strip(name, tmp_path):
    _, er_class, _, expected = CASES[name]
    model = plain_model(name)
    paths = sorted(v.path for v in model.weights)
    sparse = keras_er.sparsify(model, "erk", 0.3, seed=0)
    layer = sparse.layers[1]
    # A MultiHeadAttention stays one: its projections are masked in place.
    sparse_class = (
        keras.layers.MultiHeadAttention if name == "multi_head_attention"
        else er_class
    )
    assert type(layer) is sparse_class
    # Variable paths are kept; masks are new variables beside the kernels.
    assert paths == sorted(
        v.path for v in sparse.weights if not v.path.endswith("mask")
    )
    assert len(er_layers(sparse)) == len(expected)
    x = batch(name, 6)
    y = np.random.default_rng(2).normal(
        size=to_numpy(sparse(x)).shape
    ).astype("float32")
    before = {u.name: to_numpy(u._kernel) for u in er_layers(sparse)}
    sparse.compile(keras.optimizers.Adam(1e-2), "mse", jit_compile=False)
    sparse.fit(x, y, batch_size=2, epochs=1, verbose=0)  # 3 Adam steps.
    assert_zero_outside_masks(sparse)
    for unit in er_layers(sparse):
        inside = to_numpy(unit.mask) == 1
        assert not np.allclose(to_numpy(unit._kernel)[inside],
                               before[unit.name][inside]), unit.name
    # .keras round trip, no custom_objects. Keras alone rebuilds the ER
    # layers a model holds; keras_er.load_model also the MultiHeadAttention
    # projections, which the attention layer rebuilds plain.
    path = tmp_path / "sparse.keras"
    sparse.save(path)
    expected = to_numpy(sparse(x))
    loaders = [keras_er.load_model]
    if name != "multi_head_attention":
        loaders.append(keras.saving.load_model)
    for load in loaders:
        loaded = load(path)
        assert type(loaded.layers[1]) is sparse_class
        np.testing.assert_array_equal(to_numpy(loaded(x)), expected)
        for key, mask in keras_er.get_masks(sparse).items():
            np.testing.assert_array_equal(
                keras_er.get_masks(loaded)[key], mask
            )
    # Strip: the plain Keras layer, equal outputs.
    plain = keras_er.strip(sparse)
    assert type(plain.layers[1]) is KERAS_LAYER_FOR[er_class]
    assert not any(is_er_layer(u) for u in iter_maskable(plain))
    np.testing.assert_allclose(to_numpy(plain(x)), expected,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_units_erk_er_and_flow_use_the_right_axes(name):
    expected = CASES[name][3]
    model = plain_model(name)
    shapes = [kernel_shape(u) for u in iter_maskable(model)]
    assert [(s.n_in, s.n_out) for s in shapes] == expected
    # ERK: every kernel dim, whatever the layout.
    erk = keras_er.layer_densities(model, "erk", 0.2)
    assert list(erk.values()) == pytest.approx(
        ratios.erk([tuple(s) for s in shapes], 0.2)
    )
    # ER: fan-in and fan-out units.
    er = keras_er.layer_densities(model, "er", 0.2)
    raw = [(n_in + n_out) / (n_in * n_out) for n_in, n_out in expected]
    free = [d for d in er.values() if d < 1.0]
    scaled = [d / r for d, r in zip(er.values(), raw) if d < 1.0]
    assert free and np.allclose(scaled, scaled[0])
    # Flow preservation at a tiny density leaves no unit dead.
    drawn, _ = masks_lib.draw_masks(shapes, [0.01] * len(shapes), seed=0)
    for shape, mask in zip(shapes, drawn):
        dead_in, dead_out = masks_lib.dead_units(mask, shape.axes)
        assert len(dead_in) == 0 and len(dead_out) == 0


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_flow_on_transposed_layouts(rank):
    rng = np.random.default_rng(0)
    taps = tuple(range(rank))
    # ConvNDTranspose (*k, c_out, c_in): the same repair as the
    # (*k, c_in, c_out) layout, transposed. About 6 kept entries of 35 units.
    density = 0.18 / 3**rank
    mask = (rng.random((3,) * rank + (7, 5)) < density).astype("float32")
    fixed, added = masks_lib.preserve_flow(
        mask, density, np.random.default_rng(1), axes=((-1,), (-2,))
    )
    reference, reference_added = masks_lib.preserve_flow(
        np.swapaxes(mask, -1, -2), density, np.random.default_rng(1)
    )
    np.testing.assert_array_equal(fixed, np.swapaxes(reference, -1, -2))
    assert added == reference_added > 0
    assert (fixed.sum(axis=taps + (rank + 1,)) > 0).all()  # every c_out fed
    assert (fixed.sum(axis=taps + (rank,)) > 0).all()  # every c_in feeds


@pytest.mark.parametrize("rank", [1, 2])
def test_flow_on_depthwise_layouts(rank):
    # Depthwise (*k, c_in, m): every output channel keeps a tap.
    mask = np.zeros((3,) * rank + (4, 2), "float32")
    fixed, added = masks_lib.preserve_flow(
        mask, 0.01, np.random.default_rng(0), axes=((), (-2, -1))
    )
    assert added == 8
    np.testing.assert_array_equal(fixed.sum(axis=tuple(range(rank))),
                                  np.ones((4, 2)))


@pytest.mark.parametrize("er_class", [
    keras_er.ERConv1DTranspose, keras_er.ERConv2DTranspose,
    keras_er.ERConv3DTranspose,
])
def test_standalone_transposed_layers_draw_flow_preserving_masks(er_class):
    rank = int(er_class.__name__[len("ERConv")])
    taps = tuple(range(rank))
    layer = er_class(6, 3, density=0.01, seed=0)
    layer.build((None,) + (4,) * rank + (5,))
    mask = to_numpy(layer.mask)
    assert mask.shape == (3,) * rank + (6, 5)  # (*k, c_out, c_in)
    assert (mask.sum(axis=taps + (rank + 1,)) > 0).all()
    assert (mask.sum(axis=taps + (rank,)) > 0).all()
    assert layer.flow_edges_added > 0


@pytest.mark.parametrize("er_class", [
    keras_er.ERDepthwiseConv1D, keras_er.ERDepthwiseConv2D,
])
def test_standalone_depthwise_layers_draw_flow_preserving_masks(er_class):
    rank = int(er_class.__name__[len("ERDepthwiseConv")])
    depthwise = er_class(3, depth_multiplier=2, density=0.01, seed=0)
    depthwise.build((None,) + (6,) * rank + (4,))
    mask = to_numpy(depthwise.mask)
    assert mask.shape == (3,) * rank + (4, 2)
    assert (mask.sum(axis=tuple(range(rank))) > 0).all()


@pytest.mark.parametrize("name", [
    "conv1d_transpose", "conv2d_transpose", "conv3d_transpose",
])
def test_summary_counts_transposed_flops_per_input_position(name):
    # A transposed conv applies its whole kernel once per input position
    # (its output has strides**rank times more positions).
    model = plain_model(name)
    shape = CASES[name][2]
    positions = int(np.prod(shape[:-1]))
    kernel = int(np.prod(kernel_shape(model.layers[1])))
    row = keras_er.summary(model, print_fn=None)[0]
    assert row["dense_flops"] == 2 * positions * kernel
    sparse = keras_er.sparsify(model, "uniform", 0.3, seed=0)
    row = keras_er.summary(sparse, print_fn=None)[0]
    nonzeros = int(to_numpy(sparse.layers[1].mask).sum())
    assert row["dense_flops"] == 2 * positions * kernel
    assert row["sparse_flops"] == 2 * positions * nonzeros


def test_multi_head_attention_with_gate_masks_every_projection():
    layer = keras_er.ERMultiHeadAttention(2, 4, use_gate=True, density=0.5,
                                          mask_seed=0)
    x = np.ones((1, 3, 8), "float32")
    layer(x, x)
    roles = [role for role, _ in layer.er_units()]
    assert roles == ["query", "key", "value", "gate", "attention_output"]
    assert all(is_er_layer(unit) for _, unit in layer.er_units())
    model = keras.Sequential([keras.Input((3, 8))])
    inputs = keras.Input((3, 8))
    model = keras.Model(inputs, _mha(use_gate=True)(inputs, inputs))
    plain = keras_er.strip(keras_er.sparsify(model, "uniform", 0.5, seed=0))
    assert type(plain.layers[1]) is keras.layers.MultiHeadAttention


def test_roles_left_out_stay_plain_and_strip_back():
    model = plain_model("multi_head_attention")
    mha = model.layers[1].name
    sparse = keras_er.sparsify(model, "uniform", 0.3, seed=0,
                               layers=rf"{mha}/(query|value)")
    layer = sparse.layers[1]
    kinds = {
        role: type(getattr(layer, f"_{role}_dense")).__name__
        for role in ("query", "key", "value", "output")
    }
    assert kinds == {
        "query": "EREinsumDense", "key": "EinsumDense",
        "value": "EREinsumDense", "output": "EinsumDense",
    }
    assert sorted(keras_er.get_masks(sparse)) == [f"{mha}/query",
                                                  f"{mha}/value"]
    # The dense roles keep the original weights.
    original = model.layers[1].key_dense
    np.testing.assert_array_equal(to_numpy(layer.key_dense.kernel),
                                  to_numpy(original.kernel))
    x = batch("multi_head_attention")
    np.testing.assert_allclose(to_numpy(sparse(x)),
                               to_numpy(keras_er.strip(sparse)(x)),
                               atol=1e-6)


@pytest.mark.parametrize("case, positions, taps", [
    ("separable_conv1d", 8, 3),
    ("separable_conv2d", 6 * 6, 3 * 3),
])
def test_set_masks_and_summary_name_each_kernel(case, positions, taps):
    model = plain_model(case)
    name = model.layers[1].name
    rows = keras_er.summary(model, print_fn=None)
    assert [r["name"] for r in rows[:-1]] == [f"{name}-depthwise",
                                               f"{name}-pointwise"]
    assert rows[-1]["dense_flops"] == 2 * positions * (taps * 4 * 2 + 8 * 6)
    sparse = keras_er.sparsify(model, "uniform", 0.5, seed=0)
    sparse_rows = keras_er.summary(sparse, print_fn=None)
    assert sparse_rows[-1]["dense_flops"] == rows[-1]["dense_flops"]
    masks = keras_er.get_masks(sparse)
    masks[f"{name}-pointwise"] = np.ones_like(masks[f"{name}-pointwise"])
    keras_er.set_masks(sparse, masks)
    assert keras_er.get_masks(sparse)[f"{name}-pointwise"].all()


def test_shared_layers_get_one_mask():
    conv = keras.layers.DepthwiseConv2D(3, padding="same")
    mha = _mha()
    image_a, image_b = keras.Input((6, 6, 2)), keras.Input((6, 6, 2))
    tokens = keras.Input((5, 8))
    merged = keras.layers.Add()([conv(image_a), conv(image_b)])
    attended = mha(mha(tokens, tokens), tokens)
    model = keras.Model([image_a, image_b, tokens],
                        [merged, attended])
    sparse = keras_er.sparsify(model, "uniform", 0.5, seed=0)
    names = list(keras_er.get_masks(sparse))
    assert len(names) == 1 + 4 and len(set(names)) == len(names)
    er_conv = [l for l in sparse.layers
               if isinstance(l, keras_er.ERDepthwiseConv2D)]
    er_mha = [l for l in sparse.layers
              if isinstance(l, keras.layers.MultiHeadAttention)
              and is_er_layer(l._query_dense)]
    assert len(er_conv) == 1 and len(er_mha) == 1
    assert len(er_conv[0]._inbound_nodes) == 2
    assert len(er_mha[0]._inbound_nodes) == 2
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(2, 6, 6, 2)), rng.normal(size=(2, 6, 6, 2)),
         rng.normal(size=(2, 5, 8))]
    for a, b in zip(sparse(x), keras_er.strip(sparse)(x)):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-6)


def test_nested_models_are_sparsified_recursively():
    inner = keras.Sequential([
        keras.Input((10, 4)),
        keras.layers.Conv1D(6, 3, padding="same"),
        keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 5),
                                 bias_axes="d"),
    ], name="inner")
    inputs = keras.Input((10, 4))
    outputs = keras.layers.Dense(2)(inner(inputs))
    model = keras.Model(inputs, outputs)
    sparse = keras_er.sparsify(model, "erk", 0.5, seed=0)
    nested = sparse.get_layer("inner")
    assert [type(l).__name__ for l in nested.layers] == ["ERConv1D",
                                                         "EREinsumDense"]
    assert len(keras_er.get_masks(sparse)) == 3


def test_str_on_multi_kernel_layers_survives_save_and_load(tmp_path):
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.SeparableConv2D(4, 3, padding="same")(inputs)
    x = keras.layers.Reshape((36, 4))(x)
    outputs = _mha()(x, x)
    sparse = keras_er.sparsify(keras.Model(inputs, outputs), "uniform", 0.5,
                               seed=0)
    keras_er.callbacks.STR(s_init=-1.0).prepare(sparse)
    assert all(unit.reparameterization is not None
               for unit in er_layers(sparse))
    path = tmp_path / "str.keras"
    sparse.save(path)
    loaded = keras_er.load_model(path)
    assert all(unit.reparameterization is not None
               for unit in er_layers(loaded))
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4))
    np.testing.assert_array_equal(to_numpy(sparse(x)), to_numpy(loaded(x)))


class CustomBlock(keras.layers.Layer):
    """A custom layer holding a list of convolutions and a BatchNorm."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.convs = [keras.layers.Conv2D(4, 3, padding="same"),
                      keras.layers.DepthwiseConv2D(3, padding="same")]
        self.norm = keras.layers.BatchNormalization()

    def call(self, x):
        for conv in self.convs:
            x = keras.ops.relu(conv(x))
        return self.norm(x)


class SubclassedNet(keras.Model):
    """Subclassed: custom layer, nested Sequential, a layer used twice."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stem = keras.layers.Conv2D(4, 3, padding="same")
        self.block = CustomBlock()
        self.sep = keras.layers.SeparableConv2D(8, 3)
        self.head = keras.Sequential([keras.layers.GlobalAveragePooling2D(),
                                      keras.layers.Dense(8)])
        self.shared = keras.layers.Dense(8)
        self.out = keras.layers.Dense(3)

    def call(self, x):
        x = self.head(self.sep(self.block(self.stem(x))))
        return self.out(self.shared(self.shared(x)))


def test_subclassed_model_is_converted_in_place(tmp_path):
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    y = np.array([0, 1, 2, 0])
    model = SubclassedNet()
    model(x)
    paths = sorted(v.path for v in model.weights)
    result = keras_er.sparsify(model, "erk", 0.3, seed=0, in_place=True)
    assert result is model
    assert isinstance(model.stem, keras_er.ERConv2D)
    assert [type(c) for c in model.block.convs] == [
        keras_er.ERConv2D, keras_er.ERDepthwiseConv2D]
    assert isinstance(model.sep, keras_er.ERSeparableConv2D)
    assert isinstance(model.head.layers[-1], keras_er.ERDense)
    assert isinstance(model.shared, keras_er.ERDense)
    assert len(keras_er.get_masks(model)) == 8
    # No stale variables of the replaced layers.
    assert len(model.weights) == len({id(w) for w in model.weights})
    assert sum(w.path.endswith("mask") for w in model.weights) == 8
    # Every variable keeps its path (the separable conv too).
    assert paths == sorted(
        w.path for w in model.weights if not w.path.endswith("mask")
    )
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert_zero_outside_masks(model)
    # Weights round trip: rebuild, convert (any seed), load.
    path = tmp_path / "net.weights.h5"
    model.save_weights(path)
    again = SubclassedNet()
    again(x)
    keras_er.sparsify(again, "erk", 0.3, seed=123, in_place=True)
    again.load_weights(path)
    expected = to_numpy(model(x))
    np.testing.assert_array_equal(to_numpy(again(x)), expected)
    # Strip in place: plain layers, equal outputs.
    keras_er.strip(model, in_place=True)
    assert type(model.stem) is keras.layers.Conv2D
    assert type(model.sep) is keras.layers.SeparableConv2D
    assert not any(is_er_layer(u) for u in iter_maskable(model))
    np.testing.assert_allclose(to_numpy(model(x)), expected, atol=1e-6)


def test_in_place_masks_layers_where_they_sit():
    class Hidden(keras.Model):
        """Uses a layer through a bound method only: nothing to reassign."""

        def __init__(self):
            super().__init__()
            self.proj = keras.layers.Dense(3)
            self.apply_proj = self.proj.__call__
            self.proj = None  # Still tracked by Keras.

        def call(self, x):
            return self.apply_proj(x)

    with pytest.raises(ValueError, match="not built"):
        keras_er.sparsify(SubclassedNet(), "erk", 0.3, seed=0, in_place=True)
    # A Functional model changes in place too: same object, same paths.
    model = plain_model("conv1d")
    paths = sorted(v.path for v in model.weights)
    sparse = keras_er.sparsify(model, "erk", 0.3, seed=0, in_place=True)
    assert sparse is model and is_er_layer(model.layers[1])
    assert paths == sorted(
        v.path for v in model.weights if not v.path.endswith("/mask")
    )
    # A layer reached only through a bound method is masked as well: the
    # layer object itself changes, nothing is reassigned.
    model = Hidden()
    x = np.ones((1, 4), "float32")
    model(x)
    keras_er.sparsify(model, "uniform", 0.5, seed=0, in_place=True)
    assert type(model.layers[0]) is keras_er.ERDense
    kernel = to_numpy(model.layers[0].kernel)
    np.testing.assert_allclose(to_numpy(model(x)), x @ kernel + to_numpy(
        model.layers[0].bias), rtol=1e-6)


@pytest.mark.tf_only
@pytest.mark.parametrize("name", sorted(CASES))
def test_saved_model_export_reproduces_outputs(name, tmp_path):
    tf = pytest.importorskip("tensorflow")
    sparse = keras_er.sparsify(plain_model(name), "erk", 0.3, seed=0)
    x = batch(name, 3)
    keras_er.export(sparse, tmp_path / "exported")
    # Keep the loaded object alive: its variables die with it.
    reloaded = tf.saved_model.load(str(tmp_path / "exported"))
    served = reloaded.serve(x)
    np.testing.assert_allclose(np.asarray(served), to_numpy(sparse(x)),
                               rtol=1e-5, atol=1e-5)
