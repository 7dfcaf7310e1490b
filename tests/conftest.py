"""Shared test setup: quiet TensorFlow, small models, fixed seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers share the cores: one TensorFlow op thread each, instead of
    # a pool per worker as large as the machine, whose threads then spin
    # and hand off work to each other (subprocesses inherit it).
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    # TensorFlow-only features cannot run on the JAX or torch backends.
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(
        reason=f"tf_only: needs KERAS_BACKEND=tensorflow, not {backend!r}"
    )
    for item in items:
        if "tf_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _clear_keras_session():
    # Fresh layer names (dense, dense_1, ...) in every test.
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    yield


def mlp(input_dim=20, hidden=(16, 12), classes=3):
    """A small Dense MLP built on a known input shape."""
    layers = [keras.Input((input_dim,))]
    layers += [keras.layers.Dense(h, activation="relu") for h in hidden]
    layers.append(keras.layers.Dense(classes))
    return keras.Sequential(layers)


def cnn(input_shape=(12, 12, 3), classes=4):
    """A small CNN with a residual connection and BatchNorm (Functional)."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    y = keras.layers.Conv2D(8, 3, padding="same")(x)
    y = keras.layers.BatchNormalization()(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.Conv2D(16, 3, strides=2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes)(x)
    return keras.Model(inputs, outputs)


def to_numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value))


def classification_data(n=256, n_in=16, n_out=4, seed=0):
    """Gaussian inputs labelled by the argmax of a random linear map."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_in)).astype("float32")
    return x, np.argmax(x @ rng.normal(size=(n_in, n_out)), axis=1)


class Interrupt(keras.callbacks.Callback):
    """Raises ``RuntimeError("interrupted")`` at an epoch's begin or end.

    Stands for a crash: `keras.callbacks.BackupAndRestore` keeps its backup.
    """

    def __init__(self, epoch, at="begin"):
        super().__init__()
        self.epoch = epoch
        self.at = at

    def _maybe_raise(self, epoch, at):
        if epoch == self.epoch and at == self.at:
            raise RuntimeError("interrupted")

    def on_epoch_begin(self, epoch, logs=None):
        self._maybe_raise(epoch, "begin")

    def on_epoch_end(self, epoch, logs=None):
        self._maybe_raise(epoch, "end")


def assert_rigl_rewires(model, x, y, names):
    """Sparsifies ``model``, trains 8 steps with RiGL (an update every 2)
    and checks that the masks ``names`` moved at constant density."""
    import keras_er

    sparse = keras_er.sparsify(model, "uniform", 0.3, seed=0,
                               sampling="exact")
    sparse.compile(keras.optimizers.Adam(0.01),
                   keras.losses.SparseCategoricalCrossentropy(
                       from_logits=True))
    before = keras_er.get_masks(sparse)
    rigl = keras_er.callbacks.RiGL(update_every=2, data=(x[:32], y[:32]),
                                   total_steps=8)
    sparse.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[rigl])
    after = keras_er.get_masks(sparse)
    for name in names:
        assert (before[name] != after[name]).any(), name
        assert before[name].sum() == after[name].sum(), name


def interpreter_for(path):
    """A TFLite interpreter of ``path``: LiteRT's (``ai-edge-litert``) where
    it installs, else the deprecated ``tf.lite.Interpreter``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Deprecated for LiteRT.
            return tf.lite.Interpreter(model_path=path)
    return Interpreter(model_path=path)
