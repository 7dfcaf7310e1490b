"""Finding and resetting an optimizer's per-variable state (slots).

Keras 3 optimizers create their slots (momentum, Adam moments, ...) with
``add_variable_from_reference``, which names each slot
``{variable.path with '/' -> '_'}_{slot name}`` and gives it the variable's
shape. That is how the slots of a variable are found here, for every
optimizer.

Used by the ER layers (`set_mask` resets the state of the entries a new mask
removes when given the optimizer) and by the callbacks, so it sits
below both and imports nothing from keras_er.
"""

import keras
from keras import ops


def slot_variables(optimizer, variable):
    """The optimizer variables that hold per-entry state of ``variable``.

    Args:
        optimizer: A built `keras.optimizers.Optimizer`.
        variable: A model variable trained by ``optimizer``.

    Returns:
        A list of optimizer variables with the same shape as ``variable``.
    """
    prefix = variable.path.replace("/", "_") + "_"
    shape = tuple(variable.shape)
    return [
        slot
        for slot in optimizer.variables
        if slot.name.startswith(prefix) and tuple(slot.shape) == shape
    ]


def reset_slots(optimizer, variable, where=None):
    """Sets the optimizer state of ``variable`` to zero.

    Args:
        optimizer: A built optimizer (nothing happens if it is not built).
        variable: A model variable.
        where: Optional 0/1 or bool array of the variable's shape: only
            entries where it is nonzero are reset (e.g. connections a
            rewiring just grew).
    """
    if not getattr(optimizer, "built", False):
        return
    for slot in slot_variables(optimizer, variable):
        if where is None:
            slot.assign(ops.zeros(slot.shape, slot.dtype))
        else:
            # A bool select against a scalar zero: no whole-slot temporaries
            # besides the result.
            reset = ops.not_equal(ops.convert_to_tensor(where), 0)
            slot.assign(ops.where(
                reset, ops.zeros((), slot.dtype), ops.convert_to_tensor(slot)
            ))


def reset_optimizer(optimizer, variables):
    """Zeroes the optimizer state of every variable in ``variables``."""
    for variable in variables:
        reset_slots(optimizer, variable)


def unwrap(optimizer):
    """The inner optimizer of a `keras.optimizers.LossScaleOptimizer`."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer


def optimizer_step(model):
    """The number of optimizer steps taken so far (Python int).

    Raises:
        ValueError: If ``model`` is not compiled with an optimizer.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError("The model must be compiled with an optimizer.")
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


class StepTracker:
    """An upper bound of the optimizer step that costs no device read.

    Reading ``optimizer.iterations`` after every batch makes the host wait
    for that batch's step, so fit's per-step Python work no longer overlaps
    the next step (0.5 ms of a 7 ms LeNet step on CPU). A train batch applies
    the optimizer at most once, so the last step read plus the batches run
    since then bound the step from above. A callback reads the exact step
    (`read`) only when something is due at or below that bound.

    Call `reset` from the callback's ``on_train_begin`` and `batch_begin` /
    `batch_end` from its ``on_train_batch_begin`` / ``on_train_batch_end``
    (with ``steps_per_execution > 1`` one call covers several batches). The
    first `batch_begin` of a run reads the step: not ``on_train_begin``,
    since `keras.callbacks.BackupAndRestore` may restore the optimizer in its
    own ``on_train_begin``, after the callback's.

    Example:

    ```python
    tracker = StepTracker()
    tracker.reset()                     # on_train_begin
    tracker.batch_begin(batch, model)   # on_train_batch_begin
    tracker.batch_end(batch)            # on_train_batch_end
    if tracker.upper_bound() >= next_update:
        step = tracker.read(model)
    ```
    """

    def __init__(self):
        self._read = None
        self._unread = 0
        self._begin = 0

    def read(self, model):
        """Reads and returns the exact optimizer step of ``model``."""
        self._read = optimizer_step(model)
        self._unread = 0
        return self._read

    def reset(self):
        """Forgets the step read (a new `fit` begins)."""
        self._read = None
        self._unread = 0

    def batch_begin(self, batch, model):
        if self._read is None:
            self.read(model)
        self._begin = int(batch)

    def batch_end(self, batch):
        self._unread += int(batch) - self._begin + 1

    def upper_bound(self):
        """No smaller than the optimizer step (after a first `read`)."""
        return self._read + self._unread

