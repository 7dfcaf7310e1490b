"""Callback state that is checkpointed with the model's weights.

A callback that keeps counters across batches (IMP's cycle and rewind
snapshot, RiGL's last update) must get them back when training resumes in a
new process, or the resumed run differs from an uninterrupted one. Keras has
two resume paths, and both only see what ``model.save_weights`` writes and
``model.load_weights`` reads:

* `keras.callbacks.BackupAndRestore` saves during ``fit`` and loads in its
  ``on_train_begin``, after every callback's ``set_model``;
* `keras.callbacks.ModelCheckpoint` (``save_weights_only=True``) saves during
  ``fit``; the user calls ``model.load_weights(path)`` on a fresh model
  *before* ``fit(..., initial_epoch=k)``, before any callback exists.

So the state must be read by a ``load_weights`` that runs before the callback
knows the model. It therefore lives in a `StateSlot` that every ER layer has
by construction (the ``_keras_er_callback_states`` attribute, a property of
the ER layer classes installed below): Keras' weight saving walks a layer's
attributes, so the slot is saved and loaded with the layer, at a path that
only depends on the architecture. The callback keeps its counters in a
`CallbackState` (non-trainable variables) and registers it in the slot of
the model's first ER layer in ``set_model``, before any ``on_train_begin``:

* a file loaded while the state is registered (``BackupAndRestore``) is
  assigned to it directly;
* a file loaded while no such state is registered (``load_weights`` before
  ``fit``) is kept in the slot as *pending* values. The callback adopts them
  at the first epoch of its ``fit`` if that fit continues a run (its first
  epoch is > 0: ``initial_epoch=k``) and discards them otherwise (a new run).

Registration replaces a state of the same name left by another callback
instance (e.g. one whose ``fit`` crashed); its values become pending, so the
same rule applies. A callback unregisters its state at the end of a
completed ``fit``: every weights file written during ``fit`` carries the
state, a model saved after training does not (IMP's rewind snapshot is a
full copy of the rewound weights). Neither the slot nor the state is in
``model.layers`` or ``model.weights``.
"""

import warnings

import keras
import numpy as np
from keras import ops

from keras_er.layers.masked_kernel import MaskedKernelMixin
from keras_er.mask_io import er_layers
from keras_er.optimizer_state import optimizer_step

#: The ER layer attribute that holds a layer's `StateSlot`.
SLOT_ATTRIBUTE = "_keras_er_callback_states"
_SEPARATOR = ":"  # Store keys are "<state name>:<variable index>".


class _Holder:
    """Plain container: Keras' saving walk skips it (not a saveable)."""

    def __init__(self, **values):
        self.__dict__.update(values)


class StateSlot(keras.layers.Layer):
    """Callback states saved and loaded with one ER layer's weights.

    Holds the registered `CallbackState` objects by name, and the values a
    load found for states not registered (pending). Saves both, so a file
    loaded and saved again keeps them.
    """

    def __init__(self):
        super().__init__(name="keras_er_callback_states", trainable=False)
        self.built = True
        # Not a dict attribute: the saving walk would visit the states.
        self._slot = _Holder(states={}, pending={})

    def register(self, state):
        """Makes ``state`` part of the layer's saved weights.

        A different state registered under the same name is replaced; its
        values become pending (see the module docstring).
        """
        old = self._slot.states.get(state.name)
        if old is not None and old is not state:
            self._slot.pending[state.name] = old.values()
        self._slot.states[state.name] = state

    def unregister(self, state):
        if self._slot.states.get(state.name) is state:
            del self._slot.states[state.name]

    def take_pending(self, name):
        """Removes and returns the pending values of ``name`` (or None)."""
        return self._slot.pending.pop(name, None)

    def save_own_variables(self, store):
        for name, values in self._slot.pending.items():
            if name not in self._slot.states:
                for i, value in enumerate(values):
                    store[f"{name}{_SEPARATOR}{i}"] = value
        for name, state in self._slot.states.items():
            for i, variable in enumerate(state.variables_in_order()):
                store[f"{name}{_SEPARATOR}{i}"] = variable

    def load_own_variables(self, store):
        found = {}
        for key in store.keys():
            name, _, index = str(key).rpartition(_SEPARATOR)
            if not name or not index.isdigit():
                continue
            found.setdefault(name, {})[int(index)] = np.asarray(store[key])
        pending = {}
        for name, by_index in found.items():
            values = [by_index[i] for i in sorted(by_index)]
            state = self._slot.states.get(name)
            if state is None:
                pending[name] = values
            else:
                state.set_values(values)
        # A load replaces what an earlier load left pending.
        self._slot.pending = pending


