"""`SparseTrainingCallback`: one base for every pruning callback.

What the base gives every callback, checked on each: ``prepare`` (the one
before-compile step, an error naming it when forgotten), one ``data=``
parser (also for SNIP), ``target_density`` reached, deprecated aliases that
warn and behave the same, ``density``, and masks re-applied at the end of
training (EMA copies included); borrowed SNIP / SynFlow ratios on models
whose kernels sit inside custom layers.
"""

import warnings

import keras
import numpy as np
import pytest

import keras_er
from keras_er import callbacks as cb
from keras_er.callbacks import SparseTrainingCallback
from keras_er.mask_io import er_layers
from keras_er.model_walk import iter_maskable, kernel_shape, unit_name
from tests.conftest import classification_data, to_numpy

N_IN, N_OUT = 16, 4
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def dense_mlp():
    keras.backend.clear_session(free_memory=False)  # Same layer names.
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((N_IN,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(N_OUT),
    ])


def sparse_mlp(density=0.5):
    return keras_er.sparsify(dense_mlp(), "uniform", density, seed=0,
                             sampling="exact")


def data(n=64, seed=0):
    return classification_data(n, n_in=N_IN, n_out=N_OUT, seed=seed)


def mask_density(model):
    masks = keras_er.get_masks(model)
    return sum(m.sum() for m in masks.values()) / sum(
        m.size for m in masks.values())


def total_size(model):
    return sum(int(np.prod(layer.mask.shape)) for layer in er_layers(model))


def assert_zero_outside_masks(model):
    for layer in er_layers(model):
        outside = to_numpy(layer.mask) == 0
        assert np.all(to_numpy(layer._kernel)[outside] == 0), layer.name


class Batches(keras.utils.PyDataset):
    """A PyDataset of (x, y) batches."""

    def __init__(self, x, y, batch_size=16, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]


# ------------------------------------------------------------- the base

ALL = {
    "MagnitudePruning": lambda: cb.MagnitudePruning(
        target_density=0.25, end_step=4, frequency=2),
    "IMP": lambda: cb.IMP(0.25, prune_fraction=0.5, epochs_per_cycle=1),
    "RiGL": lambda: cb.RiGL(update_every=2, data=data(), total_steps=8,
                            target_density=0.25),
    "SET": lambda: cb.SET(update_every=2, total_steps=8,
                          target_density=0.25),
    "EdgePopup": lambda: cb.EdgePopup(target_density=0.25),
    "STR": lambda: cb.STR(s_init=-3.0, target_density=0.25),
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_callback_derives_from_the_base(name):
    callback = ALL[name]()
    assert isinstance(callback, SparseTrainingCallback)
    assert isinstance(callback, keras.callbacks.Callback)
    assert callback.target_density == pytest.approx(0.25)
    assert callback.density is None  # No model yet.


@pytest.mark.parametrize("name", sorted(ALL))
def test_target_density_is_reached(name):
    # One consistent flow for every method: prepare (a no-op where none is
    # needed), compile, fit; the end point is target_density.
    model = sparse_mlp(0.5)
    callback = ALL[name]()
    assert callback.prepare(model) is not None
    model.compile(keras.optimizers.Adam(0.01), LOSS)
    x, y = data()
    epochs = 2 if name == "IMP" else 1
    model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=False,
              callbacks=[callback])
    got = mask_density(model)
    assert got == pytest.approx(0.25, abs=len(er_layers(model)) /
                                total_size(model))
    assert float(callback.density) == pytest.approx(got)
    assert_zero_outside_masks(model)


def test_prepare_is_a_noop_where_nothing_is_installed():
    model = sparse_mlp()
    before = [to_numpy(v) for v in model.weights]
    for name in ("MagnitudePruning", "IMP", "RiGL", "SET"):
        callback = ALL[name]()
        assert not callback.needs_prepare
        assert callback.prepare(model) is model
        assert callback.is_prepared(model)
    for a, v in zip(before, model.weights):
        np.testing.assert_array_equal(a, to_numpy(v))


