"""Layers with several kernels, masked where they sit, paths unchanged.

SeparableConv1D/2D (depthwise and pointwise kernel), SimpleRNN/LSTM/GRU
(the cell's kernel and recurrent kernel) and custom layers declaring
several kernels get one mask per kernel, a new variable beside it
(``sep/depthwise_kernel_mask``); every Keras variable keeps its path, inside
wrappers and custom layers too. Each kernel is a unit of its own
(``"sep-depthwise"``, ``"lstm-recurrent_kernel"``, ``"two-w_in"``).
"""

import keras
import numpy as np
import pytest

import keras_er
from keras_er.layers import is_er_layer
from keras_er.mask_io import er_layers
from keras_er.model_walk import iter_maskable, unit_name
from tests.conftest import assert_rigl_rewires, to_numpy


@keras.saving.register_keras_serializable(package="keras_er_multi_tests")
class TwoMatrices(keras.layers.Layer):
    """``relu(x @ w_in) @ w_out + b``; declares both matrices maskable."""

    def __init__(self, hidden, units, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.units = units

    def build(self, input_shape):
        self.w_in = self.add_weight(
            shape=(input_shape[-1], self.hidden), name="w_in",
            initializer="glorot_uniform",
        )
        self.w_out = self.add_weight(
            shape=(self.hidden, self.units), name="w_out",
            initializer="glorot_uniform",
        )
        self.b = self.add_weight(shape=(self.units,), name="b",
                                 initializer="zeros")

    def call(self, x):
        hidden = keras.ops.relu(keras.ops.matmul(x, self.w_in))
        return keras.ops.matmul(hidden, self.w_out) + self.b

    def maskable_kernels(self):
        return {"w_in": ((0,), (1,)), "w_out": ((0,), (1,))}

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden,
                "units": self.units}


@keras.saving.register_keras_serializable(package="keras_er_multi_tests")
class SepBlock(keras.layers.Layer):
    """A custom block holding a SeparableConv2D."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sep = keras.layers.SeparableConv2D(4, 3, padding="same",
                                                name="sep")

    def call(self, x):
        return keras.ops.relu(self.sep(x))


@keras.saving.register_keras_serializable(package="keras_er_multi_tests")
class LSTMBlock(keras.layers.Layer):
    """A custom block holding an LSTM."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lstm = keras.layers.LSTM(4, name="lstm")

    def call(self, x):
        return self.lstm(x)


def _image_model(layer):
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.GlobalAveragePooling2D()(layer(inputs))
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(x))


def _sequence_model(layer, shape=(5, 3), flatten=False):
    inputs = keras.Input(shape)
    x = layer(inputs)
    if flatten:
        x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(x))


# name -> (model factory, expected unit names of the multi-kernel layer,
#          input shape)
CASES = {
    "separable_conv2d": (
        lambda: _image_model(keras.layers.SeparableConv2D(
            4, 3, depth_multiplier=2, padding="same", name="sep")),
        ["sep-depthwise", "sep-pointwise"], (6, 6, 3),
    ),
    "separable_conv1d": (
        lambda: _sequence_model(keras.layers.SeparableConv1D(
            4, 3, padding="same", name="sep"), flatten=True),
        ["sep-depthwise", "sep-pointwise"], (5, 3),
    ),
    "lstm": (
        lambda: _sequence_model(keras.layers.LSTM(4, name="lstm")),
        ["lstm-kernel", "lstm-recurrent_kernel"], (5, 3),
    ),
    "gru": (
        lambda: _sequence_model(keras.layers.GRU(4, name="gru")),
        ["gru-kernel", "gru-recurrent_kernel"], (5, 3),
    ),
    "simple_rnn": (
        lambda: _sequence_model(keras.layers.SimpleRNN(4, name="rnn")),
        ["rnn-kernel", "rnn-recurrent_kernel"], (5, 3),
    ),
    "bidirectional_lstm": (
        lambda: _sequence_model(keras.layers.Bidirectional(
            keras.layers.LSTM(4), name="bi")),
        ["bi/forward_lstm-kernel", "bi/forward_lstm-recurrent_kernel",
         "bi/backward_lstm-kernel", "bi/backward_lstm-recurrent_kernel"],
        (5, 3),
    ),
    "time_distributed_separable": (
        lambda: _sequence_model(keras.layers.TimeDistributed(
            keras.layers.SeparableConv1D(4, 2, padding="same", name="sep"),
            name="td"), shape=(3, 5, 3), flatten=True),
        ["td/sep-depthwise", "td/sep-pointwise"], (3, 5, 3),
    ),
    "separable_in_custom_layer": (
        lambda: _image_model(SepBlock(name="block")),
        ["block/sep-depthwise", "block/sep-pointwise"], (6, 6, 3),
    ),
    "lstm_in_custom_layer": (
        lambda: _sequence_model(LSTMBlock(name="block")),
        ["block/lstm-kernel", "block/lstm-recurrent_kernel"], (5, 3),
    ),
    "two_kernel_custom_layer": (
        lambda: _sequence_model(TwoMatrices(6, 3, name="two"), flatten=True),
        ["two-w_in", "two-w_out"], (5, 3),
    ),
}
# Keras' own clone (the copy `sparsify` masks) drops a wrapper's name from
# its sublayers' variable paths (`keras.models.clone_model` does the same):
# these are masked in place to compare paths with the original model.
IN_PLACE = {"bidirectional_lstm", "time_distributed_separable"}
# ER classes that Keras itself rebuilds from the config (held by the model
# or a Keras wrapper): plain `keras.saving.load_model` restores them too.
# Custom layers build their sublayers plain: `keras_er.load_model` masks
# them again.
PLAIN_LOADABLE = {
    "separable_conv2d", "separable_conv1d", "lstm", "gru", "simple_rnn",
    "bidirectional_lstm", "time_distributed_separable",
}


