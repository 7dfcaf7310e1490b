"""STR (soft threshold reparameterization) inside ER masks."""

import keras
import numpy as np
import pytest

import keras_er
from keras_er.callbacks import STR
from keras_er.layers.soft_threshold import SoftThreshold, ThresholdDecay
from keras_er.mask_io import er_layers
from tests.conftest import Interrupt, cnn, mlp, to_numpy


def sigmoid(s):
    return 1.0 / (1.0 + np.exp(-s))


def str_formula(kernel, mask, s):
    tau = np.float32(sigmoid(np.float32(s)))
    return mask * np.sign(kernel) * np.maximum(np.abs(kernel) - tau, 0.0)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def digits_er_model(density=0.3):
    model = mlp(input_dim=64, hidden=(64, 32), classes=10)
    return keras_er.sparsify(model, "erk", density, seed=0)


def compile_sgd(model, lr=0.1):
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def er_masks(model):
    return {name: m.copy() for name, m in keras_er.get_masks(model).items()}


def kernel_density(model):
    kernels = [to_numpy(layer.kernel) for layer in er_layers(model)]
    nonzeros = sum(np.count_nonzero(k) for k in kernels)
    return nonzeros / sum(k.size for k in kernels)


# ---------------------------------------------------------------- forward


def test_dense_forward_equals_formula():
    layer = keras_er.ERDense(6, density=0.5, seed=1)
    layer.build((None, 5))
    layer.set_reparameterization(SoftThreshold(s_init=-1.5))
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(5, 6)).astype("float32")
    layer._kernel.assign(kernel)
    x = rng.normal(size=(3, 5)).astype("float32")
    mask = to_numpy(layer.mask)
    expected = x @ str_formula(kernel, mask, -1.5) + to_numpy(layer.bias)
    np.testing.assert_allclose(
        to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6
    )
    # The threshold really prunes: sigmoid(-1.5) = 0.18 drops some kept ones.
    effective = to_numpy(layer.kernel)
    assert np.count_nonzero(effective) < np.count_nonzero(kernel * mask)
    assert np.all(effective[mask == 0] == 0)


def test_conv_kernel_equals_formula_and_gate_freezes():
    layer = keras_er.ERConv2D(4, 3, density=0.4, seed=2)
    layer.build((None, 6, 6, 3))
    layer.set_reparameterization(SoftThreshold(s_init=-2.0))
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 3, 4)).astype("float32")
    layer._kernel.assign(kernel)
    mask = to_numpy(layer.mask)
    np.testing.assert_allclose(
        to_numpy(layer.kernel), str_formula(kernel, mask, -2.0), atol=1e-6
    )
    # Gate set: the frozen threshold is used, whatever s is.
    layer.str_frozen.assign(1.0)
    layer.str_frozen_tau.assign(0.5)
    layer.str_s.assign(-50.0)
    frozen = mask * np.sign(kernel) * np.maximum(np.abs(kernel) - 0.5, 0)
    np.testing.assert_allclose(to_numpy(layer.kernel), frozen, atol=1e-6)


def test_threshold_gets_gradient_and_decay_does_not_change_loss():
    layer = keras_er.ERDense(4, density=1.0, seed=0)
    layer.build((None, 3))
    layer.set_reparameterization(SoftThreshold(s_init=-1.0, s_weight_decay=0.1))
    layer._kernel.assign(np.full((3, 4), 0.9, "float32"))
    # The decay term contributes 0 to the loss but 0.1 * s to the gradient.
    assert float(sum(to_numpy(l) for l in layer.losses)) == 0.0
    from keras_er.gradients import gradients

    x = keras.ops.ones((2, 3))

    def loss_of(values):  # Any backend: str_s mapped to the traced value.
        with keras.StatelessScope(state_mapping=[(layer.str_s, values[0])]):
            return keras.ops.sum(layer(x)) + sum(layer.losses)

    grad = float(gradients(loss_of, [layer.str_s.value])[0])
    tau = sigmoid(-1.0)
    # d/ds sum(x @ (w - tau)) = -sum(x) per column * sigmoid'(s).
    expected = -2 * 3 * 4 * tau * (1 - tau) + 0.1 * -1.0
    assert grad == pytest.approx(expected, rel=1e-5)


def test_soft_threshold_config_roundtrip():
    r = SoftThreshold(s_init=-3.0, s_weight_decay=1e-3)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(r)
    )
    assert isinstance(restored, SoftThreshold)
    assert (restored.s_init, restored.s_weight_decay) == (-3.0, 1e-3)
    decay = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(ThresholdDecay(0.5))
    )
    assert decay.weight_decay == 0.5


# ------------------------------------------------------- training and fold