def slot_of(layer):
    """The `StateSlot` of an ER layer (created at first use)."""
    holder = layer.__dict__.get("_keras_er_callback_slot")
    if holder is None:
        holder = _Holder(slot=StateSlot())
        # Untracked: not a sublayer, not in layer.weights.
        object.__setattr__(layer, "_keras_er_callback_slot", holder)
    return holder.slot


# Every ER layer has a slot, so that ``load_weights`` finds one before any
# callback is set on the model. A property, so a layer made ER in place and
# layers built in any way (sparsify, by hand, load_model) all have it.
setattr(MaskedKernelMixin, SLOT_ATTRIBUTE, property(slot_of))


def warn_if_optimizer_not_restored(model, owner):
    """Warns when a resumed run finds its optimizer at step 0.

    ``load_weights`` skips the optimizer's variables (step count, momentum,
    moments) when the optimizer is not built yet, with only a Keras warning;
    the resumed run then differs from an uninterrupted one.
    """
    if getattr(model, "optimizer", None) is None or optimizer_step(model):
        return
    warnings.warn(
        f"{owner} resumes a run from the loaded weights, but the optimizer "
        "is at step 0: its state was not loaded. Build the optimizer before "
        "loading, `model.optimizer.build(model.trainable_variables)`, then "
        "`model.load_weights(path)`.",
        stacklevel=3,
    )


class CallbackState(keras.layers.Layer):
    """Named int64 counters plus arrays, saved and restored with the model.

    Args:
        name: Layer name, also the state's key in the saved weights (one
            state per name and model), e.g. ``"keras_er_rigl_state"``.
        counters: Names of the int64 counters, all 0 at first.
        arrays: ``(shape, dtype)`` of each array variable, zeros at first.
        owner: Callback name for error messages, e.g. ``"RiGL"``.

    Raises:
        ValueError: On load (or `resume_pending`), if the checkpoint's state
            does not fit this one (another model, or other callback
            settings).

    Example:

    ```python
    state = CallbackState("keras_er_x_state", ("started", "step"), owner="X")
    state.attach(model)          # in set_model
    state.resume_pending(epoch > 0)  # at the first epoch of fit
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

    def attach(self, model):
        """Makes ``model.save_weights``/``load_weights`` include this state.

        Registers it in the `StateSlot` of the model's first ER layer. Call
        it in ``set_model``, before any ``on_train_begin``.

        Raises:
            ValueError: If the model has no ER layers.
        """
        self.detach()
        slot = slot_of(er_layers(model)[0])
        slot.register(self)
        self._slot = _Holder(slot=slot)

    def detach(self, model=None):
        """Removes the state from the model it is attached to, if any."""
        holder = getattr(self, "_slot", None)
        if holder is not None:
            holder.slot.unregister(self)
            self._slot = None

    def resume_pending(self, resume):
        """Adopts or discards the values a load left pending for this state.

        Values are pending when ``load_weights`` read this state's name
        while this state was not attached (``load_weights`` before ``fit``),
        or when this state replaced another one (see the module docstring).

        Args:
            resume: True when the ``fit`` continues a run (its first epoch is
                above 0): the values are assigned to this state. False: they
                are discarded and this state keeps its values.

        Returns:
            Whether pending values were adopted.

        Raises:
            ValueError: If the pending values do not fit this state.
        """
        holder = getattr(self, "_slot", None)
        values = None if holder is None else holder.slot.take_pending(
            self.name
        )
        if values is None or not resume:
            return False
        self.set_values(values)
        return True

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

    def variables_in_order(self):
        """The variables in their saved order: arrays, then counters."""
        return self.arrays + [self.counters]

    def values(self):
        """The values of `variables_in_order`, as numpy arrays."""
        return [
            np.array(ops.convert_to_numpy(v)) for v in self.variables_in_order()
        ]

    def set_values(self, values):
        """Assigns saved values (as from `values`) after checking them.

        Raises:
            ValueError: If their number or shapes do not fit this state.
        """
        variables = self.variables_in_order()
        if len(values) != len(variables):
            raise ValueError(
                f"The checkpoint holds a {self.owner} state with "
                f"{len(values)} variables; this model needs {len(variables)}."
                f" Was it written for another model or other {self.owner} "
                "settings?"
            )
        for i, (variable, value) in enumerate(zip(variables, values)):
            value = np.asarray(value)
            if value.shape != tuple(variable.shape):
                raise ValueError(
                    f"{self.owner} state variable {i} has shape {value.shape} "
                    f"in the checkpoint but {tuple(variable.shape)} in this "
                    "model. Was it written for another model or other "
                    f"{self.owner} settings?"
                )
        for variable, value in zip(variables, values):
            variable.assign(value)