def _batch(shape, n=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n,) + shape).astype(
        "float32"
    )


def _paths(model):
    return sorted(v.path for v in model.weights)


def _assert_zero_outside(model):
    for unit in er_layers(model):
        outside = to_numpy(unit.mask) == 0
        assert outside.any(), unit_name(unit)  # Must mean something.
        assert not to_numpy(unit._kernel)[outside].any(), unit_name(unit)


@pytest.mark.parametrize("name", sorted(CASES))
def test_paths_kept_units_named_and_densities_from_the_ratio(name):
    make, units, _ = CASES[name]
    model = make()
    paths = _paths(model)
    in_place = name in IN_PLACE
    sparse = keras_er.sparsify(model, "uniform", 0.4, seed=0,
                               sampling="exact", flow=None,
                               in_place=in_place)
    # Every original variable keeps its path; the masks sit beside the
    # kernels, one per kernel.
    masks = [v.path for v in sparse.weights if v.path.endswith("mask")]
    assert paths == sorted(
        v.path for v in sparse.weights if not v.path.endswith("mask")
    )
    assert len(masks) == len(units) + 1  # + the Dense head's.
    kernels = {
        unit_name(u): u._kernel.path for u in er_layers(sparse)
    }
    for unit in units:
        assert kernels[unit] + "_mask" in masks, unit
    # Each kernel is a unit of its own, with the ratio's density.
    got = keras_er.get_masks(sparse)
    assert list(got) == units + ["out"]
    for unit in units:
        mask = got[unit]
        assert mask.sum() == max(1, round(0.4 * mask.size)), unit
    assert sparse.sparsify_report["unmasked_layers"] == []


