"""Callback state that is checkpointed with the model's weights.

A callback that keeps counters across batches (IMP's cycle, RiGL's last
update) must get them back when `keras.callbacks.BackupAndRestore` resumes an
interrupted run in a new process, or the resumed run differs from an
uninterrupted one. `CallbackState` keeps them in non-trainable variables of a
small Keras layer that the callback attaches to the model as a plain
attribute during ``fit``: ``model.save_weights`` (which walks attributes)
saves it with the weights, masks and optimizer, and ``load_weights`` restores
it, but it is not in ``model.layers`` or ``model.weights``.

The callback attaches the layer in ``set_model``, before any callback's
``on_train_begin`` (where ``BackupAndRestore`` restores), and detaches it in
``on_train_end`` so models saved after ``fit`` do not carry it.
"""

import keras
import numpy as np
from keras import ops


class CallbackState(keras.layers.Layer):
    """Named int64 counters plus arrays, saved and restored with the model.

    Args:
        name: Layer name, also the model attribute it is attached as (with a
            leading underscore), e.g. ``"keras_er_rigl_state"``.
        counters: Names of the int64 counters, all 0 at first.
        arrays: ``(shape, dtype)`` of each array variable, zeros at first.
        owner: Callback name for error messages, e.g. ``"RiGL"``.

    Raises:
        ValueError: On load, if the checkpoint's state does not fit this one
            (another model, or other callback settings).

    Example:

    ```python
    state = CallbackState("keras_er_x_state", ("started", "step"), owner="X")
    state.attach(model)
    state.update(started=1, step=10)
    state.get()["step"]  # 10
    ```
    """

    def __init__(self, name, counters, arrays=(), owner="callback"):
        super().__init__(name=name, trainable=False)
        self.counter_names = tuple(counters)
        self.owner = owner
        self.arrays = [
            self.add_weight(
                name=f"array_{i}",
                shape=tuple(shape),
                dtype=dtype,
                initializer="zeros",
                trainable=False,
            )
            for i, (shape, dtype) in enumerate(arrays)
        ]
        self.counters = self.add_weight(
            name="counters",
            shape=(len(self.counter_names),),
            dtype="int64",
            initializer="zeros",
            trainable=False,
        )
        self.built = True

    @property
    def attribute(self):
        return f"_{self.name}"

    def attach(self, model):
        """Makes ``model.save_weights``/``load_weights`` include this state."""
        # object.__setattr__ skips Keras' tracking: not in model.layers or
        # model.weights, but save_weights walks plain attributes too.
        object.__setattr__(model, self.attribute, self)

    def detach(self, model):
        """Removes the state from ``model`` if this state is attached."""
        if getattr(model, self.attribute, None) is self:
            object.__delattr__(model, self.attribute)

    def get(self):
        """The counters, as ``{name: int}``."""
        values = np.asarray(ops.convert_to_numpy(self.counters))
        return {
            name: int(v) for name, v in zip(self.counter_names, values)
        }

    def update(self, **changes):
        """Assigns the named counters; the others keep their values."""
        unknown = set(changes) - set(self.counter_names)
        if unknown:
            raise KeyError(f"Unknown counters {sorted(unknown)}.")
        values = self.get()
        values.update(changes)
        self.counters.assign(
            np.array(
                [values[name] for name in self.counter_names], dtype=np.int64
            )
        )

    def _all(self):
        return self.arrays + [self.counters]

    def save_own_variables(self, store):
        for i, variable in enumerate(self._all()):
            store[str(i)] = variable

    def load_own_variables(self, store):
        keys = list(store.keys())
        if not keys:
            # Checkpoint written without this callback attached.
            return
        variables = self._all()
        if len(keys) != len(variables):
            raise ValueError(
                f"The checkpoint holds a {self.owner} state with {len(keys)} "
                f"variables; this model needs {len(variables)}. Was it "
                f"written for another model or other {self.owner} settings?"
            )
        for i, variable in enumerate(variables):
            value = np.asarray(store[str(i)])
            if value.shape != tuple(variable.shape):
                raise ValueError(
                    f"{self.owner} state variable {i} has shape {value.shape} "
                    f"in the checkpoint but {tuple(variable.shape)} in this "
                    "model. Was it written for another model or other "
                    f"{self.owner} settings?"
                )
            variable.assign(value)
