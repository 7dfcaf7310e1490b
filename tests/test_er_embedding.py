"""`EREmbedding`, and how sparsify treats layers it cannot mask."""

import warnings

import keras
import numpy as np
import pytest

import keras_er
from keras_er.gradients import gradients
from keras_er.scores import snip_scores, synflow_scores
from tests.conftest import assert_rigl_rewires, to_numpy

VOCAB, DIM, LENGTH = 50, 8, 6


def token_data(n=64, seed=0):
    """Sequences of tokens, labelled by whether token 0..9 occurs most."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, VOCAB, (n, LENGTH))
    y = ((x < VOCAB // 2).sum(axis=1) > LENGTH // 2).astype("int64")
    return x.astype("int32"), y


def text_model():
    inputs = keras.Input((LENGTH,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, DIM)(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def test_lookup_equals_the_masked_table():
    layer = keras_er.EREmbedding(VOCAB, DIM, density=0.3, seed=0)
    x, _ = token_data(4)
    out = to_numpy(layer(x))
    table = to_numpy(layer._embeddings) * to_numpy(layer.mask)
    assert 0 < to_numpy(layer.mask).mean() < 1
    np.testing.assert_array_equal(out, table[x])
    np.testing.assert_array_equal(to_numpy(layer.embeddings), table)


def test_gradient_touches_only_looked_up_rows_inside_the_mask():
    layer = keras_er.EREmbedding(VOCAB, DIM, density=0.5, seed=0)
    x = np.array([[1, 3, 3, 7]], "int32")
    layer(x)
    table = keras.ops.convert_to_tensor(to_numpy(layer._embeddings))

    def loss(tensors):
        with keras.StatelessScope(state_mapping=[(layer._embeddings,
                                                  tensors[0])]):
            return keras.ops.sum(layer(x) ** 2)

    grad = gradients(loss, [table])[0]
    mask = to_numpy(layer.mask)
    rows = np.zeros(VOCAB, bool)
    rows[[1, 3, 7]] = True
    assert not grad[~rows].any()  # Rows never looked up.
    assert not grad[mask == 0].any()  # Entries outside the mask.
    assert grad[rows][mask[rows] == 1].all()


@pytest.mark.tf_only
def test_tensorflow_gradient_is_row_sparse():
    import tensorflow as tf

    layer = keras_er.EREmbedding(VOCAB, DIM, density=0.5, seed=0)
    x = np.array([[1, 3]], "int32")
    layer(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x))
    grad = tape.gradient(loss, layer._embeddings.value)
    assert isinstance(grad, tf.IndexedSlices)  # No dense (VOCAB, DIM) grad.


def test_sparsify_trains_and_keeps_masked_entries_at_zero():
    x, y = token_data(128)
    model = text_model()
    sparse = keras_er.sparsify(model, "erk", 0.3, seed=0)
    layer = sparse.layers[1]
    assert type(layer) is keras_er.EREmbedding
    assert keras_er.get_masks(sparse)[layer.name].shape == (VOCAB, DIM)
    sparse.compile(keras.optimizers.Adam(0.05),
                   keras.losses.SparseCategoricalCrossentropy(
                       from_logits=True))
    history = sparse.fit(x, y, batch_size=32, epochs=5, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    mask = to_numpy(layer.mask)
    assert not to_numpy(layer._embeddings)[mask == 0].any()
    # Flow preservation: every token keeps a feature, every feature a token.
    assert (mask.sum(axis=1) > 0).all() and (mask.sum(axis=0) > 0).all()


def test_summary_counts_no_flops_for_a_lookup():
    sparse = keras_er.sparsify(text_model(), "uniform", 0.5, seed=0)
    rows = {r["name"]: r for r in keras_er.summary(sparse, print_fn=None)}
    embedding = rows[sparse.layers[1].name]
    assert embedding["dense_flops"] == embedding["sparse_flops"] == 0
    assert embedding["params"] == VOCAB * DIM
    assert embedding["nonzeros"] == int(to_numpy(sparse.layers[1].mask).sum())
    # The plain model's rows read the table too.
    plain = keras_er.summary(text_model(), print_fn=None)
    assert plain[0]["nonzeros"] == VOCAB * DIM


def test_sparse_he_normal_keeps_the_table():
    model = text_model()
    sparse = keras_er.sparsify(model, "uniform", 0.5, seed=0,
                               init="sparse_he_normal")
    mask = to_numpy(sparse.layers[1].mask)
    np.testing.assert_array_equal(
        to_numpy(sparse.layers[1]._embeddings),
        to_numpy(model.layers[1].embeddings) * mask,
    )
    # The Dense kernel is redrawn.
    assert not np.allclose(to_numpy(sparse.layers[-1]._kernel),
                           to_numpy(model.layers[-1].kernel)
                           * to_numpy(sparse.layers[-1].mask))


def test_rigl_rewires_the_table():
    x, y = token_data(64)
    model = text_model()
    assert_rigl_rewires(model, x, y, [model.layers[1].name])


def test_scores_snip_works_and_synflow_explains():
    x, y = token_data(32)
    model = text_model()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    scores = snip_scores(model, (x, y))
    assert scores[model.layers[1].name].shape == (VOCAB, DIM)
    with pytest.raises(ValueError, match="SynFlow cannot score the "
                                         "Embedding"):
        synflow_scores(model)
    # Leaving the embedding out works.
    assert list(synflow_scores(model, layers=[model.layers[-1].name])) == [
        model.layers[-1].name]


def test_lora_and_quantization_point_to_strip():
    with pytest.raises(NotImplementedError, match="strip"):
        keras_er.EREmbedding(VOCAB, DIM, lora_rank=2)
    layer = keras_er.EREmbedding(VOCAB, DIM, density=0.5, seed=0)
    layer.build()
    with pytest.raises(ValueError, match="strip"):
        layer.quantize("int8")


class _RawMatrix(keras.layers.Layer):
    """A raw weight matrix, not declared maskable."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 3), name="w")

    def call(self, x):
        return keras.ops.matmul(x, self.w)


