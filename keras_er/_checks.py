"""Argument checks shared by keras_er's public functions (private).

Every check raises a ``ValueError`` (or ``TypeError`` for an unknown keyword
argument) that names the argument, the value received and what to pass
instead, and returns the value in its canonical type. Densities are checked by
`keras_er.ratios.check_density`, sampling / flow / mask dtype by the
``check_*`` functions of `keras_er.masks`.
"""

import collections.abc
import inspect
import math
import os

import numpy as np


def describe(value):
    """``repr(value)``, with its type where the repr hides it."""
    if isinstance(value, (bool, np.bool_)):
        return f"{value!r} (a bool)"
    if isinstance(value, (str, bytes)):
        return f"{value!r} (a {type(value).__name__})"
    text = repr(value)
    if len(text) > 80 or type(value).__repr__ is object.__repr__:
        return f"a {type(value).__name__}"
    return text


def is_bool(value):
    return isinstance(value, (bool, np.bool_))


def is_int(value):
    """An int (Python or NumPy), not a bool."""
    return isinstance(value, (int, np.integer)) and not is_bool(value)


def check_real(value, name, fix=""):
    """``float(value)`` for a finite real number (not a bool or a string)."""
    if is_bool(value) or isinstance(value, (str, bytes)) or value is None:
        number = None
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
    if number is None or not math.isfinite(number):
        raise ValueError(
            f"{name} must be a finite number, got {describe(value)}."
            + (f" {fix}" if fix else "")
        )
    return number


def check_int(value, name, minimum=None, allow_none=False, fix=""):
    """``int(value)`` for an int (not a bool, not a float) ``>= minimum``."""
    if value is None and allow_none:
        return None
    bound = "" if minimum is None else f" >= {minimum}"
    none = " or None" if allow_none else ""
    if not is_int(value) or (minimum is not None and value < minimum):
        raise ValueError(
            f"{name} must be an int{bound}{none}, got {describe(value)}."
            + (f" {fix}" if fix else "")
        )
    return int(value)


def check_seed(seed, name="seed", allow_none=True):
    """A seed for ``numpy.random.default_rng``: an int >= 0 (or None)."""
    return check_int(
        seed, name, minimum=0, allow_none=allow_none,
        fix="NumPy seeds are non-negative: e.g. seed=0.",
    )


def check_bool(value, name):
    """``bool(value)`` for True / False only (a string would be truthy)."""
    if not is_bool(value):
        raise ValueError(
            f"{name} must be True or False, got {describe(value)}."
        )
    return bool(value)


def check_verbose(value, name="verbose"):
    """A verbosity level: a bool or an int >= 0."""
    if is_bool(value):
        return int(value)
    return check_int(value, name, minimum=0, fix="Use 0 (silent) or 1.")


def check_model(model, name="model", what="a keras.Model"):
    """Raises unless ``model`` is a `keras.Model`."""
    import keras

    if not isinstance(model, keras.Model):
        raise ValueError(
            f"{name} must be {what} (e.g. a built keras.Sequential or "
            f"Functional model), got {describe(model)}."
        )
    return model


def check_path(path, name="path"):
    """``os.fspath(path)`` for a non-empty str or path-like object."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(
            f"{name} must be a non-empty file or directory path (a str or "
            f"os.PathLike), got {describe(path)}."
        )
    return os.fspath(path)


def _is_names(value):
    """A collection of str (list, tuple, set, dict keys), not a str/dict."""
    return (
        isinstance(value, collections.abc.Collection)
        and not isinstance(value, (str, bytes, collections.abc.Mapping))
        and all(isinstance(entry, str) for entry in value)
    )


def check_layers(layers, name="layers", regex=True):
    """A layer filter: None, a list of names, a regex string or a callable."""
    forms = (
        "None (all layers), a list of layer names, "
        + ("a regex string, " if regex else "")
        + "or a callable fn(layer) -> bool"
    )
    if layers is None or callable(layers):
        return layers
    if isinstance(layers, str):
        if regex:
            return layers
        return [layers]
    if _is_names(layers):
        return layers
    raise ValueError(f"{name} must be {forms}; got {describe(layers)}.")


def check_names(names, name, extra=""):
    """A str or a list / tuple / set of str."""
    if isinstance(names, str):
        return names
    if _is_names(names):
        return names
    raise ValueError(
        f"{name} must be a layer name or a list of layer names{extra}, got "
        f"{describe(names)}."
    )


def accepted_keywords(fn, skip=0):
    """Keyword names ``fn`` accepts after its first ``skip`` positional
    parameters, or None when it takes ``**kwargs``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [
        p.name for p in params[skip:]
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def check_options(options, accepted, where):
    """Raises TypeError for keys of ``options`` not in ``accepted``.

    Args:
        options: The ``**options`` dict received.
        accepted: The option names allowed (None: anything goes).
        where: Says where the options go, e.g. "the ratio method 'erk'".
    """
    if accepted is None:
        return
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        allowed = sorted(accepted)
        raise TypeError(
            f"Unknown keyword argument{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}: **options go to "
            f"{where}, which accepts "
            + (f"{allowed}." if allowed else "none.")
            + " Check the spelling, or leave them out."
        )