@pytest.mark.parametrize("name", ["EdgePopup", "STR"])
def test_forgotten_prepare_raises_naming_it(name):
    model = sparse_mlp()
    callback = ALL[name]()
    assert callback.needs_prepare and not callback.is_prepared(model)
    model.compile(keras.optimizers.Adam(0.01), LOSS)
    x, y = data(16)
    with pytest.raises(ValueError, match=r"not prepared.*prepare\(model\)"):
        model.fit(x, y, verbose=0, callbacks=[callback])
    callback.prepare(model)
    assert callback.is_prepared(model)


# ------------------------------------------------------------------ data

def data_forms():
    x, y = data(32)
    forms = {
        "tuple": lambda: (x, y),
        "tuple_with_weights": lambda: (x, y, np.ones(len(x), "float32")),
        "list_of_batches": lambda: [(x[:16], y[:16]), (x[16:], y[16:])],
        "pydataset": lambda: Batches(x, y),
        "generator": lambda: ((x[i:i + 16], y[i:i + 16])
                              for _ in range(100) for i in (0, 16)),
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        forms["tf_dataset"] = lambda: tf.data.Dataset.from_tensor_slices(
            (x, y)).batch(16)
    return forms


BAD_DATA = {
    "array": lambda x, y: x,
    "list_xy": lambda x, y: [x, y],
    "string": lambda x, y: "train",
    "dict": lambda x, y: {"x": x},
    "long_tuple": lambda x, y: (x, y, y, y),
    "int": lambda x, y: 3,
}


@pytest.mark.parametrize("form", sorted(data_forms()))
def test_rigl_accepts_every_data_form(form):
    model = sparse_mlp(0.3)
    model.compile(keras.optimizers.Adam(0.01), LOSS)
    before = keras_er.get_masks(model)
    rigl = cb.RiGL(update_every=2, data=data_forms()[form](), total_steps=8,
                   end_fraction=1.0)
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[rigl])
    after = keras_er.get_masks(model)
    assert len(rigl.updates) == 4
    assert any((before[n] != after[n]).any() for n in before)


@pytest.mark.parametrize("form", sorted(data_forms()))
def test_snip_ratio_accepts_every_data_form(form):
    model = dense_mlp()
    want = keras_er.layer_densities(model, "snip", 0.3, data=data(32),
                                    loss=LOSS)
    got = keras_er.layer_densities(model, "snip", 0.3,
                                   data=data_forms()[form](), loss=LOSS)
    if form in ("tuple", "tuple_with_weights"):
        assert got == pytest.approx(want)
    sizes = {unit_name(u): np.prod(kernel_shape(u))
             for u in iter_maskable(model)}
    mean = sum(got[n] * sizes[n] for n in got) / sum(sizes.values())
    assert mean == pytest.approx(0.3, abs=1 / sum(sizes.values()))


@pytest.mark.parametrize("bad", sorted(BAD_DATA))
def test_bad_data_is_rejected_naming_data(bad):
    x, y = data(16)
    value = BAD_DATA[bad](x, y)
    for make in (
        lambda: cb.RiGL(data=value),
        lambda: SparseTrainingCallback.parse_data(value),
        lambda: keras_er.layer_densities(dense_mlp(), "snip", 0.3,
                                         data=value, loss=LOSS),
    ):
        with pytest.raises(TypeError, match="data must be"):
            make()
        with pytest.raises(ValueError, match="data must be"):
            make()


# ------------------------------------------------------ deprecated alias

def test_final_density_alias_warns_and_behaves_identically():
    x, y = data()
    results = []
    for kwargs in ({"target_density": 0.2}, {"final_density": 0.2}):
        model = sparse_mlp(0.5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            callback = cb.EdgePopup(levels=2, **kwargs)
        deprecated = [w for w in caught
                      if issubclass(w.category, DeprecationWarning)]
        assert len(deprecated) == ("final_density" in kwargs)
        if deprecated:
            assert "target_density" in str(deprecated[0].message)
        assert callback.target_density == callback.final_density == 0.2
        callback.prepare(model, seed=0)
        model.compile(keras.optimizers.SGD(0.1), LOSS)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
                  callbacks=[callback])
        results.append((callback.k_schedule, keras_er.get_masks(model)))
    assert results[0][0] == results[1][0]
    for name, mask in results[0][1].items():
        np.testing.assert_array_equal(mask, results[1][1][name])
    with pytest.raises(ValueError, match="deprecated alias"):
        cb.EdgePopup(target_density=0.2, final_density=0.2)


