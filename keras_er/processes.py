"""Agreement across processes: one decision, taken the same on every host.

A model trained on several hosts (JAX after ``jax.distributed.initialize``,
TensorFlow under `tf.distribute.MultiWorkerMirroredStrategy`) runs the same
script once per process. Whatever keras_er draws at random without a
user-given seed (the seed of ``sparsify``, of an ER layer built with
``seed=None``, of ``EdgePopup.prepare``) must then be the same on every
process, or each one trains a different network. `random_seed` draws a seed
on the first process and hands it to the others (backend-specific code,
kept here).
"""

import keras
import numpy as np


def _fresh_seed():
    # 31 bits: the same value through int32 collectives (JAX without x64).
    return int(np.random.SeedSequence().generate_state(1)[0] >> 1)


def process_count():
    """The number of processes training together (1 on a single host)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.process_count()
    if backend == "tensorflow":
        strategy = _multi_worker_strategy()
        if strategy is not None:
            return _workers(strategy)
    return 1


def _workers(strategy):
    # Replicas in sync over the replicas of this worker.
    local = len(strategy.extended.worker_devices)
    return strategy.num_replicas_in_sync // local


def _multi_worker_strategy():
    """The active `MultiWorkerMirroredStrategy` with several workers."""
    import tensorflow as tf

    if not tf.distribute.has_strategy():
        return None
    strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    return strategy if _workers(strategy) > 1 else None


def random_seed():
    """A random seed (an int in ``[0, 2**31)``), the same on every process.

    On one process: a fresh seed. On several (JAX multi-process, or inside
    the scope of a TensorFlow `MultiWorkerMirroredStrategy` with several
    workers): the first process's fresh seed, broadcast to all. Every
    process must call it at the same point of the script (a collective).

    Returns:
        An int seed.
    """
    seed = _fresh_seed()
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            seed = int(multihost_utils.broadcast_one_to_all(np.int32(seed)))
    elif backend == "tensorflow":
        strategy = _multi_worker_strategy()
        if strategy is not None:
            seed = _tf_broadcast_from_first_replica(strategy, seed)
    return seed


def _tf_broadcast_from_first_replica(strategy, value):
    """``value`` of global replica 0 (worker 0), on every worker."""
    import tensorflow as tf

    def first_only():
        context = tf.distribute.get_replica_context()
        first = tf.equal(context.replica_id_in_sync_group, 0)
        return tf.where(first, tf.constant(value, tf.int64),
                        tf.constant(0, tf.int64))

    per_replica = strategy.run(first_only)
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, None)
    return int(total.numpy())


def global_batch(tree):
    """This process's batch, as its share of one batch across processes.

    On JAX with several processes, a decision taken from data (RiGL's dense
    gradient, SNIP scores) must be one decision: each process passes its
    own batch, and the arrays become one global batch, sharded over the
    batch axis of the active `keras.distribution` as ``fit`` shards its
    input. The loss is then the mean over every process's examples, and its
    gradient the same on all. Elsewhere ``tree`` is returned unchanged.

    Processes whose devices hold the same batch shards (a mesh whose model
    axis spans processes) must pass the same batch, as they must to
    ``fit``: that is checked (a digest of each batch, gathered), and
    different batches raise instead of silently mixing.

    Args:
        tree: A structure of arrays (``x``, ``y``, ``sample_weight``), the
            process-local batch.

    Returns:
        The same structure, of global arrays where needed.

    Raises:
        ValueError: Several JAX processes but no `keras.distribution` set,
            or processes that hold the same batch shards passed different
            batches.
    """
    if keras.backend.backend() != "jax":
        return tree
    import jax

    if jax.process_count() == 1:
        return tree
    distribution = keras.distribution.distribution()
    if distribution is None:
        raise ValueError(
            "keras_er needs a keras.distribution (DataParallel or "
            "ModelParallel) to combine data across the "
            f"{jax.process_count()} JAX processes: call "
            "keras.distribution.set_distribution(...) before building the "
            "model."
        )

    def local_array(value):
        return None if value is None else np.asarray(
            keras.ops.convert_to_numpy(value)
        )

    def to_global(local):
        if local is None:
            return None
        layout = distribution.get_data_layout(local.shape)
        return jax.make_array_from_process_local_data(
            layout.backend_layout, local
        )

    local = keras.tree.map_structure(local_array, tree)  # One host copy.
    leaves = [leaf for leaf in keras.tree.flatten(local) if leaf is not None]
    if leaves:
        layout = distribution.get_data_layout(leaves[0].shape)
        _check_shared_shards_agree(layout.backend_layout, leaves)
    return keras.tree.map_structure(to_global, local)


def _check_shared_shards_agree(sharding, arrays):
    """Raises unless processes holding the same batch shards agree."""
    import hashlib

    import jax
    from jax.experimental import multihost_utils

    devices = list(sharding.mesh.devices.flat)
    probe = (len(devices),) + (1,) * (arrays[0].ndim - 1)
    starts = {}  # process -> the batch rows its devices hold
    for device, index in sharding.devices_indices_map(probe).items():
        starts.setdefault(device.process_index, set()).add(
            index[0].start or 0
        )
    digest = hashlib.sha1()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    mine = np.frombuffer(digest.digest()[:16], dtype=np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine))
    groups = {}
    for process, rows in starts.items():
        groups.setdefault(frozenset(rows), []).append(process)
    for processes in groups.values():
        digests = {every[p].tobytes() for p in processes}
        if len(digests) > 1:
            raise ValueError(
                f"JAX processes {sorted(processes)} hold the same batch "
                "shards under this device mesh (its model axis spans "
                "processes), so they must pass the same data batch, but "
                "their batches differ. Pass the same batch on those "
                "processes (as to fit), or lay the mesh out with the batch "
                "axis across processes and the model axis within each "
                f"(process {jax.process_index()} of {jax.process_count()})."
            )


def host_array(value):
    """A NumPy copy of a tensor, also of one spread over several processes.

    A JAX array sharded over devices of several processes (a kernel or mask
    under `keras.distribution.ModelParallel` with the model axis across
    hosts) cannot be fetched by one process alone: every process gathers
    the whole array (a collective: all must call it). Used only where a
    whole array must reach the host (``get_masks``, ``.npz`` files); the
    mask algorithms run on device.

    Args:
        value: A backend tensor, a Keras variable or an array.

    Returns:
        A `numpy.ndarray`.
    """
    if isinstance(value, keras.Variable):
        value = value.value
    if keras.backend.backend() == "jax":
        import jax

        if isinstance(value, jax.Array) and not value.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(
                multihost_utils.process_allgather(value, tiled=True)
            )
    return np.asarray(keras.ops.convert_to_numpy(value))


def mean_over_workers(tensors, model):
    """Each worker's tensors, averaged over the workers (TF multi-worker).

    A gradient computed from each worker's own batch differs per worker;
    under a `tf.distribute.MultiWorkerMirroredStrategy` with several workers
    (``model.distribute_strategy``) the tensors are all-reduced to their
    mean, so every worker takes the same decision (RiGL's growth, SNIP
    scores). Elsewhere (one worker, other backends: JAX combines the batch
    itself, see `global_batch`) the tensors are returned unchanged. Every
    worker must call it at the same point (a collective).

    Args:
        tensors: A list of tensors of the same shapes on every worker.
        model: The model being trained.

    Returns:
        A list of tensors.
    """
    if keras.backend.backend() != "tensorflow":
        return tensors
    import tensorflow as tf

    strategy = getattr(model, "distribute_strategy", None)
    if not isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) or _workers(strategy) == 1:
        return tensors
    tensors = list(tensors)
    per_replica = strategy.run(lambda: [tf.identity(t) for t in tensors])
    return [
        strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
        for value in per_replica
    ]
