r"""A sparse LeNet-300-100 trained on several hosts with JAX (a recipe).

Every host runs this same script. Keras' `ModelParallel` distribution shards
each kernel over the ``model`` axis of a device mesh and each batch over the
``batch`` axis; keras_er gives every mask (and every per-entry state) its
kernel's layout, draws the same masks on every process without a user seed,
and averages RiGL's gradient over all processes' batches, so the processes
never diverge. Each process reads its own share of the training set.

On a real cluster, start one copy per host:

    python examples/multihost_jax.py --coordinator=HOST0:1234 \
        --num_processes=4 --process_id=$RANK

To try it on one machine, ``--local_processes=2`` starts two copies of the
script on 127.0.0.1, each with ``--devices_per_process`` virtual CPU devices,
and waits for them:

    python examples/multihost_jax.py --local_processes=2 --epochs=2

Each process prints its test accuracy and a digest of its masks (equal on
every process). MNIST comes from the shipped idx files (no download).
"""

import hashlib
import os
import socket
import subprocess
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("coordinator", None,
                    "host:port of process 0 (jax.distributed.initialize).")
flags.DEFINE_integer("num_processes", 1, "Processes in the job.")
flags.DEFINE_integer("process_id", 0, "This process's rank.")
flags.DEFINE_integer("local_processes", 0,
                     "Start this many copies on 127.0.0.1 and wait for them.")
flags.DEFINE_integer("devices_per_process", 4,
                     "Virtual CPU devices per process (local runs only).")
flags.DEFINE_integer("model_axis", 2, "Devices per kernel shard group.")
flags.DEFINE_float("density", 0.1, "Overall density of the ER masks.")
flags.DEFINE_integer("epochs", 3, "Training epochs.")
flags.DEFINE_integer("train_size", 60000, "Training images (all hosts).")
flags.DEFINE_integer("batch_size", 128, "Global batch size.")


def launch_local(argv):
    """Starts ``--local_processes`` copies of this script on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count="
               f"{FLAGS.devices_per_process}")
    del argv  # absl removed the flags; pass them all on.
    passed = [
        a for a in sys.argv[1:] if not a.startswith("--local_processes")
    ]
    processes = [
        subprocess.Popen([
            sys.executable, sys.argv[0], *passed,
            f"--coordinator=127.0.0.1:{port}",
            f"--num_processes={FLAGS.local_processes}",
            f"--process_id={rank}",
        ], env=env)
        for rank in range(FLAGS.local_processes)
    ]
    codes = [process.wait() for process in processes]
    return max(codes)


def train():
    import jax

    if FLAGS.num_processes > 1:
        jax.distributed.initialize(
            coordinator_address=FLAGS.coordinator,
            num_processes=FLAGS.num_processes, process_id=FLAGS.process_id,
        )
    import keras
    import numpy as np

    import keras_er
    from keras_er.research.data import load_mnist

    # jax.devices() lists each process's devices together: rows of
    # `model_axis` devices keep the model axis within a host (its fast
    # links) and spread the batch axis over hosts, so each process feeds its
    # own share of every batch. (With the model axis across hosts, every
    # process of a model group must feed the same batches.)
    devices = np.array(jax.devices())
    mesh_devices = devices.reshape(-1, FLAGS.model_axis)
    mesh = keras.distribution.DeviceMesh(
        mesh_devices.shape, ["batch", "model"], mesh_devices
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*dense.*/kernel"] = (None, "model")
    keras.distribution.set_distribution(keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="batch",
        auto_shard_dataset=False,  # Each process feeds its own share.
    ))

    (x_train, y_train), (x_test, y_test) = load_mnist(source="idx")
    rank, count = jax.process_index(), jax.process_count()
    share = slice(rank, FLAGS.train_size, count)  # This process's rows.
    x = x_train[share].reshape(-1, 784).astype("float32") / 255.0
    y = y_train[share]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(300, activation="relu"),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(10),
    ])
    # No seed: one random seed, agreed by all processes.
    sparse = keras_er.sparsify(model, ratio="erk", density=FLAGS.density,
                               init="sparse_he_normal")
    sparse.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    local_batch = FLAGS.batch_size // count
    rigl = keras_er.callbacks.RiGL(
        update_every=100, drop_fraction=0.3,
        data=(x[:local_batch], y[:local_batch]),  # Averaged over processes.
    )
    sparse.fit(x, y, batch_size=local_batch, epochs=FLAGS.epochs, verbose=0,
               callbacks=[rigl])
    # Each process evaluates its share of the test set; the metric is
    # reduced over all of them.
    x_eval = x_test[rank::count].reshape(-1, 784).astype("float32") / 255.0
    _, accuracy = sparse.evaluate(x_eval, y_test[rank::count],
                                  batch_size=1000 // count, verbose=0)
    masks = keras_er.get_masks(sparse)
    digest = hashlib.sha1(
        b"".join(m.astype(np.uint8).tobytes() for m in masks.values())
    ).hexdigest()[:12]
    density = sum(m.sum() for m in masks.values()) / sum(
        m.size for m in masks.values()
    )
    print(f"process {rank}/{count}: test accuracy {accuracy:.4f}, density "
          f"{density:.4f}, masks {digest}, RiGL updates {len(rigl.updates)}",
          flush=True)


def main(argv):
    if FLAGS.local_processes:
        sys.exit(launch_local(argv))
    train()


if __name__ == "__main__":
    app.run(main)
