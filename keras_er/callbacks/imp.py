"""IMP: iterative magnitude pruning with weight rewinding, inside ER masks.

Frankle & Carbin (2019), as used from an ER start by Gadhikar et al. (2023,
appendix A.7): train a cycle, prune a fraction of the remaining weights by
magnitude, rewind the survivors to their values at the rewind point, reset
the optimizer, repeat until the target density.

Resuming: the rewind snapshot and IMP's counters live in non-trainable
variables of a small Keras layer (`CallbackState`) that the callback
registers in ``set_model`` with the model's first ER layer (outside the
model's layers and ``model.weights``). Every weights file written during
``fit`` holds it with the weights, masks and optimizer, and
``load_weights`` reads it back, also before ``fit`` (see
`keras_er.callbacks.callback_state`), so a restored run is consistent by
construction. It is removed at the end of ``fit``, so models saved
afterwards do not carry it.
"""

import logging
import math

import keras
import numpy as np
from keras import ops

from keras_er import _checks
from keras_er.callbacks.base import SparseTrainingCallback
from keras_er.callbacks.magnitude_pruning import (
    check_scope,
    kernel_sizes,
    mask_counts,
    prune_to,
)
from keras_er.optimizer_state import (
    optimizer_step,
    reset_optimizer,
    unwrap,
)
from keras_er.distribute import check_model
from keras_er.mask_io import er_layers

logger = logging.getLogger("keras_er")

_COUNTERS = (
    "started",  # 0 until the first epoch of the run begins.
    "epochs_begun",  # Epochs begun since the start (not Keras' epoch index).
    "cycles_done",  # Number of prune-and-rewind steps done.
    "snapshot_taken",  # Whether the rewind snapshot holds the rewind point.
    "start_step",  # optimizer.iterations at the start (for rewind=k).
    "start_count",  # Unmasked kernel entries at the start.
    "total",  # Kernel entries of all ER layers.
)
REWIND_WEIGHTS = ("all", "kernels")
# Densities closer than this count as equal (float noise in user input).
_EPS = 1e-9


def _check_fraction(prune_fraction):
    if isinstance(prune_fraction, (bool, str, bytes)):
        raise ValueError(
            f"prune_fraction must be a float in (0, 1), got {prune_fraction!r}."
        )
    try:
        value = float(prune_fraction)
    except (TypeError, ValueError):
        raise ValueError(
            f"prune_fraction must be a float in (0, 1), got {prune_fraction!r}."
        ) from None
    if not 0.0 < value < 1.0:  # Also rejects NaN.
        raise ValueError(
            f"prune_fraction must be in (0, 1) (exclusive), got {value}."
        )
    return value


def _check_density(value, name):
    if isinstance(value, (bool, str, bytes)):
        raise ValueError(f"{name} must be a float in (0, 1], got {value!r}.")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a float in (0, 1], got {value!r}."
        ) from None
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}.")
    return value


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}.")
    return int(value)


def _check_rewind(rewind):
    if isinstance(rewind, str):
        if rewind == "init":
            return 0
        raise ValueError(
            f"rewind must be 'init' or a non-negative int step, got {rewind!r}."
        )
    if isinstance(rewind, bool) or not isinstance(rewind, (int, np.integer)):
        raise ValueError(
            "rewind must be 'init' or a non-negative int step, got "
            f"{rewind!r}."
        )
    if rewind < 0:
        raise ValueError(f"rewind step must be >= 0, got {rewind}.")
    return int(rewind)


def _num_prunings(start_density, target_density, prune_fraction):
    if target_density >= start_density * (1.0 - _EPS):
        return 0
    ratio = math.log(target_density / start_density) / math.log1p(
        -prune_fraction
    )
    return max(1, math.ceil(ratio - _EPS))


def _start_density(start):
    """A density from a float or from a model's current ER masks."""
    if isinstance(start, keras.Model):
        layers = er_layers(start)
        return float(mask_counts(layers).sum() / kernel_sizes(layers).sum())
    return _check_density(start, "start_density")