def test_target_density_reached_frozen_and_folded(digits):
    x, _, y, _ = digits
    model = digits_er_model(0.3)
    before = er_masks(model)
    cb = STR(s_init=-4.0, target_density=0.1, s_weight_decay=1.0)
    cb.prepare(model)
    compile_sgd(model)
    history = model.fit(x, y, epochs=3, batch_size=128, verbose=0,
                        callbacks=[cb])
    # Logged every epoch; the threshold was learned down to the target.
    densities = history.history["density"]
    assert len(densities) == 3
    assert densities[-1] == pytest.approx(0.1, rel=0.01)
    # Folded: ordinary ER layers, final density at the target.
    assert all(layer.reparameterization is None for layer in er_layers(model))
    assert all(not hasattr(layer, "str_s") for layer in er_layers(model))
    final = kernel_density(model)
    assert abs(final - 0.1) <= 0.01 * 0.1
    masks = keras_er.get_masks(model)
    total = sum(m.size for m in masks.values())
    assert sum(m.sum() for m in masks.values()) / total == pytest.approx(
        final
    )
    for name, mask in masks.items():
        assert np.all(mask <= before[name])  # subset of the ER mask
        kernel = to_numpy(model.get_layer(name)._kernel)
        assert np.all(kernel[mask == 0] == 0)
    # Strip/export still work and agree with the folded model.
    plain = keras_er.strip(model)
    np.testing.assert_allclose(
        plain.predict(x[:50], verbose=0), model.predict(x[:50], verbose=0),
        rtol=1e-5, atol=1e-5,
    )


def test_target_never_reached_is_enforced_at_the_end(digits):
    x, _, y, _ = digits
    model = digits_er_model(0.3)
    # s = -200: sigmoid(s) is 0 in float32 and s has no gradient, so STR
    # alone prunes nothing here; the final exact shift does it.
    cb = STR(target_density=0.12)
    cb.prepare(model)
    compile_sgd(model)
    history = model.fit(x, y, epochs=1, batch_size=256, verbose=0,
                        callbacks=[cb])
    assert history.history["density"][0] > 0.25
    assert abs(kernel_density(model) - 0.12) <= 0.01 * 0.12


def test_fold_leaves_outputs_unchanged(digits):
    x, _, y, _ = digits
    images = x[:64].reshape(-1, 8, 8, 1)
    model = keras_er.sparsify(cnn(input_shape=(8, 8, 1), classes=10), "erk",
                              0.5, seed=0)
    STR(s_init=-2.5, fold_at_end=False).prepare(model)
    er_density = np.mean([m.mean() for m in keras_er.get_masks(model).values()])
    # A real threshold (sigmoid(-2.5) = 0.076): folding prunes in the mask.
    assert STR.density(model) < 0.9 * er_density
    before = model.predict(images, verbose=0)  # traces predict_function
    direct = to_numpy(model(images))
    STR.fold(model)
    assert all(l.reparameterization is None for l in er_layers(model))
    assert kernel_density(model) == pytest.approx(
        np.sum([m.sum() for m in keras_er.get_masks(model).values()])
        / np.sum([m.size for m in keras_er.get_masks(model).values()])
    )
    # predict must not reuse a function traced with the STR forward.
    np.testing.assert_array_equal(model.predict(images, verbose=0), before)
    np.testing.assert_array_equal(to_numpy(model(images)), direct)
    # An ordinary ER model again: strip gives the same network.
    np.testing.assert_allclose(
        to_numpy(keras_er.strip(model)(images)), direct, rtol=1e-5, atol=1e-6
    )


@pytest.mark.accuracy
def test_digits_str_from_er_reaches_good_accuracy(digits):
    x, x_test, y, y_test = digits
    model = digits_er_model(0.3)  # ER, sparsity 0.7
    cb = STR(s_init=-3.0, target_density=0.1, s_weight_decay=0.1)
    cb.prepare(model)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x, y, epochs=10, batch_size=64, verbose=0,
                        callbacks=[cb])
    # STR itself pruned most of the way (0.3 -> below 0.12) while training.
    assert history.history["density"][-1] < 0.12
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert abs(kernel_density(model) - 0.1) <= 0.001
    assert accuracy > 0.85  # chance is 0.1


# ---------------------------------------------------- save / load / resume


