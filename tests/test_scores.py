"""SNIP / SynFlow scores, borrowed ratios, `from_model`, `prune_at_init`."""

import keras
import numpy as np
import pytest

import keras_er
from keras_er import scores
from tests.conftest import cnn, mlp, to_numpy


def two_layer(output_activation=None, bias=True):
    """x (3) -> Dense(4, relu) -> Dense(2) with known random weights."""
    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(4, activation="relu", name="a"),
        keras.layers.Dense(2, activation=output_activation, name="b"),
    ])
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=s).astype("float32")
               for s in [(3, 4), (4,), (4, 2), (2,)]]
    if not bias:
        weights[1][:] = 0
        weights[3][:] = 0
    model.set_weights(weights)
    return model, weights


def batch(n=6):
    rng = np.random.default_rng(1)
    return (rng.normal(size=(n, 3)).astype("float32"),
            rng.normal(size=(n, 2)).astype("float32"))


def hand_snip(weights, x, y):
    """|w * dL/dw| for L = mean((out - y)^2), by hand."""
    w1, b1, w2, b2 = [w.astype(np.float64) for w in weights]
    z = x @ w1 + b1
    h = np.maximum(z, 0)
    out = h @ w2 + b2
    d_out = 2 * (out - y) / out.size
    g2 = h.T @ d_out
    g1 = x.T @ ((d_out @ w2.T) * (z > 0))
    return np.abs(w1 * g1), np.abs(w2 * g2)


def hand_synflow(weights, mask1=1.0, mask2=1.0):
    """|w * dR/dw|, R = sum(|b2| + (|b1| + 1 |W1|) |W2|), with masks."""
    a1 = np.abs(weights[0]).astype(np.float64) * mask1
    a2 = np.abs(weights[2]).astype(np.float64) * mask2
    h = np.ones(3) @ a1 + np.abs(weights[1])  # every unit positive: relu = id
    return a1 * a2.sum(axis=1)[None, :], a2 * h[:, None]


def top_k(score_list, k, alive):
    flat = np.concatenate([s.ravel() for s in score_list])
    flat = np.where(np.concatenate([a.ravel() for a in alive]), flat, -np.inf)
    keep = np.zeros(flat.size, bool)
    keep[np.argsort(-flat)[:k]] = True
    sizes = np.cumsum([0] + [s.size for s in score_list])
    return [keep[i:j].reshape(s.shape)
            for i, j, s in zip(sizes[:-1], sizes[1:], score_list)]


# ------------------------------------------------------------------ SNIP


def test_snip_scores_match_hand_computation():
    model, weights = two_layer()
    x, y = batch()
    expected = hand_snip(weights, x, y)
    got = scores.snip_scores(model, (x, y), loss="mse")
    np.testing.assert_allclose(got["a"], expected[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got["b"], expected[1], rtol=1e-5, atol=1e-7)
    # The compiled loss is the default.
    model.compile(loss="mse")
    got = scores.snip_scores(model, (x, y))
    np.testing.assert_allclose(got["a"], expected[0], rtol=1e-5, atol=1e-7)
    # One-shot mask: the global top half of the hand scores.
    masks = scores.snip_masks(model, 0.5, (x, y))
    k = int(round(0.5 * 20))
    want = top_k(list(expected), k, [np.ones((3, 4)), np.ones((4, 2))])
    assert sum(m.sum() for m in masks.values()) == k
    np.testing.assert_array_equal(masks["a"], want[0])
    np.testing.assert_array_equal(masks["b"], want[1])


def test_snip_leaves_model_untouched_and_respects_er_mask():
    model = keras_er.sparsify(cnn(), "erk", 0.3, seed=0)
    before = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 12, 12, 3)).astype("float32")
    y = rng.integers(0, 4, size=8)
    got = scores.snip_scores(
        model, (x, y), training=True,  # BatchNorm in training mode
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    for w, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, b)  # moving stats included
    for name, mask in keras_er.get_masks(model).items():
        assert np.all(got[name][mask == 0] == 0)
        assert np.count_nonzero(got[name]) > 0


# --------------------------------------------------------------- SynFlow


