"""`SparseTrainingCallback`: what every sparse-training callback shares.

`MagnitudePruning`, `IMP`, `RiGL` / `SET`, `EdgePopup` and `STR` derive from
it and get, in one way:

* ``prepare(model)``: the step that changes the model before
  ``model.compile`` (`EdgePopup` and `STR` install a kernel
  reparameterization; the others need nothing and return the model). A
  callback that needs it raises a `ValueError` naming ``prepare`` at the
  start of ``fit`` when it was forgotten.
* ``data=``: one parser (`keras_er.batches.BatchSource`) for whatever a
  callback takes data for: a batch tuple ``(x, y)``, a ``tf.data.Dataset``
  or another iterable of ``(x, y)`` batches, a `keras.utils.PyDataset`.
* ``target_density``: the end point's one name. Older names stay as
  deprecated aliases (a `DeprecationWarning`), e.g. EdgePopup's
  ``final_density``.
* ``density``: the current overall density of the kernels the callback
  prunes, a `Density` (a float also callable as ``density()``).
* checkpointed state (`keras_er.callbacks.callback_state`): attached in
  ``set_model``, adopted from a pending load at the first epoch, detached at
  the end of ``fit``.
* masks re-applied at the end of training: ``on_train_end`` sets every ER
  kernel entry outside its mask to exactly zero (also after Keras copied the
  optimizer's EMA averages into the weights, which bypasses the projection;
  keras_er re-projects there by itself too, see
  `keras_er.layers.masked_kernel`).
"""

import warnings

import keras
import numpy as np

from keras_er.algorithms._select import count as _count
from keras_er.batches import BatchSource
from keras_er.callbacks.callback_state import (
    CallbackState,
    warn_if_optimizer_not_restored,
)
from keras_er.mask_io import er_layers


class Density(float):
    """A density (a float) that is also callable, for the older method form.

    ``value()`` returns the float; ``value(model)`` the density of another
    model, computed by the callback's own rule.
    """

    def __new__(cls, value, of=None):
        obj = super().__new__(cls, value)
        obj._of = of
        return obj

    def __call__(self, model=None):
        if model is None:
            return float(self)
        if self._of is None:
            raise TypeError("This density does not take a model.")
        return float(self._of(model))


class DensityOfModel:
    """``density`` descriptor: a `Density` on an instance, and on the class
    the function ``fn(model)`` (so ``Callback.density(model)`` works).

    Args:
        fn: ``fn(model) -> float``.
    """

    def __init__(self, fn):
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj, cls=None):
        if obj is None:
            return self.fn
        model = getattr(obj, "model", None)
        if model is None:
            return None
        return Density(self.fn(model), of=self.fn)


def mask_density(layers):
    """Overall density of the masks of ``layers`` (counted on device)."""
    size = sum(int(np.prod(layer.mask.shape)) for layer in layers)
    return sum(_count(layer.mask) for layer in layers) / size


def reapply_masks(model):
    """Sets every ER kernel entry outside its mask to exactly zero.

    Args:
        model: A model with ER layers (a model without any is left alone).

    Returns:
        The number of ER kernels re-projected.
    """
    try:
        layers = er_layers(model)
    except ValueError:
        return 0
    for layer in layers:
        layer.apply_mask()
    return len(layers)


