"""Every keras_er callback resumes exactly from both Keras resume paths.

(a) `keras.callbacks.BackupAndRestore`, with the keras_er callback listed
    before or after it; (b) `keras.callbacks.ModelCheckpoint` with
    ``save_weights_only=True``, then ``model.load_weights(path)`` and
    ``model.fit(..., initial_epoch=k)`` with a new callback instance.

A run of 4 epochs (16 steps) stops at the end of epoch 1 (a crash) and is
resumed into a fresh model sparsified (and prepared) with another seed, so
masks, weights and callback state can only come from the checkpoint. It must
end with the same masks and kernels as the uninterrupted run. Each callback
changes the masks (or, for STR, freezes its thresholds) after the crash.
"""

import shutil

import keras
import numpy as np
import pytest

import keras_er
from keras_er.callbacks import (
    IMP,
    SET,
    STR,
    EdgePopup,
    MagnitudePruning,
    RiGL,
)
from keras_er.callbacks.schedules import PolynomialDecay
from keras_er.mask_io import er_layers
from tests.conftest import classification_data, to_numpy

EPOCHS = 4
BATCH = 16  # 64 samples: 4 steps per epoch, 16 in all.
INTERRUPT = 1  # Crash at the end of epoch 1; resume at epoch 2.
DATA = classification_data(n=64, n_in=16, n_out=4)


def _model(seed):
    keras.utils.set_random_seed(seed)
    dense = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(24, activation="relu"),
        keras.layers.Dense(4),
    ])
    # Bernoulli masks: another seed gives other masks and other counts.
    return keras_er.sparsify(dense, "uniform", 0.5, seed=seed)


def _sgd():
    return keras.optimizers.SGD(0.05, momentum=0.9)


# name: (callback factory, model preparation, optimizer factory)
SETUPS = {
    "imp": (
        lambda: IMP(0.1, prune_fraction=0.5, epochs_per_cycle=1, rewind=2),
        None, _sgd,
    ),
    "rigl": (
        lambda: RiGL(update_every=2, drop_fraction=0.5, target_density=0.3,
                     data=(DATA[0][:32], DATA[1][:32]), seed=0),
        None, lambda: keras.optimizers.Adam(0.02),
    ),
    "set": (
        lambda: SET(update_every=3, drop_fraction=0.5, seed=0),
        None, _sgd,
    ),
    "gmp": (
        lambda: MagnitudePruning(PolynomialDecay(
            initial_sparsity=0.5, final_sparsity=0.9, begin_step=0,
            end_step=14, frequency=2)),
        None, _sgd,
    ),
    "str": (
        # The density reaches 0.35 at step 14; checked every 3 steps, the
        # thresholds freeze at step 15.
        lambda: STR(s_init=-3.0, target_density=0.35, check_every=3),
        lambda model, seed: STR(s_init=-3.0).prepare(model),
        lambda: keras.optimizers.SGD(0.2, momentum=0.9),
    ),
    "edge_popup": (
        lambda: EdgePopup(0.15, levels=2),
        lambda model, seed: EdgePopup.prepare(model, seed=seed),
        lambda: keras.optimizers.SGD(0.5, momentum=0.9),
    ),
}


def _compiled(name, seed):
    _, prepare, optimizer = SETUPS[name]
    model = _model(seed)
    if prepare is not None:
        prepare(model, seed)
    model.compile(
        optimizer(),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _fit(model, callbacks, **kwargs):
    x, y = DATA
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False,
              verbose=0, callbacks=callbacks, **kwargs)
    return model


def _ordered(callback, saver, order):
    if order == "callback_first":
        return [callback, saver]
    return [saver, callback]


def _masks_and_kernels(model):
    return [(to_numpy(layer.mask), to_numpy(layer._kernel))
            for layer in er_layers(model)]


class _KeepCheckpoints(keras.callbacks.Callback):
    """Listed last: copies the checkpoints as a crash there would leave them.

    A crash at the end of epoch ``INTERRUPT`` (after every callback's
    ``on_epoch_end``) leaves exactly the files written by then, so one
    uninterrupted run gives both the reference and the checkpoints to
    resume from (of both kinds, for both callback orders).
    """

    def __init__(self, directory):
        super().__init__()
        self.directory = directory

    def on_epoch_end(self, epoch, logs=None):
        if epoch == INTERRUPT:
            shutil.copytree(self.directory / "live", self.directory / "crash")


