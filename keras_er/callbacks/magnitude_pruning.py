"""Gradual magnitude pruning (Zhu & Gupta, 2017) inside the ER masks.

Also holds the magnitude-ranking helpers shared with `keras_er.callbacks.IMP`:
masks are decided on the host with numpy, a few times per training run, and
every new mask is a subset of the current one (masked entries never revive).
"""

import logging

import keras
import numpy as np

from keras_er import _checks
from keras_er.optimizer_state import StepTracker
from keras_er.callbacks.schedules import as_pruning_schedule
from keras_er.distribute import check_model
from keras_er.mask_io import er_layers

logger = logging.getLogger("keras_er")

SCOPES = ("global", "layerwise")


def check_scope(scope):
    """Validates a ranking scope (``"global"`` or ``"layerwise"``)."""
    if scope not in SCOPES:
        raise ValueError(
            f"scope must be one of {SCOPES}, got {scope!r}."
        )
    return scope


def _to_numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable))


def mask_counts(layers):
    """Number of unmasked kernel entries of each layer (numpy int64 array)."""
    return np.array(
        [int(np.count_nonzero(_to_numpy(layer.mask))) for layer in layers],
        dtype=np.int64,
    )


def kernel_sizes(layers):
    """Number of kernel entries of each layer (numpy int64 array)."""
    return np.array(
        [int(np.prod(layer.mask.shape)) for layer in layers], dtype=np.int64
    )


def allocate(keep, counts):
    """Splits ``keep`` kept weights over layers in proportion to ``counts``.

    Largest-remainder rounding in integers, so the shares sum to exactly
    ``keep`` and no layer gets more than it has.

    Args:
        keep: Total number of weights to keep, ``0 <= keep <= sum(counts)``.
        counts: Current number of unmasked weights per layer.

    Returns:
        A numpy int64 array, one count per layer.

    Raises:
        ValueError: If ``keep`` is negative or above ``sum(counts)``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    keep = int(keep)
    if not 0 <= keep <= total:
        raise ValueError(f"keep must be in [0, {total}], got {keep}.")
    if total == 0:
        return np.zeros_like(counts)
    # Python ints: counts * keep can overflow int64 for huge models.
    products = [int(c) * keep for c in counts]
    shares = np.array([p // total for p in products], dtype=np.int64)
    remainders = np.array([p % total for p in products], dtype=object)
    missing = keep - int(shares.sum())
    # Stable sort: ties go to the earlier layer, deterministically.
    order = sorted(range(len(counts)), key=lambda i: -remainders[i])
    for i in order[:missing]:
        shares[i] += 1
    return shares


def _top_k(scores, k):
    """Boolean array marking the ``k`` largest entries of flat ``scores``."""
    keep = np.zeros(scores.shape, dtype=bool)
    if k <= 0:
        return keep
    if k >= scores.size:
        keep[:] = True
        return keep
    keep[np.argpartition(scores, scores.size - k)[scores.size - k:]] = True
    return keep


def magnitude_masks(layers, keep, scope="global"):
    """New masks keeping the ``keep`` largest-magnitude unmasked weights.

    Scores are ``|kernel|`` of the effective kernel; entries outside the
    current mask score ``-1`` so they are never chosen while ``keep`` does not
    exceed the number of unmasked weights: each new mask is a subset of the
    current one.

    Args:
        layers: ER layers (e.g. from `keras_er.mask_io.er_layers`).
        keep: Total number of weights to keep (clipped to the number
            currently unmasked).
        scope: ``"global"`` ranks all layers together; ``"layerwise"`` keeps
            in every layer the same fraction of its unmasked weights.

    Returns:
        A list of float32 0/1 numpy arrays, one per layer.
    """
    check_scope(scope)
    old = [_to_numpy(layer.mask) != 0 for layer in layers]
    scores = []
    for layer, mask in zip(layers, old):
        magnitude = np.abs(_to_numpy(layer.kernel).astype(np.float32))
        scores.append(np.where(mask, magnitude, np.float32(-1.0)).ravel())
    counts = np.array([int(m.sum()) for m in old], dtype=np.int64)
    keep = int(min(max(int(keep), 0), int(counts.sum())))
    if scope == "global":
        chosen = _top_k(np.concatenate(scores), keep)
        flat = np.split(chosen, np.cumsum([s.size for s in scores])[:-1])
    else:
        shares = allocate(keep, counts)
        flat = [_top_k(s, int(k)) for s, k in zip(scores, shares)]
    return [
        (f & m.ravel()).reshape(m.shape).astype(np.float32)
        for f, m in zip(flat, old)
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
        The new masks (list of numpy arrays).
    """
    masks = magnitude_masks(layers, keep, scope)
    for layer, mask in zip(layers, masks):
        layer.set_mask(mask, optimizer=optimizer)
    return masks


class MagnitudePruning(keras.callbacks.Callback):
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

    Args:
        schedule: A `keras_er.callbacks.schedules.PolynomialDecay` or
            `ConstantSparsity`, or tensorflow-model-optimization's
            ``tfmot.sparsity.keras.PolynomialDecay`` / ``ConstantSparsity``
            (read through their attributes; tfmot is never imported here).
        scope: ``"global"`` (default) ranks the weights of all ER layers
            together; ``"layerwise"`` keeps in every layer the same fraction
            of its unmasked weights, preserving the ER layerwise ratios.
        verbose: ``1`` prints a line each time the mask changes.

    Raises:
        ValueError: For an unsupported schedule or scope; at ``fit`` time
            for a model without ER layers or without an optimizer.

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

    def __init__(self, schedule, scope="global", verbose=0):
        super().__init__()
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

    def density(self):
        """Current density over all kernel entries of the ER layers."""
        return float(mask_counts(self._layers).sum()) / self._total

    def on_train_begin(self, logs=None):
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

    def _prune_at(self, step):
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
        }

    @classmethod
    def from_config(cls, config):
        from keras_er.callbacks import schedules

        config = dict(config)
        schedule_class = getattr(schedules, config.pop("schedule_class"))
        schedule = schedule_class.from_config(config.pop("schedule"))
        return cls(schedule, **config)
