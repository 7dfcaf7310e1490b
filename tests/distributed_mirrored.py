"""keras_er under tf.distribute.MirroredStrategy on two logical CPU devices.

Not collected by the normal suite (no ``test_`` prefix): the two logical
devices must be configured before TensorFlow initializes its devices, so
`tests/test_distribute.py` runs this module in a fresh interpreter:

    python -m pytest -q tests/distributed_mirrored.py
"""

import os

import keras
import numpy as np
import pytest

if keras.backend.backend() != "tensorflow":
    pytest.skip("tf.distribute needs the TensorFlow backend.",
                allow_module_level=True)

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
try:
    tf.config.set_logical_device_configuration(
        _cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # Devices already initialized in this interpreter.
    pass
if len(tf.config.list_logical_devices("CPU")) < 2:
    message = "needs a fresh interpreter (two logical CPU devices)"
    if os.environ.get("KERAS_ER_REQUIRE_TWO_CPUS"):
        raise RuntimeError(message)  # The launcher must not skip silently.
    pytest.skip(message, allow_module_level=True)

import keras_er  # noqa: E402
from keras_er.callbacks import (  # noqa: E402
    IMP,
    SET,
    STR,
    EdgePopup,
    MagnitudePruning,
    RiGL,
    schedules,
)
from keras_er.mask_io import er_layers  # noqa: E402
from tests.conftest import Interrupt, cnn, mlp  # noqa: E402

STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def data(n=128, shape=(16,), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype("float32")
    w = rng.normal(size=(int(np.prod(shape)), classes))
    return x, np.argmax(x.reshape(n, -1) @ w, axis=1)


def replicas(variable):
    """The value of ``variable`` on each replica (numpy arrays)."""
    values = STRATEGY.experimental_local_results(variable.value)
    return [np.asarray(v) for v in values]


def assert_mirrored(variable):
    values = replicas(variable)
    assert len(values) == 2, f"{variable.path} is not mirrored"
    np.testing.assert_array_equal(values[0], values[1], err_msg=variable.path)
    return values[0]


class ReplicaCheck(keras.callbacks.Callback):
    """After every batch, epoch and at the end (listed after the keras_er
    callback, so after its mask updates): masks, kernels, every trainable
    variable and the optimizer state are equal on both replicas, masks are
    0/1 and kernels zero outside them. Counts the mask changes it sees."""

    def __init__(self):
        super().__init__()
        self.masks = None
        self.changes = 0

    def _check(self):
        masks = []
        for layer in er_layers(self.model):
            mask = assert_mirrored(layer.mask)
            assert np.isin(mask, (0, 1)).all()
            for kernel in replicas(layer._kernel):
                assert not kernel[mask == 0].any(), layer.name
            masks.append(mask)
        for variable in self.model.trainable_variables:
            assert_mirrored(variable)
        for variable in self.model.optimizer.variables:
            if len(replicas(variable)) > 1:
                assert_mirrored(variable)
        if self.masks is not None:
            self.changes += any(
                (a != b).any() for a, b in zip(masks, self.masks)
            )
        self.masks = masks

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()

    def on_train_end(self, logs=None):
        self._check()


def sparse_mlp(density=0.5, seed=0):
    keras.utils.set_random_seed(seed)
    with STRATEGY.scope():
        return keras_er.sparsify(mlp(16, (32,), 4), "erk", density, seed=seed)


def compile_sgd(model):
    with STRATEGY.scope():
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), LOSS)


# Each case: (model builder, data shape, callback factory, prepare, epochs).
CASES = {
    "rigl": (sparse_mlp, (16,), lambda x, y: RiGL(
        update_every=2, data=(x[:64], y[:64]), seed=0), None, 2),
    # On a CNN (ERConv2D, BatchNorm) with the growth drawn at random.
    "set": (lambda: _sparse_cnn(), (8, 8, 3), lambda x, y: SET(
        update_every=2, drop_fraction=0.3, schedule="constant"), None, 2),
    "imp": (sparse_mlp, (16,), lambda x, y: IMP(
        0.2, 0.5, epochs_per_cycle=1), None, 3),
    "magnitude_pruning": (sparse_mlp, (16,), lambda x, y: MagnitudePruning(
        schedules.PolynomialDecay(0.5, 0.85, 0, 8, frequency=2)), None, 2),
    # prepare() outside strategy.scope(): its variables follow the layer's.
    "str": (sparse_mlp, (16,), lambda x, y: STR(
        s_init=-3.0, target_density=0.3), "outside", 2),
    "edge_popup": (sparse_mlp, (16,), lambda x, y: EdgePopup(
        0.2, levels=2), "inside", 2),
}


def _sparse_cnn():
    keras.utils.set_random_seed(0)
    with STRATEGY.scope():
        return keras_er.sparsify(cnn((8, 8, 3), 4), "erk", 0.5, seed=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_callback_keeps_replicas_identical(name):
    build, shape, make_callback, prepare, epochs = CASES[name]
    x, y = data(shape=shape)
    model = build()
    callback = make_callback(x, y)
    if prepare is not None:
        prep = (
            callback.prepare if isinstance(callback, STR)
            else lambda m: EdgePopup.prepare(m, seed=0)
        )
        if prepare == "inside":
            with STRATEGY.scope():
                prep(model)
        else:
            prep(model)
    compile_sgd(model)
    check = ReplicaCheck()
    history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0,
                        shuffle=False, callbacks=[callback, check])
    assert check.changes >= 1, "the callback never changed a mask"
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0]
    for layer in er_layers(model):
        assert layer.reparameterization is None  # STR / edge-popup folded.