_RUNS = {}


def _uninterrupted(name, tmp_path_factory):
    """(final masks and kernels, checkpoint dir) of the uninterrupted run."""
    if name not in _RUNS:
        directory = tmp_path_factory.mktemp(name)
        savers = {}
        for order in ORDERS:
            live = directory / "live" / order
            savers[order] = [
                keras.callbacks.BackupAndRestore(str(live / "backup")),
                keras.callbacks.ModelCheckpoint(
                    str(live / "ckpt.weights.h5"), save_weights_only=True),
            ]
        callbacks = (savers["callback_last"] + [SETUPS[name][0]()]
                     + savers["callback_first"]
                     + [_KeepCheckpoints(directory)])
        model = _fit(_compiled(name, seed=0), callbacks)
        _RUNS[name] = _masks_and_kernels(model), directory / "crash"
    return _RUNS[name]


def _resume_with_backup(name, order, checkpoints, tmp_path):
    backup_dir = tmp_path / "backup"
    # The resumed fit deletes its backup at the end: use a copy.
    shutil.copytree(checkpoints / "backup", backup_dir)
    model = _compiled(name, seed=1)
    backup = keras.callbacks.BackupAndRestore(str(backup_dir))
    return _fit(model, _ordered(SETUPS[name][0](), backup, order))


def _resume_with_load_weights(name, order, checkpoints, tmp_path):
    model = _compiled(name, seed=1)
    # As for any Keras model: build the optimizer first, or load_weights
    # skips its state (step count, momentum) with a warning.
    model.optimizer.build(model.trainable_variables)
    model.load_weights(str(checkpoints / "ckpt.weights.h5"))
    return _fit(model, [SETUPS[name][0]()], initial_epoch=INTERRUPT + 1)


RESUME = {
    "backup_and_restore": _resume_with_backup,
    "load_weights": _resume_with_load_weights,
}
ORDERS = ("callback_first", "callback_last")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("path", sorted(RESUME))
@pytest.mark.parametrize("name", sorted(SETUPS))
def test_resumed_run_ends_like_the_uninterrupted_run(
    name, path, order, tmp_path, tmp_path_factory
):
    """``order``: of the callback and the saver (also in the resumed run
    for BackupAndRestore)."""
    reference, crash = _uninterrupted(name, tmp_path_factory)
    resumed = RESUME[path](name, order, crash / order, tmp_path)
    got = _masks_and_kernels(resumed)
    assert len(got) == len(reference)
    for (ref_mask, ref_kernel), (mask, kernel) in zip(reference, got):
        np.testing.assert_array_equal(mask, ref_mask)
        np.testing.assert_allclose(kernel, ref_kernel, rtol=0, atol=1e-5)


def test_load_weights_then_fit_from_epoch_0_starts_a_new_run(
    tmp_path_factory
):
    # The checkpoint's IMP run had pruned twice; initial_epoch=0 is a new
    # run from the loaded weights, which prunes once in its first epoch.
    _, crash = _uninterrupted("imp", tmp_path_factory)
    model = _compiled("imp", seed=1)
    model.optimizer.build(model.trainable_variables)
    model.load_weights(str(crash / "callback_first" / "ckpt.weights.h5"))
    imp = SETUPS["imp"][0]()
    model.fit(*DATA, batch_size=BATCH, epochs=1, verbose=0, callbacks=[imp])
    assert imp.cycle == 1


def test_resuming_without_the_optimizer_state_warns(tmp_path_factory):
    _, crash = _uninterrupted("rigl", tmp_path_factory)
    model = _compiled("rigl", seed=1)
    # Optimizer not built: Keras skips its variables (with a warning).
    with pytest.warns(UserWarning):
        model.load_weights(str(crash / "callback_first" / "ckpt.weights.h5"))
    with pytest.warns(UserWarning, match="optimizer is at step 0"):
        _fit(model, [SETUPS["rigl"][0]()], initial_epoch=INTERRUPT + 1)
