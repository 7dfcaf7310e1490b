"""sparsify and layer_densities on Sequential, Functional and nested models."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_er
from keras_er.layers import ERConv2D, ERDense
from tests.conftest import cnn, mlp, to_numpy


def kernels(model):
    return {l.name: to_numpy(l._kernel) for l in model.layers
            if hasattr(l, "_kernel")}


@pytest.mark.parametrize("ratio", ["uniform", "er", "erk", "balanced",
                                   "pyramidal"])
def test_layer_densities_hit_the_overall_density(ratio):
    model = cnn()
    result = keras_er.layer_densities(model, ratio, 0.2)
    sizes = {l.name: np.prod(l._kernel.shape) for l in model.layers
             if hasattr(l, "_kernel")}
    assert list(result) == list(sizes)  # forward order, every layer
    total = sum(result[n] * sizes[n] for n in sizes) / sum(sizes.values())
    assert total == pytest.approx(0.2, abs=1e-6)


def test_dense_layers_are_kept_and_budget_is_spent_on_the_rest():
    model = mlp(input_dim=40, hidden=(30, 20), classes=5)
    sizes = [40 * 30, 30 * 20, 20 * 5]
    result = keras_er.layer_densities(model, "uniform", 0.3,
                                      dense_layers=("last",))
    first, second, last = result.values()
    assert last == 1.0
    rest = (0.3 * sum(sizes) - sizes[2]) / (sizes[0] + sizes[1])
    assert second == pytest.approx(rest) and first == pytest.approx(rest)
    sparse = keras_er.sparsify(model, "uniform", 0.3, seed=0,
                               dense_layers="last")
    assert type(sparse.layers[2]) is keras.layers.Dense  # left plain
    assert isinstance(sparse.layers[0], ERDense)


def test_sparsify_replaces_layers_copies_weights_and_keeps_input_intact():
    model = cnn()
    original = kernels(model)
    sparse = keras_er.sparsify(model, "erk", 0.3, seed=3)
    # The input model is untouched.
    assert all(not isinstance(l, (ERDense, ERConv2D)) for l in model.layers)
    for name, kernel in kernels(model).items():
        np.testing.assert_array_equal(kernel, original[name])
    # Same architecture, ER layers with the original weights inside the mask.
    types = [type(l).__name__ for l in sparse.layers]
    assert types.count("ERConv2D") == 3 and types.count("ERDense") == 1
    assert "BatchNormalization" in types
    masks = keras_er.get_masks(sparse)
    for name, mask in masks.items():
        kernel = to_numpy(sparse.get_layer(name)._kernel)
        np.testing.assert_array_equal(kernel, original[name] * mask)
    # BatchNorm weights copied unchanged.
    bn_old = [l for l in model.layers if "batch" in l.name][0]
    bn_new = sparse.get_layer(bn_old.name)
    for a, b in zip(bn_old.get_weights(), bn_new.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_realized_densities_follow_the_ratio():
    model = mlp(input_dim=200, hidden=(150, 100), classes=10)
    wanted = keras_er.layer_densities(model, "balanced", 0.2)
    sparse = keras_er.sparsify(model, "balanced", 0.2, seed=0, flow=None,
                               sampling="exact")
    for name, mask in keras_er.get_masks(sparse).items():
        assert mask.sum() == max(1, round(wanted[name] * mask.size))


def test_same_seed_same_masks_and_report():
    model = cnn()
    a = keras_er.sparsify(model, "pyramidal", 0.05, seed=11)
    b = keras_er.sparsify(model, "pyramidal", 0.05, seed=11)
    c = keras_er.sparsify(model, "pyramidal", 0.05, seed=12)
    ma, mb, mc = (list(keras_er.get_masks(m).values()) for m in (a, b, c))
    assert all(np.array_equal(x, y) for x, y in zip(ma, mb))
    assert not all(np.array_equal(x, y) for x, y in zip(ma, mc))
    report = a.sparsify_report
    assert report["seed"] == 11
    assert report["total_edges_added"] == sum(report["edges_added"].values())
    unseeded = keras_er.sparsify(model, "erk", 0.5)
    assert isinstance(unseeded.sparsify_report["seed"], int)


def test_flow_preservation_through_sparsify_reports_edges():
    model = mlp(input_dim=100, hidden=(50,), classes=10)
    sparse = keras_er.sparsify(model, "pyramidal", 0.01, seed=0)
    for mask in keras_er.get_masks(sparse).values():
        assert mask.sum(axis=0).min() >= 1 and mask.sum(axis=1).min() >= 1
    assert sparse.sparsify_report["total_edges_added"] > 0
    without = keras_er.sparsify(model, "pyramidal", 0.01, seed=0, flow=None)
    assert without.sparsify_report["total_edges_added"] == 0


def test_nested_models_are_sparsified_recursively():
    inner = keras.Sequential([keras.Input((8,)), keras.layers.Dense(6),
                              keras.layers.Dense(4)], name="inner")
    inputs = keras.Input((5,))
    x = keras.layers.Dense(8)(inputs)
    outputs = inner(x)
    model = keras.Model(inputs, outputs)
    sparse = keras_er.sparsify(model, "uniform", 0.5, seed=0)
    assert len(keras_er.get_masks(sparse)) == 3
    nested = sparse.get_layer("inner")
    assert all(isinstance(l, ERDense) for l in nested.layers)
    x = np.ones((2, 5), "float32")
    stripped = keras_er.strip(sparse)
    np.testing.assert_allclose(to_numpy(sparse(x)), to_numpy(stripped(x)))


def test_shared_layer_gets_one_mask():
    shared = keras.layers.Dense(6, name="shared")
    a, b = keras.Input((6,)), keras.Input((6,))
    outputs = keras.layers.Add()([shared(a), shared(shared(b))])
    model = keras.Model([a, b], outputs)
    sparse = keras_er.sparsify(model, "uniform", 0.5, seed=0)
    assert list(keras_er.get_masks(sparse)) == ["shared"]
    layer = sparse.get_layer("shared")
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    kernel = to_numpy(layer.kernel)
    bias = to_numpy(layer.bias)
    expected = (x @ kernel + bias) + ((x @ kernel + bias) @ kernel + bias)
    np.testing.assert_allclose(to_numpy(sparse([x, x])), expected, rtol=1e-5)


@pytest.mark.parametrize("selector", [["dense_1"], "dense_1", 
                                      lambda layer: layer.name == "dense_1"])
def test_layers_filter(selector):
    model = mlp()
    sparse = keras_er.sparsify(model, "uniform", 0.5, seed=0, layers=selector)
    assert list(keras_er.get_masks(sparse)) == ["dense_1"]
    assert type(sparse.get_layer("dense")) is keras.layers.Dense


def test_custom_ratio_dict_and_callable():
    model = mlp()
    wanted = {"dense": 0.5, "dense_1": 0.25, "dense_2": 1.0}
    assert keras_er.layer_densities(model, wanted) == wanted
    fn = lambda shapes, density: [density] * len(shapes)  # noqa: E731
    assert list(keras_er.layer_densities(model, fn, 0.4).values()) == \
        [0.4] * 3
    sparse = keras_er.sparsify(model, wanted, seed=0, sampling="exact",
                               flow=None)
    masks = keras_er.get_masks(sparse)
    assert masks["dense_2"].mean() == 1.0
    assert masks["dense_1"].sum() == round(0.25 * masks["dense_1"].size)


def test_redraw_and_set_masks():
    model = mlp()
    sparse = keras_er.sparsify(model, "uniform", 0.5, seed=0)
    again = keras_er.sparsify(sparse, "uniform", 0.25, seed=1, redraw=True)
    for name, mask in keras_er.get_masks(again).items():
        kernel = to_numpy(again.get_layer(name)._kernel)
        assert np.all(kernel[mask == 0] == 0)
    target = {n: np.ones_like(m) for n, m in keras_er.get_masks(sparse).items()}
    keras_er.set_masks(sparse, target)
    assert all(m.all() for m in keras_er.get_masks(sparse).values())
    with pytest.raises(ValueError, match="not ER layers"):
        keras_er.set_masks(sparse, {"nope": np.ones((2, 2))})


def test_sparse_he_normal_init_scales_to_the_expected_fan_in():
    model = mlp(input_dim=400, hidden=(300,), classes=10)
    sparse = keras_er.sparsify(model, "uniform", 0.05, seed=0,
                               init="sparse_he_normal")
    for name, mask in keras_er.get_masks(sparse).items():
        kernel = to_numpy(sparse.get_layer(name)._kernel)
        kept = kernel[mask == 1]
        expected = np.sqrt(2.0 / (mask.shape[0] * 0.05))
        assert abs(kept.std() / expected - 1) < 4 / np.sqrt(2 * kept.size)
        assert np.all(kernel[mask == 0] == 0)
    with pytest.raises(ValueError, match="init must be one of"):
        keras_er.sparsify(model, init="glorot")


def test_sparse_model_trains():
    model = mlp(input_dim=8, hidden=(32,), classes=2)
    sparse = keras_er.sparsify(model, "erk", 0.5, seed=0)
    sparse.compile(keras.optimizers.Adam(0.05),
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    history = sparse.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.85


# ---- bad input -----------------------------------------------------------

class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)


@pytest.mark.parametrize("kwargs,match", [
    ({"density": 1.5}, r"density must be in \(0, 1\], got 1.5"),
    ({"density": 0}, "density must be in"),
    ({"ratio": "magic"}, "Unknown ratio 'magic'"),
    ({"ratio": {"dense": 0.5, "nope": 0.5, "dense_1": 1, "dense_2": 1}},
     r"names layers \['nope'\]"),
    ({"ratio": {"dense": 0.5}}, "gives no density for layers"),
    ({"ratio": {"dense": 1.5, "dense_1": 1, "dense_2": 1}},
     "density of layer 'dense' must be in"),
    ({"ratio": 3}, "ratio must be a method name"),
    ({"dense_layers": ("dense",), "density": 0.01},
     "below what dense_layers"),
    ({"dense_layers": ("nope",)}, "dense_layers names 'nope'"),
    ({"layers": ["nope"]}, r"layers names \['nope'\]"),
    ({"layers": "conv.*"}, "no maskable layer matching"),
    ({"sampling": "magic"}, "sampling must be one of"),
    ({"flow": "magic"}, "flow must be one of"),
    ({"seed": 1.5}, "seed must be an int"),
])
def test_bad_arguments_raise_value_error_naming_the_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_er.sparsify(mlp(), **kwargs)


def test_model_without_maskable_layers():
    model = keras.Sequential([keras.Input((4,)), keras.layers.ReLU()])
    with pytest.raises(ValueError, match="no maskable layer"):
        keras_er.sparsify(model)


def test_already_sparsified_model_needs_redraw():
    sparse = keras_er.sparsify(mlp(), seed=0)
    with pytest.raises(ValueError, match="already sparsified.*redraw=True"):
        keras_er.sparsify(sparse)


def test_subclassed_model_explains_how_to_use_er_layers():
    model = Subclassed()
    model(np.ones((1, 4), "float32"))
    with pytest.raises(ValueError, match="keras_er.ERDense"):
        keras_er.sparsify(model)


def test_unbuilt_model_asks_for_an_input_shape():
    model = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="keras.Input"):
        keras_er.sparsify(model)


def test_get_masks_without_er_layers():
    with pytest.raises(ValueError, match="no keras_er layers"):
        keras_er.get_masks(mlp())


# ---- the same seed gives the same masks on another backend ---------------

def _masks_here():
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3)(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5)(x)
    model = keras.Model(inputs, outputs)
    sparse = keras_er.sparsify(model, "balanced", 0.1, seed=5)
    return {k: v.astype(int).ravel().tolist()
            for k, v in keras_er.get_masks(sparse).items()}


@pytest.mark.heavy  # A fresh process.
def test_same_seed_same_masks_on_the_jax_backend():
    pytest.importorskip("jax")
    if keras.backend.backend() != "tensorflow":  # Once, from TensorFlow.
        pytest.skip("compares TensorFlow with JAX (tests/test_backends.py "
                    "compares with torch)")
    script = (
        "import json\n"
        "from tests import test_sparsify as t\n"
        "print(json.dumps(t._masks_here()))\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=root,
                         capture_output=True, text=True, check=True)
    on_jax = json.loads(out.stdout.strip().splitlines()[-1])
    assert on_jax == _masks_here()