def test_synflow_scores_match_hand_computation():
    # Softmax output and nonzero biases: the clone drops the softmax (else
    # R = 1 and every gradient is 0) and uses |b|.
    model, weights = two_layer(output_activation="softmax")
    expected = hand_synflow(weights)
    got = scores.synflow_scores(model)
    np.testing.assert_allclose(got["a"], expected[0], rtol=1e-6)
    np.testing.assert_allclose(got["b"], expected[1], rtol=1e-6)
    # Scores of a pruned network.
    m1 = (np.arange(12).reshape(3, 4) % 3 != 0).astype("float32")
    expected = hand_synflow(weights, mask1=m1)
    got = scores.synflow_scores(model, masks={"a": m1})
    np.testing.assert_allclose(got["a"], expected[0], rtol=1e-6)
    np.testing.assert_allclose(got["b"], expected[1], rtol=1e-6)
    # The model itself is unchanged (signs, softmax).
    for w, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(w, b)
    assert model.layers[-1].activation.__name__ == "softmax"


def test_iterative_synflow_matches_numpy_reference():
    model, weights = two_layer()
    density, rounds = 0.3, 5
    alive = [np.ones((3, 4), bool), np.ones((4, 2), bool)]
    for r in range(1, rounds + 1):
        s = hand_synflow(weights, alive[0], alive[1])
        alive = top_k(list(s), int(round(density ** (r / rounds) * 20)), alive)
    got = scores.synflow_masks(model, density, rounds=rounds)
    np.testing.assert_array_equal(got["a"], alive[0])
    np.testing.assert_array_equal(got["b"], alive[1])
    assert sum(m.sum() for m in got.values()) == 6


def test_synflow_on_cnn_with_batchnorm():
    model = cnn()
    before = [w.copy() for w in model.get_weights()]
    masks = scores.synflow_masks(model, 0.1, rounds=20)
    total = sum(m.size for m in masks.values())
    assert sum(m.sum() for m in masks.values()) == round(0.1 * total)
    assert all(m.sum() > 0 for m in masks.values())  # no layer collapse
    for w, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, b)


# ------------------------------------------------------- borrowed ratios


def test_layer_densities_snip_and_synflow_hit_the_density():
    model = mlp()
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(32, 20)).astype("float32"),
            rng.integers(0, 3, size=32))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    sizes = {"dense": 320, "dense_1": 192, "dense_2": 36}
    for ratio, options in (("snip", {"data": data, "loss": loss}),
                           ("synflow", {"rounds": 10})):
        got = keras_er.layer_densities(model, ratio, 0.2, **options)
        assert list(got) == list(sizes)
        assert all(0 < d <= 1 for d in got.values())
        kept = sum(got[n] * sizes[n] for n in sizes)
        assert kept == pytest.approx(round(0.2 * 548))
        # Borrowed, not uniform: the method distributes the budget.
        assert len({round(d, 6) for d in got.values()}) > 1
    # dense_layers: the last layer kept dense, the rest share the budget.
    got = keras_er.layer_densities(model, "snip", 0.3, dense_layers="last",
                                   data=data, loss=loss)
    assert got["dense_2"] == 1.0
    assert sum(got[n] * sizes[n] for n in sizes) == pytest.approx(
        0.3 * 548, abs=1
    )


def test_sparsify_with_borrowed_ratio_hits_overall_density():
    model = mlp()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(32, 20)).astype("float32"),
            rng.integers(0, 3, size=32))
    want = keras_er.layer_densities(model, "snip", 0.25, data=data)
    sparse = keras_er.sparsify(model, ratio="snip", density=0.25, data=data,
                               sampling="exact", flow=None, seed=0)
    masks = keras_er.get_masks(sparse)
    total = sum(m.size for m in masks.values())
    assert sum(m.sum() for m in masks.values()) / total == pytest.approx(
        0.25, abs=len(masks) / total
    )
    for name, mask in masks.items():
        assert mask.mean() == pytest.approx(want[name], abs=1 / mask.size)
    assert sparse.sparsify_report["ratio"] == "snip"
    # Random masks with SNIP's densities, not SNIP's own masks.
    snip = scores.snip_masks(model, 0.25, data, per_layer=1)
    assert any(not np.array_equal(masks[n], snip[n]) for n in masks)


