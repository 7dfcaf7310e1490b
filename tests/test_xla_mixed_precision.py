"""XLA (``jit_compile=True``) and mixed precision, on a single device.

XLA: every ER layer type trains in a compiled step and mask changes never
retrace it (RiGL and EdgePopup have their own trace tests in test_rigl.py and
test_edge_popup.py; IMP, MagnitudePruning and STR are here). Mixed precision:
masks stay exact 0/1 float32 variables, masked kernel entries stay exactly
zero through the LossScaleOptimizer, and the loss goes down.
"""

import contextlib

import keras
import numpy as np
import pytest

import keras_er
from keras_er.callbacks import (
    IMP,
    STR,
    EdgePopup,
    MagnitudePruning,
    RiGL,
    schedules,
)
from keras_er.layers import ER_LAYER_FOR
from keras_er.mask_io import er_layers
from tests.conftest import classification_data, to_numpy
from tests.test_layer_coverage import CASES as LAYER_CASES
from tests.test_layer_coverage import apply, batch

if keras.backend.backend() == "torch":
    pytest.skip("jit_compile means torch.compile there; not covered.",
                allow_module_level=True)

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

# Input shapes for the layer types test_layer_coverage.py leaves out.
BASIC_CASES = {
    "dense": (lambda: keras.layers.Dense(6), (5,)),
    "conv2d": (lambda: keras.layers.Conv2D(4, 3, padding="same"), (6, 6, 2)),
}


def layer_cases():
    cases = {name: (make, shape) for name, (make, _, shape, _)
             in LAYER_CASES.items()}
    cases.update(BASIC_CASES)
    return cases


