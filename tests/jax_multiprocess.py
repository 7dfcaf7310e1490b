"""One process of a two-process JAX run on loopback (a script).

`tests/test_multiprocess.py` starts two of these, each with 4 virtual CPU
devices (8 in all), as ``python tests/jax_multiprocess.py PORT RANK OUT
MODE``. Both processes run the same script, as a multi-host job would.

MODE ``data``: `keras.distribution.DataParallel` over all 8 devices:

* ``sparsify`` without a seed, an ``ERDense`` built with ``seed=None`` and
  ``EdgePopup.prepare`` without a seed (random seeds agreed across
  processes);
* ``fit`` with MagnitudePruning, then RiGL whose gradient batch differs per
  process;
* ``model.save`` and loading with `keras.saving.load_model` and
  `keras_er.load_model`.

MODE ``model``: `keras.distribution.ModelParallel` on a (batch 4, model 2)
mesh whose model axis spans the two processes, the LayoutMap sharding every
kernel over it; for every callback: ``sparsify`` without a seed, its
``prepare``, ``fit``, ``get_masks``, ``summary`` and ``strip``. Both
processes hold every batch shard here, so both feed the same batches; a
RiGL batch that differs between them is refused with a ValueError.

Each process writes what it ended with to ``OUT`` (an ``.npz`` file) for the
test to compare.
"""

import os
import sys

PORT, RANK, OUT, MODE = (
    int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
)
os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"

import jax  # noqa: E402

jax.distributed.initialize(
    coordinator_address=f"127.0.0.1:{PORT}", num_processes=2,
    process_id=RANK,
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_er  # noqa: E402
from keras_er.callbacks import (  # noqa: E402
    IMP, SET, STR, EdgePopup, MagnitudePruning, RiGL, schedules,
)
from keras_er.callbacks.rigl import (  # noqa: E402
    dense_kernel_gradients as rigl_gradients,
)
from keras_er.processes import host_array  # noqa: E402


def masks_of(model):
    return {k: np.asarray(v) for k, v in keras_er.get_masks(model).items()}


def data_parallel():
    keras.distribution.set_distribution(keras.distribution.DataParallel(
        devices=jax.devices(), auto_shard_dataset=False,
    ))
    keras.utils.set_random_seed(0)  # Same dense weights on both.
    model = keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3),
    ])
    sparse = keras_er.sparsify(model, "erk", 0.5)  # No seed.
    result = {"seed": sparse.sparsify_report["seed"]}
    for name, mask in masks_of(sparse).items():
        result[f"drawn/{name}"] = mask

    layer = keras_er.ERDense(8, density=0.3)  # seed=None.
    layer.build((None, 12))
    result["er_dense"] = np.asarray(layer.mask)

    rng = np.random.default_rng(0)  # The same data on both processes.
    x = rng.normal(size=(256, 20)).astype("float32")
    y = x[:, :3].argmax(axis=1).astype("int32")
    sparse.compile(
        keras.optimizers.SGD(0.05, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    gmp = MagnitudePruning(schedules.PolynomialDecay(
        initial_sparsity=0.5, final_sparsity=0.8, begin_step=0,
        end_step=16, frequency=4,
    ))
    sparse.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[gmp])
    # Each process its own gradient batch, as with per-host input.
    local = slice(32 * RANK, 32 * (RANK + 1))
    rigl = RiGL(update_every=4, drop_fraction=0.3, data=(x[local], y[local]))
    sparse.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[rigl])
    result["rigl_updates"] = len(rigl.updates)
    for name, mask in masks_of(sparse).items():
        result[f"trained/{name}"] = mask
    for l in keras_er.er_layers(sparse):
        result[f"kernel/{l.name}"] = host_array(l._kernel)

    path = os.path.join(os.path.dirname(OUT), f"model{RANK}.keras")
    sparse.save(path)
    for how, load in (("keras", keras.saving.load_model),
                      ("keras_er", keras_er.load_model)):
        for name, mask in masks_of(load(path)).items():
            result[f"{how}_loaded/{name}"] = mask

    popup = keras.Sequential([
        keras.Input((20,)), keras.layers.Dense(16), keras.layers.Dense(3),
    ])
    popup = keras_er.sparsify(popup, "uniform", 0.5, seed=1)
    report = EdgePopup(target_density=0.5).prepare(popup)  # No seed.
    result["edge_popup_seed"] = report["seed"]
    return result


