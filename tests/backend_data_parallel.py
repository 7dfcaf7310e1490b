"""keras_er under keras.distribution.DataParallel on the JAX backend.

Run by tests/test_backends.py in a fresh process with
``KERAS_BACKEND=jax`` and ``XLA_FLAGS=--xla_force_host_platform_device_count=2``
(two CPU devices; the flag must be set before JAX starts). Trains a sparsified
model with gradual magnitude pruning and then RiGL, and prints one JSON line
with what the test checks.
"""

import json

import jax
import keras
import numpy as np

import keras_er
from keras_er.callbacks import MagnitudePruning, RiGL, schedules


def main():
    devices = jax.devices()
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices)
    )
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3),
    ])
    sparse = keras_er.sparsify(model, "erk", 0.5, seed=0)
    sparse.compile(
        keras.optimizers.SGD(0.05, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 20)).astype("float32")
    y = (x[:, :3].argmax(axis=1)).astype("int32")
    # 8 steps per epoch (batch 32, divisible by the 2 devices).
    gmp = MagnitudePruning(schedules.PolynomialDecay(
        initial_sparsity=0.5, final_sparsity=0.8, begin_step=0,
        end_step=16, frequency=4,
    ))
    history = sparse.fit(x, y, batch_size=32, epochs=3, verbose=0,
                         callbacks=[gmp])
    after_gmp = keras_er.get_masks(sparse)
    rigl = RiGL(update_every=4, drop_fraction=0.3, data=(x[:32], y[:32]),
                seed=0)
    sparse.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[rigl])
    masks = keras_er.get_masks(sparse)
    layers = keras_er.mask_io.er_layers(sparse)
    kernels = {l.name: np.asarray(keras.ops.convert_to_numpy(l._kernel))
               for l in layers}
    print(json.dumps({
        "devices": len(devices),
        "kernel_devices": [
            len(l._kernel.value.sharding.device_set) for l in layers
        ],
        "mask_devices": [
            len(l.mask.value.sharding.device_set) for l in layers
        ],
        "binary": all(bool(np.isin(m, (0, 1)).all()) for m in masks.values()),
        "max_masked": max(
            float(np.abs(kernels[n][m == 0]).max(initial=0.0))
            for n, m in masks.items()
        ),
        "density_after_gmp": float(
            sum(m.sum() for m in after_gmp.values())
            / sum(m.size for m in after_gmp.values())
        ),
        "density": float(sum(m.sum() for m in masks.values())
                         / sum(m.size for m in masks.values())),
        "rigl_updates": len(rigl.updates),
        "rigl_moved": any(
            bool((masks[n] != after_gmp[n]).any()) for n in masks
        ),
        "finite_loss": bool(np.isfinite(history.history["loss"]).all()),
        "outputs_match_masked_kernels": bool(np.allclose(
            keras.ops.convert_to_numpy(sparse(x[:8])),
            keras.ops.convert_to_numpy(keras_er.strip(sparse)(x[:8])),
            atol=1e-5,
        )),
    }))


if __name__ == "__main__":
    main()