def test_magnitude_pruning_target_density_equals_its_schedule():
    x, y = data()
    masks = []
    for callback in (
        cb.MagnitudePruning(target_density=0.2, end_step=6, frequency=2),
        cb.MagnitudePruning(cb.schedules.PolynomialDecay(
            0.0, 0.8, begin_step=0, end_step=6, frequency=2)),
    ):
        model = sparse_mlp(0.5)
        model.compile(keras.optimizers.Adam(0.01), LOSS)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False,
                  callbacks=[callback])
        assert callback.target_density == pytest.approx(0.2)
        masks.append(keras_er.get_masks(model))
    for name in masks[0]:
        np.testing.assert_array_equal(masks[0][name], masks[1][name])
    with pytest.raises(ValueError, match="end_step"):
        cb.MagnitudePruning(target_density=0.2)
    with pytest.raises(ValueError, match="not both"):
        cb.MagnitudePruning(cb.schedules.ConstantSparsity(0.5, 0),
                            target_density=0.2, end_step=4)
    with pytest.raises(ValueError, match="schedule"):
        cb.MagnitudePruning()


# ------------------------------------------------- masks at train end

def _unwrapped_finalize(monkeypatch):
    """Removes keras_er's re-projection after the EMA copy (for a test)."""
    cls = keras.optimizers.Optimizer
    monkeypatch.setattr(cls, "finalize_variable_values",
                        cls.finalize_variable_values.__wrapped__)


@pytest.mark.parametrize("name", ["magnitude", "imp", "rigl"])
def test_on_train_end_reapplies_masks_after_the_ema_copy(name, monkeypatch):
    # Without keras_er's optimizer hook, Muon's EMA leaves masked entries
    # nonzero after fit; every callback's on_train_end re-projects them.
    _unwrapped_finalize(monkeypatch)
    x, y = data()
    plain = sparse_mlp(0.4)
    plain.compile(keras.optimizers.Muon(0.02, use_ema=True), LOSS)
    plain.fit(x, y, batch_size=16, epochs=1, verbose=0)
    moved = [
        np.abs(to_numpy(layer._kernel)[to_numpy(layer.mask) == 0]).max()
        for layer in er_layers(plain)
    ]
    assert max(moved) > 0  # The gap the hook and the callbacks close.
    callback = {
        "magnitude": lambda: cb.MagnitudePruning(
            target_density=0.3, end_step=2, frequency=2),
        "imp": lambda: cb.IMP(0.3, prune_fraction=0.5, epochs_per_cycle=1),
        "rigl": lambda: cb.SET(update_every=2, total_steps=4),
    }[name]()
    model = sparse_mlp(0.4)
    model.compile(keras.optimizers.Muon(0.02, use_ema=True), LOSS)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert_zero_outside_masks(model)


# ------------------------------------------ borrowed ratios, custom layers

class Block(keras.layers.Layer):
    """A custom layer holding two Dense layers."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(24, activation="relu", name="inner")
        self.outer = keras.layers.Dense(12, activation="relu", name="outer")

    def call(self, x):
        return self.outer(self.inner(x))


class Net(keras.Model):
    """A subclassed model (not cloneable) with a custom block and a head."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = Block(name="block")
        self.head = keras.layers.Dense(N_OUT, activation="softmax",
                                       name="head")

    def call(self, x):
        return self.head(self.block(x))


def custom_model():
    keras.utils.set_random_seed(0)
    model = Net()
    model(np.zeros((1, N_IN), "float32"))
    return model


