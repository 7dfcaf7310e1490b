"""`BatchSource`: the one parser of ``data=`` arguments.

Whatever in keras_er takes training data outside ``fit`` (the dense
gradient of `keras_er.callbacks.RiGL`, the SNIP scores behind
``ratio="snip"``) accepts the same things:

* a batch tuple ``(x, y)`` or ``(x, y, sample_weight)`` of arrays or tensors
  (used as one fixed batch);
* an iterable of such batches: a ``tf.data.Dataset``, a
  `keras.utils.PyDataset`, a torch ``DataLoader``, a generator or a list of
  ``(x, y)`` tuples (the next batch is drawn at each use; a re-iterable
  object starts over when exhausted).

Anything else raises an error naming ``data`` that is both a `TypeError`
and a `ValueError` (a private `_DataError`).
"""

import keras
from keras import ops

from keras_er import _checks
from keras_er.processes import global_batch


class _DataError(TypeError, ValueError):
    """A ``data=`` argument of the wrong kind (a TypeError and ValueError)."""


#: What ``data=`` may be, for the error messages.
FORMS = (
    "a batch tuple (x, y) or (x, y, sample_weight), or an iterable of "
    "such batches: a repeating tf.data.Dataset, a keras.utils.PyDataset, "
    "a torch DataLoader, a generator or a list of (x, y) tuples"
)


def _to_tensor(value):
    return None if value is None else ops.convert_to_tensor(value)


def _convert(tree):
    return None if tree is None else keras.tree.map_structure(_to_tensor, tree)


def unpack_batch(batch):
    """``(x, y, sample_weight)`` of one batch, as backend tensors.

    Same convention as ``fit``: ``(x,)``, ``(x, y)``, ``(x, y, sw)`` or a
    bare ``x``.
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
    # Several processes: one global batch (see `global_batch`).
    x, y, sample_weight = global_batch((x, y, sample_weight))
    return _convert(x), _convert(y), _convert(sample_weight)


class BatchSource:
    """Yields batches from a fixed batch or an iterable of batches.

    Args:
        data: See the module docstring.
        owner: Name used in error messages (e.g. ``"RiGL"``).

    Raises:
        _DataError: (a `TypeError` and a `ValueError`) for anything else: an
            array or tensor alone, a list ``[x, y]``, a string, a dict, a
            tuple of the wrong length, a non-iterable object.

    Example:

    ```python
    source = BatchSource(dataset.repeat(), owner="RiGL")
    x, y = source.next()
    ```
    """

    def __init__(self, data, owner="keras_er"):
        self.data = data
        self.owner = owner
        self._iterator = None
        prefix = f"{owner}: " if owner else ""
        if isinstance(data, tuple):
            if not 1 <= len(data) <= 3:
                raise _DataError(
                    f"{prefix}data must be a batch tuple (x, y) or (x, y, "
                    "sample_weight), or an iterable of such batches; got a "
                    f"tuple of {len(data)}."
                )
        elif (
            isinstance(data, (str, bytes, dict))
            or hasattr(data, "shape")  # An array or a tensor: rows, not batches.
            or not (hasattr(data, "__iter__") or hasattr(data, "__next__"))
        ):
            raise _DataError(
                f"{prefix}data must be {FORMS}; got {_checks.describe(data)}"
                + (
                    f" of shape {tuple(data.shape)}. For inputs x and labels "
                    "y pass data=(x, y)."
                    if hasattr(data, "shape") else "."
                )
            )
        elif isinstance(data, list) and not all(
            isinstance(batch, (tuple, list)) for batch in data
        ):
            raise _DataError(
                f"{prefix}data must be {FORMS}; got a list whose entries are "
                "not (x, y) batches. For inputs x and labels y pass the tuple "
                "data=(x, y), not a list [x, y]."
            )

    @property
    def is_fixed(self):
        """Whether ``data`` is one fixed batch (a tuple)."""
        return isinstance(self.data, tuple)

    def next(self):
        """The next batch (the fixed batch for a tuple).

        Raises:
            ValueError: If a one-shot iterator is exhausted, or an iterable
                yields nothing.
        """
        if self.is_fixed:
            return self.data
        if self._iterator is None:
            self._iterator = iter(self.data)
        try:
            return next(self._iterator)
        except StopIteration:
            if iter(self.data) is self.data:
                raise ValueError(
                    f"The {self.owner} data iterator is exhausted. Pass a "
                    "repeating dataset (e.g. dataset.repeat()) or a "
                    "re-iterable object."
                ) from None
            # Re-iterable (a Dataset, a list of batches): start over.
            self._iterator = iter(self.data)
            try:
                return next(self._iterator)
            except StopIteration:
                raise ValueError(
                    f"The {self.owner} data yields no batch."
                ) from None

    def next_tensors(self):
        """The next batch as ``(x, y, sample_weight)`` backend tensors."""
        return unpack_batch(self.next())