class SparseTrainingCallback(keras.callbacks.Callback):
    """Base class of keras_er's sparse-training callbacks.

    Subclasses set `needs_prepare` (and override `prepare` and
    `is_prepared`) when they change the model before compile, override
    `_current_density` when their density is not the mask density of
    `pruned_layers`, and call ``super().on_train_end(logs)`` last in their
    own ``on_train_end``.

    Example:

    ```python
    callback = keras_er.callbacks.STR(target_density=0.05)
    callback.prepare(model)          # before compile (a no-op for IMP, ...)
    model.compile(...)
    model.fit(x, y, callbacks=[callback])
    isinstance(callback, keras_er.callbacks.SparseTrainingCallback)  # True
    callback.target_density, callback.density  # end point, current
    ```
    """

    #: Whether `prepare` must run before ``model.compile``.
    needs_prepare = False
    #: Name of the checkpointed state (see `_attach_state`), if any.
    _state = None

    # -------------------------------------------------------- (a) prepare

    def prepare(self, model):
        """Changes ``model`` as the callback needs, before ``model.compile``.

        The optimizer only trains variables that exist when it is built, so
        a callback that adds some (`EdgePopup` scores, `STR` thresholds) must
        be prepared before compiling. For the others it does nothing.

        Args:
            model: A built model with ER layers.

        Returns:
            ``model`` (`EdgePopup.prepare` returns a report dict).
        """
        return model

    def is_prepared(self, model):
        """Whether `prepare` has been applied to ``model``."""
        return True

    def check_prepared(self, model=None):
        """Raises unless ``model`` (default: the callback's) is prepared.

        Raises:
            ValueError: If the callback `needs_prepare` and ``prepare`` was
                not called on the model.
        """
        model = self.model if model is None else model
        if self.needs_prepare and not self.is_prepared(model):
            name = type(self).__name__
            raise ValueError(
                f"{name} is not prepared on this model: call "
                f"`callback.prepare(model)` (keras_er.callbacks.{name}) "
                "before `model.compile(...)`, then pass the same callback to "
                "`fit`."
            )

    # ----------------------------------------------------------- (b) data

    @staticmethod
    def parse_data(data, owner="callback"):
        """The one parser of ``data=``: a `keras_er.batches.BatchSource`.

        Args:
            data: A batch tuple ``(x, y)`` / ``(x, y, sample_weight)``, or an
                iterable of such batches (``tf.data.Dataset``,
                `keras.utils.PyDataset`, generator, list of tuples).
            owner: Name for error messages.

        Returns:
            A `BatchSource` (``.next()`` gives the next batch).

        Raises:
            TypeError: (also a ValueError) naming ``data`` for anything else.
        """
        return BatchSource(data, owner=owner)

    # ------------------------------------------------- (c) target_density

    @staticmethod
    def resolve_target_density(target_density, owner, **deprecated):
        """``target_density`` from itself or one deprecated alias.

        Args:
            target_density: The value passed as ``target_density``.
            owner: Callback name for messages.
            **deprecated: ``{old name: value passed}``; a value that is not
                None warns with a `DeprecationWarning` and is used.

        Returns:
            The value (not validated), or None.

        Raises:
            ValueError: If both ``target_density`` and an alias are given.
        """
        for old, value in deprecated.items():
            if value is None:
                continue
            if target_density is not None:
                raise ValueError(
                    f"Pass target_density only; {old} is its deprecated "
                    "alias."
                )
            warnings.warn(
                f"{owner}({old}=...) is deprecated; use target_density=... "
                "(the name every keras_er callback uses).",
                DeprecationWarning,
                stacklevel=3,
            )
            target_density = value
        return target_density

    # --------------------------------------------------------- (d) density

    def pruned_layers(self):
        """The ER layers the callback prunes (default: all of the model's)."""
        return er_layers(self.model)

    def _current_density(self):
        return mask_density(self.pruned_layers())

    @property
    def density(self):
        """Current overall density of the kernels the callback prunes.

        A float (`Density`; ``density()`` works too); ``None`` before the
        callback has a model.
        """
        if getattr(self, "model", None) is None:
            return None
        value = self._current_density()
        return None if value is None else Density(value)

    # ----------------------------------------------------------- (e) state

    def _attach_state(self, model, name, counters, arrays=()):
        """Creates (once per model) and attaches the checkpointed state.

        Call it in ``set_model``. Returns the `CallbackState`.
        """
        if self._state is None or self._state_model is not model:
            self._state = CallbackState(
                name, counters, arrays, owner=type(self).__name__
            )
            self._state_model = model
            self._state_is_new = True
        else:
            self._state_is_new = False
        # Attached before any on_train_begin, where BackupAndRestore loads.
        self._state.attach(model)
        self._resume_checked = False
        return self._state

    def _resume_state(self, epoch):
        """Adopts state a load left pending, once per ``fit`` (first epoch).

        Values ``load_weights`` read before ``fit`` continue the run when
        this ``fit`` does (``epoch > 0``) and the state has not started.

        Returns:
            Whether pending values were adopted.
        """
        if getattr(self, "_resume_checked", True) or self._state is None:
            return False
        self._resume_checked = True
        adopted = self._state.resume_pending(
            epoch > 0 and not self._state.get()["started"]
        )
        if adopted:
            warn_if_optimizer_not_restored(self.model, type(self).__name__)
        return adopted

    # ------------------------------------------------------ (f) train end

    def on_train_begin(self, logs=None):
        self._resume_checked = False

    def on_train_end(self, logs=None):
        """Detaches the state; re-applies every ER mask.

        Weights saved after a completed ``fit`` carry no callback state. The
        kernels are projected onto their masks, so entries outside a mask
        are exactly zero whatever the optimizer did last (e.g. Keras'
        ``finalize_variable_values`` copying EMA averages with
        ``use_ema=True``).
        """
        if self._state is not None:
            self._state.detach(self.model)
        if getattr(self, "model", None) is not None:
            reapply_masks(self.model)