def test_ratios_from_model_reads_nonzeros():
    model = mlp()
    rng = np.random.default_rng(0)
    for layer in model.layers:
        kernel = to_numpy(layer.kernel)
        kernel[rng.random(kernel.shape) < 0.7] = 0
        layer.kernel.assign(kernel)
    got = keras_er.ratios.from_model(model)
    for layer in model.layers:
        assert got[layer.name] == np.count_nonzero(
            to_numpy(layer.kernel)) / to_numpy(layer.kernel).size
    # From an ER model: the effective kernel counts.
    sparse = keras_er.sparsify(mlp(), "erk", 0.2, seed=0, flow=None)
    got = keras_er.ratios.from_model(sparse)
    for name, mask in keras_er.get_masks(sparse).items():
        assert got[name] == pytest.approx(mask.mean())
    # Usable as ratio= for a fresh model whose names differ ("ER IMP").
    fresh = mlp()
    borrowed = keras_er.ratios.from_model(model, like=fresh)
    assert set(borrowed) == {layer.name for layer in fresh.layers}
    er_imp = keras_er.sparsify(fresh, ratio=borrowed, sampling="exact",
                               flow=None, seed=0)
    for name, mask in keras_er.get_masks(er_imp).items():
        assert mask.mean() == pytest.approx(borrowed[name], abs=1 / mask.size)
    with pytest.raises(ValueError, match="same kernel shapes"):
        keras_er.ratios.from_model(model, like=mlp(hidden=(8, 12)))


# ---------------------------------------------------------- prune_at_init


def test_prune_at_init_uses_the_method_masks():
    model, weights = two_layer()
    x, y = batch()
    pruned = keras_er.prune_at_init(model, "snip", 0.5, data=(x, y),
                                    loss="mse")
    want = scores.snip_masks(model, 0.5, (x, y), loss="mse")
    masks = keras_er.get_masks(pruned)
    for name, index in (("a", 0), ("b", 2)):
        np.testing.assert_array_equal(masks[name], want[name])
        np.testing.assert_array_equal(
            to_numpy(pruned.get_layer(name).kernel), weights[index] * want[name]
        )
    assert pruned.sparsify_report["method"] == "prune_at_init:snip"
    # The input model is untouched and still dense.
    for w, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(w, b)
    pruned = keras_er.prune_at_init(model, "synflow", 0.3, rounds=5)
    want = scores.synflow_masks(model, 0.3, rounds=5)
    for name, mask in keras_er.get_masks(pruned).items():
        np.testing.assert_array_equal(mask, want[name])
    stripped = keras_er.strip(pruned)
    np.testing.assert_allclose(to_numpy(stripped(x)), to_numpy(pruned(x)),
                               rtol=1e-6)


# ------------------------------------------------------------ bad input


def test_bad_arguments():
    model, _ = two_layer()
    x, y = batch()
    with pytest.raises(ValueError, match="data=\\(x, y\\)"):
        keras_er.layer_densities(model, "snip", 0.5)
    with pytest.raises(ValueError, match="data=\\(x, y\\)"):
        keras_er.sparsify(model, "snip", 0.5)
    with pytest.raises(ValueError, match="tuple"):
        scores.snip_scores(model, x, loss="mse")
    with pytest.raises(ValueError, match="needs a loss"):
        scores.snip_scores(model, (x, y))
    with pytest.raises(ValueError, match="Unknown pruning method"):
        keras_er.prune_at_init(model, "grasp", 0.5)
    with pytest.raises(ValueError, match="rounds"):
        scores.synflow_masks(model, 0.5, rounds=0)
    with pytest.raises(ValueError, match="density"):
        scores.synflow_masks(model, 1.5)
    with pytest.raises(ValueError, match="already has keras_er layers"):
        keras_er.prune_at_init(keras_er.sparsify(model, "er", 0.5, seed=0),
                               "synflow", 0.5)
    no_weights = keras.Sequential([keras.Input((3,)), keras.layers.ReLU()])
    with pytest.raises(ValueError, match="no maskable layer"):
        scores.synflow_scores(no_weights)
    inputs = keras.Input((None, 3))
    unknown = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="input_shape"):
        scores.synflow_scores(unknown)
    got = scores.synflow_scores(unknown, input_shape=(4, 3))
    assert got[unknown.layers[-1].name].shape == (3, 2)