def _sgd():
    return keras.optimizers.SGD(0.05, momentum=0.9)


# name: (callback factory, preparation, optimizer factory)
SETUPS = {
    "imp": (lambda: IMP(0.1, prune_fraction=0.5, epochs_per_cycle=1),
            None, _sgd),
    "rigl": (lambda data: RiGL(update_every=2, drop_fraction=0.5,
                               data=data), None, _sgd),
    "set": (lambda: SET(update_every=2, drop_fraction=0.5), None, _sgd),
    "gmp": (lambda: MagnitudePruning(schedules.PolynomialDecay(
        initial_sparsity=0.5, final_sparsity=0.8, begin_step=0, end_step=6,
        frequency=2)), None, _sgd),
    "str": (lambda: STR(s_init=-3.0, target_density=0.35, check_every=2),
            lambda model: STR(s_init=-3.0).prepare(model),
            lambda: keras.optimizers.SGD(0.2, momentum=0.9)),
    "edge_popup": (lambda: EdgePopup(0.25),
                   lambda model: EdgePopup.prepare(model),
                   lambda: keras.optimizers.SGD(0.5, momentum=0.9)),
}


def model_parallel():
    # Devices 0-3 are process 0's, 4-7 process 1's: each row of the mesh
    # (a model-axis group) holds one device of each process.
    devices = np.array(jax.devices()).reshape(2, 4).T
    mesh = keras.distribution.DeviceMesh((4, 2), ["batch", "model"], devices)
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*dense.*/kernel"] = (None, "model")
    keras.distribution.set_distribution(keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="batch",
        auto_shard_dataset=False,
    ))
    # Both processes hold every batch shard (the model axis spans them), so
    # both feed the same batches, to fit and to RiGL alike.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 16)).astype("float32")
    y = x[:, :4].argmax(axis=1).astype("int32")
    result = {}
    for name, (make, prepare, optimizer) in SETUPS.items():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((16,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(4),
        ])
        sparse = keras_er.sparsify(model, "uniform", 0.5)  # No seed.
        layers = keras_er.er_layers(sparse)
        result[f"{name}/sharded"] = all(
            not l.mask.value.is_fully_addressable
            and l.mask.value.sharding.spec == l._kernel.value.sharding.spec
            for l in layers
        )
        if prepare is not None:
            prepare(sparse)
        sparse.compile(
            optimizer(),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        callback = make((x[:16], y[:16])) if name == "rigl" else make()
        sparse.fit(x, y, batch_size=16, epochs=2, verbose=0,
                   callbacks=[callback])
        for unit, mask in masks_of(sparse).items():
            result[f"{name}/mask/{unit}"] = mask
        for l in layers:
            result[f"{name}/kernel/{l.name}"] = host_array(l._kernel)
        lines = []
        keras_er.summary(sparse, print_fn=lines.append)
        result[f"{name}/summary"] = "\n".join(lines)
        stripped = keras_er.strip(sparse)
        result[f"{name}/stripped_equal"] = bool(np.allclose(
            host_array(stripped(x[:8])), host_array(sparse(x[:8])),
            atol=1e-5,
        ))
    # Different batches on processes that share batch shards: refused.
    mine = (x[:16] + RANK, y[:16])
    try:
        rigl_gradients(sparse, mine)
    except ValueError as error:
        result["different_batches_refused"] = "same data batch" in str(error)
    else:
        result["different_batches_refused"] = False
    return result


if __name__ == "__main__":
    assert jax.process_count() == 2 and len(jax.devices()) == 8
    np.savez(OUT, **(data_parallel() if MODE == "data" else model_parallel()))
