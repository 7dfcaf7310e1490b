"""keras-hub models: the Dense/EinsumDense/Embedding layers inside their
custom blocks are masked where they sit.

Every model is built from a small config with random weights (presets would
download). Each is sparsified (the input model untouched, every variable
path kept), trained, saved and loaded with `keras_er.load_model` (masks,
outputs and optimizer state intact), stripped (equal outputs, no keras_er
layer left) and, on TensorFlow, exported. BertTextClassifier trains with
every keras_er callback.
"""

import warnings

import keras
import numpy as np
import pytest

import keras_er
from keras_er.layers import is_er_layer
from keras_er.mask_io import er_layers
from keras_er.model_walk import iter_maskable
from tests.conftest import to_numpy

keras_hub = pytest.importorskip("keras_hub")
# keras-hub cases run on TensorFlow (CI runs the core subset on JAX, torch).
pytestmark = pytest.mark.tf_only

LENGTH = 8


def bert_backbone():
    return keras_hub.models.BertBackbone(
        vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=LENGTH,
    )


def bert_classifier():
    return keras_hub.models.BertTextClassifier(
        backbone=bert_backbone(), num_classes=3, preprocessor=None
    )


def gemma_backbone():
    return keras_hub.models.GemmaBackbone(
        vocabulary_size=40, num_layers=2, num_query_heads=2,
        num_key_value_heads=1, hidden_dim=8, intermediate_dim=16, head_dim=4,
    )


def vit_backbone():
    return keras_hub.models.ViTBackbone(
        image_shape=(16, 16, 3), patch_size=8, num_layers=2, num_heads=2,
        hidden_dim=8, mlp_dim=16,
    )


def resnet_backbone():
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 8], stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2], block_type="basic_block",
        image_shape=(16, 16, 3),
    )


def token_batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "token_ids": rng.integers(0, 40, (n, LENGTH)).astype("int32"),
        "segment_ids": np.zeros((n, LENGTH), "int32"),
        "padding_mask": np.ones((n, LENGTH), "int32"),
    }


def gemma_batch(n=4, seed=0):
    batch = token_batch(n, seed)
    return {"token_ids": batch["token_ids"],
            "padding_mask": batch["padding_mask"]}


def image_batch(n=4, seed=0):
    return np.random.default_rng(seed).normal(
        size=(n, 16, 16, 3)
    ).astype("float32")


# model, inputs, masked kernels expected (at least), layers inside blocks.
CASES = {
    "bert_backbone": (bert_backbone, token_batch, 2 * 6 + 2),
    "gemma_backbone": (gemma_backbone, gemma_batch, 2 * 7),
    "vit_backbone": (vit_backbone, image_batch, 2 * 6 + 1),
    "resnet_backbone": (resnet_backbone, image_batch, 5),
    "bert_classifier": (bert_classifier, token_batch, 2 * 6 + 3),
}


def outputs_of(model, x):
    y = model(x)
    if isinstance(y, dict):
        return {k: to_numpy(v) for k, v in y.items()}
    return to_numpy(y)


def assert_same_outputs(a, b, **tolerance):
    if isinstance(a, dict):
        for key in a:
            np.testing.assert_allclose(a[key], b[key], **tolerance)
    else:
        np.testing.assert_allclose(a, b, **tolerance)


def assert_zero_outside_masks(model):
    for layer in er_layers(model):
        kernel = to_numpy(layer._kernel)
        outside = to_numpy(layer.mask) == 0
        assert np.all(kernel[outside] == 0), layer.name


def train_target(model, x, seed=1):
    y = model(x)
    if isinstance(y, dict):
        y = y["sequence_output"]
    return np.random.default_rng(seed).normal(
        size=to_numpy(y).shape
    ).astype("float32")


@pytest.mark.parametrize("name", sorted(CASES))
def test_sparsify_reaches_kernels_inside_blocks(name, tmp_path):
    make, inputs, expected_units = CASES[name]
    model = make()
    x = inputs()
    paths = sorted(v.path for v in model.weights)
    before = outputs_of(model, x)
    with warnings.catch_warnings():  # About the layers left dense.
        warnings.simplefilter("ignore", UserWarning)
        sparse = keras_er.sparsify(model, "erk", 0.3, seed=0)
    # A copy of the same class; the input model is untouched.
    assert type(sparse) is type(model) and sparse is not model
    assert not any(is_er_layer(u) for u in iter_maskable(model))
    assert_same_outputs(outputs_of(model, x), before)
    masked = er_layers(sparse)
    assert len(masked) >= expected_units
    assert len({layer.path for layer in masked}) == len(masked)
    # Every variable path is kept; each mask sits beside its kernel.
    assert paths == sorted(
        v.path for v in sparse.weights if not v.path.endswith("/mask")
    )
    for layer in masked:
        assert layer.mask.path.rsplit("/", 1)[0] == (
            layer._kernel.path.rsplit("/", 1)[0]
        )
    masks = keras_er.get_masks(sparse)
    total = sum(m.size for m in masks.values())
    assert sum(m.sum() for m in masks.values()) / total == pytest.approx(
        0.3, abs=0.05
    )
    assert_zero_outside_masks(sparse)
    # Train: the invariant holds and the kernels move.
    output = sparse.output
    if isinstance(output, dict):
        output = output["sequence_output"]
    head = keras.Model(sparse.input, output)
    head.compile(keras.optimizers.Adam(1e-2), "mse", run_eagerly=True)
    kernels = {k: to_numpy(v._kernel) for k, v in zip(masks, masked)}
    head.fit(x, train_target(sparse, x), epochs=2, verbose=0)
    assert_zero_outside_masks(sparse)
    assert any(
        not np.array_equal(kernels[k], to_numpy(v._kernel))
        for k, v in zip(masks, masked)
    )
    # Save and load: masks, outputs.
    path = tmp_path / "sparse.keras"
    sparse.save(path)
    loaded = keras_er.load_model(path)
    assert type(loaded) is type(model)
    reloaded = keras_er.get_masks(loaded)
    assert list(reloaded) == list(masks)
    for key, mask in keras_er.get_masks(sparse).items():
        np.testing.assert_array_equal(reloaded[key], mask)
    expected = outputs_of(sparse, x)
    assert_same_outputs(outputs_of(loaded, x), expected, rtol=1e-6)
    # Strip: plain Keras layers, same paths and outputs.
    plain = keras_er.strip(loaded)
    assert type(plain) is type(model)
    assert not any(is_er_layer(u) for u in iter_maskable(plain))
    assert sorted(v.path for v in plain.weights) == paths
    assert_same_outputs(outputs_of(plain, x), expected, rtol=1e-5,
                        atol=1e-6)


