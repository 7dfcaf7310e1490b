"""Gradual magnitude pruning (Zhu & Gupta, 2017) inside the ER masks.

The masks are computed by `keras_er.algorithms.magnitude` (pure functions
on tensors, run where the kernels live); this module holds the callback and
thin layer-level helpers shared with `keras_er.callbacks.IMP`. Every new mask
is a subset of the current one (masked entries never revive).
"""

import logging

import keras
import numpy as np

from keras_er import _checks
from keras_er.algorithms import magnitude as _magnitude
from keras_er.algorithms._select import count as _count
from keras_er.algorithms.n_m import check_n_m, n_m_magnitude_mask
from keras_er.algorithms.magnitude import SCOPES, allocate, check_scope  # noqa: F401
from keras_er.optimizer_state import StepTracker
from keras_er.callbacks.base import SparseTrainingCallback
from keras_er.callbacks.schedules import PolynomialDecay, as_pruning_schedule
from keras_er.distribute import check_model
from keras_er.mask_io import er_layers
from keras_er.ratios import check_density

logger = logging.getLogger("keras_er")


def mask_counts(layers):
    """Number of unmasked kernel entries of each layer (numpy int64 array).

    Counted where the masks live; only the counts come to the host.
    """
    return np.array([_count(layer.mask) for layer in layers], dtype=np.int64)


def kernel_sizes(layers):
    """Number of kernel entries of each layer (numpy int64 array)."""
    return np.array(
        [int(np.prod(layer.mask.shape)) for layer in layers], dtype=np.int64
    )


def _new_masks(layers, keep, scope):
    """`keras_er.algorithms.magnitude.magnitude_masks` on ER layers (tensors)."""
    return _magnitude.magnitude_masks(
        [layer.kernel for layer in layers],
        [layer.mask for layer in layers],
        keep,
        scope,
    )


def magnitude_masks(layers, keep, scope="global"):
    """New masks keeping the ``keep`` largest-magnitude unmasked weights.

    Layer-level convenience around
    `keras_er.algorithms.magnitude.magnitude_masks`, which ranks ``|kernel|``
    of the effective kernels among the unmasked entries (the callbacks use
    it directly and keep the masks on device). Each new mask is a subset of
    the current one; among tied magnitudes the lower index (global: the
    earlier layer) is kept.

    Args:
        layers: ER layers (e.g. from `keras_er.mask_io.er_layers`).
        keep: Total number of weights to keep (clipped to the number
            currently unmasked).
        scope: ``"global"`` ranks all layers together; ``"layerwise"`` keeps
            in every layer the same fraction of its unmasked weights.

    Returns:
        A list of float32 0/1 numpy arrays, one per layer.
    """
    return [
        np.asarray(keras.ops.convert_to_numpy(mask), dtype=np.float32)
        for mask in _new_masks(layers, keep, scope)
    ]


def prune_to(layers, keep, scope="global", optimizer=None):
    """Prunes ``layers`` in place down to ``keep`` weights by magnitude.

    Args:
        layers: ER layers.
        keep: Total number of weights to keep.
        scope: ``"global"`` or ``"layerwise"`` (see `magnitude_masks`).
        optimizer: Optional optimizer of the layers, whose state of the
            pruned entries is zeroed (see `set_mask`).

    Returns:
        The new masks (list of bool tensors, where the kernels live).
    """
    masks = _new_masks(layers, keep, scope)
    for layer, mask in zip(layers, masks):
        layer.set_mask(mask, optimizer=optimizer)
    return masks


