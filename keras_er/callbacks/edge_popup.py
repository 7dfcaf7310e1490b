"""`EdgePopup`: strong lottery tickets found inside a fixed ER mask.

Edge-popup (Ramanujan et al. 2020) never trains a weight: the weights stay at
a random initialization and a score per weight chooses which ``k_l`` of them
each layer uses. Gadhikar et al. (2023, sec. 2.2 and A.11) start it from a
sparse random (ER) network instead of a dense one and anneal the density in
levels (Fischer & Burkholz 2022). The subnetwork found is always a subset of
the ER mask.

Workflow:

1. ``EdgePopup.prepare(model)``: re-initialize the frozen weights, install
   `keras_er.layers.edge_popup_scores.EdgePopupScores` on every ER layer and
   freeze BatchNorm's affine parameters. Before ``model.compile``.
2. ``model.fit(..., callbacks=[EdgePopup(target_density, levels=5)])``.
3. At the end of training the subnetwork becomes each layer's mask, the
   scores are removed and the kernel is ``frozen weights * new mask``, so
   `keras_er.strip` and `keras_er.export` see a plain sparse network.
"""

import contextlib
import gc
import math

import keras
import numpy as np
from keras import ops

from keras_er import _checks
from keras_er.callbacks.base import SparseTrainingCallback
from keras_er.algorithms._select import count as _count
from keras_er.algorithms.edge_popup import subnetwork_mask
from keras_er.optimizer_state import unwrap
from keras_er.distribute import check_model
from keras_er.layers.edge_popup_scores import (
    DEFAULT_SCORE_INITIALIZER,
    EdgePopupScores,
)
from keras_er.mask_io import er_layers
from keras_er.model_walk import iter_layers, unit_name
from keras_er.processes import random_seed
from keras_er.ratios import check_density

WEIGHT_INITS = ("signed_constant", "kaiming_normal")


def freeze_batchnorm_affine(model):
    """Makes every BatchNorm of ``model`` affine-free (edge-popup setting).

    Edge-popup's reference setups use BatchNorm without learnable affine
    parameters. In Keras that is simply
    ``keras.layers.BatchNormalization(center=False, scale=False)``; build new
    models that way. For an existing model this sets ``gamma`` to 1 and
    ``beta`` to 0 and marks them non-trainable, which computes the same
    thing. The moving statistics keep updating (they are not trained, only
    tracked). Variable trainability is not saved by Keras: call this again
    after loading a model (before compiling it).

    Call it before ``model.compile``.

    Args:
        model: A Keras model (nested models are searched too).

    Returns:
        The number of BatchNormalization layers changed.

    Example:

    ```python
    n = freeze_batchnorm_affine(model)
    model.compile(...)
    ```
    """
    count = 0
    for layer in iter_layers(model):
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        changed = False
        for name, value in (("gamma", 1.0), ("beta", 0.0)):
            variable = getattr(layer, name, None)
            if variable is None:  # scale=False / center=False already.
                continue
            variable.assign(ops.full(variable.shape, value, variable.dtype))
            variable.trainable = False
            changed = True
        count += int(changed)
    return count


def _seed_for(seed, *key):
    """A 31-bit seed derived from ``seed`` and ``key`` (per layer, per use)."""
    state = np.random.SeedSequence([seed, *key]).generate_state(1)[0]
    return int(state % (2**31 - 1))


def _score_initializer(score_init, seed):
    """A fresh initializer from ``score_init`` seeded with ``seed``."""
    if score_init is None:
        score_init = DEFAULT_SCORE_INITIALIZER
    initializer = keras.initializers.get(score_init)
    config = initializer.get_config()
    # Same seed on every layer would give every layer the same scores.
    if "seed" in config:
        config["seed"] = seed
        initializer = type(initializer).from_config(config)
    return initializer


def _init_weights(layer, weight_init, gain, rng):
    """Draws ``layer``'s frozen kernel; entries outside the mask stay 0."""
    shape = tuple(layer._kernel.shape)
    # Full fan-in of one output unit (n_in, or kh * kw * c_in), not the
    # number of unmasked inputs: the paper's source network is a masked
    # dense init.
    fan_in = int(np.prod(shape[:-1]))
    std = gain / math.sqrt(fan_in)
    if weight_init == "signed_constant":
        values = std * rng.choice(np.array([-1.0, 1.0]), size=shape)
    else:
        values = rng.normal(0.0, std, size=shape)
    layer._kernel.assign(values.astype(np.float32))
    layer.apply_mask()


