"""`tf.distribute` helpers (TensorFlow backend only; no-ops elsewhere).

Keras 3 on TensorFlow creates a model's variables in the
`tf.distribute.Strategy` whose ``scope()`` is active when the layers are
built, and trains the model with the strategy active when it was created
(``model.distribute_strategy``) and the one its optimizer was created in.
keras_er follows that rule: call `keras_er.sparsify` inside
``strategy.scope()``, like building any Keras model. The helpers here keep
keras_er's own variable creation consistent with it and turn the bare
``AssertionError`` TensorFlow raises for a model built outside the scope into
a clear error. See ``docs/distribution.md``.
"""

import contextlib

import keras


def _tf():
    """The ``tensorflow`` module on the TensorFlow backend, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf


def variable_strategy(variable):
    """The strategy a (Keras) variable was created under, or None.

    Only mirrored-style variables (`MirroredStrategy`,
    `MultiWorkerMirroredStrategy`) know their strategy; plain variables give
    None.
    """
    tf = _tf()
    if tf is None:
        return None
    value = getattr(variable, "value", variable)
    if isinstance(value, tf.distribute.DistributedValues):
        return getattr(value, "distribute_strategy", None)
    return None


def scope_of_variable(variable):
    """Context manager: the scope of the strategy that owns ``variable``.

    New variables of a layer (a reparameterization's, say) must be created
    in the same strategy as the layer's own, whether or not the caller
    remembered to enter ``strategy.scope()``. Entered only when no strategy
    scope is active (TensorFlow forbids mixing strategies).
    """
    tf = _tf()
    strategy = variable_strategy(variable)
    if tf is None or strategy is None or tf.distribute.has_strategy():
        return contextlib.nullcontext()
    return strategy.scope()


def scope_of_model(model):
    """Context manager: the scope of the strategy ``model`` was built in.

    Used by `keras_er.sparsify`: a model built inside ``strategy.scope()``
    and sparsified outside it gives a sparse model in the same strategy.
    Nothing is entered when a strategy scope is already active (the caller's
    choice wins) or the model was built without one.
    """
    tf = _tf()
    if tf is None or tf.distribute.has_strategy():
        return contextlib.nullcontext()
    # Outside any scope, a model built without a strategy reports the
    # default one, which is what get_strategy() returns here.
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None or strategy is tf.distribute.get_strategy():
        return contextlib.nullcontext()
    return strategy.scope()


def check_mask_dtype_supported(mask_dtype):
    """Raises a clear ValueError for a mask dtype the active strategy lacks.

    `MultiWorkerMirroredStrategy` broadcasts every new variable's initial
    value from worker 0 with a collective op that has no uint8 kernel.
    """
    tf = _tf()
    if tf is None or mask_dtype != "uint8":
        return
    if not tf.distribute.has_strategy():
        return
    strategy = tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        raise ValueError(
            'mask_dtype="uint8" does not work under '
            "MultiWorkerMirroredStrategy (its collective broadcast of initial "
            'values has no uint8 kernel). Use mask_dtype="bool" (the '
            'default, also one byte per entry) or "float32".'
        )


def _describe(strategy):
    name = type(strategy).__name__
    # TensorFlow's implicit strategy outside any scope.
    return "no strategy" if name == "_DefaultDistributionStrategy" else name


def check_model(model):
    """Raises a clear ValueError if ``model`` cannot train in its strategy.

    Keras runs the train step with ``model.distribute_strategy`` (the
    strategy active when the model was created, else the one active at
    ``fit``) and updates variables with the strategy its optimizer was
    created in (``model.compile``). Every trainable variable must have been
    created in those strategies' scope; otherwise TensorFlow fails inside the
    optimizer with a bare ``AssertionError``.

    Args:
        model: A compiled model (keras_er's callbacks call this when
            training starts).

    Raises:
        ValueError: If a trainable variable was not created in the scope of
            the strategy that trains it.
    """
    tf = _tf()
    if tf is None:
        return
    optimizer = getattr(model, "optimizer", None)
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    candidates = [
        ("the model (model.distribute_strategy)",
         getattr(model, "distribute_strategy", None)),
        ("its optimizer (model.compile)",
         getattr(inner, "_distribution_strategy", None)),
    ]
    variables = list(getattr(model, "trainable_variables", []))
    for who, strategy in candidates:
        if strategy is None:
            continue
        outside = [
            v for v in variables
            if not strategy.extended.variable_created_in_scope(
                getattr(v, "value", v)
            )
        ]
        if outside:
            names = [v.path for v in outside[:3]]
            more = " ..." if len(outside) > 3 else ""
            owner = variable_strategy(outside[0])
            created = "no strategy" if owner is None else _describe(owner)
            raise ValueError(
                f"{who} runs under {_describe(strategy)}, but the model "
                f"variables {names}{more} were created under {created}"
                ". With tf.distribute, build the model, call "
                "keras_er.sparsify(...), STR.prepare / EdgePopup.prepare and "
                "model.compile(...) inside `with strategy.scope():`, and "
                "call fit outside or inside it (docs/distribution.md)."
            )