def test_layers_without_an_er_version_are_named_in_a_warning():
    inputs = keras.Input((LENGTH,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, DIM)(inputs)
    # The LSTMs inside a wrapper are masked where they sit (one unit per
    # kernel); the raw matrix of a custom layer that declares nothing stays
    # dense, named by its path.
    x = keras.layers.Bidirectional(keras.layers.LSTM(4), name="bi")(x)
    x = keras.layers.BatchNormalization()(x)
    x = _RawMatrix(name="raw")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.warns(UserWarning, match=r"'raw' \(_RawMatrix, 24 "
                                         r"weights\)"):
        sparse = keras_er.sparsify(model, "erk", 0.3, seed=0)
    assert sparse.sparsify_report["unmasked_layers"] == ["raw"]
    bi = sparse.get_layer("bi")
    assert type(bi) is keras.layers.Bidirectional
    assert type(bi.forward_layer) is keras_er.ERLSTM
    assert {
        f"bi/{direction}_lstm-{role}"
        for direction in ("forward", "backward")
        for role in ("kernel", "recurrent_kernel")
    } <= set(keras_er.get_masks(sparse))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # An explicit selection is a choice: no warning.
        keras_er.sparsify(model, "erk", 0.3, seed=0,
                          layers=lambda layer: True)
        # Nothing to warn about: BatchNorm's weights are vectors.
        keras_er.sparsify(text_model(), "erk", 0.3, seed=0)
    assert not [w for w in caught if "leaves these layers dense" in
                str(w.message)]


def test_saved_file_shrinks_with_density(tmp_path):
    inputs = keras.Input((LENGTH,), dtype="int32")
    x = keras.layers.Embedding(2000, 16)(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(x))
    sparse = keras_er.sparsify(model, "uniform", 0.1, seed=0)
    model.save(tmp_path / "dense.keras")
    sparse.save(tmp_path / "sparse.keras")
    dense_size = keras_er.gzipped_size(tmp_path / "dense.keras")
    sparse_size = keras_er.gzipped_size(tmp_path / "sparse.keras")
    # Values inside the mask (10 %) plus the mask's bits.
    assert sparse_size < 0.25 * dense_size
    loaded = keras.saving.load_model(tmp_path / "sparse.keras")
    x, _ = token_data(4)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(sparse(x)))
