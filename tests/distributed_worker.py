"""One worker of a two-process MultiWorkerMirroredStrategy run (a script).

`tests/test_distribute.py` starts two of these on loopback with TF_CONFIG
set. Each trains the same small sparsified model with SET (random growth,
same seed) and MagnitudePruning and writes its final masks and kernels to
``OUT`` (an ``.npz`` file) for the test to compare. Then RiGL rewires with
each worker's own gradient batch (keras_er averages the gradients over the
workers).

Keras 3.15's ``model.fit`` fails under MultiWorkerMirroredStrategy for any
model (keras-team/keras#20585: its reductions of the data batch and of the
scalar logs do not work with collective ops), so this trains with a custom
loop and drives the keras_er callbacks through `keras.callbacks.CallbackList`,
which is what ``fit`` does with them.

    TF_CONFIG=... python tests/distributed_worker.py OUT
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

# The strategy must exist before TensorFlow initializes its devices.
STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_er  # noqa: E402
from keras_er.callbacks import (  # noqa: E402
    SET, MagnitudePruning, RiGL, schedules,
)
from keras_er.mask_io import er_layers  # noqa: E402

GLOBAL_BATCH = 32
STEPS, EPOCHS = 4, 2


class CountChanges(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.masks, self.changes = None, 0

    def on_train_batch_end(self, batch, logs=None):
        masks = [np.asarray(layer.mask) for layer in er_layers(self.model)]
        if self.masks is not None:
            self.changes += any(
                (a != b).any() for a, b in zip(masks, self.masks)
            )
        self.masks = masks


def main(out):
    rng = np.random.default_rng(0)  # Same data on both workers.
    x = rng.normal(size=(GLOBAL_BATCH * STEPS, 16)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(16, 4)), axis=1)
    keras.utils.set_random_seed(0)
    with STRATEGY.scope():
        dense = keras.Sequential([
            keras.Input((16,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(4),
        ])
        # uint8 variables cannot be broadcast by the strategy: a clear error
        # (raised on both workers before any variable is created).
        try:
            keras_er.sparsify(dense, "erk", 0.5, seed=0, mask_dtype="uint8")
        except ValueError as error:
            assert 'mask_dtype="bool"' in str(error), error
        else:
            raise AssertionError("uint8 masks under MWMS did not raise")
        # No seed: worker 0 draws one and broadcasts it (bool masks).
        model = keras_er.sparsify(dense, "erk", 0.5)
        assert {layer.mask.dtype for layer in er_layers(model)} == {"bool"}
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=None
    )
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    # Repeated, and read a fixed number of steps: no end-of-data handshake
    # between the workers.
    dataset = dataset.batch(GLOBAL_BATCH, drop_remainder=True).repeat()
    batches = iter(STRATEGY.experimental_distribute_dataset(dataset))

    @tf.function
    def train_step(inputs):
        def step(features, labels):
            with tf.GradientTape() as tape:
                logits = model(features, training=True)
                loss = tf.nn.compute_average_loss(
                    loss_fn(labels, logits), global_batch_size=GLOBAL_BATCH
                )
            variables = model.trainable_variables
            # Keras' TF optimizer sums the gradients over all replicas.
            model.optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        losses = STRATEGY.run(step, args=inputs)
        return STRATEGY.reduce("SUM", losses, axis=None)

    def train(callbacks):
        callbacks = keras.callbacks.CallbackList(
            callbacks, model=model, epochs=EPOCHS, steps=STEPS, verbose=0,
        )
        losses = []
        callbacks.on_train_begin()
        for epoch in range(EPOCHS):
            callbacks.on_epoch_begin(epoch)
            for index in range(STEPS):
                callbacks.on_train_batch_begin(index)
                loss = float(train_step(next(batches)))
                callbacks.on_train_batch_end(index, {"loss": loss})
            losses.append(loss)
            callbacks.on_epoch_end(epoch, {"loss": loss})
        callbacks.on_train_end()
        return losses

    counter = CountChanges()
    schedule = schedules.PolynomialDecay(0.5, 0.8, 0, 8, frequency=4)
    losses = train([SET(update_every=2, schedule="constant", seed=0),
                    MagnitudePruning(schedule), counter])
    # RiGL with each worker's own gradient batch: the gradients are
    # averaged over the workers, so both grow the same connections.
    rank = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    local = slice(16 * rank, 16 * (rank + 1))
    rigl = RiGL(
        update_every=2, drop_fraction=0.3, data=(x[local], y[local]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = [np.asarray(layer.mask) for layer in er_layers(model)]
    train([rigl])
    rewired = any(
        (np.asarray(layer.mask) != mask).any()
        for layer, mask in zip(er_layers(model), before)
    )

    arrays = {"changes": np.array(counter.changes), "loss": np.array(losses),
              "rigl_rewired": np.array(rewired),
              "seed": np.array(model.sparsify_report["seed"])}
    for layer in er_layers(model):
        arrays[f"{layer.name}/mask"] = np.asarray(layer.mask)
        arrays[f"{layer.name}/kernel"] = np.asarray(layer._kernel)
    np.savez(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
    # Skip the interpreter teardown: stopping the collective gRPC server
    # takes seconds, and the results are written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
