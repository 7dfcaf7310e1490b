"""Finding and resetting an optimizer's per-variable state (slots).

Keras 3 optimizers create their slots (momentum, Adam moments, ...) with
``add_variable_from_reference``, which names each slot
``{variable.path with '/' -> '_'}_{slot name}`` and gives it the variable's
shape. That is how the slots of a variable are found here, for every
optimizer.
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
        where: Optional 0/1 array of the variable's shape: only entries where
            it is 1 are reset (e.g. connections a rewiring just grew).
    """
    if not getattr(optimizer, "built", False):
        return
    for slot in slot_variables(optimizer, variable):
        if where is None:
            slot.assign(ops.zeros(slot.shape, slot.dtype))
        else:
            keep = 1 - ops.cast(ops.convert_to_tensor(where), slot.dtype)
            slot.assign(ops.multiply(slot, keep))


def reset_optimizer(optimizer, variables):
    """Zeroes the optimizer state of every variable in ``variables``."""
    for variable in variables:
        reset_slots(optimizer, variable)


def unwrap(optimizer):
    """The inner optimizer of a `keras.optimizers.LossScaleOptimizer`."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer
