"""The after-update projection is skipped only where it changes nothing.

An ER layer re-zeroes its kernel outside the mask after every optimizer
update. In Keras' own ``train_step`` with an element-wise optimizer that is a
no-op, so it is left out (`keras_er.set_mask_projection`). These tests check
that training is then bit-for-bit what it is with the projection (to float
rounding under XLA), also when
callbacks change masks mid-training, and that everything else keeps it.
"""

import keras
import numpy as np
import pytest

import keras_er
from keras_er.callbacks import IMP, MagnitudePruning, RiGL, schedules
from keras_er.layers import masked_kernel
from keras_er.mask_io import er_layers
from tests.conftest import classification_data, to_numpy

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

ELEMENTWISE = {
    "sgd_momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    "sgd_nesterov": lambda: keras.optimizers.SGD(
        0.05, momentum=0.9, nesterov=True),
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
    "adamax": lambda: keras.optimizers.Adamax(0.01),
    "nadam": lambda: keras.optimizers.Nadam(0.01),
    "rmsprop_centered": lambda: keras.optimizers.RMSprop(
        0.01, momentum=0.5, centered=True),
    "adagrad": lambda: keras.optimizers.Adagrad(0.05),
    "adadelta": lambda: keras.optimizers.Adadelta(1.0),
    "lion": lambda: keras.optimizers.Lion(0.001),
    "clipnorm_adam": lambda: keras.optimizers.Adam(0.01, global_clipnorm=0.5),
    "loss_scale_adam": lambda: keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam(0.01)),
}


@pytest.fixture(autouse=True)
def _auto_projection():
    yield
    keras_er.set_mask_projection("auto")


def data(n=64, seed=0):
    return classification_data(n, seed=seed)


def sparse_mlp(**layer_kwargs):
    keras.backend.clear_session(free_memory=False)  # Same layer names.
    keras.utils.set_random_seed(0)
    dense = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(32, activation="relu", **layer_kwargs),
        keras.layers.Dense(4),
    ])
    return keras_er.sparsify(dense, "erk", 0.4, seed=0)


def train(make_optimizer, mode, make_callbacks=list, epochs=2, model=None):
    """Trains a fresh sparse MLP (or ``model``) with projection ``mode``."""
    keras_er.set_mask_projection(mode)
    model = sparse_mlp() if model is None else model
    model.compile(optimizer=make_optimizer(), loss=LOSS)
    x, y = data()
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=False,
              callbacks=make_callbacks())
    return model


def raw_kernels(model):
    return [to_numpy(layer._kernel) for layer in er_layers(model)]


def assert_same_kernels(a, b):
    if keras.backend.backend() == "jax":
        # XLA may fuse the step differently without the projection's
        # multiply (an FMA here or there): equal up to float rounding.
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    else:
        np.testing.assert_array_equal(a, b)


def assert_zero_outside_masks(model):
    for layer in er_layers(model):
        outside = to_numpy(layer.mask) == 0
        assert outside.any()
        assert np.all(to_numpy(layer._kernel)[outside] == 0), layer.name


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_optimizer_skips_projection_bit_for_bit(name):
    skipped = train(ELEMENTWISE[name], "auto")
    projected = train(ELEMENTWISE[name], "always")
    assert not any(l.projects_after_update for l in er_layers(skipped))
    assert all(l.projects_after_update for l in er_layers(projected))
    for a, b in zip(raw_kernels(skipped), raw_kernels(projected)):
        assert_same_kernels(a, b)
    assert_zero_outside_masks(skipped)


def test_projection_is_installed_until_a_train_step_decides():
    model = sparse_mlp()
    model(np.zeros((2, 16), "float32"))  # An eager call decides nothing.
    assert all(l.projects_after_update for l in er_layers(model))


def test_muon_keeps_the_projection_which_it_needs():
    make = lambda: keras.optimizers.Muon(0.02)  # noqa: E731
    model = train(make, "auto")
    assert all(l.projects_after_update for l in er_layers(model))
    assert_zero_outside_masks(model)


