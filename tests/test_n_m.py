"""N:M structured sparsity: random N:M masks (`sampling="2:4"`)."""

import keras
import numpy as np
import pytest

import keras_er
from keras_er import masks as masks_lib
from tests.conftest import to_numpy


def _groups(mask, m, axes=((-2,), (-1,))):
    """Kept entries per group of ``m`` consecutive inputs, per output."""
    view, _ = masks_lib._to_units(np.asarray(mask), axes)
    positions, n_in, n_out = view.shape
    full = n_in // m * m
    return view[:, :full, :].reshape(positions, n_in // m, m, n_out).sum(2)


@pytest.mark.parametrize("pattern", ["1:2", "2:4", "1:4", "4:8", "3:3"])
@pytest.mark.parametrize("shape", [(16, 6), (3, 3, 8, 5)])
def test_every_group_keeps_exactly_n(pattern, shape):
    n, m = masks_lib.parse_n_m(pattern)
    mask = masks_lib.draw_mask(
        shape, n / m, np.random.default_rng(0), sampling=pattern)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert np.all(_groups(mask, m) == n)
    assert mask.mean() == pytest.approx(n / m)


def test_groups_follow_the_unit_axes():
    # An EinsumDense-like kernel (n_in, heads, head_dim): groups run over
    # the input axis for each (head, dim) output.
    axes = ((0,), (1, 2))
    mask = masks_lib.draw_n_m_mask((8, 2, 3), 2, 4, np.random.default_rng(1),
                                   axes)
    assert np.all(mask.reshape(2, 4, 2, 3).sum(axis=1) == 2)


def test_a_short_last_group_keeps_its_share():
    mask = masks_lib.draw_n_m_mask((10, 7), 2, 4, np.random.default_rng(0))
    assert np.all(mask[:8].reshape(2, 4, 7).sum(axis=1) == 2)
    assert np.all(mask[8:].sum(axis=0) == 1)   # round(2 * 2 / 4)


def test_draws_are_random_and_seeded():
    first = masks_lib.draw_n_m_mask((64, 32), 2, 4, np.random.default_rng(0))
    again = masks_lib.draw_n_m_mask((64, 32), 2, 4, np.random.default_rng(0))
    other = masks_lib.draw_n_m_mask((64, 32), 2, 4, np.random.default_rng(1))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # Every position of a group is chosen about equally often.
    per_position = first.reshape(16, 4, 32).mean(axis=(0, 2))
    assert np.all(np.abs(per_position - 0.5) < 0.1)


def _convnet():
    return keras.Sequential([
        keras.Input((8, 8, 4)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10),
    ])


def test_sparsify_2_4_trains_saves_and_strips_with_the_pattern(tmp_path):
    sparse = keras_er.sparsify(_convnet(), "uniform", 0.5, sampling="2:4",
                               seed=0)
    assert set(sparse.sparsify_report["edges_added"].values()) == {0}
    x = np.random.default_rng(0).random((32, 8, 8, 4), dtype=np.float32)
    y = np.random.default_rng(1).integers(0, 10, 32)
    sparse.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    sparse.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for layer in keras_er.er_layers(sparse):
        mask = to_numpy(layer.mask).astype(np.float32)
        assert np.all(_groups(mask, 4) == 2), layer.name
        kernel = to_numpy(layer._kernel)
        assert np.all(kernel[mask == 0] == 0)
        # Trained inside the pattern: still 2 nonzeros of every 4.
        assert np.all(_groups(kernel != 0, 4) <= 2)

    sparse.save(tmp_path / "m.keras")
    loaded = keras_er.load_model(tmp_path / "m.keras")
    for a, b in zip(keras_er.er_layers(sparse), keras_er.er_layers(loaded)):
        np.testing.assert_array_equal(to_numpy(a.mask), to_numpy(b.mask))
        assert b.sampling == "2:4"

    stripped = keras_er.strip(sparse)
    for layer in stripped.layers:
        if hasattr(layer, "kernel"):
            assert np.all(_groups(to_numpy(layer.kernel) != 0, 4) <= 2)
    np.testing.assert_allclose(
        to_numpy(stripped(x)), to_numpy(sparse(x)), rtol=1e-5, atol=1e-5)


def test_er_layer_draws_its_own_n_m_mask():
    layer = keras_er.ERDense(12, density=0.25, sampling="1:4", seed=0)
    layer.build((None, 16))
    assert np.all(_groups(to_numpy(layer.mask).astype(np.float32), 4) == 1)
    assert layer.flow_edges_added == 0


@pytest.mark.parametrize("kwargs,match", [
    ({"ratio": "erk", "density": 0.5}, r"Fix: ratio='uniform', density=0\.5"),
    ({"ratio": "uniform", "density": 0.3}, r"density of 0\.5 in every layer"),
])
def test_n_m_needs_the_matching_uniform_density(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_er.sparsify(_convnet(), sampling="2:4", seed=0, **kwargs)


@pytest.mark.parametrize("sampling,match", [
    ("4:2", "1 <= N <= M"),
    ("0:4", "1 <= N <= M"),
    ("2-4", "N:M pattern such as '2:4'"),
    ("a:b", "N:M pattern such as '2:4'"),
])
def test_bad_patterns_are_named(sampling, match):
    with pytest.raises(ValueError, match=match):
        keras_er.sparsify(_convnet(), "uniform", 0.5, sampling=sampling)


# --------------------------------------------- N:M magnitude (algorithm)


def _reference_n_m(kernel, mask, n, m):
    """Loop version over (position, output, group) of a 4-D conv kernel."""
    kh, kw, n_in, n_out = kernel.shape
    out = np.zeros_like(kernel)
    for i in range(kh):
        for j in range(kw):
            for o in range(n_out):
                for start in range(0, n_in, m):
                    idx = np.arange(start, min(start + m, n_in))
                    keep = n if len(idx) == m else min(
                        len(idx), max(1, round(n * len(idx) / m)))
                    score = np.where(mask[i, j, idx, o] > 0,
                                     np.abs(kernel[i, j, idx, o]), -1.0)
                    out[i, j, idx[np.argsort(-score)[:keep]], o] = 1
    return out * mask


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (3, 8)])
def test_n_m_magnitude_mask_matches_a_loop(n, m):
    from keras_er.algorithms.n_m import n_m_magnitude_mask

    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 10, 5)).astype("float32")
    mask = (rng.random(kernel.shape) < 0.8).astype("float32")
    got = to_numpy(n_m_magnitude_mask(kernel, mask, n, m))
    np.testing.assert_array_equal(got, _reference_n_m(kernel, mask, n, m))
    assert np.all(got <= mask)   # a subset of the current mask


