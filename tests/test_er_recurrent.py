"""`ERSimpleRNN`, `ERLSTM`, `ERGRU`: masked input and recurrent kernels."""

import keras
import numpy as np
import pytest

import keras_er
from keras_er.mask_io import er_layers
from tests.conftest import assert_rigl_rewires, to_numpy

STEPS, FEATURES, UNITS = 6, 4, 8


def sequences(n=96, seed=0):
    """Sequences labelled by the sign of the sum of their first feature."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, STEPS, FEATURES)).astype("float32")
    return x, (x[:, :, 0].sum(axis=1) > 0).astype("int64")


def recurrent_model(layer):
    inputs = keras.Input((STEPS, FEATURES))
    return keras.Model(inputs, keras.layers.Dense(2)(layer(inputs)))


@pytest.mark.parametrize("make", [
    lambda: keras.layers.SimpleRNN(UNITS),
    lambda: keras.layers.LSTM(UNITS),
    lambda: keras.layers.GRU(UNITS),
], ids=["simple_rnn", "lstm", "gru"])
def test_sparsified_rnn_learns_with_both_kernels_sparse(make):
    x, y = sequences()
    sparse = keras_er.sparsify(recurrent_model(make()), "erk", 0.3, seed=0)
    rnn = sparse.layers[1]
    assert [role for role, _ in rnn.er_units()] == ["kernel",
                                                    "recurrent_kernel"]
    sparse.compile(keras.optimizers.Adam(0.02),
                   keras.losses.SparseCategoricalCrossentropy(
                       from_logits=True))
    history = sparse.fit(x, y, batch_size=32, epochs=6, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    for _, unit in rnn.er_units():
        mask = to_numpy(unit.mask)
        assert 0 < mask.mean() < 1
        assert not to_numpy(unit._kernel)[mask == 0].any(), unit.name


def test_summary_counts_the_kernels_once_per_time_step():
    model = recurrent_model(keras.layers.LSTM(UNITS))
    rows = keras_er.summary(model, print_fn=None)
    assert [r["name"] for r in rows[:2]] == ["lstm-kernel",
                                              "lstm-recurrent_kernel"]
    assert rows[0]["dense_flops"] == 2 * STEPS * FEATURES * 4 * UNITS
    assert rows[1]["dense_flops"] == 2 * STEPS * UNITS * 4 * UNITS
    sparse = keras_er.sparsify(model, "uniform", 0.5, seed=0)
    rows = keras_er.summary(sparse, print_fn=None)
    nonzeros = int(to_numpy(er_layers(sparse)[0].mask).sum())
    assert rows[0]["sparse_flops"] == 2 * STEPS * nonzeros
    # Variable-length sequences: the FLOPs per example are unknown.
    inputs = keras.Input((None, FEATURES))
    variable = keras.Model(inputs, keras.layers.GRU(UNITS)(inputs))
    assert keras_er.summary(variable, print_fn=None)[0]["dense_flops"] is None


def test_biases_keep_keras_layout_and_initialization():
    lstm = keras_er.ERLSTM(UNITS, density=0.5, mask_seed=0)
    lstm(np.zeros((1, STEPS, FEATURES), "float32"))
    bias = to_numpy(lstm.cell.bias)  # unit_forget_bias: ones for gate f.
    np.testing.assert_array_equal(bias[UNITS:2 * UNITS], 1.0)
    assert not bias[:UNITS].any() and not bias[2 * UNITS:].any()
    gru = keras_er.ERGRU(UNITS, density=0.5, mask_seed=0,
                         bias_initializer="random_normal")
    gru(np.zeros((1, STEPS, FEATURES), "float32"))
    units = dict(gru.er_units())
    # Keras' own (2, 3 * units) bias variable, read by the input unit.
    assert tuple(gru.cell.bias.shape) == (2, 3 * UNITS)
    assert units["kernel"].bias is gru.cell.bias
    assert units["recurrent_kernel"].bias is None
    assert [v.path for v in gru.weights] == [
        f"{gru.name}/gru_cell/{name}" for name in (
            "kernel", "recurrent_kernel", "bias", "kernel_mask",
            "recurrent_kernel_mask",
        )
    ]


def test_density_dict_leaves_a_role_dense_and_saves(tmp_path):
    layer = keras_er.ERGRU(UNITS, density={"recurrent_kernel": 0.2},
                           mask_seed=0, return_sequences=True)
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), layer])
    units = dict(layer.er_units())
    assert list(units) == ["recurrent_kernel"]  # No mask on "kernel".
    assert not any(v.path.endswith("/kernel_mask") for v in layer.weights)
    assert list(keras_er.get_masks(model)) == [f"{layer.name}-recurrent_kernel"]
    path = tmp_path / "gru.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x, _ = sequences(4)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))
    np.testing.assert_array_equal(
        keras_er.get_masks(loaded)[f"{layer.name}-recurrent_kernel"],
        keras_er.get_masks(model)[f"{layer.name}-recurrent_kernel"],
    )


def test_rigl_rewires_both_kernels():
    x, y = sequences(64)
    assert_rigl_rewires(recurrent_model(keras.layers.LSTM(UNITS)), x, y,
                        ["lstm-kernel", "lstm-recurrent_kernel"])


@pytest.mark.parametrize("er_class", [
    keras_er.ERSimpleRNN, keras_er.ERLSTM, keras_er.ERGRU,
])
def test_kernels_are_masked_once_per_sequence(er_class, monkeypatch):
    from keras_er.layers.masked_kernel import MaskedKernelMixin

    reads = []
    forward_mask = MaskedKernelMixin._forward_mask

    def counting(self):
        reads.append(self.name)
        return forward_mask(self)

    layer = er_class(UNITS, density=0.5, mask_seed=0)
    x, _ = sequences(2)
    expected = to_numpy(layer(x))
    monkeypatch.setattr(MaskedKernelMixin, "_forward_mask", counting)
    np.testing.assert_array_equal(to_numpy(layer(x)), expected)
    # One read per kernel for all STEPS time steps, not one per step.
    assert sorted(reads) == sorted(unit.name for _, unit in layer.er_units())
    assert layer.cell._sequence_weights is None  # Released after the call.