class EdgePopup(SparseTrainingCallback):
    """Finds a strong lottery ticket inside the ER mask with edge-popup.

    The weights stay frozen; the scores installed by `EdgePopup.prepare`
    are trained by the optimizer. At each epoch the callback sets each
    layer's number of kept entries ``k_l``; at the end of training the
    subnetwork becomes the layer's mask.

    **Per-layer final densities.** With a float ``target_density`` every
    layer keeps the same fraction of its ER connections:
    ``k_l = round(nnz_l * target_density / d_ER)``, where ``nnz_l`` is the
    number of entries of layer ``l``'s ER mask and
    ``d_ER = sum_l nnz_l / sum_l N_l`` the realized overall ER density of the
    prepared layers. So the final layer density is
    ``p_l * target_density / d_ER`` (``p_l`` the layer's ER density): the ER
    layerwise ratio (balanced, ERK, ...) is kept, and the overall density is
    ``target_density`` up to rounding. A dict ``{layer_name: density}`` sets
    each layer's final density (relative to its full size) directly;
    ``k_l = round(density * N_l)``. Every layer keeps at least one entry.

    **Annealing.** With ``levels = L`` the density of layer ``l`` at level
    ``i = 1..L`` is ``d0_l * b_l**i`` with ``d0_l`` its ER density and
    ``b_l = (d_final_l / d0_l)**(1 / L)`` (Fischer & Burkholz 2022; the paper
    uses L = 5). Level 1 starts at the first epoch, level L is the target
    density; epoch ``e`` (0-based) of ``E`` is in level
    ``ceil((e + 1) * L / E)``, so the levels are spread evenly over the
    epochs and the last epoch is always at level L. ``levels=1`` is plain
    edge-popup at the final density from the start. ``k_l`` is a variable,
    so level changes never retrace a compiled train step.

    **End of training** (``finalize=True``): ``k_l`` is set to its final
    value (also if training stopped early), the top-k subnetwork becomes the
    layer's mask, the scores are removed and the kernel becomes
    ``frozen weights * new mask``. The kernel (and a frozen bias) stays
    non-trainable; set ``layer._kernel.trainable = True`` and recompile to
    fine-tune the ticket. The model's cached train/test/predict functions
    are reset, since the layers now compute differently.

    Logs (per epoch): ``density`` (overall density of the current
    subnetwork over the prepared layers, ``sum k_l / sum N_l``) and
    ``edge_popup_level``.

    Args:
        target_density: Target overall density (1 - sparsity) in
            ``(0, 1]``, at most the ER density, or a dict
            ``{layer_name: density}`` covering every prepared layer. The
            same name as in `IMP`, `RiGL` and `STR`.
        levels: Number of annealing levels (int >= 1). Defaults to 1.
        total_epochs: Number of epochs the schedule spans. Defaults to the
            ``epochs`` of ``fit`` (set it when training with several
            ``fit`` calls).
        finalize: Turn the subnetwork into the mask at the end of ``fit``.
            Defaults to True. With False, call `EdgePopup.finalize` later.
        verbose: 1 prints a line when the level changes.
        final_density: Deprecated alias of ``target_density`` (keyword
            only; warns with a ``DeprecationWarning``).

    Raises:
        ValueError: In ``__init__`` for a bad ``target_density`` (or both
            ``target_density`` and ``final_density``) or
            ``levels``; in ``on_train_begin`` if the model has no ER layers,
            was not prepared (or was prepared after its optimizer was
            built), or ``target_density`` is above the ER density.

    Example:

    ```python
    sparse = keras_er.sparsify(model, "balanced", density=0.5, seed=0)
    EdgePopup.prepare(sparse, seed=0)
    sparse.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                   "sparse_categorical_crossentropy", metrics=["accuracy"])
    sparse.fit(x, y, epochs=10,
               callbacks=[EdgePopup(target_density=0.05, levels=5)])
    ```
    """

    def __init__(
        self,
        target_density=None,
        levels=1,
        total_epochs=None,
        finalize=True,
        verbose=0,
        *,
        final_density=None,
    ):
        super().__init__()
        target_density = self.resolve_target_density(
            target_density, "EdgePopup", final_density=final_density
        )
        if target_density is None:
            raise ValueError(
                "EdgePopup needs target_density, the final overall density "
                "(or a dict {layer name: density})."
            )
        if isinstance(target_density, dict):
            self.target_density = {
                str(name): check_density(value, f"target density of {name!r}")
                for name, value in target_density.items()
            }
        else:
            self.target_density = check_density(
                target_density, "target_density"
            )
        if (
            isinstance(levels, bool)
            or not isinstance(levels, (int, np.integer))
            or levels < 1
        ):
            raise ValueError(f"levels must be an int >= 1, got {levels!r}.")
        self.levels = int(levels)
        if total_epochs is not None and (
            isinstance(total_epochs, bool)
            or not isinstance(total_epochs, (int, np.integer))
            or total_epochs < 1
        ):
            raise ValueError(
                f"total_epochs must be an int >= 1 or None, got "
                f"{total_epochs!r}."
            )
        self.total_epochs = None if total_epochs is None else int(total_epochs)
        self.finalize_at_end = bool(finalize)
        self.verbose = _checks.check_verbose(verbose)
        self.level = 0
        # {layer name: [k at level 1, ..., k at level L]}, set at train begin.
        self.k_schedule = {}
        self._layers = []

    @property
    def final_density(self):
        """Deprecated alias of ``target_density``."""
        return self.target_density

    needs_prepare = True

    def pruned_layers(self):
        """The prepared ER layers (known once training starts)."""
        return self._layers

    def _current_density(self):
        """Overall density of the current subnetwork (`current_density`).

        ``None`` before training has set a level; the mask density after
        `finalize`.
        """
        if not self._layers:
            return None
        if self.level < 1:
            return None
        if not any(
            isinstance(layer.reparameterization, EdgePopupScores)
            for layer in self._layers
        ):
            return super()._current_density()
        return self.current_density()

    def is_prepared(self, model):
        """Whether an ER layer of ``model`` carries `EdgePopupScores`."""
        return any(
            isinstance(layer.reparameterization, EdgePopupScores)
            for layer in er_layers(model)
        )

    # ----------------------------------------------------------------- setup

    @staticmethod
    def prepare(
        model,
        weight_init="signed_constant",
        score_init=None,
        *,
        gain=math.sqrt(2.0),
        seed=None,
        freeze_bias=True,
        freeze_batchnorm=True,
    ):
        """Turns an ER model into an edge-popup source network.

        For every ER layer: re-initialize the kernel (inside the ER mask) with
        edge-popup's init, install `EdgePopupScores` (trainable scores, a
        non-trainable ``k``) and freeze the kernel and bias. Optionally make
        BatchNorm affine-free (`freeze_batchnorm_affine`). Call it before
        ``model.compile``: the optimizer must be built with the scores.

        Args:
            model: A built model with ER layers (e.g. from
                `keras_er.sparsify`).
            weight_init: ``"signed_constant"`` (each weight
                ``+-gain / sqrt(fan_in)`` with a random sign, edge-popup's
                best init), ``"kaiming_normal"`` (``N(0, gain**2 / fan_in)``)
                or ``None`` to keep the current weights. ``fan_in`` is the
                full fan-in of the kernel (``n_in`` or ``kh * kw * c_in``),
                not the number of unmasked inputs.
            score_init: Keras initializer identifier, config or instance for
                the scores; ``None`` is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as
                in edge-popup. Its seed is replaced by one per layer.
            gain: Init gain; ``sqrt(2)`` suits ReLU networks.
            seed: Int seed of weights and scores (``None``: random; read it
                back from the returned report).
            freeze_bias: Freeze the biases too (no weight is trained in a
                strong lottery ticket). Defaults to True.
            freeze_batchnorm: Set every BatchNorm's gamma/beta to 1/0 and
                freeze them (`freeze_batchnorm_affine`). Defaults to True.

        Returns:
            A dict ``{"seed", "layers", "batchnorm_layers"}``: the seed used,
            the names of the prepared layers, the number of BatchNorm layers
            frozen.

        Raises:
            ValueError: For a model without ER layers, an unbuilt layer, a
                layer carrying another reparameterization, an unknown
                ``weight_init``, a bad ``gain`` or ``seed``.

        Example:

        ```python
        report = EdgePopup.prepare(sparse, "signed_constant", seed=0)
        sparse.compile(...)
        ```
        """
        if weight_init is not None and weight_init not in WEIGHT_INITS:
            raise ValueError(
                f"weight_init must be one of {WEIGHT_INITS} or None, got "
                f"{weight_init!r}."
            )
        if not _checks.check_real(gain, "gain", "sqrt(2) suits ReLU.") > 0:
            raise ValueError(f"gain must be a positive number, got {gain!r}.")
        seed = _checks.check_seed(seed)
        layers = er_layers(model)
        for layer in layers:
            if not layer.built:
                raise ValueError(
                    f"Layer {layer.name!r} is not built. Build the model "
                    "(give it an input shape) before EdgePopup.prepare."
                )
            current = layer.reparameterization
            if current is not None and not isinstance(
                current, EdgePopupScores
            ):
                raise ValueError(
                    f"Layer {layer.name!r} already has the reparameterization "
                    f"{type(current).__name__}. Remove it with "
                    "layer.set_reparameterization(None) first."
                )
        if seed is None:
            seed = random_seed()  # The same on every process.
        seed = int(seed)
        for i, layer in enumerate(layers):
            if weight_init is not None:
                # Key (seed, i, 2), not sparsify's (seed, i): with the same
                # stream a signed-constant draw would copy the mask's draw
                # (every kept weight negative at density 0.5).
                _init_weights(
                    layer, weight_init, float(gain),
                    np.random.default_rng([seed, i, 2]),
                )
            scores = EdgePopupScores(
                score_initializer=_score_initializer(
                    score_init, _seed_for(seed, i, 1)
                ),
                freeze_bias=freeze_bias,
            )
            # Replaces an earlier EdgePopupScores (fresh scores).
            layer.set_reparameterization(scores)
        frozen_bn = freeze_batchnorm_affine(model) if freeze_batchnorm else 0
        return {
            "seed": seed,
            "layers": [unit_name(layer) for layer in layers],
            "batchnorm_layers": frozen_bn,
        }

    @staticmethod
    def finalize(model):
        """Makes the current subnetwork each layer's mask; removes scores.

        For every ER layer with `EdgePopupScores`: the top-``k`` subnetwork
        (with the layer's current ``k``) becomes its mask, the
        reparameterization is removed and the kernel becomes
        ``frozen weights * new mask``. The weights stay non-trainable.

        Args:
            model: A prepared model.

        Returns:
            ``{layer_name: density of the new mask}``.

        Raises:
            ValueError: If no layer carries `EdgePopupScores`.

        Example:

        ```python
        densities = EdgePopup.finalize(model)
        plain = keras_er.strip(model)
        ```
        """
        layers = _prepared_layers(model)
        result = {}
        with _cheap_gc_collect():
            for layer in layers:
                # On device (keras_er.algorithms.edge_popup).
                subnetwork = subnetwork_mask(
                    layer.edge_popup_scores, layer.mask, layer.edge_popup_k,
                    max_k=getattr(layer, "_edge_popup_max_k", None),
                )
                layer.set_reparameterization(None)
                layer.set_mask(
                    subnetwork, optimizer=getattr(model, "optimizer", None)
                )
                result[unit_name(layer)] = _count(subnetwork) / int(
                    np.prod(subnetwork.shape)
                )
        # Traced train/test/predict steps still compute the scored kernel.
        for name in ("train_function", "test_function", "predict_function"):
            if hasattr(model, name):
                setattr(model, name, None)
        return result

    # -------------------------------------------------------------- schedule

    def level_for_epoch(self, epoch, total_epochs):
        """The annealing level (1..levels) of 0-based ``epoch``.

        Args:
            epoch: 0-based epoch index.
            total_epochs: Number of epochs the schedule spans.

        Returns:
            ``min(levels, ceil((epoch + 1) * levels / total_epochs))``.
        """
        level = math.ceil((epoch + 1) * self.levels / total_epochs)
        return int(min(self.levels, max(1, level)))

    def _build_schedule(self, layers):
        sizes = {
            unit_name(layer): int(np.prod(layer.mask.shape))
            for layer in layers
        }
        nnz = {unit_name(layer): _count(layer.mask) for layer in layers}
        if isinstance(self.target_density, dict):
            names = [unit_name(layer) for layer in layers]
            unknown = sorted(set(self.target_density) - set(names))
            missing = [n for n in names if n not in self.target_density]
            if unknown or missing:
                raise ValueError(
                    f"target_density dict must name exactly the prepared "
                    f"layers {names}; unknown {unknown}, missing {missing}."
                )
            # Unrounded final counts: the levels interpolate towards them.
            final_count = {
                name: self.target_density[name] * sizes[name] for name in names
            }
            for name in names:
                if round(final_count[name]) > nnz[name]:
                    raise ValueError(
                        f"target density {self.target_density[name]} of layer "
                        f"{name!r} is above its ER density "
                        f"{nnz[name] / sizes[name]:.6g}: edge-popup can only "
                        "prune inside the ER mask."
                    )
        else:
            er_density = sum(nnz.values()) / sum(sizes.values())
            if self.target_density > er_density * (1 + 1e-9):
                raise ValueError(
                    f"target_density={self.target_density} is above the ER "
                    f"density {er_density:.6g} of the prepared layers: "
                    "edge-popup can only prune inside the ER mask. Choose "
                    "a target_density <= the ER density."
                )
            ratio = self.target_density / er_density
            final_count = {name: ratio * nnz[name] for name in nnz}
        schedule = {}
        for name in nnz:
            # d0 * b**i with b = (d_final / d0)**(1/L), as counts:
            # nnz * (final_count / nnz)**(i / L); level L is round(final).
            n = nnz[name]
            shrink = min(1.0, final_count[name] / n) if n else 1.0
            schedule[name] = [
                min(n, max(1, round(n * shrink ** (i / self.levels))))
                for i in range(1, self.levels + 1)
            ]
        self._sizes = sizes
        return schedule

    def _set_level(self, level):
        changed = level != self.level
        for layer in self._layers:
            layer.edge_popup_k.assign(
                self.k_schedule[unit_name(layer)][level - 1]
            )
        self.level = level
        if self.verbose and changed:
            print(
                f"EdgePopup: level {level}/{self.levels}, density "
                f"{self.current_density():.6g}"
            )

    def current_density(self):
        """Overall density of the current subnetwork (``sum k / sum N``)."""
        kept = sum(
            self.k_schedule[unit_name(layer)][self.level - 1]
            for layer in self._layers
        )
        return kept / sum(self._sizes.values())

    # ------------------------------------------------------------- callbacks

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        er_layers(self.model)  # Raises a clear error without ER layers.
        check_model(self.model)  # Model outside strategy.scope()?
        self.check_prepared()
        self._layers = _prepared_layers(self.model)
        _check_optimizer(self.model, self._layers)
        # Checks the arguments against the masks now; built again at the
        # first epoch, from the masks a BackupAndRestore listed after this
        # callback restores in its on_train_begin.
        self.k_schedule = self._build_schedule(self._layers)
        self._schedule_from_restored_masks = False
        self._epochs = self.total_epochs or self.params.get("epochs") or 1
        self.level = 0

    def on_epoch_begin(self, epoch, logs=None):
        if not getattr(self, "_schedule_from_restored_masks", True):
            self._schedule_from_restored_masks = True
            self.k_schedule = self._build_schedule(self._layers)
        level = self.level_for_epoch(epoch, self._epochs)
        if level != self.level:
            self._set_level(level)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["density"] = self.current_density()
            logs["edge_popup_level"] = self.level

    def on_train_end(self, logs=None):
        if self.finalize_at_end and self._layers:
            # The target density, whatever level training stopped at.
            self._set_level(self.levels)
            EdgePopup.finalize(self.model)
        super().on_train_end(logs)


