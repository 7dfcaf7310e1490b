"""RiGL and SET: dynamic sparse training that rewires the ER masks.

Every ``update_every`` optimizer steps, each ER layer drops its active weights
of smallest magnitude and grows as many new connections, chosen by the
magnitude of the dense gradient (RiGL, Evci et al. 2020) or at random (SET,
Mocanu et al. 2018). Gadhikar et al. (2023, sec. 3 and appendix A.14) use
RiGL to rewire random ER networks, and with a decreasing density schedule to
prune them further while rewiring ("prune + rewire", e.g. ER 0.5 -> 0.01).

The drop-and-grow step itself is `keras_er.algorithms.rigl.rewire`, a pure
function on tensors: masks, kernels and dense gradients stay where they live
(only counts come to the host). Mask updates are plain variable assignments
(``mask``, ``_kernel`` and the optimizer slots), so a compiled train function
(``jit_compile=True``) is not retraced.
"""

import logging
import math

import keras
import numpy as np
from keras import ops

from keras_er import _checks
from keras_er.algorithms import rigl as _rigl
from keras_er.algorithms._select import count as _count
from keras_er.batches import unpack_batch as _unpack_batch
from keras_er.callbacks.base import SparseTrainingCallback, mask_density
from keras_er.optimizer_state import (
    StepTracker,
    reset_slots,
    unwrap,
)
from keras_er.distribute import check_model
from keras_er.gradients import check_backend, gradients
from keras_er.mask_io import er_layers
from keras_er.model_walk import unit_name
from keras_er.processes import mean_over_workers

logger = logging.getLogger("keras_er")

_SCHEDULES = ("cosine", "constant")
_GROW = ("gradient", "random")
# Checkpointed with the model (see `CallbackState`), so that a resumed run
# continues the schedule instead of redoing an update.
_COUNTERS = (
    "started",  # 0 until the first batch of the run.
    "start_step",  # optimizer.iterations at the start of the run.
    "done_index",  # k of the latest update, done at step k * update_every.
)


# ---------------------------------------------------------------------------
# Dense gradient of the effective kernel.
# ---------------------------------------------------------------------------


def dense_kernel_gradients(model, batch, layers=None, loss=None,
                           as_numpy=True):
    """Gradient of the loss w.r.t. each ER layer's effective kernel.

    The forward pass of an ER layer uses ``W = _kernel * mask``. The gradient
    with respect to ``_kernel`` is zero outside the mask; the gradient with
    respect to ``W`` is dense and tells how much the loss would change if an
    inactive connection were switched on. It is computed by running the model
    with each mask replaced by ones and each ``_kernel`` by ``W`` (the same
    forward pass) inside a `keras.StatelessScope`, so no variable of the model
    or of its metrics changes.

    Args:
        model: A compiled model (its loss is used) with ER layers.
        batch: ``(x, y)`` or ``(x, y, sample_weight)``.
        layers: The ER layers to differentiate; ``None`` for all.
        loss: Optional ``fn(y_true, y_pred) -> scalar`` used instead of the
            model's compiled loss.
        as_numpy: ``False`` returns backend tensors, left where they were
            computed (what `RiGL` uses: no host copy).

    Returns:
        A list of numpy arrays (or tensors), one per layer, with the
        kernels' shapes.

    Raises:
        NotImplementedError: On a backend other than TensorFlow, JAX or
            torch.
        ValueError: If the model has no ER layers.

    Example:

    ```python
    grads = dense_kernel_gradients(model, (x[:256], y[:256]))
    ```
    """
    layers = er_layers(model) if layers is None else list(layers)
    x, y, sample_weight = _unpack_batch(batch)
    kwargs = {"training": True} if getattr(
        model, "_call_has_training_arg", True
    ) else {}
    ones = [ops.ones(layer.mask.shape, layer.mask.dtype) for layer in layers]

    def loss_of(kernels):
        mapping = [(layer._kernel, k) for layer, k in zip(layers, kernels)]
        mapping += [(layer.mask, one) for layer, one in zip(layers, ones)]
        # The scope swallows every assignment (BatchNorm statistics, metric
        # trackers updated by the compiled loss, seed generators).
        with keras.StatelessScope(state_mapping=mapping):
            y_pred = model(x, **kwargs)
            if loss is not None:
                return loss(y, y_pred)
            return model.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                training=True,
            )

    # W = _kernel * mask, as a plain tensor (not a variable) to differentiate.
    kernels = [
        ops.multiply(layer._kernel, ops.cast(layer.mask, layer._kernel.dtype))
        for layer in layers
    ]
    grads = gradients(loss_of, kernels, as_numpy=False)
    # TF multi-worker: one gradient, the mean over the workers' batches.
    grads = mean_over_workers(grads, model)
    if as_numpy:
        return [np.asarray(ops.convert_to_numpy(g)) for g in grads]
    return grads