def test_muon_would_move_masked_entries(monkeypatch):
    # What the projection guards against: Muon orthogonalizes the whole
    # update, so entries with zero gradient move.
    monkeypatch.setattr(
        masked_kernel, "ELEMENTWISE_OPTIMIZERS",
        masked_kernel.ELEMENTWISE_OPTIMIZERS + (keras.optimizers.Muon,),
    )
    model = train(lambda: keras.optimizers.Muon(0.02), "auto")
    layer = er_layers(model)[0]
    assert not layer.projects_after_update
    outside = to_numpy(layer.mask) == 0
    assert np.any(to_numpy(layer._kernel)[outside] != 0)


class MyAdam(keras.optimizers.Adam):
    pass


@pytest.mark.parametrize("case", ["subclass", "use_ema", "constraint"])
def test_other_setups_keep_the_projection(case):
    model = None
    make = lambda: keras.optimizers.Adam(0.01)  # noqa: E731
    if case == "subclass":  # Might change the update rule.
        make = lambda: MyAdam(0.01)  # noqa: E731
    elif case == "use_ema":  # EMA values overwrite the weights.
        make = lambda: keras.optimizers.Adam(0.01, use_ema=True)  # noqa
    else:
        model = sparse_mlp(kernel_constraint=keras.constraints.MaxNorm(1.0))
    model = train(make, "auto", model=model)
    layers = er_layers(model)
    expected = [True, case != "constraint"]  # The constraint is on layer 0.
    assert [l.projects_after_update for l in layers] == [
        True, expected[1]
    ]
    assert_zero_outside_masks(model)


@pytest.mark.tf_only
def test_custom_train_step_keeps_the_projection():
    import tensorflow as tf

    class Custom(keras.Model):
        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss = LOSS(y, self(x, training=True))
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply(grads, self.trainable_variables)
            return {"loss": loss}

    sparse = sparse_mlp()
    model = Custom(sparse.inputs, sparse.outputs)
    model = train(lambda: keras.optimizers.Adam(0.01), "auto", model=model)
    assert all(l.projects_after_update for l in er_layers(model))
    assert_zero_outside_masks(model)


MASK_CHANGERS = {
    "magnitude_pruning": lambda: [MagnitudePruning(
        schedules.PolynomialDecay(0.4, 0.8, 0, 6, frequency=2))],
    "rigl": lambda: [RiGL(update_every=2, data=data(16, seed=1), seed=0)],
    "imp": lambda: [IMP(0.2, 0.3, epochs_per_cycle=1)],
}


@pytest.mark.parametrize("name", sorted(MASK_CHANGERS))
def test_mask_changes_reset_stale_state(name):
    # Adam's moments of a pruned entry would move it without the projection.
    make = lambda: keras.optimizers.Adam(0.01)  # noqa: E731
    skipped = train(make, "auto", MASK_CHANGERS[name], epochs=3)
    projected = train(make, "always", MASK_CHANGERS[name], epochs=3)
    assert not any(l.projects_after_update for l in er_layers(skipped))
    for a, b in zip(er_layers(skipped), er_layers(projected)):
        np.testing.assert_array_equal(to_numpy(a.mask), to_numpy(b.mask))
        assert_same_kernels(to_numpy(a._kernel), to_numpy(b._kernel))
    assert_zero_outside_masks(skipped)


def test_user_set_mask_between_fits_resets_state():
    model = train(lambda: keras.optimizers.Adam(0.01), "auto")
    layer = er_layers(model)[0]
    mask = to_numpy(layer.mask).copy()
    kept = np.flatnonzero(mask)
    mask.flat[kept[: len(kept) // 2]] = 0  # Prune half, momentum still on.
    layer.set_mask(mask)
    x, y = data(seed=2)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert not layer.projects_after_update
    assert_zero_outside_masks(model)


def test_set_weights_zeroes_outside_the_mask():
    model = sparse_mlp()
    layer = er_layers(model)[0]
    weights = [np.ones_like(to_numpy(w)) for w in layer.weights]
    weights[-1] = to_numpy(layer.mask)  # Keep the mask.
    layer.set_weights(weights)
    np.testing.assert_array_equal(to_numpy(layer._kernel), weights[-1])


def test_bad_mode():
    with pytest.raises(ValueError, match="must be one of"):
        keras_er.set_mask_projection("never")
