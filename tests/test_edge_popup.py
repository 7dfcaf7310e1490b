"""Edge-popup (strong lottery tickets) inside ER masks."""

import math

import keras
import numpy as np
import pytest

import keras_er
from keras_er.callbacks import EdgePopup
from keras_er.callbacks.edge_popup import freeze_batchnorm_affine
from keras_er.layers.edge_popup_scores import EdgePopupScores, subnetwork_mask
from keras_er.mask_io import er_layers
from tests.conftest import to_numpy

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def mlp_bn(width=64, bn=True, bias=False):
    """Digits MLP; BatchNorm without affine parameters, as in edge-popup."""
    layers = [keras.Input((64,))]
    for _ in range(2):
        layers.append(keras.layers.Dense(width, use_bias=bias))
        if bn:
            layers.append(
                keras.layers.BatchNormalization(
                    center=False, scale=False, momentum=0.9
                )
            )
        layers.append(keras.layers.ReLU())
    layers.append(keras.layers.Dense(10, use_bias=bias))
    return keras.Sequential(layers)


def conv_model():
    """Digits as 8x8x1 images: ERConv2D + ERDense, with biases."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10)(x)
    return keras.Model(inputs, outputs)


def prepared(model, density=0.5, ratio="uniform", **kwargs):
    sparse = keras_er.sparsify(model, ratio, density, seed=0)
    EdgePopup.prepare(sparse, seed=0, **kwargs)
    return sparse


def compile_adam(model, lr=0.01, **kwargs):
    model.compile(
        keras.optimizers.Adam(lr), LOSS, metrics=["accuracy"], **kwargs
    )


def numbers(model):
    """{name: (N_l, nnz_l of the ER mask)}."""
    return {
        layer.name: (int(layer.mask.numpy().size),
                     int(layer.mask.numpy().sum()))
        for layer in er_layers(model)
    }


class Recorder(keras.callbacks.Callback):
    """Records k, kernels and subnetworks after every epoch of training."""

    def __init__(self):
        super().__init__()
        self.k_at_begin = []
        self.kernels = []
        self.biases = []
        self.subnetworks = []

    def on_epoch_begin(self, epoch, logs=None):
        self.k_at_begin.append(
            {l.name: int(l.edge_popup_k.numpy()) for l in er_layers(self.model)}
        )

    def on_epoch_end(self, epoch, logs=None):
        layers = er_layers(self.model)
        self.kernels.append({l.name: l._kernel.numpy().copy() for l in layers})
        self.biases.append(
            {l.name: l.bias.numpy().copy() for l in layers if l.use_bias}
        )
        self.subnetworks.append(
            {l.name: l.reparameterization.subnetwork(l) for l in layers}
        )


# -------------------------------------------------------- top-k selection


def test_subnetwork_never_leaves_er_mask_even_with_huge_scores():
    rng = np.random.default_rng(0)
    mask = (rng.random((20, 30)) < 0.3).astype("float32")
    scores = rng.normal(size=mask.shape).astype("float32")
    # The entries with the largest |score| lie outside the mask.
    scores[mask == 0] = 1e6 * np.sign(rng.normal(size=int((mask == 0).sum())))
    nnz = int(mask.sum())
    for k in (1, 7, nnz // 2, nnz):
        hard = to_numpy(subnetwork_mask(scores, mask, k))
        assert set(np.unique(hard)) <= {0.0, 1.0}
        assert hard.sum() == k
        assert np.all(hard <= mask)
        # They are the k largest |scores| inside the mask.
        kept = np.abs(scores[hard == 1])
        dropped = np.abs(scores[(mask == 1) & (hard == 0)])
        if dropped.size:
            assert kept.min() >= dropped.max()
    # k above the mask size keeps the mask, never an outside entry.
    hard = to_numpy(subnetwork_mask(scores, mask, nnz + 50))
    np.testing.assert_array_equal(hard, mask)
    # Tied scores: still exactly k entries.
    mask = np.ones((6, 5), "float32")
    mask[0] = 0
    scores = np.full(mask.shape, 0.5, "float32")
    hard = to_numpy(subnetwork_mask(scores, mask, 11))
    assert hard.sum() == 11
    assert np.all(hard <= mask)


def test_bounded_sort_selects_what_the_full_sort_selects():
    # Integer scores: many ties, zeros among them. max_k only bounds the
    # sort; a k above it falls back to the full sort.
    rng = np.random.default_rng(1)
    mask = (rng.random((20, 30)) < 0.3).astype("float32")
    scores = rng.integers(-3, 4, size=mask.shape).astype("float32")
    nnz = int(mask.sum())
    for k in (0, 1, 7, nnz // 2, nnz - 1, nnz, nnz + 10):
        full = to_numpy(subnetwork_mask(scores, mask, k))
        assert full.sum() == min(k, nnz)
        for max_k in (nnz, nnz // 2, 1):
            bounded = to_numpy(subnetwork_mask(scores, mask, k, max_k=max_k))
            if keras.backend.backend() != "torch":
                np.testing.assert_array_equal(bounded, full)
                continue
            # torch.topk breaks ties in no fixed order: still a top-k.
            assert bounded.sum() == min(k, nnz) and np.all(bounded <= mask)
            kept = np.abs(scores[bounded == 1])
            dropped = np.abs(scores[(mask == 1) & (bounded == 0)])
            if kept.size and dropped.size:
                assert kept.min() >= dropped.max()


def test_layer_sort_bound_follows_its_mask(tmp_path):
    model = prepared(mlp_bn(width=16), ratio="erk")
    for layer in er_layers(model):
        assert layer._edge_popup_max_k == int(to_numpy(layer.mask).sum())
    layer = er_layers(model)[0]
    smaller = to_numpy(layer.mask).copy()
    smaller.flat[np.flatnonzero(smaller)[::2]] = 0
    layer.set_mask(smaller)
    assert layer._edge_popup_max_k == int(smaller.sum())
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for old, new in zip(er_layers(model), er_layers(loaded)):
        assert new._edge_popup_max_k == int(to_numpy(old.mask).sum())


def test_hand_checked_forward_and_straight_through_gradient():
    from keras_er.gradients import gradients

    layer = keras_er.ERDense(2, use_bias=False, density=1.0, seed=0)
    layer.build((None, 2))
    layer.set_mask(np.array([[1, 1], [1, 0]], "float32"))
    layer._kernel.assign(np.array([[0.5, -1.0], [2.0, 3.0]], "float32"))
    layer.set_reparameterization(EdgePopupScores())
    # (1, 1) is outside the mask with by far the largest score.
    layer.edge_popup_scores.assign(
        np.array([[0.3, -0.9], [0.1, 5.0]], "float32")
    )
    layer.edge_popup_k.assign(2)
    x = keras.ops.convert_to_tensor([[1.0, 2.0]])
    upstream = keras.ops.convert_to_tensor([[1.0, 10.0]])
    y = layer(x)

    def loss_of(values):  # Any backend: the scores mapped to traced values.
        scores = layer.edge_popup_scores
        with keras.StatelessScope(state_mapping=[(scores, values[0])]):
            return keras.ops.sum(layer(x) * upstream)
    # Kept: |0.3| and |-0.9|; effective kernel [[0.5, -1], [0, 0]].
    np.testing.assert_allclose(to_numpy(layer.kernel), [[0.5, -1.0], [0, 0]])
    np.testing.assert_allclose(to_numpy(y), [[0.5, -1.0]])
    grad = gradients(loss_of, [layer.edge_popup_scores.value])[0]
    # dL/d(effective) = x^T upstream = [[1, 10], [2, 20]]; times w:
    # [[0.5, -10], [4, 60]]; straight through to |s| (also to the
    # unselected (1, 0)); times sign(s); zero outside the ER mask.
    dl_deff = np.array([[1.0, 10.0], [2.0, 20.0]])
    w = np.array([[0.5, -1.0], [2.0, 3.0]])
    np.testing.assert_allclose(grad, [[0.5, 10.0], [4.0, 0.0]])
    inside_positive = np.array([[True, False], [True, False]])
    np.testing.assert_allclose(
        grad[inside_positive], (dl_deff * w)[inside_positive]
    )
    # The weights are frozen: only the scores are trainable.
    assert [v.name for v in layer.trainable_variables] == ["edge_popup_scores"]


# --------------------------------------------------------------- prepare


def test_prepare_signed_constant_freezes_weights_and_adds_scores():
    sparse = prepared(conv_model(), freeze_batchnorm=False)
    kept_signs = []
    for layer in er_layers(sparse):
        kernel, mask = layer._kernel.numpy(), layer.mask.numpy()
        fan_in = int(np.prod(kernel.shape[:-1]))
        std = math.sqrt(2.0) / math.sqrt(fan_in)
        np.testing.assert_allclose(np.abs(kernel[mask == 1]), std, rtol=1e-6)
        assert np.all(kernel[mask == 0] == 0)
        kept_signs.append(kernel[mask == 1] > 0)
        trainable = {id(v) for v in layer.trainable_variables}
        assert trainable == {id(layer.edge_popup_scores)}
        assert int(layer.edge_popup_k.numpy()) == int(mask.sum())
        assert isinstance(layer.reparameterization, EdgePopupScores)
    # Signs independent of the mask (the mask's seed stream is not reused):
    # about half of the ~1500 kept weights are positive.
    assert 0.45 < np.mean(np.concatenate(kept_signs)) < 0.55
    model_trainable = {id(v) for v in sparse.trainable_variables}
    assert model_trainable == {
        id(layer.edge_popup_scores) for layer in er_layers(sparse)
    }


def test_prepare_kaiming_normal_and_keep_weights():
    model = keras.Sequential([keras.Input((400,)), keras.layers.Dense(300)])
    sparse = prepared(model, density=0.2, weight_init="kaiming_normal",
                      gain=1.0)
    layer = er_layers(sparse)[0]
    kept = layer._kernel.numpy()[layer.mask.numpy() == 1]
    assert kept.std() == pytest.approx(1 / math.sqrt(400), rel=0.03)
    assert abs(kept.mean()) < 0.01
    # weight_init=None keeps the weights; scores differ between layers.
    sparse = keras_er.sparsify(mlp_bn(bn=False), "uniform", 0.5, seed=0)
    before = [l._kernel.numpy().copy() for l in er_layers(sparse)]
    report = EdgePopup.prepare(sparse, weight_init=None, seed=3)
    assert report["seed"] == 3
    assert report["layers"] == [l.name for l in er_layers(sparse)]
    for layer, kernel in zip(er_layers(sparse), before):
        np.testing.assert_array_equal(layer._kernel.numpy(), kernel)
    first, second = [l.edge_popup_scores.numpy() for l in er_layers(sparse)[:2]]
    assert not np.allclose(first[:8, :8], second[:8, :8])


def test_freeze_batchnorm_affine_matches_center_scale_false():
    inputs = keras.Input((5,))
    outputs = keras.layers.BatchNormalization()(inputs)
    model = keras.Model(inputs, outputs)
    bn = model.layers[-1]
    bn.gamma.assign(np.full(5, 3.0, "float32"))
    bn.beta.assign(np.full(5, -2.0, "float32"))
    bn.moving_mean.assign(np.arange(5, dtype="float32"))
    bn.moving_variance.assign(np.full(5, 4.0, "float32"))
    assert freeze_batchnorm_affine(model) == 1
    assert not bn.gamma.trainable and not bn.beta.trainable
    assert bn.trainable_variables == []
    plain = keras.layers.BatchNormalization(center=False, scale=False)
    plain.build((None, 5))
    plain.moving_mean.assign(bn.moving_mean)
    plain.moving_variance.assign(bn.moving_variance)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(to_numpy(bn(x)), to_numpy(plain(x)), atol=1e-6)
    # Already affine-free layers are left alone.
    other = keras.Sequential([keras.Input((5,)), plain])
    assert freeze_batchnorm_affine(other) == 0


# -------------------------------------------------------------- training


def test_training_keeps_weights_and_stays_inside_er_mask(digits):
    x_train, _, y_train, _ = digits
    sparse = prepared(conv_model(), density=0.5)
    layers = er_layers(sparse)
    er_masks = {l.name: l.mask.numpy().copy() for l in layers}
    w0 = {l.name: l._kernel.numpy().copy() for l in layers}
    b0 = {l.name: l.bias.numpy().copy() for l in layers}
    # Huge scores outside the ER mask must never be selected.
    for layer in layers:
        scores = layer.edge_popup_scores.numpy()
        scores[er_masks[layer.name] == 0] = 1e6
        layer.edge_popup_scores.assign(scores)
    compile_adam(sparse)
    recorder = Recorder()
    callback = EdgePopup(0.2, levels=2)
    history = sparse.fit(
        x_train[:1280].reshape(-1, 8, 8, 1), y_train[:1280],
        epochs=2, batch_size=64, verbose=0, callbacks=[callback, recorder],
    )
    sizes = numbers(sparse)
    for epoch in range(2):
        for name, mask in er_masks.items():
            np.testing.assert_array_equal(
                recorder.kernels[epoch][name], w0[name]
            )
            np.testing.assert_array_equal(
                recorder.biases[epoch][name], b0[name]
            )
            sub = recorder.subnetworks[epoch][name]
            assert np.all(sub <= mask)
            assert sub.sum() == callback.k_schedule[name][epoch]
    # Final k_l = round(nnz_l * 0.2 / d_ER); overall density about 0.2.
    d_er = sum(n for _, n in sizes.values()) / sum(s for s, _ in sizes.values())
    for name, (size, nnz) in sizes.items():
        assert callback.k_schedule[name][-1] == round(nnz * 0.2 / d_er)
    total_k = sum(ks[-1] for ks in callback.k_schedule.values())
    total_n = sum(s for s, _ in sizes.values())
    assert total_k / total_n == pytest.approx(0.2, abs=1e-3)
    assert history.history["density"][-1] == pytest.approx(0.2, abs=1e-3)
    assert history.history["edge_popup_level"] == [1, 2]
    # Finalized: the subnetwork is the mask, scores gone, kernel w0 * mask.
    for layer in er_layers(sparse):
        new_mask = layer.mask.numpy()
        assert layer.reparameterization is None
        assert not hasattr(layer, "edge_popup_scores")
        assert np.all(new_mask <= er_masks[layer.name])
        assert new_mask.sum() == callback.k_schedule[layer.name][-1]
        np.testing.assert_array_equal(
            recorder.subnetworks[-1][layer.name], new_mask
        )
        np.testing.assert_array_equal(
            layer._kernel.numpy(), w0[layer.name] * new_mask
        )
        np.testing.assert_array_equal(layer.bias.numpy(), b0[layer.name])
    # strip sees the plain sparse ticket with the same outputs.
    plain = keras_er.strip(sparse)
    probe = x_train[:16].reshape(-1, 8, 8, 1)
    np.testing.assert_allclose(
        to_numpy(plain.predict(probe, verbose=0)),
        to_numpy(sparse.predict(probe, verbose=0)),
        atol=1e-5,
    )


def test_scores_receive_gradient_inside_mask_only(digits):
    x_train, _, y_train, _ = digits
    sparse = prepared(mlp_bn(width=32), density=0.5)
    before = {
        l.name: l.edge_popup_scores.numpy().copy() for l in er_layers(sparse)
    }
    sparse.compile(keras.optimizers.SGD(0.1), LOSS)
    sparse.fit(x_train[:256], y_train[:256], epochs=1, batch_size=64,
               verbose=0, callbacks=[EdgePopup(0.25, finalize=False)])
    for layer in er_layers(sparse):
        mask = layer.mask.numpy()
        delta = layer.edge_popup_scores.numpy() - before[layer.name]
        assert np.count_nonzero(delta[mask == 1]) > 0.5 * mask.sum()
        assert np.all(delta[mask == 0] == 0)
        # Not finalized: the scores and the ER mask are still there.
        assert isinstance(layer.reparameterization, EdgePopupScores)


def test_annealing_follows_level_schedule(digits, capsys):
    x_train, _, y_train, _ = digits
    callback = EdgePopup(0.05, levels=5, verbose=1)
    assert [callback.level_for_epoch(e, 10) for e in range(10)] == [
        1, 1, 2, 2, 3, 3, 4, 4, 5, 5
    ]
    # Fewer epochs than levels: the last epoch still reaches the target.
    assert [callback.level_for_epoch(e, 3) for e in range(3)] == [2, 4, 5]
    assert [EdgePopup(0.1).level_for_epoch(e, 4) for e in range(4)] == [1] * 4

    sparse = prepared(mlp_bn(width=32, bn=False), density=0.5)
    sizes = numbers(sparse)
    compile_adam(sparse)
    recorder = Recorder()
    history = sparse.fit(
        x_train[:64], y_train[:64], epochs=10, batch_size=64, verbose=0,
        callbacks=[callback, recorder],
    )
    d_er = sum(n for _, n in sizes.values()) / sum(s for s, _ in sizes.values())
    b = (0.05 / d_er) ** (1 / 5)
    levels = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert history.history["edge_popup_level"] == levels
    for epoch, level in enumerate(levels):
        for name, (size, nnz) in sizes.items():
            d0 = nnz / size
            expected = round(d0 * b**level * size)
            assert recorder.k_at_begin[epoch][name] == expected
        assert history.history["density"][epoch] == pytest.approx(
            d_er * b**level, rel=0.02
        )
    printed = capsys.readouterr().out
    first = f"EdgePopup: level 1/5, density {history.history['density'][0]:.6g}"
    assert first in printed
    assert "EdgePopup: level 5/5" in printed


@pytest.mark.accuracy
def test_real_run_digits_weights_never_trained(digits):
    x_train, x_test, y_train, y_test = digits
    sparse = prepared(mlp_bn(width=64), density=0.5)
    w0 = {l.name: l._kernel.numpy().copy() for l in er_layers(sparse)}
    compile_adam(sparse)
    sparse.fit(x_train, y_train, epochs=4, batch_size=32, verbose=0,
               callbacks=[EdgePopup(0.2, levels=2)])
    _, accuracy = sparse.evaluate(x_test, y_test, verbose=0)
    assert accuracy > 0.75  # chance is 0.1; about 0.9 here
    for layer in er_layers(sparse):
        mask = layer.mask.numpy()
        np.testing.assert_array_equal(
            layer._kernel.numpy(), w0[layer.name] * mask
        )


# ------------------------------------------------------ save / load / jit


def test_save_load_mid_training_keeps_scores_and_k(digits, tmp_path):
    x_train, _, y_train, _ = digits
    sparse = prepared(mlp_bn(width=32), density=0.5)
    compile_adam(sparse)
    sparse.fit(x_train[:256], y_train[:256], epochs=1, batch_size=64,
               verbose=0, callbacks=[EdgePopup(0.1, levels=2, total_epochs=2,
                                               finalize=False)])
    path = tmp_path / "ep.keras"
    sparse.save(path)
    loaded = keras.saving.load_model(path)
    for old, new in zip(er_layers(sparse), er_layers(loaded)):
        assert isinstance(new.reparameterization, EdgePopupScores)
        np.testing.assert_array_equal(
            new.edge_popup_scores.numpy(), old.edge_popup_scores.numpy()
        )
        assert int(new.edge_popup_k.numpy()) == int(old.edge_popup_k.numpy())
        assert int(new.edge_popup_k.numpy()) < int(new.mask.numpy().sum())
        np.testing.assert_array_equal(new.mask.numpy(), old.mask.numpy())
        np.testing.assert_array_equal(new._kernel.numpy(), old._kernel.numpy())
        # Building the loaded layer froze the weights again.
        assert not new._kernel.trainable
    probe = x_train[:32]
    np.testing.assert_allclose(
        to_numpy(loaded.predict(probe, verbose=0)),
        to_numpy(sparse.predict(probe, verbose=0)), atol=1e-5,
    )
    # Training resumes at level 2 and finalizes inside the ER mask.
    er_masks = {l.name: l.mask.numpy().copy() for l in er_layers(loaded)}
    callback = EdgePopup(0.1, levels=2)
    history = loaded.fit(x_train[:256], y_train[:256], initial_epoch=1,
                         epochs=2, batch_size=64, verbose=0,
                         callbacks=[callback])
    assert history.history["edge_popup_level"] == [2]
    for layer in er_layers(loaded):
        assert np.all(layer.mask.numpy() <= er_masks[layer.name])
        assert layer.mask.numpy().sum() == callback.k_schedule[layer.name][-1]


def test_jit_compile_does_not_retrace_when_level_changes(digits, monkeypatch):
    if keras.backend.backend() == "torch":
        pytest.skip("trace counting is for XLA (TensorFlow, JAX); "
                    "torch.compile re-runs Python at graph breaks")
    x_train, _, y_train, _ = digits
    traces = []
    original = EdgePopupScores.effective_kernel

    def counting(self, layer, kernel, mask):
        traces.append(layer.name)  # Runs in Python only while tracing.
        return original(self, layer, kernel, mask)

    monkeypatch.setattr(EdgePopupScores, "effective_kernel", counting)
    sparse = prepared(mlp_bn(width=16, bn=False), density=0.5)
    compile_adam(sparse, jit_compile=True)

    class Count(keras.callbacks.Callback):
        counts = []

        def on_epoch_end(self, epoch, logs=None):
            self.counts.append(len(traces))

    history = sparse.fit(
        x_train[:128], y_train[:128], epochs=3, batch_size=128, verbose=0,
        callbacks=[EdgePopup(0.1, levels=3, finalize=False), Count()],
    )
    assert history.history["edge_popup_level"] == [1, 2, 3]
    assert len(set(history.history["density"])) == 3
    assert Count.counts[0] > 0
    assert Count.counts[0] == Count.counts[-1]  # traced in epoch 0 only
    # The compiled step reads k: with the learning rate at 0, the same k
    # gives the same loss and a new k another one, without a retrace.
    sparse.optimizer.learning_rate.assign(0.0)

    def loss_now():
        return sparse.fit(x_train[:128], y_train[:128], epochs=1,
                          batch_size=128, verbose=0).history["loss"][0]

    traced = len(traces)
    loss_a, loss_same = loss_now(), loss_now()
    layer = er_layers(sparse)[0]
    layer.edge_popup_k.assign(int(layer.edge_popup_k.numpy()) // 4)
    loss_b = loss_now()
    assert len(traces) == traced
    assert loss_a == loss_same
    assert loss_a != loss_b


# ---------------------------------------------------------- bad arguments


def test_bad_arguments_raise(digits):
    x_train, _, y_train, _ = digits
    for levels in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="levels"):
            EdgePopup(0.1, levels=levels)
    for density in (0, 1.5, "a"):
        with pytest.raises(ValueError, match="target_density"):
            EdgePopup(density)
    with pytest.raises(ValueError, match="weight_init"):
        EdgePopup.prepare(prepared(mlp_bn(bn=False)), weight_init="xavier")
    # No ER layers.
    with pytest.raises(ValueError, match="no keras_er layers"):
        EdgePopup.prepare(mlp_bn(bn=False))
    plain = mlp_bn(bn=False)
    compile_adam(plain)
    with pytest.raises(ValueError, match="no keras_er layers"):
        plain.fit(x_train[:64], y_train[:64], verbose=0,
                  callbacks=[EdgePopup(0.1)])
    # Not prepared.
    sparse = keras_er.sparsify(mlp_bn(bn=False), "uniform", 0.5, seed=0)
    compile_adam(sparse)
    with pytest.raises(ValueError, match="not prepared"):
        sparse.fit(x_train[:64], y_train[:64], verbose=0,
                   callbacks=[EdgePopup(0.1)])
    # Prepared after the optimizer was built (no recompile).
    sparse.fit(x_train[:64], y_train[:64], verbose=0)
    EdgePopup.prepare(sparse, seed=0)
    with pytest.raises(ValueError, match="before model.compile"):
        sparse.fit(x_train[:64], y_train[:64], verbose=0,
                   callbacks=[EdgePopup(0.1)])
    # Final density above the ER density (overall or per layer).
    sparse = prepared(mlp_bn(bn=False), density=0.3)
    compile_adam(sparse)
    with pytest.raises(ValueError, match="above the ER density"):
        sparse.fit(x_train[:64], y_train[:64], verbose=0,
                   callbacks=[EdgePopup(0.5)])
    names = [l.name for l in er_layers(sparse)]
    with pytest.raises(ValueError, match="above its ER density"):
        sparse.fit(x_train[:64], y_train[:64], verbose=0,
                   callbacks=[EdgePopup({n: 0.9 for n in names})])
    with pytest.raises(ValueError, match="missing"):
        sparse.fit(x_train[:64], y_train[:64], verbose=0,
                   callbacks=[EdgePopup({names[0]: 0.1})])


def test_final_density_dict_sets_each_layer(digits):
    x_train, _, y_train, _ = digits
    sparse = prepared(mlp_bn(width=32, bn=False), density=0.5)
    names = [l.name for l in er_layers(sparse)]
    targets = dict(zip(names, (0.1, 0.2, 0.4)))
    compile_adam(sparse)
    sparse.fit(x_train[:64], y_train[:64], verbose=0,
               callbacks=[EdgePopup(targets)])
    for layer in er_layers(sparse):
        size = layer.mask.numpy().size
        assert layer.mask.numpy().sum() == round(targets[layer.name] * size)


def test_scores_config_round_trip():
    scores = EdgePopupScores(
        score_initializer=keras.initializers.RandomUniform(0, 1, seed=4),
        freeze_bias=False,
    )
    config = keras.saving.serialize_keras_object(scores)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, EdgePopupScores)
    assert restored.freeze_bias is False
    assert restored.get_config() == scores.get_config()
    layer = keras_er.ERDense(4, density=0.5, seed=0)
    layer.build((None, 6))
    layer.set_reparameterization(restored)
    assert layer.bias.trainable  # freeze_bias=False
    assert layer.get_config()["reparameterization"]["class_name"].endswith(
        "EdgePopupScores"
    )
    layer.set_reparameterization(None)
    assert not hasattr(layer, "edge_popup_scores")


def test_final_density_is_a_deprecated_alias_of_target_density():
    with pytest.warns(DeprecationWarning, match="target_density"):
        callback = EdgePopup(final_density=0.1, levels=2)
    assert callback.target_density == callback.final_density == 0.1
    assert EdgePopup(target_density=0.1).target_density == 0.1
    with pytest.raises(ValueError, match="alias"):
        EdgePopup(0.1, final_density=0.1)
    with pytest.raises(ValueError, match="target_density"):
        EdgePopup()
    assert EdgePopup(0.1).density is None  # Before training.