# ---------------------------------------------------------------------------
# One layer's drop-and-grow step: `keras_er.algorithms.rigl`.
# ---------------------------------------------------------------------------


def rewire(kernel, mask, grow_scores, n_drop, n_grow, rng):
    """One drop-and-grow step on a single kernel, with numpy results.

    Host convenience around `keras_er.algorithms.rigl.rewire` (which takes
    and returns tensors, and is what `RiGL` calls). Drops the ``n_drop``
    active entries with the smallest ``|kernel|`` and grows the ``n_grow``
    entries with the largest ``grow_scores`` among those inactive after the
    drop (a just-dropped entry may be grown back, and then keeps its value).
    Ties are broken at random.

    Args:
        kernel: The kernel (array or tensor).
        mask: Its 0/1 mask, same shape.
        grow_scores: Scores of the same shape (e.g. ``|dL/dW|``), or ``None``
            for random scores.
        n_drop: Number of active entries to drop (at most the active count).
        n_grow: Number of entries to grow.
        rng: Seed of the tie-breaking: an int, a
            `keras.random.SeedGenerator`, or a ``numpy.random.Generator``
            (one int is drawn from it).

    Returns:
        ``(new_mask, new_kernel, grown, dropped)`` as numpy arrays: the new
        0/1 mask and kernel (zero at newly grown entries and outside the
        mask), and boolean arrays of the entries switched on and off.

    Raises:
        ValueError: If ``n_drop`` exceeds the active count or ``n_grow`` the
            inactive count after the drop.

    Example:

    ```python
    new_mask, new_kernel, grown, dropped = rewire(
        w, m, np.abs(grad), n_drop=10, n_grow=10,
        rng=np.random.default_rng(0))
    ```
    """
    result = _rigl.rewire(kernel, mask, grow_scores, n_drop, n_grow, seed=rng)
    return tuple(np.asarray(ops.convert_to_numpy(x)) for x in result)


def _update_seed(seed, index, layer_index):
    """The int seed of one layer's update (from the callback's seed)."""
    state = np.random.SeedSequence([seed, index, layer_index]).generate_state(1)
    return int(state[0] % (2**31 - 1))


# ---------------------------------------------------------------------------
# The callbacks.
# ---------------------------------------------------------------------------