def test_sparsify_outside_scope_follows_the_input_model():
    keras.utils.set_random_seed(0)
    with STRATEGY.scope():
        dense = mlp(16, (32,), 4)
    sparse = keras_er.sparsify(dense, "erk", 0.5, seed=0)  # Outside.
    assert sparse.distribute_strategy is STRATEGY
    for variable in sparse.weights:
        assert len(replicas(variable)) == 2
    compile_sgd(sparse)
    x, y = data()
    with STRATEGY.scope():  # fit may also run inside the scope.
        sparse.fit(x, y, batch_size=32, epochs=1, verbose=0,
                   callbacks=[SET(update_every=2), ReplicaCheck()])


@pytest.mark.parametrize("where", ["compile_inside", "fit_inside"])
def test_a_model_sparsified_outside_the_scope_raises_clearly(where):
    sparse = keras_er.sparsify(mlp(16, (32,), 4), "erk", 0.5, seed=0)
    x, y = data()
    callback = SET(update_every=2)
    # Plain Keras fails here with a bare AssertionError in the optimizer;
    # keras_er's callbacks check first.
    with pytest.raises(ValueError, match=r"MirroredStrategy.*strategy\.scope"):
        with STRATEGY.scope():
            sparse.compile(keras.optimizers.SGD(0.1), LOSS)
            if where == "fit_inside":
                sparse.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
        sparse.fit(x, y, epochs=1, verbose=0, callbacks=[callback])


def test_save_weights_and_keras_file_restore_under_the_strategy(tmp_path):
    x, y = data()
    model = sparse_mlp(seed=0)
    compile_sgd(model)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0,
              callbacks=[SET(update_every=2, schedule="constant")])
    expected = [
        (np.asarray(layer.mask), np.asarray(layer._kernel))
        for layer in er_layers(model)
    ]
    model.save_weights(str(tmp_path / "m.weights.h5"))
    model.save(str(tmp_path / "m.keras"))

    other = sparse_mlp(seed=1)  # Other masks, overwritten by the load.
    other.load_weights(str(tmp_path / "m.weights.h5"))
    with STRATEGY.scope():
        loaded = keras.saving.load_model(str(tmp_path / "m.keras"))
    for restored in (other, loaded):
        for layer, (mask, kernel) in zip(er_layers(restored), expected):
            np.testing.assert_array_equal(assert_mirrored(layer.mask), mask)
            np.testing.assert_array_equal(
                assert_mirrored(layer._kernel), kernel
            )


RESUMED = {
    "imp": lambda x, y: IMP(0.25, 0.5, epochs_per_cycle=1),  # Prunes once.
    # Prune and rewire: the resumed run needs the start sizes from the state.
    "rigl": lambda x, y: RiGL(update_every=2, drop_fraction=0.5,
                              target_density=0.25, data=(x[:64], y[:64])),
}


def _resume_run(name, backup_dir, seed=0, interrupt=None):
    x, y = data()
    model = sparse_mlp(seed=seed)
    compile_sgd(model)
    callbacks = [
        RESUMED[name](x, y),
        keras.callbacks.BackupAndRestore(str(backup_dir)),
    ]
    if interrupt is not None:
        callbacks.append(Interrupt(interrupt))
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0,
              callbacks=callbacks)
    return model


@pytest.mark.parametrize("name", sorted(RESUMED))
def test_backup_and_restore_resumes_under_the_strategy(tmp_path, name):
    reference = _resume_run(name, tmp_path / "reference")
    with pytest.raises(RuntimeError, match="interrupted"):
        _resume_run(name, tmp_path / "resumed", interrupt=1)
    # Another seed: masks, weights and the callback's state come from the
    # backup.
    resumed = _resume_run(name, tmp_path / "resumed", seed=1)
    for ref, res in zip(er_layers(reference), er_layers(resumed)):
        np.testing.assert_array_equal(
            assert_mirrored(ref.mask), assert_mirrored(res.mask)
        )
        np.testing.assert_allclose(
            assert_mirrored(ref._kernel), assert_mirrored(res._kernel),
            atol=1e-5,
        )


@pytest.mark.parametrize("name", ["rigl", "imp"])
def test_mixed_precision_and_uint8_masks_under_the_strategy(name):
    # The loss-scaled float16 step, 1-byte masks and mask updates together,
    # replicas checked after every batch.
    _, shape, make_callback, _, epochs = CASES[name]
    x, y = data(shape=shape)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        with STRATEGY.scope():
            model = keras_er.sparsify(mlp(16, (32,), 4), "erk", 0.5, seed=0,
                                      mask_dtype="uint8")
        compile_sgd(model)
        check = ReplicaCheck()
        history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0,
                            shuffle=False,
                            callbacks=[make_callback(x, y), check])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert check.changes >= 1, "the callback never changed a mask"
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    for layer in er_layers(model):
        assert layer.mask.dtype == "uint8"
        assert layer.compute_dtype == "float16"