def weighted_mean(model, densities):
    sizes = {unit_name(u): int(np.prod(kernel_shape(u)))
             for u in iter_maskable(model)}
    assert set(densities) <= set(sizes)
    total = sum(sizes[n] for n in densities)
    return sum(densities[n] * sizes[n] for n in densities) / total, total


@pytest.mark.parametrize("ratio", ["snip", "synflow"])
def test_borrowed_ratio_on_kernels_inside_a_custom_layer(ratio):
    model = custom_model()
    weights = [to_numpy(v) for v in model.weights]
    options = ({"data": data(32), "loss": "sparse_categorical_crossentropy"}
               if ratio == "snip" else {"rounds": 10,
                                        "input_shape": (N_IN,)})
    got = keras_er.layer_densities(model, ratio, 0.3, **options)
    assert sorted(got) == ["block/inner", "block/outer", "head"]
    mean, total = weighted_mean(model, got)
    assert mean == pytest.approx(0.3, abs=1 / total)
    assert all(0 < d <= 1 for d in got.values())
    # The model is untouched (no variable assigned, activation restored).
    for a, v in zip(weights, model.weights):
        np.testing.assert_array_equal(a, to_numpy(v))
    assert model.head.activation is keras.activations.softmax
    sparse = keras_er.sparsify(model, ratio, 0.3, seed=0, in_place=True,
                               **options)
    assert mask_density(sparse) == pytest.approx(0.3, abs=0.05)


def test_synflow_scored_in_place_matches_the_clone():
    # The same network, Functional (cloned in float64) and subclassed
    # (scored in place in float32): the same per-layer densities.
    model = custom_model()
    dense = keras.Sequential([
        keras.Input((N_IN,)),
        keras.layers.Dense(24, activation="relu", name="inner"),
        keras.layers.Dense(12, activation="relu", name="outer"),
        keras.layers.Dense(N_OUT, activation="softmax", name="head"),
    ])
    dense.set_weights([to_numpy(v) for v in model.weights])
    cloned = keras_er.layer_densities(dense, "synflow", 0.2, rounds=10)
    in_place = keras_er.layer_densities(model, "synflow", 0.2, rounds=10,
                                        input_shape=(N_IN,))
    assert [in_place[n] for n in ("block/inner", "block/outer", "head")] \
        == pytest.approx([cloned[n] for n in ("inner", "outer", "head")],
                         abs=0.02)


@pytest.mark.tf_only
@pytest.mark.parametrize("ratio", ["snip", "synflow"])
def test_borrowed_ratio_on_keras_hub_bert(ratio):
    keras_hub = pytest.importorskip("keras_hub")
    length = 8
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=length,
    )
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(0, 40, (8, length)).astype("int32"),
        "segment_ids": np.zeros((8, length), "int32"),
        "padding_mask": np.ones((8, length), "int32"),
    }
    y = rng.normal(size=(8, length, 8)).astype("float32")

    def loss(y_true, y_pred):
        return keras.ops.mean(
            keras.ops.square(y_pred["sequence_output"] - y_true))

    # SynFlow's all-ones input cannot score lookups: leave embeddings out.
    not_embedding = lambda layer: not isinstance(  # noqa: E731
        layer, keras.layers.Embedding)
    options = (
        {"data": (x, y), "loss": loss} if ratio == "snip"
        else {"rounds": 5, "input_shape": (length,),
              "layers": not_embedding}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Layers left dense (embeddings).
        got = keras_er.layer_densities(backbone, ratio, 0.3, **options)
    assert any(name.startswith("transformer_layer_1/") for name in got)
    mean, total = weighted_mean(backbone, got)
    assert mean == pytest.approx(0.3, abs=1 / total)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sparse = keras_er.sparsify(backbone, ratio, 0.3, seed=0, **options)
    got_sparse = {
        name: float(mask.mean())
        for name, mask in keras_er.get_masks(sparse).items()
    }
    mean, _ = weighted_mean(sparse, {n: got_sparse[n] for n in got})
    assert mean == pytest.approx(0.3, abs=0.05)
