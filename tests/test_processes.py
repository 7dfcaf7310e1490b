"""Agreement across processes and layouts, checked in one process.

The two-process runs are in tests/test_multiprocess.py (heavy); these check
the same mechanisms where one process can: every seed keras_er draws for
``seed=None`` comes from `keras_er.processes.random_seed`, loading draws no
mask, masks take their kernel's layout under a `keras.distribution`, and the
helpers are exact no-ops on one process.
"""

import sys

import keras
import numpy as np
import pytest

import keras_er
import keras_er.callbacks.edge_popup  # noqa: F401 (patched below)
from keras_er import processes
from keras_er.callbacks import EdgePopup
from keras_er.layers import masked_kernel
from tests.conftest import mlp


@pytest.fixture
def agreed_seed(monkeypatch):
    """random_seed returns 7, as if process 0 had drawn it for all."""
    calls = []

    def fake():
        calls.append(1)
        return 7

    # Every module that draws for seed=None (keras_er.sparsify, the module,
    # is shadowed by the function of that name).
    for name in ("keras_er.processes", "keras_er.layers.masked_kernel",
                 "keras_er.sparsify", "keras_er.callbacks.edge_popup"):
        monkeypatch.setattr(sys.modules[name], "random_seed", fake)
    return calls


def test_every_unseeded_draw_takes_the_agreed_seed(agreed_seed):
    sparse = keras_er.sparsify(mlp(), "erk", 0.5)
    assert sparse.sparsify_report["seed"] == 7
    seeded = keras_er.sparsify(mlp(), "erk", 0.5, seed=7)
    for drawn, reference in zip(keras_er.get_masks(sparse).values(),
                                keras_er.get_masks(seeded).values()):
        np.testing.assert_array_equal(drawn, reference)

    unseeded = keras_er.ERDense(8, density=0.3)
    unseeded.build((None, 12))
    reference = keras_er.ERDense(8, density=0.3, seed=7)
    reference.build((None, 12))
    np.testing.assert_array_equal(
        np.asarray(unseeded.mask), np.asarray(reference.mask)
    )
    assert EdgePopup.prepare(sparse)["seed"] == 7
    assert len(agreed_seed) == 3


def test_random_seed_on_one_process_is_fresh_and_int32():
    seeds = {processes.random_seed() for _ in range(5)}
    assert len(seeds) > 1
    assert all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds)
    assert processes.process_count() == 1


def test_load_model_draws_no_mask(tmp_path, monkeypatch):
    sparse = keras_er.sparsify(mlp(), "erk", 0.4, seed=3)
    path = str(tmp_path / "sparse.keras")
    sparse.save(path)

    def no_draw(*args, **kwargs):
        raise AssertionError("a mask was drawn while loading")

    monkeypatch.setattr(masked_kernel.masks_lib, "draw_layer_mask", no_draw)
    loaded = keras_er.load_model(path)
    saved = keras_er.get_masks(sparse)
    for name, mask in keras_er.get_masks(loaded).items():
        np.testing.assert_array_equal(mask, saved[name])
    # Outside loading, building an ER layer draws its mask as before.
    with pytest.raises(AssertionError, match="drawn"):
        keras_er.ERDense(4, density=0.5, seed=0).build((None, 3))


def test_single_process_helpers_are_identities():
    x = np.arange(12, dtype="float32").reshape(4, 3)
    batch = (x, np.arange(4), None)
    assert processes.global_batch(batch) is batch
    tensors = [keras.ops.convert_to_tensor(x)]
    assert processes.mean_over_workers(tensors, mlp()) is tensors
    variable = keras.Variable(x)
    np.testing.assert_array_equal(processes.host_array(variable), x)
    np.testing.assert_array_equal(processes.host_array(variable.value), x)


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="keras.distribution is JAX's"
)
def test_masks_and_scores_take_the_kernel_layout_under_model_parallel():
    import jax

    devices = jax.devices()
    mesh = keras.distribution.DeviceMesh(
        (1, len(devices)), ["batch", "model"], devices
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*dense.*/kernel"] = (None, "model")
    distribution = keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="batch"
    )
    with distribution.scope():
        # Output widths divisible by the model axis (2 devices in CI).
        sparse = keras_er.sparsify(mlp(classes=4), "erk", 0.5, seed=0)
        EdgePopup.prepare(sparse, seed=0)
        layers = keras_er.er_layers(sparse)
        for layer in layers:
            kernel = layer._kernel.value.sharding
            for variable in (layer.mask, layer.edge_popup_scores):
                assert variable.value.sharding.is_equivalent_to(
                    kernel, len(variable.shape)
                ), variable.path
            if len(devices) > 1:  # Sharded, not merely on one device.
                assert not kernel.is_fully_replicated
        # The user's key names kernels only; the masks followed anyway.
        assert all(
            layout_map[layer.mask.path] is None for layer in layers
        )