class TraceCounter(keras.layers.Layer):
    """Identity; its Python ``call`` runs once per trace of a compiled step
    (and once when the model is built)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.traces = 0

    def call(self, inputs):
        self.traces += 1
        return inputs


class CountTraces(keras.callbacks.Callback):
    def __init__(self, counter):
        super().__init__()
        self.counter = counter
        self.counts = []

    def on_train_batch_end(self, batch, logs=None):
        self.counts.append(self.counter.traces)


def all_layer_types_model(counter):
    """One model holding every maskable layer type, one branch each."""
    inputs, outputs = [], []
    for name, (make, shape) in sorted(layer_cases().items()):
        x = keras.Input(shape, name=f"in_{name}")
        inputs.append(x)
        if counter is not None and not outputs:
            x = counter(x)
        outputs.append(keras.layers.Flatten()(apply(make(), x)))
    return keras.Model(inputs, keras.layers.Concatenate()(outputs))


def all_layer_types_data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return [
        batch(name, n, seed) if name in LAYER_CASES
        else rng.normal(size=(n, *shape)).astype("float32")
        for name, (_, shape) in sorted(layer_cases().items())
    ]


def assert_zero_outside_masks(model):
    masked = 0
    for layer in er_layers(model):
        kernel, mask = to_numpy(layer._kernel), to_numpy(layer.mask)
        assert np.isin(mask, (0, 1)).all(), layer.name
        assert not kernel[mask == 0].any(), layer.name
        masked += int((mask == 0).sum())
    assert masked > 0  # The check must mean something.


def test_every_layer_type_is_covered():
    covered = {type(make()) for make, _ in layer_cases().values()}
    missing = [cls.__name__ for cls in ER_LAYER_FOR if cls not in covered]
    assert not missing, f"add an XLA case for {missing}"


@pytest.mark.heavy  # Compiles every layer type.
def test_every_layer_type_trains_under_xla_without_retracing():
    counter = TraceCounter()
    sparse = keras_er.sparsify(all_layer_types_model(counter), "erk", 0.3,
                               seed=0)
    xs = all_layer_types_data()
    y = np.random.default_rng(1).normal(
        size=to_numpy(sparse(xs)).shape).astype("float32")
    sparse.compile(keras.optimizers.Adam(1e-2), "mse", jit_compile=True)
    assert sparse.jit_compile
    trace_counter = [l for l in sparse.layers if isinstance(l, TraceCounter)]
    count = CountTraces(trace_counter[0])
    first = sparse.fit(xs, y, batch_size=4, epochs=2, verbose=0,
                       callbacks=[count]).history["loss"]
    assert_zero_outside_masks(sparse)
    # New masks, a strict subset of the old ones: the compiled step must
    # read them (a baked-in mask would let the pruned entries train again).
    rng = np.random.default_rng(2)
    keras_er.set_masks(sparse, {
        name: mask * (rng.random(mask.shape) < 0.5)
        for name, mask in keras_er.get_masks(sparse).items()
    })
    second = sparse.fit(xs, y, batch_size=4, epochs=2, verbose=0,
                        callbacks=[count]).history["loss"]
    assert count.counts[0] >= 1
    assert count.counts[-1] == count.counts[0]  # Traced once in all.
    assert_zero_outside_masks(sparse)
    assert np.isfinite(first + second).all() and first[-1] < first[0]


def sparse_mlp(density=0.5, counter=None):
    keras.utils.set_random_seed(0)
    dense = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(4),
    ])
    sparse = keras_er.sparsify(dense, "erk", density, seed=0)
    if counter is None:
        return sparse
    return keras.Sequential([keras.Input((16,)), counter, sparse])


XLA_CALLBACKS = {
    "imp": (lambda: IMP(0.2, 0.5, epochs_per_cycle=1), None, 3),
    "magnitude_pruning": (lambda: MagnitudePruning(
        schedules.PolynomialDecay(0.5, 0.85, 0, 12, frequency=2)), None, 3),
    # fold_at_end=False: folding ends the STR run and drops the traced
    # functions on purpose; the freeze at the target happens mid-run.
    "str": (lambda: STR(s_init=-3.0, target_density=0.4, fold_at_end=False),
            "str", 3),
}


@pytest.mark.parametrize("name", sorted(XLA_CALLBACKS))
def test_callbacks_do_not_retrace_the_xla_step(name):
    make, prepare, epochs = XLA_CALLBACKS[name]
    counter = TraceCounter()
    model = sparse_mlp(counter=counter)
    callback = make()
    if prepare == "str":
        callback.prepare(model)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), LOSS,
                  jit_compile=True)
    masks = keras_er.get_masks(model)
    count = CountTraces(counter)
    x, y = classification_data(128)
    history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0,
                        callbacks=[callback, count])
    assert count.counts[0] >= 1
    assert count.counts[-1] == count.counts[0], "the step was retraced"
    assert history.history["loss"][-1] < history.history["loss"][0]
    if name == "str":
        # Frozen at the target: a gate variable, not a new trace.
        assert STR.density(model) == pytest.approx(0.4, abs=0.05)
        assert all(float(to_numpy(l.str_frozen)) == 1.0
                   for l in er_layers(model))
    else:
        after = keras_er.get_masks(model)
        assert any((after[k] != masks[k]).any() for k in masks)
        assert_zero_outside_masks(model)


POLICIES = ("mixed_float16", "mixed_bfloat16")


@contextlib.contextmanager
def global_policy(name):
    """Sets the global dtype policy and always restores the previous one."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.fixture(params=POLICIES)
def policy(request):
    with global_policy(request.param):
        yield request.param


def test_every_layer_type_keeps_exact_masks_in_mixed_precision(policy):
    sparse = keras_er.sparsify(all_layer_types_model(None), "erk", 0.3,
                               seed=0)
    xs = all_layer_types_data()
    y = np.random.default_rng(1).normal(
        size=to_numpy(sparse(xs)).shape).astype("float32")
    # Eager: tracing nine layer types costs more than these six steps.
    sparse.compile(keras.optimizers.Adam(1e-2), "mse", run_eagerly=True)
    if policy == "mixed_float16":  # Keras adds the loss scaling itself.
        assert isinstance(sparse.optimizer,
                          keras.optimizers.LossScaleOptimizer)
    loss = sparse.fit(xs, y, batch_size=4, epochs=3, verbose=0)
    for layer in er_layers(sparse):
        assert layer.compute_dtype == policy.split("_")[1]
        assert layer.mask.dtype == "bool"
        assert layer._kernel.dtype == "float32"
    assert_zero_outside_masks(sparse)
    losses = loss.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