@pytest.mark.parametrize("value", [(2,), (4, 2), (0, 4), "2:4", (2.0, 4)])
def test_check_n_m_names_the_argument(value):
    from keras_er.algorithms.n_m import check_n_m

    with pytest.raises(ValueError, match="m_by_n"):
        check_n_m(value)


# ------------------------------------- N:M magnitude pruning (callback)


@pytest.mark.parametrize("start", ["dense", "random_2_4"])
def test_magnitude_pruning_m_by_n_keeps_the_largest_per_group(start):
    from keras_er.callbacks import MagnitudePruning, schedules

    if start == "dense":
        sparse = keras_er.sparsify(_convnet(), "uniform", 1.0, seed=0)
    else:
        sparse = keras_er.sparsify(_convnet(), "uniform", 0.5,
                                   sampling="2:4", seed=0)
    x = np.random.default_rng(0).random((64, 8, 8, 4), dtype=np.float32)
    y = np.random.default_rng(1).integers(0, 10, 64)
    sparse.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    callback = MagnitudePruning(
        schedules.ConstantSparsity(0.5, begin_step=0, frequency=3),
        m_by_n=(2, 4))
    sparse.fit(x, y, epochs=2, batch_size=16, callbacks=[callback], verbose=0)
    for layer in keras_er.er_layers(sparse):
        mask = to_numpy(layer.mask).astype(np.float32)
        assert np.all(_groups(mask, 4) == 2), layer.name
        assert np.all(to_numpy(layer._kernel)[mask == 0] == 0)
    assert callback.density() == pytest.approx(0.5)
    # Export keeps the pattern: the stripped kernels have it.
    stripped = keras_er.strip(sparse)
    for layer in stripped.layers:
        if hasattr(layer, "kernel"):
            assert np.all(_groups(to_numpy(layer.kernel) != 0, 4) <= 2)
    config = callback.get_config()
    assert MagnitudePruning.from_config(config).m_by_n == (2, 4)


def test_m_by_n_keeps_the_largest_magnitudes():
    from keras_er.algorithms.n_m import n_m_magnitude_mask
    from keras_er.callbacks import MagnitudePruning, schedules

    sparse = keras_er.sparsify(_convnet(), "uniform", 1.0, seed=0)
    expected = {
        layer.name: to_numpy(n_m_magnitude_mask(
            layer.kernel, layer.mask, 2, 4, axes=layer.unit_axes))
        for layer in keras_er.er_layers(sparse)
    }
    sparse.compile("sgd", "mse")
    callback = MagnitudePruning(
        schedules.ConstantSparsity(0.5, begin_step=0, frequency=100),
        m_by_n=(2, 4))
    callback.set_model(sparse)
    callback._prune_at(0)   # the first pruning step, before any update
    for layer in keras_er.er_layers(sparse):
        np.testing.assert_array_equal(
            to_numpy(layer.mask).astype(np.float32), expected[layer.name])