def _count_schedule(start_count, total, target_density, prune_fraction):
    """Kept weights after 0, 1, ..., n prunings; the last on the target."""
    n = _num_prunings(start_count / total, target_density, prune_fraction)
    final = min(start_count, max(1, int(round(target_density * total))))
    counts = [int(start_count)]
    for cycle in range(1, n):
        planned = int(round(start_count * (1.0 - prune_fraction) ** cycle))
        counts.append(min(counts[-1], max(final, planned)))
    if n:
        counts.append(final)
    return counts


class IMP(SparseTrainingCallback):
    """Iterative magnitude pruning with rewinding, inside the ER masks.

    Training is split into cycles of ``epochs_per_cycle`` epochs. At the end
    of every cycle but the last, ``prune_fraction`` of the remaining weights
    are masked by magnitude among the unmasked ones (entries already masked
    never revive, so each mask is a subset of the previous one and of the ER
    mask). The densities are ``d0 * (1 - prune_fraction) ** c`` with the last
    pruning landing exactly on ``target_density`` (overall density over all
    kernel entries of the ER layers, in whole weights). After each pruning
    the weights are rewound to their values at the rewind point and the
    optimizer state (momentum, Adam moments, ...) is reset to zero; the
    optimizer's step counter is kept, so a `CyclicCosine` learning rate
    restarts with every cycle. The last cycle trains at the target density:
    run ``IMP.total_epochs(...)`` epochs in all.

    Cycles are counted in epochs begun since this callback started (not
    Keras' epoch index), so several ``fit`` calls with the same callback
    continue one run. A new `IMP` instance starts a new run from the model's
    current masks and weights, unless a checkpoint restores the state (see
    below).

    The epoch logs get ``imp_cycle`` (prunings done before this epoch's
    pruning, if any) and ``density`` (density the epoch trained at).

    Resuming: the snapshot and counters are variables of a helper layer
    saved with the model's weights in every file written during ``fit``. A
    run interrupted and resumed (same architecture; a new model and a new
    `IMP` instance are fine) continues with the same snapshot, masks and
    counters, with `keras.callbacks.BackupAndRestore` whatever the order of
    the two callbacks, or with ``ModelCheckpoint(save_weights_only=True)``,
    then ``model.load_weights(path)`` (optimizer built first) and
    ``fit(..., initial_epoch=k)``. A new `IMP` whose ``fit`` starts at epoch
    0 starts a new run from the loaded weights.

    Args:
        target_density: Final overall density in ``(0, 1]``; at most the
            model's current density.
        prune_fraction: Fraction of the remaining weights pruned per cycle,
            in ``(0, 1)``. Paper: 0.2.
        epochs_per_cycle: Epochs trained per cycle. Paper: 150.
        rewind: ``"init"`` (or ``0``): rewind to the weights at the start of
            training; an int ``k``: to the weights after ``k`` optimizer
            steps of this run (must happen within the first cycle).
        scope: ``"global"`` ranks magnitudes over all ER layers together (the
            paper); ``"layerwise"`` prunes ``prune_fraction`` of each layer.
        rewind_weights: ``"all"`` (default) rewinds every model weight except
            the masks (biases, normalization statistics, ...), as the lottery
            ticket papers do; ``"kernels"`` only the ER kernels.
        verbose: ``1`` prints a line after every pruning.

    Raises:
        ValueError: For ``prune_fraction`` outside ``(0, 1)``, a bad
            ``target_density``, ``epochs_per_cycle``, ``rewind``, ``scope``
            or ``rewind_weights``; when set on a model without ER layers,
            with unbuilt layers, or with a density below ``target_density``;
            when the rewind step is not reached before the first pruning.

    Example:

    ```python
    sparse = keras_er.sparsify(model, ratio="balanced", density=0.5, seed=0)
    steps = len(x) // 128
    imp = keras_er.callbacks.IMP(0.1, prune_fraction=0.2, epochs_per_cycle=5)
    lr = keras_er.callbacks.CyclicCosine(0.1, 0.01, cycle_steps=5 * steps)
    sparse.compile(keras.optimizers.SGD(lr, momentum=0.9),
                   "sparse_categorical_crossentropy")
    epochs = keras_er.callbacks.IMP.total_epochs(sparse, 0.1, 0.2, 5)
    sparse.fit(x, y, batch_size=128, epochs=epochs, callbacks=[imp])
    ```
    """

    def __init__(
        self,
        target_density,
        prune_fraction=0.2,
        epochs_per_cycle=150,
        rewind="init",
        scope="global",
        rewind_weights="all",
        verbose=0,
    ):
        super().__init__()
        self.target_density = _check_density(target_density, "target_density")
        self.prune_fraction = _check_fraction(prune_fraction)
        self.epochs_per_cycle = _check_positive_int(
            epochs_per_cycle, "epochs_per_cycle"
        )
        self.rewind = rewind
        self._rewind_step = _check_rewind(rewind)
        self.scope = check_scope(scope)
        if rewind_weights not in REWIND_WEIGHTS:
            raise ValueError(
                f"rewind_weights must be one of {REWIND_WEIGHTS}, got "
                f"{rewind_weights!r}."
            )
        self.rewind_weights = rewind_weights
        self.verbose = _checks.check_verbose(verbose)
        self._state_model = None
        self._layers = None
        self._rewind_variables = None
        self._snapshot_pending = False

    # Planning helpers (no model needed).

    @staticmethod
    def density_schedule(start_density, target_density, prune_fraction=0.2):
        """Densities trained at in each cycle, from start to target.

        Args:
            start_density: Density at the start, or a model with ER layers
                (its current density is used).
            target_density: Final density, at most ``start_density``.
            prune_fraction: Fraction of the remaining weights pruned per
                cycle, in ``(0, 1)``.

        Returns:
            A list ``[d0, d0 * (1 - f), ..., target_density]``, one entry per
            cycle (the model's exact counts round these to whole weights).

        Raises:
            ValueError: For invalid densities or fraction, or a target above
                the start density.

        Example:

        ```python
        IMP.density_schedule(0.5, 0.3, 0.2)  # [0.5, 0.4, 0.32, 0.3]
        ```
        """
        start = _start_density(start_density)
        target = _check_density(target_density, "target_density")
        fraction = _check_fraction(prune_fraction)
        if target > start + _EPS:
            raise ValueError(
                f"target_density ({target}) is above the start density "
                f"({start}); IMP can only prune."
            )
        n = _num_prunings(start, target, fraction)
        densities = [start * (1.0 - fraction) ** c for c in range(n)]
        return densities + [target] if n else [start]

    @staticmethod
    def total_epochs(
        start_density, target_density, prune_fraction=0.2, epochs_per_cycle=150
    ):
        """Epochs an IMP run needs: one cycle per density, the target's last.

        Args:
            start_density: Density at the start, or a model with ER layers.
            target_density: Final density.
            prune_fraction: Fraction pruned per cycle, in ``(0, 1)``.
            epochs_per_cycle: Epochs per cycle.

        Returns:
            ``len(IMP.density_schedule(...)) * epochs_per_cycle``.

        Raises:
            ValueError: As `density_schedule`, or for a bad
                ``epochs_per_cycle``.

        Example:

        ```python
        IMP.total_epochs(0.5, 0.3, 0.2, epochs_per_cycle=10)  # 40
        ```
        """
        epochs = _check_positive_int(epochs_per_cycle, "epochs_per_cycle")
        cycles = IMP.density_schedule(
            start_density, target_density, prune_fraction
        )
        return len(cycles) * epochs

    # Runtime.

    @property
    def cycle(self):
        """Number of prunings done so far (0 before the first)."""
        return 0 if self._state is None else self._state.get()["cycles_done"]

    def pruned_layers(self):
        return self._layers

    def _current_density(self):
        return float(
            mask_counts(self._layers).sum() / kernel_sizes(self._layers).sum()
        )

    def set_model(self, model):
        super().set_model(model)
        layers = er_layers(model)
        check_model(model)  # Model outside strategy.scope()?
        if not all(layer.built for layer in layers):
            raise ValueError(
                "IMP needs a built model: call it on a batch (or build it) "
                "before fit."
            )
        self._layers = layers
        self._rewind_variables = self._select_rewind_variables(model, layers)
        self._attach_state(
            model,
            "keras_er_imp_state",
            _COUNTERS,
            [(v.shape, v.dtype) for v in self._rewind_variables],
        )
        if not self._state.get()["started"]:
            self._check_target()

    def _select_rewind_variables(self, model, layers):
        if self.rewind_weights == "kernels":
            return [layer._kernel for layer in layers]
        masks = {id(layer.mask) for layer in layers}
        seen, chosen = set(), []
        for variable in model.weights:
            if id(variable) not in masks and id(variable) not in seen:
                seen.add(id(variable))
                chosen.append(variable)
        return chosen

    def _check_target(self):
        density = self.density()
        if self.target_density > density + _EPS:
            raise ValueError(
                f"target_density ({self.target_density}) is above the "
                f"model's current density ({density:.6g}); IMP can only prune."
            )

    def on_epoch_begin(self, epoch, logs=None):
        # After every on_train_begin (BackupAndRestore has loaded by now):
        # state that load_weights read before fit continues the run if this
        # fit does (initial_epoch > 0).
        self._resume_state(epoch)
        counters = self._state.get()
        if not counters["started"]:
            self._start()
            counters = self._state.get()
        # If BackupAndRestore saved before this callback pruned at the last
        # epoch end, the pruning is still due: do it now.
        self._prune_due(counters)
        counters = self._state.get()
        expected = self._counts(counters)[counters["cycles_done"]]
        current = int(mask_counts(self._layers).sum())
        if current != expected:
            logger.warning(
                "IMP: the masks keep %d weights but cycle %d should keep %d; "
                "were the masks changed outside IMP?",
                current, counters["cycles_done"], expected,
            )
        self._state.update(epochs_begun=counters["epochs_begun"] + 1)
        self._snapshot_pending = not counters["snapshot_taken"]

    def on_train_batch_end(self, batch, logs=None):
        if not self._snapshot_pending:
            return
        counters = self._state.get()
        if optimizer_step(self.model) - counters["start_step"] >= (
            self._rewind_step
        ):
            self._take_snapshot()

    def on_epoch_end(self, epoch, logs=None):
        counters = self._state.get()
        if logs is not None:
            logs["imp_cycle"] = counters["cycles_done"]
            logs["density"] = self.density()
        self._prune_due(counters)

    def on_train_end(self, logs=None):
        # Weights saved after a completed fit carry no IMP state (its
        # snapshot is a full copy of the rewound weights); masks re-applied.
        super().on_train_end(logs)

    def _start(self):
        self._check_target()
        start_count = int(mask_counts(self._layers).sum())
        total = int(kernel_sizes(self._layers).sum())
        self._state.update(
            started=1,
            epochs_begun=0,
            cycles_done=0,
            snapshot_taken=0,
            start_step=optimizer_step(self.model),
            start_count=start_count,
            total=total,
        )
        steps = (self.params or {}).get("steps")
        prunes = len(self._counts(self._state.get())) > 1
        cycle_steps = steps * self.epochs_per_cycle if steps else None
        if prunes and cycle_steps and self._rewind_step >= cycle_steps:
            raise ValueError(
                f"rewind={self._rewind_step} is not reached within the first "
                f"cycle ({cycle_steps} steps)."
            )
        if self._rewind_step == 0:
            self._take_snapshot()

    def _counts(self, counters):
        return _count_schedule(
            counters["start_count"],
            counters["total"],
            self.target_density,
            self.prune_fraction,
        )

    def _take_snapshot(self):
        for variable, copy in zip(self._rewind_variables, self._state.arrays):
            # A copy, not the same buffer: JAX train steps donate (free)
            # the model variables' buffers.
            copy.assign(ops.copy(variable))
        self._state.update(snapshot_taken=1)
        self._snapshot_pending = False

    def _prune_due(self, counters):
        counts = self._counts(counters)
        due = min(
            counters["epochs_begun"] // self.epochs_per_cycle, len(counts) - 1
        )
        for level in range(counters["cycles_done"] + 1, due + 1):
            self._prune_and_rewind(level, counts[level])

    def _prune_and_rewind(self, level, keep):
        if not self._state.get()["snapshot_taken"]:
            raise ValueError(
                f"IMP: rewind step {self._rewind_step} was not reached before "
                "the first pruning; use a smaller rewind step."
            )
        masks = prune_to(self._layers, keep, self.scope)
        mask_of = {
            id(layer._kernel): mask for layer, mask in zip(self._layers, masks)
        }
        for variable, copy in zip(self._rewind_variables, self._state.arrays):
            mask = mask_of.get(id(variable))
            if mask is None:
                variable.assign(ops.copy(copy))  # As in _take_snapshot.
            else:
                variable.assign(ops.multiply(copy, ops.cast(mask, copy.dtype)))
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            reset_optimizer(unwrap(optimizer), self.model.trainable_variables)
        self._state.update(cycles_done=level)
        total = kernel_sizes(self._layers).sum()
        if self.verbose:
            print(
                f"IMP: pruning {level} done, density {keep / total:.4f}, "
                f"weights rewound"
            )
        logger.info("IMP: pruning %d, kept %d of %d", level, keep, total)

    def get_config(self):
        return {
            "target_density": self.target_density,
            "prune_fraction": self.prune_fraction,
            "epochs_per_cycle": self.epochs_per_cycle,
            "rewind": self.rewind,
            "scope": self.scope,
            "rewind_weights": self.rewind_weights,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_er")
class CyclicCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine annealing restarted every ``cycle_steps`` optimizer steps.

    ``lr(t) = final + (initial - final) * (1 + cos(pi * (t mod T) / T)) / 2``
    with ``T = cycle_steps``: the paper's IMP schedule (0.1 annealed to 0.01
    in every cycle) with ``T = epochs_per_cycle * steps_per_epoch``. It is a
    function of the optimizer's step counter, which `IMP` does not reset and
    `keras.callbacks.BackupAndRestore` restores, so it restarts exactly at
    each cycle as long as the optimizer starts at step 0 with the IMP run.

    Args:
        initial_learning_rate: Learning rate at the start of each cycle.
        final_learning_rate: Learning rate approached at its end.
        cycle_steps: Optimizer steps per cycle.
        name: Name of the schedule.

    Raises:
        ValueError: For a non-positive initial rate, negative final rate or
            ``cycle_steps < 1``.

    Example:

    ```python
    lr = CyclicCosine(0.1, 0.01, cycle_steps=150 * steps_per_epoch)
    optimizer = keras.optimizers.SGD(lr, momentum=0.9, weight_decay=5e-4)
    ```
    """

    def __init__(
        self,
        initial_learning_rate,
        final_learning_rate,
        cycle_steps,
        name="CyclicCosine",
    ):
        super().__init__()
        self.initial_learning_rate = _checks.check_real(
            initial_learning_rate, "initial_learning_rate"
        )
        self.final_learning_rate = _checks.check_real(
            final_learning_rate, "final_learning_rate"
        )
        if not self.initial_learning_rate > 0:
            raise ValueError(
                "initial_learning_rate must be > 0, got "
                f"{initial_learning_rate!r}."
            )
        if not self.final_learning_rate >= 0:
            raise ValueError(
                "final_learning_rate must be >= 0, got "
                f"{final_learning_rate!r}."
            )
        self.cycle_steps = _check_positive_int(cycle_steps, "cycle_steps")
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        position = ops.divide(
            ops.mod(step, float(self.cycle_steps)), float(self.cycle_steps)
        )
        cosine = 0.5 * (1.0 + ops.cos(math.pi * position))
        return self.final_learning_rate + (
            self.initial_learning_rate - self.final_learning_rate
        ) * cosine

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "final_learning_rate": self.final_learning_rate,
            "cycle_steps": self.cycle_steps,
            "name": self.name,
        }