def _classifier_callback(name, x, y):
    """``(callback, needs prepare)``; built lazily, one per test."""
    cb = keras_er.callbacks
    make = {
        "magnitude_pruning": lambda: cb.MagnitudePruning(
            cb.schedules.PolynomialDecay(0.7, 0.85, 0, 3, frequency=1)),
        "rigl": lambda: cb.RiGL(update_every=2, data=(x, y)),
        "set": lambda: cb.SET(update_every=2),
        "imp": lambda: cb.IMP(0.2, 0.3, epochs_per_cycle=1),
        "str": lambda: cb.STR(s_init=-8.0, target_density=0.2),
        "edge_popup": lambda: cb.EdgePopup(0.15, levels=2),
    }[name]
    return make(), name in ("str", "edge_popup")


@pytest.mark.parametrize("callback", [
    "magnitude_pruning", "rigl", "set", "imp", "str", "edge_popup",
])
def test_bert_classifier_trains_with_every_callback(callback, tmp_path):
    x = token_batch(8)
    y = np.arange(8) % 3
    sparse = keras_er.sparsify(bert_classifier(), "erk", 0.3, seed=0,
                               layers=lambda layer: True)
    chosen, prepare = _classifier_callback(callback, x, y)
    if prepare:
        chosen.prepare(sparse)
    before = keras_er.get_masks(sparse)
    # Eagerly: tracing BERT costs more than the few steps it runs.
    sparse.compile(keras.optimizers.Adam(1e-2),
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   run_eagerly=True)
    sparse.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[chosen])
    after = keras_er.get_masks(sparse)
    assert list(after) == list(before)
    for key in before:
        assert after[key].shape == before[key].shape
    if callback in ("magnitude_pruning", "imp"):
        # Pruned: a subset of the ER masks, fewer entries.
        for key in before:
            assert np.all(after[key] <= before[key])
        assert sum(m.sum() for m in after.values()) < sum(
            m.sum() for m in before.values()
        )
    if callback in ("rigl", "set"):
        assert any(not np.array_equal(after[k], before[k]) for k in before)
    assert_zero_outside_masks(sparse)
    path = tmp_path / "trained.keras"
    sparse.save(path)
    loaded = keras_er.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(sparse(x)),
                               rtol=1e-5, atol=1e-6)
    for key, mask in after.items():
        np.testing.assert_array_equal(keras_er.get_masks(loaded)[key], mask)


def test_load_model_restores_the_optimizer_state(tmp_path):
    x, y = token_batch(8), np.arange(8) % 3
    sparse = keras_er.sparsify(bert_classifier(), "uniform", 0.5, seed=0,
                               layers=lambda layer: True)
    sparse.compile(keras.optimizers.Adam(1e-2),
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   run_eagerly=True)
    sparse.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "trained.keras"
    sparse.save(path)
    loaded = keras_er.load_model(path)
    assert int(to_numpy(loaded.optimizer.iterations)) == int(
        to_numpy(sparse.optimizer.iterations)
    )
    for a, b in zip(sparse.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    # Keras alone cannot rebuild masks inside the blocks, and says so.
    with pytest.raises(ValueError):
        keras.saving.load_model(path)


def test_in_place_keeps_the_model_object():
    model = bert_backbone()
    layer = model.get_layer("transformer_layer_0")
    query = layer._self_attention_layer._query_dense
    sparse = keras_er.sparsify(model, "uniform", 0.5, seed=0, in_place=True,
                               layers=lambda unit: True)
    assert sparse is model
    assert is_er_layer(query) and query is (
        layer._self_attention_layer._query_dense
    )
    name = "transformer_layer_0/self_attention_layer/query"
    assert name in keras_er.get_masks(model)
    assert query.mask.path == name + "/mask"


@pytest.mark.tf_only
def test_export_saved_model_of_a_keras_hub_model(tmp_path):
    tf = pytest.importorskip("tensorflow")
    sparse = keras_er.sparsify(vit_backbone(), "erk", 0.3, seed=0)
    x = image_batch(2)
    keras_er.export(sparse, tmp_path / "exported")
    reloaded = tf.saved_model.load(str(tmp_path / "exported"))
    np.testing.assert_allclose(np.asarray(reloaded.serve(x)),
                               to_numpy(sparse(x)), rtol=1e-5, atol=1e-5)