def test_independent_masks_per_kernel_and_dict_ratio():
    model = CASES["separable_conv2d"][0]()
    ratio = {"sep-depthwise": 0.5, "sep-pointwise": 0.25, "out": 1.0}
    sparse = keras_er.sparsify(model, ratio, 0.5, seed=0,
                               sampling="exact", flow=None)
    masks = keras_er.get_masks(sparse)
    assert masks["sep-depthwise"].mean() == pytest.approx(0.5, abs=0.02)
    assert masks["sep-pointwise"].mean() == pytest.approx(0.25, abs=0.02)
    # Only the selected kernel changes with set_masks.
    sep = sparse.get_layer("sep")
    units = dict(sep.er_units())
    before = to_numpy(units["depthwise"].mask)
    keras_er.set_masks(sparse, {"sep-pointwise": np.ones_like(
        masks["sep-pointwise"])})
    np.testing.assert_array_equal(to_numpy(units["depthwise"].mask), before)
    assert to_numpy(units["pointwise"].mask).all()
    # `layers=` selects one kernel; the other stays without a mask.
    only = keras_er.sparsify(model, "uniform", 0.5, seed=0,
                             layers=["sep-pointwise"])
    assert list(keras_er.get_masks(only)) == ["sep-pointwise"]
    assert [r for r, _ in only.get_layer("sep").er_units()] == ["pointwise"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_keeps_zeros_save_load_and_strip(name, tmp_path):
    make, units, shape = CASES[name]
    model = make()
    paths = _paths(model)
    sparse = keras_er.sparsify(model, "uniform", 0.5, seed=0,
                               in_place=name in IN_PLACE)
    x = _batch(shape)
    y = np.random.default_rng(1).normal(size=(8, 2)).astype("float32")
    sparse.compile(keras.optimizers.Adam(0.05), "mse")
    before = {unit_name(u): to_numpy(u._kernel) for u in er_layers(sparse)}
    sparse.fit(x, y, batch_size=4, epochs=1, verbose=0)
    _assert_zero_outside(sparse)
    for unit in er_layers(sparse):  # Trained inside the masks.
        inside = to_numpy(unit.mask) == 1
        assert not np.allclose(to_numpy(unit._kernel)[inside],
                               before[unit_name(unit)][inside])
    expected = to_numpy(sparse(x))
    path = tmp_path / "multi.keras"
    sparse.save(path)
    loaders = [keras_er.load_model]
    if name in PLAIN_LOADABLE:
        loaders.append(keras.saving.load_model)
    for load in loaders:
        loaded = load(path)
        np.testing.assert_array_equal(to_numpy(loaded(x)), expected)
        masks = keras_er.get_masks(loaded)
        assert list(masks) == list(keras_er.get_masks(sparse))
        for key, mask in keras_er.get_masks(sparse).items():
            np.testing.assert_array_equal(masks[key], mask)
    # Strip: the plain classes, the original paths, equal outputs.
    plain = keras_er.strip(sparse, in_place=name in IN_PLACE)
    assert not any(is_er_layer(u) for u in iter_maskable(plain))
    assert _paths(plain) == paths
    for layer in plain._flatten_layers():
        assert not type(layer).__name__.startswith("ER"), layer
        assert "_er_kernel_units" not in vars(layer)
    np.testing.assert_allclose(to_numpy(plain(x)), expected, atol=1e-5)


def test_strip_in_place_restores_the_plain_classes():
    model = CASES["two_kernel_custom_layer"][0]()
    two = model.get_layer("two")
    keras_er.sparsify(model, "uniform", 0.5, seed=0, in_place=True)
    assert type(two) is not TwoMatrices and isinstance(two, TwoMatrices)
    assert two.__class__ is TwoMatrices  # Saved under its own name.
    assert sorted(v.path for v in two.weights) == [
        "two/b", "two/w_in", "two/w_in_mask", "two/w_out", "two/w_out_mask",
    ]
    x = _batch((5, 3))
    expected = to_numpy(model(x))
    keras_er.strip(model, in_place=True)
    assert type(two) is TwoMatrices
    assert sorted(v.path for v in two.weights) == ["two/b", "two/w_in",
                                                   "two/w_out"]
    np.testing.assert_allclose(to_numpy(model(x)), expected, atol=1e-6)


def test_er_layers_built_directly_keep_keras_paths():
    sep = keras_er.ERSeparableConv2D(4, 3, density={"depthwise": 0.5},
                                     seed=0, name="sep")
    sep(np.zeros((1, 5, 5, 2), "float32"))
    assert [v.path for v in sep.weights] == [
        "sep/depthwise_kernel", "sep/pointwise_kernel", "sep/bias",
        "sep/depthwise_kernel_mask",
    ]
    lstm = keras_er.ERLSTM(3, density=0.5, mask_seed=0, name="lstm")
    lstm(np.zeros((1, 4, 2), "float32"))
    assert [v.path for v in lstm.weights] == [
        "lstm/lstm_cell/kernel", "lstm/lstm_cell/recurrent_kernel",
        "lstm/lstm_cell/bias", "lstm/lstm_cell/kernel_mask",
        "lstm/lstm_cell/recurrent_kernel_mask",
    ]


# --------------------------------------------------------------- callbacks

def _callback_model():
    """SeparableConv2D, LSTM and a two-kernel custom layer in one model."""
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.SeparableConv2D(4, 3, padding="same", name="sep")(
        inputs)
    x = keras.layers.Reshape((16, 4))(x)
    x = keras.layers.LSTM(6, name="lstm")(x)
    outputs = TwoMatrices(8, 2, name="two")(x)
    return keras.Model(inputs, outputs)


MULTI_UNITS = ["sep-depthwise", "sep-pointwise", "lstm-kernel",
               "lstm-recurrent_kernel", "two-w_in", "two-w_out"]


def _classification(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4, 4, 3)).astype("float32")
    return x, (x[..., 0].sum(axis=(1, 2)) > 0).astype("int64")


def _compiled(density=0.6, **kwargs):
    sparse = keras_er.sparsify(_callback_model(), "uniform", density,
                               seed=0, **kwargs)
    assert list(keras_er.get_masks(sparse)) == MULTI_UNITS
    return sparse


def _compile(model, lr=0.01):
    model.compile(keras.optimizers.Adam(lr),
                  keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))