class RiGL(SparseTrainingCallback):
    """Rigged Lottery (Evci et al. 2020): rewires the ER masks during `fit`.

    At steps ``t = update_every, 2 * update_every, ...`` up to and including
    ``t_end = floor(end_fraction * total_steps)`` (``t`` counts optimizer
    steps since the first ``fit`` this callback saw on this model, or since
    the start of the run a checkpoint restores), every ER layer with ``nnz``
    active weights:

    1. drops the ``n = floor(f_t * nnz)`` active weights of smallest ``|w|``;
    2. grows the ``n`` inactive connections (those dropped in step 1
       included) with the largest ``|dL/dW|``, the gradient with respect to
       the effective kernel ``W = mask * w``, which is dense even where the
       mask is zero (``grow="random"``: ``n`` random ones, i.e. SET).

    ``f_t = drop_fraction / 2 * (1 + cos(pi * t / t_end))`` for
    ``schedule="cosine"``, ``f_t = drop_fraction`` for ``"constant"``. Grown
    weights start at zero and their optimizer slots (momentum, Adam moments)
    are reset; a weight dropped and grown back in the same update keeps its
    value and its slots. Slots of dropped weights are reset too. Ties are
    broken at random (from ``seed``). Each layer keeps its number of active
    weights, so its density stays constant.

    **Gradient data.** Keras callbacks do not see the training batch, so the
    dense gradient is computed on a batch from ``data``: a fixed batch
    ``(x, y)`` / ``(x, y, sample_weight)`` used at every update, or an
    iterable of batches (a repeating ``tf.data.Dataset``, a
    `keras.utils.PyDataset`, a generator), from which the next batch is drawn
    at each update. Pass training data with a batch size like the training
    one. The forward pass runs with ``training=True`` and the compiled loss
    (or ``loss``); nothing in the model changes (BatchNorm statistics and
    metrics included). Implemented and tested on the TensorFlow, JAX and
    torch backends; SET needs no gradient.

    **Prune and rewire.** With ``target_density`` below the starting density
    ``d_0`` (over the rewired layers), each update also drops extra weights
    so that the overall density follows the cubic schedule of Zhu & Gupta
    (2017), ``d(t) = d_T + (d_0 - d_T) * (1 - t / t_last)**3``, where
    ``t_last`` is the last update step; training ends at ``target_density``.
    Every layer shrinks by the same factor ``d(t) / d_0`` (its ER ratio is
    kept): it is pruned to ``nnz_l = round(nnz_l(0) * d(t) / d_0)``, then
    ``floor(f_t * nnz_l)`` weights are rewired. Gadhikar et al. (A.14) prune
    and rewire from ER 0.5/0.9/0.95 to 0.99 sparsity this way, with magnitude
    drop, gradient growth, prune rate 0.5, a mask update every 100 steps.

    The step count is read from ``optimizer.iterations``. With
    ``steps_per_execution > 1`` the callback only runs every that many steps
    and makes at most one update per call: choose ``update_every`` as a
    multiple of ``steps_per_execution``.

    **Resuming.** The start step, the last update done and the layers'
    starting sizes are variables of a helper layer saved with the model's
    weights in every file written during ``fit`` (see
    `keras_er.callbacks.callback_state`). A run resumed with
    `keras.callbacks.BackupAndRestore` (either order), or with
    ``ModelCheckpoint(save_weights_only=True)``, ``model.load_weights(path)``
    (optimizer built first) and ``fit(..., initial_epoch=k)``, continues the
    schedule without redoing an update; a new model and a new `RiGL` are
    fine. A new `RiGL` whose ``fit`` starts at epoch 0 starts a new run.

    After each batch and epoch, the logs get ``rigl_drop_fraction`` (``f_t``
    of the latest update) and ``density`` (over the rewired layers). Every
    update is recorded in ``callback.updates``.

    Args:
        update_every: Optimizer steps between mask updates (``delta_T``),
            ``>= 1``.
        drop_fraction: ``alpha``, the initial drop fraction, in ``(0, 1)``.
        end_fraction: Fraction of training after which the masks are frozen,
            in ``(0, 1]``.
        schedule: ``"cosine"`` (decay of ``f_t`` to 0 at ``t_end``) or
            ``"constant"``.
        grow: ``"gradient"`` (RiGL) or ``"random"`` (SET).
        target_density: Optional final overall density of the rewired layers
            (prune and rewire), at most the starting density.
        total_steps: Number of training steps the schedule covers. Defaults
            to ``epochs * steps`` of the ``fit`` call (required when the
            number of steps per epoch is unknown, or when training is split
            over several ``fit`` calls).
        data: Batch or iterable of batches for the dense gradient; required
            for ``grow="gradient"``.
        seed: Integer seed for the tie-breaking and random growth.
        layers: Optional list of ER layer names (or a callable
            ``fn(layer) -> bool``) to rewire; the others keep their masks.
        loss: Optional ``fn(y_true, y_pred) -> scalar`` for the dense
            gradient instead of the compiled loss.
        verbose: 1 logs every update (``logging`` logger ``"keras_er"``).

    Raises:
        ValueError: For bad arguments (when built), or at the start of
            training for a model without ER layers, layers with a kernel
            reparameterization, a ``target_density`` above the starting
            density or an unknown number of steps.
        NotImplementedError: For ``grow="gradient"`` on a backend other
            than TensorFlow, JAX or torch.

    Example:

    ```python
    sparse = keras_er.sparsify(model, ratio="balanced", density=0.01)
    sparse.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                   loss="sparse_categorical_crossentropy")
    rigl = keras_er.callbacks.RiGL(update_every=100, data=(x[:128], y[:128]))
    sparse.fit(x, y, batch_size=128, epochs=160, callbacks=[rigl])
    ```
    """

    def __init__(
        self,
        update_every=100,
        drop_fraction=0.3,
        end_fraction=0.75,
        schedule="cosine",
        grow="gradient",
        target_density=None,
        total_steps=None,
        data=None,
        seed=0,
        layers=None,
        loss=None,
        verbose=0,
    ):
        super().__init__()
        if (
            isinstance(update_every, bool)
            or not isinstance(update_every, (int, np.integer))
            or update_every < 1
        ):
            raise ValueError(
                f"update_every must be an int >= 1, got {update_every!r}."
            )
        if not _is_number(drop_fraction) or not 0 < drop_fraction < 1:
            raise ValueError(
                f"drop_fraction must be in (0, 1), got {drop_fraction!r}."
            )
        if not _is_number(end_fraction) or not 0 < end_fraction <= 1:
            raise ValueError(
                f"end_fraction must be in (0, 1], got {end_fraction!r}."
            )
        if schedule not in _SCHEDULES:
            raise ValueError(
                f"schedule must be one of {_SCHEDULES}, got {schedule!r}."
            )
        if grow not in _GROW:
            raise ValueError(f"grow must be one of {_GROW}, got {grow!r}.")
        if target_density is not None and (
            not _is_number(target_density) or not 0 < target_density <= 1
        ):
            raise ValueError(
                f"target_density must be in (0, 1] or None, got "
                f"{target_density!r}."
            )
        if total_steps is not None and (
            isinstance(total_steps, bool)
            or not isinstance(total_steps, (int, np.integer))
            or total_steps < 1
        ):
            raise ValueError(
                f"total_steps must be an int >= 1 or None, got "
                f"{total_steps!r}."
            )
        seed = _checks.check_seed(seed, allow_none=False)
        layers = _checks.check_layers(layers, regex=False)
        if loss is not None and not callable(loss):
            raise ValueError(
                "loss must be None (the compiled loss) or a callable "
                "fn(y_true, y_pred) -> scalar, e.g. "
                "keras.losses.SparseCategoricalCrossentropy(); got "
                f"{_checks.describe(loss)}."
            )
        verbose = _checks.check_verbose(verbose)
        if grow == "gradient":
            if data is None:
                raise ValueError(
                    "grow='gradient' needs data=(x, y) or an iterable of "
                    "batches for the dense gradient (Keras callbacks do not "
                    "see the training batch). Use grow='random' (SET) to "
                    "rewire without data."
                )
            # Fail now rather than at the first update.
            check_backend()
        self.update_every = int(update_every)
        self.drop_fraction = float(drop_fraction)
        self.end_fraction = float(end_fraction)
        self.schedule = schedule
        self.grow = grow
        self.target_density = (
            None if target_density is None else float(target_density)
        )
        self.total_steps = None if total_steps is None else int(total_steps)
        self.data = data
        self.seed = int(seed)
        self.layers = layers
        self.loss = loss
        self.verbose = verbose
        self._batches = (
            None if data is None else self.parse_data(data, owner="RiGL")
        )
        self._state_model = None
        self._initial_density = None
        self._restored = False
        self._steps = StepTracker()
        self._end_step = (
            None if total_steps is None
            else int(math.floor(self.end_fraction * self.total_steps))
        )
        self.updates = []

    # -- schedule ----------------------------------------------------------

    def pruned_layers(self):
        """The rewired ER layers."""
        return getattr(self, "_layers", None)

    def _current_density(self):
        """Overall density of the rewired layers' masks (None before)."""
        layers = self.pruned_layers()
        return mask_density(layers) if layers else None

    @property
    def end_step(self):
        """``t_end = floor(end_fraction * total steps)``.

        Known from construction with ``total_steps``, else from the start of
        training.
        """
        return self._end_step

    def drop_fraction_at(self, step):
        """The drop fraction ``f_t`` of an update at ``step`` (0 after t_end).

        Args:
            step: Optimizer steps since the start of training.

        Returns:
            A float in ``[0, drop_fraction]``.

        Raises:
            ValueError: Before training starts, without ``total_steps``.
        """
        if self._end_step is None:
            raise ValueError(
                "The schedule is known once training starts (or pass "
                "total_steps=...)."
            )
        if step > self._end_step or self._end_step <= 0:
            return 0.0
        if self.schedule == "constant":
            return self.drop_fraction
        cosine = math.cos(math.pi * step / self._end_step)
        return self.drop_fraction / 2 * (1 + cosine)

    def density_at(self, step):
        """The scheduled overall density after the update at ``step``.

        Constant without ``target_density``; otherwise the cubic decay from
        the starting density to ``target_density`` at the last update.

        Args:
            step: Optimizer steps since the start of training.

        Returns:
            A float.

        Raises:
            ValueError: Before the callback has seen its model (training).
        """
        if self._initial_density is None:
            raise ValueError(
                "The starting density is known once training starts."
            )
        if self.target_density is None:
            return self._initial_density
        last = (self._end_step // self.update_every) * self.update_every
        progress = 1.0 if last <= 0 else min(1.0, max(0.0, step / last))
        d0, d1 = self._initial_density, self.target_density
        return d1 + (d0 - d1) * (1 - progress) ** 3

    def layer_nnz_at(self, step):
        """Scheduled active weights per layer after the update at ``step``.

        Args:
            step: Optimizer steps since the start of training.

        Returns:
            ``{layer name: number of active weights}``.
        """
        scale = self.density_at(step) / self._initial_density
        return {
            unit_name(layer): max(1, int(round(n0 * scale)))
            for layer, n0 in zip(self._layers, self._initial_nnz)
        }

    # -- Keras hooks -------------------------------------------------------

    def set_model(self, model):
        super().set_model(model)
        if self._state is None or self._state_model is not model:
            self._layers = self._select_layers(model)
            self.updates = []
        self._attach_state(
            model,
            "keras_er_rigl_state",
            _COUNTERS,
            [((len(self._layers),), "int64")],  # nnz of each layer at start
        )

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        model = self.model
        check_model(model)  # Model outside strategy.scope()?
        self._steps.reset()
        self._restored = False
        total = self.total_steps
        if total is None:
            epochs = self.params.get("epochs")
            steps = self.params.get("steps")
            if not epochs or not steps:
                raise ValueError(
                    "RiGL cannot tell the number of training steps (the "
                    "dataset has no known length). Pass total_steps=..."
                )
            total = int(epochs) * int(steps)
        self._end_step = int(math.floor(self.end_fraction * total))
        if self._end_step < self.update_every:
            logger.warning(
                "RiGL: end step %d is before the first update at step %d; "
                "the masks will not change.", self._end_step,
                self.update_every,
            )

    def on_epoch_begin(self, epoch, logs=None):
        # After every on_train_begin (BackupAndRestore has loaded by now):
        # state that load_weights read before fit continues the run if this
        # fit does (initial_epoch > 0).
        self._resume_state(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        self._steps.batch_begin(batch, self.model)
        if not self._restored:
            # After every on_train_begin: BackupAndRestore has loaded the
            # state, the masks and the optimizer step by now.
            self._start_or_resume(self._steps.upper_bound())

    def on_train_batch_end(self, batch, logs=None):
        self._steps.batch_end(batch)
        # The exact step is read only when an update may be due.
        bound = self._steps.upper_bound() - self._start_step
        if bound // self.update_every > self._done_index:
            step = self._steps.read(self.model) - self._start_step
            # Several steps may pass between calls (steps_per_execution >
            # 1): do the latest due update, once.
            index = step // self.update_every
            update_step = index * self.update_every
            if index > self._done_index and update_step <= self._end_step:
                self._done_index = index
                self._update(update_step)
                self._state.update(done_index=index)
        self._write_logs(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._write_logs(logs)

    def on_train_end(self, logs=None):
        # Weights saved after a completed fit carry no RiGL state; masks
        # re-applied.
        super().on_train_end(logs)

    # -- internals ---------------------------------------------------------

    def _select_layers(self, model):
        layers = er_layers(model)
        if self.layers is not None:
            if callable(self.layers):
                layers = [layer for layer in layers if self.layers(layer)]
            else:
                names = set(self.layers)
                unknown = names - {unit_name(layer) for layer in layers}
                if unknown:
                    raise ValueError(
                        f"RiGL layers {sorted(unknown)} are not ER layers "
                        "of the model."
                    )
                layers = [
                    layer for layer in layers if unit_name(layer) in names
                ]
            if not layers:
                raise ValueError("RiGL: the layers filter selected no layer.")
        with_reparam = [
            unit_name(layer) for layer in layers
            if getattr(layer, "reparameterization", None) is not None
        ]
        if with_reparam:
            raise ValueError(
                f"RiGL rewires plain ER layers; {with_reparam} have a kernel "
                "reparameterization (STR, edge-popup)."
            )
        return layers

    def _start_or_resume(self, step):
        """Starts a run at optimizer step ``step``, or resumes the saved one."""
        layers = self._layers
        self._sizes = [int(np.prod(layer.mask.shape)) for layer in layers]
        counters = self._state.get()
        if counters["started"]:
            initial_nnz = ops.convert_to_numpy(self._state.arrays[0])
            initial_nnz = [int(n) for n in initial_nnz]
        else:
            initial_nnz = [self._nnz(layer) for layer in layers]
        initial_density = sum(initial_nnz) / sum(self._sizes)
        if (
            self.target_density is not None
            and self.target_density > initial_density + 1e-12
        ):
            raise ValueError(
                f"target_density={self.target_density} is above the starting "
                f"density {initial_density:.6g} of the rewired layers; "
                "RiGL only prunes."
            )
        if not counters["started"]:
            self._state.arrays[0].assign(np.array(initial_nnz, np.int64))
            self._state.update(started=1, start_step=step, done_index=0)
            counters = self._state.get()
        self._initial_nnz = initial_nnz
        self._initial_density = initial_density
        self._start_step = counters["start_step"]
        self._done_index = counters["done_index"]
        self._last_fraction = (
            self.drop_fraction_at(self._done_index * self.update_every)
            if self._done_index else 0.0
        )
        self._density = self._current_density()
        self._restored = True

    @staticmethod
    def _nnz(layer):
        return _count(layer.mask)

    def _write_logs(self, logs):
        if logs is not None:
            logs["rigl_drop_fraction"] = self._last_fraction
            logs["density"] = self._density

    def _update(self, step):
        fraction = self.drop_fraction_at(step)
        targets = self.layer_nnz_at(step)
        grads = None
        if self.grow == "gradient":
            grads = list(dense_kernel_gradients(
                self.model, self._batches.next(), self._layers, self.loss,
                as_numpy=False,
            ))
        optimizer = unwrap(self.model.optimizer)
        index = step // self.update_every
        record = {"step": step, "drop_fraction": fraction, "layers": {}}
        for i, layer in enumerate(self._layers):
            nnz = self._nnz(layer)
            target = min(targets[unit_name(layer)], nnz)
            n_grow = int(math.floor(fraction * target))
            n_drop = nnz - target + n_grow
            record["layers"][unit_name(layer)] = {
                "dropped": n_drop, "grown": n_grow, "nnz": target,
            }
            if n_drop == 0 and n_grow == 0:
                continue
            # On device: random scores (SET) and tie-breaking come from a
            # seed of (seed, update, layer).
            scores = None if grads is None else ops.abs(grads[i])
            if grads is not None:
                grads[i] = None  # Frees this layer's raw gradient now.
            new_mask, new_kernel, grown, dropped = _rigl.rewire(
                layer._kernel, layer.mask, scores, n_drop, n_grow,
                seed=_update_seed(self.seed, index, i),
            )
            layer._kernel.assign(new_kernel)
            layer.set_mask(new_mask)
            # Fresh connections start with no optimizer history; dropped ones
            # lose theirs (they start at zero if grown again later).
            reset_slots(
                optimizer, layer._kernel,
                where=ops.logical_or(grown, dropped),
            )
        self._last_fraction = fraction
        self._density = self._current_density()
        record["density"] = self._density
        self.updates.append(record)
        if self.verbose:
            logger.info(
                "RiGL step %d: drop fraction %.4f, density %.6f.",
                step, fraction, self._density,
            )


class SET(RiGL):
    """Sparse Evolutionary Training (Mocanu et al. 2018): random regrowth.

    `RiGL` with ``grow="random"``: the dropped weights (smallest magnitude)
    are replaced by as many connections drawn uniformly among the inactive
    ones, so no gradient and no data are needed. The original SET rewires
    once per epoch with a constant fraction 0.3 until the end of training:
    ``SET(update_every=steps_per_epoch, schedule="constant",
    end_fraction=1.0)``.

    Args:
        update_every: Optimizer steps between mask updates, ``>= 1``.
        drop_fraction: Initial drop fraction (``zeta``), in ``(0, 1)``.
        end_fraction: Fraction of training after which the masks are frozen.
        schedule: ``"cosine"`` or ``"constant"``.
        target_density: Optional final overall density (prune and rewire).
        total_steps: Number of training steps the schedule covers.
        seed: Integer seed of the random growth and tie-breaking.
        layers: Optional names (or predicate) of the ER layers to rewire.
        verbose: 1 logs every update.

    Raises:
        ValueError: As `RiGL`.

    Example:

    ```python
    set_cb = keras_er.callbacks.SET(update_every=len(x) // 128,
                                    schedule="constant", end_fraction=1.0)
    sparse.fit(x, y, batch_size=128, epochs=100, callbacks=[set_cb])
    ```
    """

    def __init__(
        self,
        update_every=100,
        drop_fraction=0.3,
        end_fraction=0.75,
        schedule="cosine",
        target_density=None,
        total_steps=None,
        seed=0,
        layers=None,
        verbose=0,
    ):
        super().__init__(
            update_every=update_every,
            drop_fraction=drop_fraction,
            end_fraction=end_fraction,
            schedule=schedule,
            grow="random",
            target_density=target_density,
            total_steps=total_steps,
            data=None,
            seed=seed,
            layers=layers,
            verbose=verbose,
        )


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not (
        isinstance(value, bool)
    )