MIXED_CALLBACKS = {
    "rigl": (lambda x, y: RiGL(update_every=2, data=(x[:64], y[:64])), None),
    "imp": (lambda x, y: IMP(0.25, 0.3, epochs_per_cycle=1), None),
    "magnitude_pruning": (lambda x, y: MagnitudePruning(
        schedules.PolynomialDecay(0.5, 0.8, 0, 8, frequency=2)), None),
    "str": (lambda x, y: STR(s_init=-3.0, target_density=0.3), "str"),
    "edge_popup": (lambda x, y: EdgePopup(0.2, levels=2), "edge_popup"),
}


def _train_with(name, x, y):
    make, prepare = MIXED_CALLBACKS[name]
    model = sparse_mlp()
    callback = make(x, y)
    if prepare == "str":
        callback.prepare(model)
    elif prepare == "edge_popup":
        EdgePopup.prepare(model, seed=0)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), LOSS)
    masks = keras_er.get_masks(model)
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0,
                        callbacks=[callback])
    return model, masks, history.history["loss"]


# bfloat16 has no loss scaling: the callbacks the brief names suffice there.
@pytest.mark.parametrize("policy_name, name", [
    *[("mixed_float16", name) for name in sorted(MIXED_CALLBACKS)],
    *[("mixed_bfloat16", name) for name in ("imp", "magnitude_pruning",
                                            "rigl")],
])
def test_callbacks_in_mixed_precision(policy_name, name):
    x, y = classification_data(128)
    with global_policy(policy_name):
        model, masks, losses = _train_with(name, x, y)
    assert np.isfinite(losses).all()
    if name != "edge_popup":  # Its density drops at each level.
        assert losses[-1] < losses[0]
    after = keras_er.get_masks(model)
    assert any((after[k] != masks[k]).any() for k in masks)
    for layer in er_layers(model):
        assert layer.mask.dtype == "bool"
        assert layer.reparameterization is None  # STR / edge-popup folded.
    assert_zero_outside_masks(model)
    if policy_name == "mixed_float16":
        optimizer = model.optimizer
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        assert float(to_numpy(optimizer.dynamic_scale)) > 1.0
    if policy_name == "mixed_float16" and name == "magnitude_pruning":
        # The scaled loss is unscaled before the update: the run follows
        # the float32 one up to float16 rounding.
        reference, _, reference_losses = _train_with(name, x, y)
        np.testing.assert_allclose(losses, reference_losses, rtol=0.02)
        for ref, mask in zip(keras_er.get_masks(reference).values(),
                             after.values()):
            assert np.mean(ref != mask) < 0.02


@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize("name", ["rigl", "imp", "magnitude_pruning"])
def test_mixed_precision_under_xla(policy_name, name):
    # Both at once: the loss-scaled, half-precision step compiled by XLA,
    # with a callback that changes masks between steps (no retrace).
    x, y = classification_data(128)
    counter = TraceCounter()
    with global_policy(policy_name):
        model = sparse_mlp(counter=counter)
        callback = MIXED_CALLBACKS[name][0](x, y)
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), LOSS,
                      jit_compile=True)
        masks = keras_er.get_masks(model)
        count = CountTraces(counter)
        history = model.fit(x, y, batch_size=32, epochs=3, verbose=0,
                            callbacks=[callback, count])
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    if name != "rigl":  # RiGL's own eager forward passes would count.
        assert count.counts[-1] == count.counts[0], "the step was retraced"
    after = keras_er.get_masks(model)
    assert any((after[k] != masks[k]).any() for k in masks)
    for layer in er_layers(model):
        assert layer.compute_dtype == policy_name.split("_")[1]
        assert layer.mask.dtype == "bool"
    assert_zero_outside_masks(model)
    if policy_name == "mixed_float16":
        assert float(to_numpy(model.optimizer.dynamic_scale)) > 1.0