def test_magnitude_pruning_prunes_each_kernel():
    x, y = _classification()
    sparse = _compiled(0.8)
    _compile(sparse)
    before = keras_er.get_masks(sparse)
    callback = keras_er.callbacks.MagnitudePruning(
        keras_er.callbacks.schedules.ConstantSparsity(0.6, 0),
        scope="layerwise",
    )
    sparse.fit(x, y, batch_size=16, epochs=1, verbose=0,
               callbacks=[callback])
    after = keras_er.get_masks(sparse)
    for name in MULTI_UNITS:
        assert after[name].sum() < before[name].sum(), name
        assert not (after[name] > before[name]).any(), name
        assert after[name].mean() == pytest.approx(0.4, abs=0.12), name
    _assert_zero_outside(sparse)


def test_imp_prunes_each_kernel():
    x, y = _classification()
    sparse = _compiled(0.8)
    _compile(sparse)
    before = keras_er.get_masks(sparse)
    imp = keras_er.callbacks.IMP(0.4, prune_fraction=0.5,
                                 epochs_per_cycle=1, scope="layerwise")
    sparse.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[imp])
    after = keras_er.get_masks(sparse)
    for name in MULTI_UNITS:
        assert after[name].sum() < before[name].sum(), name
        assert not (after[name] > before[name]).any(), name
    _assert_zero_outside(sparse)


def test_rigl_rewires_each_kernel():
    x, y = _classification()
    assert_rigl_rewires(_callback_model(), x, y,
                        ["sep-depthwise", "lstm-kernel",
                         "lstm-recurrent_kernel", "two-w_in", "two-w_out"])


def test_set_rewires_each_kernel():
    x, y = _classification()
    sparse = _compiled(0.4, sampling="exact")
    _compile(sparse)
    before = keras_er.get_masks(sparse)
    callback = keras_er.callbacks.SET(update_every=2, total_steps=8)
    sparse.fit(x, y, batch_size=16, epochs=2, verbose=0,
               callbacks=[callback])
    after = keras_er.get_masks(sparse)
    for name in ["lstm-kernel", "lstm-recurrent_kernel", "two-w_in"]:
        assert (before[name] != after[name]).any(), name
        assert before[name].sum() == after[name].sum(), name
    _assert_zero_outside(sparse)


def test_str_installs_on_each_kernel_saves_and_folds(tmp_path):
    x, y = _classification()
    sparse = _compiled(0.6)
    callback = keras_er.callbacks.STR(s_init=-3.0)
    callback.prepare(sparse)
    units = er_layers(sparse)
    assert all(u.reparameterization is not None for u in units)
    # The threshold variables sit beside each kernel.
    paths = {v.path for v in sparse.weights}
    assert "sep/depthwise_kernel_str_s" in paths
    assert "lstm/lstm_cell/recurrent_kernel_str_s" in paths
    assert "two/w_out_str_s" in paths
    path = tmp_path / "str.keras"
    sparse.save(path)
    loaded = keras_er.load_model(path)
    assert all(u.reparameterization is not None for u in er_layers(loaded))
    np.testing.assert_allclose(to_numpy(loaded(x[:4])),
                               to_numpy(sparse(x[:4])), atol=1e-6)
    before = keras_er.get_masks(sparse)
    _compile(sparse)
    sparse.fit(x, y, batch_size=32, epochs=1, verbose=0,
               callbacks=[callback])
    # Folded at the end: plain masks again, inside the ER masks.
    assert all(u.reparameterization is None for u in er_layers(sparse))
    after = keras_er.get_masks(sparse)
    assert sum(after[n].sum() for n in MULTI_UNITS) < sum(
        before[n].sum() for n in MULTI_UNITS
    )
    for name in MULTI_UNITS:
        assert not (after[name] > before[name]).any(), name
    _assert_zero_outside(sparse)


def test_edge_popup_selects_inside_each_kernel():
    x, y = _classification()
    sparse = _compiled(0.6)
    keras_er.callbacks.EdgePopup.prepare(sparse, seed=0)
    units = er_layers(sparse)
    assert all(u.reparameterization is not None for u in units)
    kernels = {unit_name(u): to_numpy(u._kernel) for u in units}
    before = keras_er.get_masks(sparse)
    _compile(sparse)
    sparse.fit(x, y, batch_size=32, epochs=1, verbose=0,
               callbacks=[keras_er.callbacks.EdgePopup(0.3)])
    after = keras_er.get_masks(sparse)
    for name in MULTI_UNITS:
        assert not (after[name] > before[name]).any(), name
        assert after[name].sum() < before[name].sum(), name
    for unit in er_layers(sparse):  # Weights stay fixed: scores learn.
        inside = to_numpy(unit.mask) == 1
        np.testing.assert_array_equal(
            to_numpy(unit._kernel)[inside], kernels[unit_name(unit)][inside]
        )