def test_frozen_state_survives_keras_save_mid_training(digits, tmp_path):
    x, _, y, _ = digits
    model = digits_er_model(0.3)
    cb = STR(s_init=-4.0, target_density=0.15, s_weight_decay=1.0,
             fold_at_end=False)
    cb.prepare(model)
    compile_sgd(model)
    model.fit(x, y, epochs=2, batch_size=128, verbose=0, callbacks=[cb])
    layers = er_layers(model)
    assert all(float(to_numpy(l.str_frozen)) == 1.0 for l in layers)
    path = str(tmp_path / "str.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for old, new in zip(layers, er_layers(loaded)):
        assert isinstance(new.reparameterization, SoftThreshold)
        for name in ("str_s", "str_frozen", "str_frozen_tau", "mask",
                     "_kernel"):
            np.testing.assert_array_equal(
                to_numpy(getattr(old, name)), to_numpy(getattr(new, name))
            )
    np.testing.assert_allclose(
        to_numpy(loaded(x[:20])), to_numpy(model(x[:20])), atol=1e-6
    )
    # Continue training the loaded model (install is a no-op on it): the
    # thresholds stay frozen, `s` only decays, the weights keep training.
    taus = [float(to_numpy(l.str_frozen_tau)) for l in er_layers(loaded)]
    s_values = [float(to_numpy(l.str_s)) for l in er_layers(loaded)]
    kernels = [to_numpy(l._kernel) for l in er_layers(loaded)]
    cb2 = STR(target_density=0.15, fold_at_end=False)
    cb2.prepare(loaded)
    history = loaded.fit(x, y, epochs=1, batch_size=128, verbose=0,
                         callbacks=[cb2])
    after = er_layers(loaded)
    assert taus == [float(to_numpy(l.str_frozen_tau)) for l in after]
    for layer, s, kernel in zip(after, s_values, kernels):
        assert abs(float(to_numpy(layer.str_s))) < abs(s)
        assert not np.array_equal(to_numpy(layer._kernel), kernel)
    assert history.history["density"][0] == pytest.approx(0.15, rel=0.1)
    STR.fold(loaded, target_density=0.15)
    assert abs(kernel_density(loaded) - 0.15) <= 0.01 * 0.15


class _Probe(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.frozen = [
            float(to_numpy(l.str_frozen)) for l in er_layers(self.model)
        ]
        self.taus = [
            float(to_numpy(l.str_frozen_tau)) for l in er_layers(self.model)
        ]


def test_resumable_with_backup_and_restore(digits, tmp_path):
    x, _, y, _ = digits
    backup = str(tmp_path / "backup")

    def fresh():
        keras.utils.set_random_seed(0)
        keras.backend.clear_session()
        model = digits_er_model(0.3)
        cb = STR(s_init=-4.0, target_density=0.15, s_weight_decay=1.0)
        cb.prepare(model)
        compile_sgd(model)
        return model, cb

    model, cb = fresh()
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(
            x, y, epochs=4, batch_size=128, verbose=0, shuffle=False,
            callbacks=[cb, keras.callbacks.BackupAndRestore(backup),
                       Interrupt(1, at="end")],
        )
    layers = er_layers(model)
    frozen_at_backup = [float(to_numpy(l.str_frozen)) for l in layers]
    taus_at_backup = [float(to_numpy(l.str_frozen_tau)) for l in layers]
    assert frozen_at_backup == [1.0] * 3  # target reached before the backup

    model, cb = fresh()
    probe = _Probe()
    history = model.fit(
        x, y, epochs=4, batch_size=128, verbose=0, shuffle=False,
        callbacks=[keras.callbacks.BackupAndRestore(backup), probe, cb],
    )
    assert probe.frozen == frozen_at_backup
    assert probe.taus == taus_at_backup
    assert len(history.history["density"]) == 2  # epochs 2 and 3 only
    assert abs(kernel_density(model) - 0.15) <= 0.01 * 0.15


# ------------------------------------------------------------ bad arguments


def test_bad_arguments():
    with pytest.raises(ValueError, match="s_init"):
        STR(s_init=float("nan"))
    with pytest.raises(ValueError, match="s_weight_decay"):
        STR(s_weight_decay=-1.0)
    with pytest.raises(ValueError, match="target_density"):
        STR(target_density=0.0)
    with pytest.raises(ValueError, match="target_density"):
        STR(target_density=1.5)
    with pytest.raises(ValueError, match="check_every"):
        STR(check_every=0)
    with pytest.raises(ValueError, match="no keras_er layers"):
        STR().prepare(mlp())
    model = digits_er_model(0.3)
    with pytest.raises(ValueError, match="above the current density"):
        STR(target_density=0.5).prepare(model)


def test_fit_without_install_or_after_compile_raises(digits):
    x, _, y, _ = digits
    model = digits_er_model(0.3)
    compile_sgd(model)
    with pytest.raises(ValueError,
                       match=r"STR is not prepared.*prepare\(model\)"):
        model.fit(x[:64], y[:64], epochs=1, verbose=0, callbacks=[STR()])
    # Optimizer already built without the thresholds.
    model.fit(x[:64], y[:64], epochs=1, verbose=0)
    cb = STR()
    cb.prepare(model)
    with pytest.raises(ValueError, match="optimizer does not train"):
        model.fit(x[:64], y[:64], epochs=1, verbose=0, callbacks=[cb])
