"""Kernel entries outside the mask stay exactly zero, on every path.

An ER layer re-applies its mask (``kernel <- kernel * mask``, the kernel
variable's constraint) after every optimizer update, whoever runs the update:
``fit``, a custom ``train_step``, a custom loop. These tests drive updates
that would move masked entries without it (a regularizer whose gradient is
not zero at 0, Muon, momentum loaded with the optimizer or left from before a
pruning step, an optimizer switched after ``fit``) and check the invariant
after every optimizer, with EMA, gradient accumulation, loss scaling, and
masks changed between steps; on JAX also that the jitted train step uses the
mask as it is now, not as it was when the step was traced.
"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_er
from keras_er.callbacks import IMP, MagnitudePruning, RiGL, schedules
from keras_er.mask_io import er_layers
from tests.conftest import classification_data, to_numpy

BACKEND = keras.backend.backend()
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@keras.saving.register_keras_serializable("keras_er_tests")
class OffZero(keras.regularizers.Regularizer):
    """A regularizer whose gradient at w = 0 is not zero."""

    def __call__(self, w):
        return 0.05 * ops.sum(ops.square(w - 0.1))

    def get_config(self):
        return {}


OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.05),
    "sgd_momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
    "nadam": lambda: keras.optimizers.Nadam(0.01),
    "rmsprop_centered": lambda: keras.optimizers.RMSprop(
        0.01, momentum=0.5, centered=True),
    "adagrad": lambda: keras.optimizers.Adagrad(0.05),
    "adadelta": lambda: keras.optimizers.Adadelta(1.0),
    "lion": lambda: keras.optimizers.Lion(0.001),
    "ftrl": lambda: keras.optimizers.Ftrl(0.05),
    "muon": lambda: keras.optimizers.Muon(0.02),
    "lamb": lambda: keras.optimizers.Lamb(0.01),
    "adafactor": lambda: keras.optimizers.Adafactor(0.05),
    "clipnorm_adam": lambda: keras.optimizers.Adam(0.01, global_clipnorm=0.5),
    "accumulate_adam": lambda: keras.optimizers.Adam(
        0.01, gradient_accumulation_steps=2),
    "loss_scale_adam": lambda: keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam(0.01)),
}


def data(n=64, seed=0):
    return classification_data(n, seed=seed)


def sparse_mlp(regularizer=None, density=0.4, dtype=None):
    keras.backend.clear_session(free_memory=False)  # Same layer names.
    keras.utils.set_random_seed(0)
    dense = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(32, activation="relu",
                           kernel_regularizer=regularizer, dtype=dtype),
        keras.layers.Dense(4, kernel_regularizer=regularizer, dtype=dtype),
    ])
    return keras_er.sparsify(dense, "uniform", density, seed=0)


def fit(model, optimizer=None, epochs=1, callbacks=(), seed=0):
    if optimizer is not None:
        model.compile(optimizer=optimizer, loss=LOSS)
    x, y = data(seed=seed)
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=False,
              callbacks=list(callbacks))
    return model


def assert_zero_outside_masks(model):
    for layer in er_layers(model):
        outside = to_numpy(layer.mask) == 0
        assert outside.any()
        moved = np.abs(to_numpy(layer._kernel)[outside])
        assert np.all(moved == 0), (layer.name, moved.max())


def prune_half(model):
    """Removes half of every layer's kept entries (the smallest)."""
    masks = {}
    for layer in er_layers(model):
        mask = to_numpy(layer.mask).copy()
        kernel = np.abs(to_numpy(layer._kernel))
        kept = np.flatnonzero(mask)
        smallest = kept[np.argsort(kernel.flat[kept])[: len(kept) // 2]]
        mask.flat[smallest] = 0
        masks[layer.name] = mask
    keras_er.set_masks(model, masks)
    return masks


# ------------------------------------------------------ every optimizer


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_with_an_off_zero_regularizer(name):
    # The regularizer's gradient moves every masked entry: only the
    # projection after the update brings them back.
    model = fit(sparse_mlp(OffZero()), OPTIMIZERS[name]())
    assert_zero_outside_masks(model)


def test_orthogonal_regularizer():
    reg = keras.regularizers.OrthogonalRegularizer(1.0, mode="columns")
    model = fit(sparse_mlp(reg), keras.optimizers.SGD(0.05))
    assert_zero_outside_masks(model)


def test_mixed_precision():
    model = sparse_mlp(OffZero(), dtype="mixed_float16")
    fit(model, keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam(0.01)))
    assert er_layers(model)[0].compute_dtype == "float16"
    assert_zero_outside_masks(model)


def test_muon_would_move_masked_entries_without_the_projection():
    # What the projection guards against, and that this test can see it.
    model = sparse_mlp()
    for layer in er_layers(model):
        layer._kernel.constraint = None
    fit(model, keras.optimizers.Muon(0.02))
    outside = to_numpy(er_layers(model)[0].mask) == 0
    assert np.any(to_numpy(er_layers(model)[0]._kernel)[outside] != 0)


# ----------------------------------------- custom train_step, custom loop


def _gradients(model, x, y):
    """Loss gradients of ``model``'s trainable variables (any backend)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = LOSS(y, model(x, training=True)) + sum(model.losses)
        return tape.gradient(loss, model.trainable_variables)
    if BACKEND == "torch":
        model.zero_grad()
        loss = LOSS(y, model(x, training=True)) + sum(model.losses)
        loss.backward()
        return [v.value.grad for v in model.trainable_variables]
    import jax

    @jax.jit  # The forward pass is traced, the update below runs eagerly.
    def grads(trainable, non_trainable):
        def loss_fn(trainable):
            out, _, losses = model.stateless_call(
                trainable, non_trainable, x, training=True,
                return_losses=True,
            )
            return LOSS(y, out) + sum(losses)
        return jax.grad(loss_fn)(trainable)

    return grads(
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
    )


def custom_loop(model, optimizer, steps=4):
    x, y = data(seed=3)
    for i in range(steps):
        batch = slice(16 * i, 16 * (i + 1))
        grads = _gradients(model, x[batch], y[batch])
        optimizer.apply(grads, model.trainable_variables)


def test_custom_loop_after_fit_with_another_optimizer():
    # Path 4: fit with Adam, then Muon in a custom loop on the same model.
    model = fit(sparse_mlp(), keras.optimizers.Adam(0.01))
    custom_loop(model, keras.optimizers.Muon(0.02))
    assert_zero_outside_masks(model)


@pytest.mark.parametrize("name", ["sgd_momentum", "muon"])
def test_custom_loop(name):
    model = sparse_mlp(OffZero())
    custom_loop(model, OPTIMIZERS[name]())
    assert_zero_outside_masks(model)


class CustomStep(keras.Model):
    """A Functional model with its own train_step (per backend)."""

    if BACKEND == "jax":
        def train_step(self, state, data):
            import jax

            trainable, non_trainable, optimizer_vars, metrics_vars = state
            x, y = data

            def loss_fn(trainable):
                out, new_non_trainable = self.stateless_call(
                    trainable, non_trainable, x, training=True)
                return LOSS(y, out), new_non_trainable

            (loss, non_trainable), grads = jax.value_and_grad(
                loss_fn, has_aux=True)(trainable)
            trainable, optimizer_vars = self.optimizer.stateless_apply(
                optimizer_vars, grads, trainable)
            return {"loss": loss}, (
                trainable, non_trainable, optimizer_vars, metrics_vars)
    else:
        def train_step(self, data):
            x, y = data
            grads = _gradients(self, x, y)
            if BACKEND == "torch":
                import torch

                with torch.no_grad():
                    self.optimizer.apply(grads, self.trainable_variables)
            else:
                self.optimizer.apply(grads, self.trainable_variables)
            return {"steps": self.optimizer.iterations}


@pytest.mark.parametrize("name", ["adam", "muon"])
def test_custom_train_step(name):
    sparse = sparse_mlp(OffZero() if BACKEND != "jax" else None)
    model = CustomStep(sparse.inputs, sparse.outputs)
    fit(model, OPTIMIZERS[name]())
    assert_zero_outside_masks(model)


# ------------------------------------------------------- mask changes


def test_loaded_optimizer_state_then_set_masks(tmp_path):
    # Path 1: momentum saved with the model, entries pruned before the first
    # step of the loaded model.
    model = fit(sparse_mlp(), keras.optimizers.SGD(0.05, momentum=0.9))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    prune_half(loaded)
    fit(loaded, seed=1)
    assert_zero_outside_masks(loaded)


def test_loaded_optimizer_state_then_magnitude_pruning(tmp_path):
    model = fit(sparse_mlp(), keras.optimizers.Adam(0.01))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    step = int(to_numpy(loaded.optimizer.iterations))
    schedule = schedules.ConstantSparsity(0.8, begin_step=step, frequency=100)
    fit(loaded, callbacks=[MagnitudePruning(schedule)], seed=1)
    assert_zero_outside_masks(loaded)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_ema_with_magnitude_pruning(name):
    # Path 2: at the end of fit Keras copies the EMA into the weights,
    # with no projection: the EMA of pruned entries must be gone.
    make = {
        "sgd": lambda: keras.optimizers.SGD(0.05, momentum=0.9, use_ema=True),
        "adam": lambda: keras.optimizers.Adam(0.01, use_ema=True),
    }[name]
    schedule = schedules.PolynomialDecay(0.6, 0.9, 2, 6, frequency=2)
    model = fit(sparse_mlp(), make(), epochs=2,
                callbacks=[MagnitudePruning(schedule)])
    assert_zero_outside_masks(model)


EMA_OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.05, momentum=0.9, use_ema=True),
    "adam": lambda: keras.optimizers.Adam(0.01, use_ema=True),
    # Muon orthogonalizes the whole update: the EMA of masked entries moves.
    "muon": lambda: keras.optimizers.Muon(0.02, use_ema=True),
}


@pytest.mark.parametrize("callback", [None, "magnitude", "imp"])
@pytest.mark.parametrize("name", sorted(EMA_OPTIMIZERS))
def test_ema_end_of_fit_keeps_masked_entries_zero(name, callback):
    # Keras' finalize_variable_values copies the EMA into the weights at
    # the end of fit, bypassing the projection; keras_er re-projects there
    # (no callback needed), and every keras_er callback re-applies the
    # masks in on_train_end.
    callbacks = {
        None: [],
        "magnitude": [MagnitudePruning(
            schedules.PolynomialDecay(0.6, 0.9, 2, 6, frequency=2))],
        "imp": [IMP(0.3, prune_fraction=0.5, epochs_per_cycle=1)],
    }[callback]
    model = fit(sparse_mlp(), EMA_OPTIMIZERS[name](), epochs=2,
                callbacks=callbacks)
    assert_zero_outside_masks(model)
    # The EMA did move masked entries before the final projection (Muon):
    # the invariant is not vacuous there.
    if name == "muon":
        layer = er_layers(model)[0]
        average = [
            v for v in model.optimizer.variables
            if v.name.endswith("_average")
            and v.name.startswith(layer._kernel.path.replace("/", "_"))
        ]
        outside = to_numpy(layer.mask) == 0
        assert average and np.abs(to_numpy(average[0])[outside]).max() > 0


def test_ema_with_regularizer_nonzero_at_zero():
    # A regularizer sees `kernel * mask`: no gradient outside the mask.
    model = fit(sparse_mlp(OffZero()),
                keras.optimizers.Adam(0.01, use_ema=True))
    assert_zero_outside_masks(model)


def test_set_mask_resets_optimizer_state_of_removed_entries():
    model = fit(sparse_mlp(), keras.optimizers.Adam(0.01, use_ema=True))
    layer = er_layers(model)[0]
    before = to_numpy(layer.mask)
    masks = prune_half(model)
    removed = (before != 0) & (masks[layer.name] == 0)
    slots = [
        v for v in model.optimizer.variables
        if v.name.startswith(layer._kernel.path.replace("/", "_") + "_")
    ]
    assert {s.name.rsplit("_", 1)[-1] for s in slots} >= {
        "momentum", "velocity", "average"}
    for slot in slots:
        assert np.all(to_numpy(slot)[removed] == 0), slot.name
        assert np.any(to_numpy(slot)[masks[layer.name] != 0] != 0)


def test_rigl_with_momentum():
    make = lambda: keras.optimizers.SGD(0.05, momentum=0.9)  # noqa: E731
    rigl = RiGL(update_every=2, data=data(16, seed=1), seed=0)
    model = fit(sparse_mlp(OffZero()), make(), epochs=2, callbacks=[rigl])
    assert_zero_outside_masks(model)


def test_set_mask_between_fits_is_honoured():
    # The (jitted, on JAX) train step must use the mask as set now: entries
    # a new mask removes stay at zero, entries it adds are trained.
    model = fit(sparse_mlp(density=0.3), keras.optimizers.Muon(0.02))
    first = {layer.name: to_numpy(layer.mask) for layer in er_layers(model)}
    masks = {name: 1 - mask for name, mask in first.items()}  # Swap.
    keras_er.set_masks(model, masks)
    fit(model, seed=1)
    assert_zero_outside_masks(model)
    for layer in er_layers(model):
        grown = masks[layer.name] != 0
        # Not all: a unit may be dead. None if the initial mask were used.
        assert np.count_nonzero(to_numpy(layer._kernel)[grown]) > (
            0.25 * grown.sum())
    keras_er.set_masks(model, first)  # And back, in the same train step.
    fit(model, seed=2)
    assert_zero_outside_masks(model)


def test_set_weights_zeroes_outside_the_mask():
    model = sparse_mlp()
    layer = er_layers(model)[0]
    weights = [np.ones_like(to_numpy(w)) for w in layer.weights]
    weights[-1] = to_numpy(layer.mask)  # Keep the mask.
    layer.set_weights(weights)
    np.testing.assert_array_equal(to_numpy(layer._kernel), weights[-1])


@pytest.mark.skipif(BACKEND != "tensorflow", reason="a traced TF train step")
def test_mask_changed_inside_a_traced_step_is_the_one_projected():
    # A custom step that prunes between its forward pass and the update (a
    # mask change inside one traced graph): the projection after the update
    # must use the new mask, not the one the forward pass read.
    import tensorflow as tf

    model = sparse_mlp(OffZero(), density=0.3)
    optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
    optimizer.build(model.trainable_variables)
    x, y = data(seed=3)
    layers = er_layers(model)
    # The complement: every entry the forward pass trained is now removed.
    new_masks = [
        ops.cast(1 - to_numpy(layer.mask).astype("float32"), layer.mask.dtype)
        for layer in layers
    ]

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = LOSS(y, model(x, training=True)) + sum(model.losses)
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        for layer, mask in zip(layers, new_masks):
            layer.mask.assign(mask)
        optimizer.apply(grads, variables)

    step(x[:16], y[:16])
    assert_zero_outside_masks(model)