@contextlib.contextmanager
def _cheap_gc_collect():
    """Makes the full ``gc.collect()`` calls inside the block cheap.

    Keras' ``Layer.__delattr__`` runs ``gc.collect()`` for every variable
    removed; with TensorFlow loaded one collection scans ~10**6 objects
    (about a second on a small CPU), so removing the scores of a deep model
    would take minutes. ``gc.freeze`` makes those collections skip the
    objects that already existed. Nothing is leaked: the removed variables
    are freed by reference counting, and normal collection resumes after
    ``gc.unfreeze``. Skipped when the application froze objects itself.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _prepared_layers(model):
    """The ER layers of ``model`` carrying `EdgePopupScores`."""
    layers = [
        layer
        for layer in er_layers(model)
        if isinstance(layer.reparameterization, EdgePopupScores)
    ]
    if not layers:
        raise ValueError(
            "The model is not prepared for edge-popup: no ER layer carries "
            "EdgePopupScores. Call keras_er.callbacks.EdgePopup.prepare(model) "
            "before model.compile."
        )
    return layers


def _check_optimizer(model, layers):
    """Raises if the optimizer was built without the scores."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return
    optimizer = unwrap(optimizer)
    if not getattr(optimizer, "built", False):
        return  # Built at the first step, with the scores.
    tracked = {id(v) for v in getattr(optimizer, "_trainable_variables", [])}
    if not tracked:
        return
    missing = [
        unit_name(layer)
        for layer in layers
        if id(layer.edge_popup_scores) not in tracked
    ]
    if missing:
        raise ValueError(
            f"The optimizer was built before EdgePopup.prepare: it does not "
            f"train the scores of layers {missing}. Call "
            "EdgePopup.prepare(model) before model.compile (compile again "
            "after preparing)."
        )