class MagnitudePruning(SparseTrainingCallback):
    """Gradual magnitude pruning on a sparsity schedule, inside the ER mask.

    At every step where ``schedule`` says so, the weights of smallest
    magnitude among the currently unmasked ones are masked until the overall
    sparsity over all kernel entries of the ER layers equals the schedule's
    sparsity. Masked entries never come back, so the start density of the ER
    model caps how dense the result can be: a schedule value below the
    current sparsity prunes nothing.

    The step is the optimizer's ``iterations`` (number of optimizer steps
    taken), read after each training step: pruning at the end of step ``t``
    with the schedule's value at ``t`` is tfmot's "prune before step ``t``",
    and the first batch of a ``fit`` also checks the step count it starts at
    (so ``begin_step=0`` prunes the initial weights). Since the mask and the
    step count are model and optimizer variables, training resumed by
    `keras.callbacks.BackupAndRestore`, or by ``model.load_weights(path)``
    (optimizer built first) and ``fit(..., initial_epoch=k)``, continues the
    schedule exactly.

    **End point.** ``target_density`` (the name every keras_er callback
    uses) is ``1 - final sparsity`` of the schedule. Instead of a schedule,
    pass ``target_density`` and ``end_step`` (and optionally
    ``begin_step``, ``frequency``): the schedule is then
    ``PolynomialDecay(0, 1 - target_density, begin_step, end_step,
    frequency=frequency)`` (Zhu & Gupta's cubic decay; weights already
    masked count as pruned, so pruning starts once the schedule's sparsity
    passes the model's).

    Args:
        schedule: A `keras_er.callbacks.schedules.PolynomialDecay` or
            `ConstantSparsity`, or tensorflow-model-optimization's
            ``tfmot.sparsity.keras.PolynomialDecay`` / ``ConstantSparsity``
            (read through their attributes; tfmot is never imported here).
            ``None`` with ``target_density``.
        scope: ``"global"`` (default) ranks the weights of all ER layers
            together; ``"layerwise"`` keeps in every layer the same fraction
            of its unmasked weights, preserving the ER layerwise ratios.
        verbose: ``1`` prints a line each time the mask changes.
        target_density: Final overall density, in ``(0, 1]``, instead of a
            schedule (keyword only).
        begin_step: First pruning step with ``target_density``.
        end_step: Step at which ``target_density`` is reached (required
            with ``target_density``).
        frequency: Steps between mask updates with ``target_density``.
        m_by_n: ``(n, m)``, e.g. ``(2, 4)``, for N:M structured sparsity
            (tensorflow-model-optimization's ``sparsity_m_by_n``): at every
            pruning step of the schedule each layer keeps the ``n`` weights
            of largest magnitude in every group of ``m`` consecutive inputs
            of each output unit (among the unmasked ones), and the
            schedule's sparsity value is not used, as in tfmot. The pattern
            is kept through training (masked entries never come back), and
            `keras_er.strip` / `keras_er.export` keep its zeros. Start from
            ``sparsify(..., density=1.0)`` or a random N:M mask
            (``sampling="2:4"``).

    Raises:
        ValueError: For an unsupported schedule or scope, both or neither
            of ``schedule`` and ``target_density``; at ``fit`` time for a
            model without ER layers or without an optimizer.

    Example:

    ```python
    sparse = keras_er.sparsify(model, ratio="erk", density=0.5, seed=0)
    sparse.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    schedule = keras_er.callbacks.schedules.PolynomialDecay(
        initial_sparsity=0.5, final_sparsity=0.9, begin_step=0,
        end_step=2000, frequency=100)
    sparse.fit(x, y, epochs=10,
               callbacks=[keras_er.callbacks.MagnitudePruning(schedule)])
    ```
    """

    def __init__(
        self,
        schedule=None,
        scope="global",
        verbose=0,
        *,
        target_density=None,
        begin_step=0,
        end_step=None,
        frequency=100,
        m_by_n=None,
    ):
        super().__init__()
        self.m_by_n = None if m_by_n is None else check_n_m(m_by_n)
        if target_density is not None:
            if schedule is not None:
                raise ValueError(
                    "Pass a schedule or target_density (with end_step), "
                    "not both."
                )
            if end_step is None:
                raise ValueError(
                    "MagnitudePruning(target_density=...) needs end_step=, "
                    "the step at which the target density is reached."
                )
            density = check_density(target_density, "target_density")
            schedule = PolynomialDecay(
                0.0, 1.0 - density, begin_step, end_step, frequency=frequency
            )
        elif schedule is None:
            raise ValueError(
                "MagnitudePruning needs a schedule (e.g. "
                "keras_er.callbacks.schedules.PolynomialDecay(...)) or "
                "target_density=... with end_step=...."
            )
        self.schedule = as_pruning_schedule(schedule)
        self.scope = check_scope(scope)
        self.verbose = _checks.check_verbose(verbose)
        self._layers = None
        self._total = None
        self._last_step = None

    def set_model(self, model):
        super().set_model(model)
        self._layers = er_layers(model)
        self._total = int(kernel_sizes(self._layers).sum())

    @property
    def target_density(self):
        """The schedule's end point: ``1 - final sparsity``."""
        return 1.0 - float(self.schedule.final_sparsity_value)

    def pruned_layers(self):
        return self._layers

    def _current_density(self):
        return float(mask_counts(self._layers).sum()) / self._total

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        # Read the step at the first batch: BackupAndRestore may restore the
        # optimizer in its own on_train_begin, after this one.
        self._last_step = None
        self._steps = StepTracker()
        check_model(self.model)  # Model outside strategy.scope()?

    def on_train_batch_begin(self, batch, logs=None):
        if self._last_step is None:
            step = self._steps.read(self.model)
            self._prune_between(step, step)
            self._last_step = step
        self._steps.batch_begin(batch, self.model)

    def on_train_batch_end(self, batch, logs=None):
        # Several steps per call with steps_per_execution > 1. The exact
        # step is read only when a pruning step may have been reached.
        self._steps.batch_end(batch)
        bound = self._steps.upper_bound()
        if not any(
            self.schedule.should_prune(step)
            for step in range(self._last_step + 1, bound + 1)
        ):
            self._last_step = max(self._last_step, bound)
            return
        step = self._steps.read(self.model)
        self._prune_between(self._last_step + 1, step)
        self._last_step = step

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["density"] = self.density()

    def _prune_between(self, first, last):
        """Applies the latest pruning turn among steps ``first..last``."""
        for step in range(last, first - 1, -1):
            if self.schedule.should_prune(step):
                self._prune_at(step)
                return

    def _prune_n_m(self, step):
        n, m = self.m_by_n
        optimizer = getattr(self.model, "optimizer", None)
        for layer in self._layers:
            layer.set_mask(
                n_m_magnitude_mask(layer.kernel, layer.mask, n, m,
                                   axes=layer.unit_axes),
                optimizer=optimizer,
            )
        if self.verbose:
            print(f"MagnitudePruning: step {step}, {n}:{m} masks, density "
                  f"{self._current_density():.4f}")

    def _prune_at(self, step):
        if self.m_by_n is not None:
            self._prune_n_m(step)
            return
        sparsity = self.schedule.sparsity(step)
        keep = max(1, int(round((1.0 - sparsity) * self._total)))
        current = int(mask_counts(self._layers).sum())
        if keep >= current:
            return
        prune_to(
            self._layers, keep, self.scope,
            optimizer=getattr(self.model, "optimizer", None),
        )
        if self.verbose:
            print(
                f"MagnitudePruning: step {step}, sparsity {sparsity:.4f}, "
                f"density {keep / self._total:.4f}"
            )
        logger.debug(
            "MagnitudePruning: step %d, kept %d of %d", step, keep, self._total
        )

    def get_config(self):
        return {
            "schedule": self.schedule.get_config(),
            "schedule_class": type(self.schedule).__name__,
            "scope": self.scope,
            "verbose": self.verbose,
            "m_by_n": None if self.m_by_n is None else list(self.m_by_n),
        }

    @classmethod
    def from_config(cls, config):
        from keras_er.callbacks import schedules

        config = dict(config)
        schedule_class = getattr(schedules, config.pop("schedule_class"))
        schedule = schedule_class.from_config(config.pop("schedule"))
        return cls(schedule, **config)
