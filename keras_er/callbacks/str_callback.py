"""`STR`: soft threshold reparameterization inside the ER masks.

Sparse-to-sparse training as in the paper's Table 3 (Gadhikar et al., 2023,
appendix A.10): start from a random ER network (e.g. sparsity 0.7) and let
STR (Kusupati et al., 2020) learn which of the surviving weights to prune.
"""

import logging

import numpy as np

from keras_er import _checks
from keras_er.callbacks.base import DensityOfModel, SparseTrainingCallback
from keras_er.optimizer_state import StepTracker, optimizer_step, unwrap
from keras_er.distribute import check_model
from keras_er.layers import soft_threshold as st
from keras_er.mask_io import er_layers
from keras_er.model_walk import unit_name
from keras_er.ratios import check_density

logger = logging.getLogger("keras_er")


class STR(SparseTrainingCallback):
    """Trains a learnable threshold per ER layer, then folds it into the mask.

    Every ER layer ``l`` uses the effective kernel
    ``mask * sign(w) * relu(|w| - sigmoid(s_l))`` with one learnable scalar
    ``s_l`` (see `keras_er.layers.soft_threshold.SoftThreshold`). Pruned
    entries can only come from inside the ER mask, so the final mask is a
    subset of the ER mask.

    Usage has two steps: ``STR(...).prepare(model)`` *before*
    ``model.compile`` (the optimizer only trains variables that exist when it
    is built), then pass the same callback to ``model.fit``.

    **Target density.** Plain STR controls the final sparsity only
    indirectly (through ``s_init`` and the decay on ``s``). With
    ``target_density`` set, the callback measures the overall density of the
    ER kernels after every ``check_every``-th optimizer step (steps that are
    multiples of ``check_every``). The first time it is at or
    below the target, all thresholds are shifted by one common amount so that
    exactly the target survives, and frozen: a non-trainable gate in each
    layer makes the forward pass use the frozen threshold (``s`` then gets no
    loss gradient). The weights keep training, so a few can still cross
    their layer's threshold; at the end of training one more exact global
    shift of the frozen thresholds lands the density on the target (up to
    ties) before folding. If the target is never reached, that final shift
    does all the pruning (a global soft threshold on ``|w| - tau_l``).
    Since the gate is a layer variable, the frozen state is saved with the
    model's weights, and since the checks follow the optimizer step, a run
    resumed with `keras.callbacks.BackupAndRestore` or with
    ``load_weights`` + ``fit(..., initial_epoch=k)`` (optimizer built before
    loading) freezes at the same step as an uninterrupted one.

    **Folding.** At the end of training (``fold_at_end=True``) the learned
    sparsity is folded: ``mask := mask * (|w| > tau)``,
    ``kernel := sign(w) * relu(|w| - tau)`` on kept entries, and the
    reparameterization is removed, so the model is an ordinary ER model with
    the same outputs. Compile again before training it further (the
    optimizer still refers to the removed thresholds).

    The overall density of the effective ER kernels is logged as
    ``logs["density"]`` at every epoch end.

    Args:
        s_init: Initial threshold parameter (paper: -200 on CIFAR with
            ResNet18; -3200 on ImageNet).
        target_density: Optional overall density (fraction of ER kernel
            entries kept) at which training ends; must be below the density
            at the start of training.
        s_weight_decay: Weight decay on ``s`` (paper: 5e-4 for final sparsity
            0.96, 1e-3 for 0.995). Added to the gradient of ``s`` only; it
            does not appear in the logged loss.
        check_every: With ``target_density``, check the density every this
            many optimizer steps (each check reads all ER kernels to the
            host).
        fold_at_end: Fold and remove the reparameterization in
            ``on_train_end``. Set False to continue with another ``fit`` call
            and fold later with `STR.fold`.
        verbose: 1 to log when the target is reached and the final fold.

    Raises:
        ValueError: For bad arguments.

    Example:

    ```python
    sparse = keras_er.sparsify(model, "erk", density=0.3, seed=0)
    str_cb = keras_er.callbacks.STR(s_init=-200.0, target_density=0.04)
    str_cb.prepare(sparse)  # before compile
    sparse.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                   "sparse_categorical_crossentropy")
    sparse.fit(x, y, epochs=160, callbacks=[str_cb])
    keras_er.summary(sparse)  # density 0.04, plain ER layers again
    ```
    """

    def __init__(
        self,
        s_init=-200.0,
        target_density=None,
        s_weight_decay=5e-4,
        check_every=1,
        fold_at_end=True,
        verbose=0,
    ):
        super().__init__()
        # Validates s_init and s_weight_decay early.
        self._template = st.SoftThreshold(s_init, s_weight_decay)
        self.s_init = self._template.s_init
        self.s_weight_decay = self._template.s_weight_decay
        self.target_density = (
            None
            if target_density is None
            else check_density(target_density, "target_density")
        )
        if (
            isinstance(check_every, bool)
            or not isinstance(check_every, (int, np.integer))
            or check_every < 1
        ):
            raise ValueError(
                f"check_every must be a positive int, got {check_every!r}."
            )
        self.check_every = int(check_every)
        self.fold_at_end = bool(fold_at_end)
        self.verbose = _checks.check_verbose(verbose)
        self._batches = 0

    needs_prepare = True

    def is_prepared(self, model):
        """Whether every ER layer of ``model`` has a `SoftThreshold`."""
        return all(st.has_soft_threshold(layer) for layer in er_layers(model))

    def prepare(self, model):
        """Installs `SoftThreshold` on every ER layer of ``model``.

        Call it before ``model.compile``. Layers that already have a
        `SoftThreshold` (e.g. a model loaded from a ``.keras`` file saved
        mid-training) are left as they are, so calling it again is safe.

        Args:
            model: A built model with ER layers.

        Returns:
            ``model``.

        Raises:
            ValueError: If the model has no ER layers, a layer carries a
                different reparameterization, or ``target_density`` is not
                below the current density of the ER kernels.
        """
        layers = er_layers(model)
        for layer in layers:
            current = layer.reparameterization
            if current is not None and not st.has_soft_threshold(layer):
                raise ValueError(
                    f"Layer {layer.name!r} already has the reparameterization "
                    f"{type(current).__name__}; STR cannot be combined with "
                    "it. Remove it with layer.set_reparameterization(None)."
                )
        self._check_target(layers)
        for layer in layers:
            if not st.has_soft_threshold(layer):
                layer.set_reparameterization(
                    st.SoftThreshold(self.s_init, self.s_weight_decay)
                )
        return model

    @staticmethod
    def fold(model, target_density=None):
        """Folds the learned thresholds into masks and kernels (see class doc).

        Also drops the model's compiled train/test/predict functions, which
        were traced with the reparameterization.

        Args:
            model: A model with STR installed.
            target_density: Optional overall density: first shift all
                thresholds by one common amount so exactly this density
                survives (what ``on_train_end`` does with a target).

        Returns:
            ``model``, with ordinary ER layers. Without ``target_density``
            its outputs are unchanged.
        """
        layers = er_layers(model)
        if target_density is not None:
            target_density = check_density(target_density, "target_density")
            st.freeze_at_density(layers, target_density)
        st.fold(layers)
        # Traced functions still compute the STR forward; force a re-trace.
        for name in ("train_function", "test_function", "predict_function"):
            if hasattr(model, name):
                setattr(model, name, None)
        return model

    def _density_of(model):
        """Overall density of the effective ER kernels of ``model``."""
        return st.effective_density(er_layers(model))

    #: Overall density of the effective ER kernels: on an instance a float
    #: for its model (``None`` before it has one); ``STR.density(model)`` on
    #: the class, or ``callback.density(model)``, for any model.
    density = DensityOfModel(_density_of)
    _density_of = staticmethod(_density_of)

    def _check_target(self, layers):
        if self.target_density is None or st.is_frozen(layers):
            return
        current = st.effective_density(layers)
        if self.target_density > current:
            raise ValueError(
                f"target_density={self.target_density} is above the current "
                f"density {current:.4g} of the ER kernels; STR only prunes. "
                "Choose a target below it."
            )

    def _layers(self):
        layers = er_layers(self.model)
        missing = [
            unit_name(layer) for layer in layers
            if not st.has_soft_threshold(layer)
        ]
        if missing:
            raise ValueError(
                f"STR is not installed on ER layers {missing}. Call "
                "`keras_er.callbacks.STR(...).prepare(model)` before "
                "`model.compile(...)`."
            )
        return layers

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        er_layers(self.model)  # Raises a clear error without ER layers.
        self.check_prepared()
        layers = self._layers()
        check_model(self.model)  # Model outside strategy.scope()?
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not optimizer_step(self.model):
            # A resumed run (restored optimizer step) may be below the
            # target between two checks; the next check freezes it.
            self._check_target(layers)
        if optimizer is not None:
            optimizer = unwrap(optimizer)
            known = getattr(optimizer, "_trainable_variables_indices", None)
            if getattr(optimizer, "built", False) and known is not None:
                unknown = [
                    unit_name(layer)
                    for layer in layers
                    if optimizer._var_key(layer.str_s) not in known
                ]
                if unknown:
                    raise ValueError(
                        f"The optimizer does not train the STR thresholds of "
                        f"{unknown}: STR was installed after the optimizer "
                        "was built. Install it before compiling, or compile "
                        "again."
                    )
        # Checks at optimizer steps that are multiples of check_every, so
        # that a resumed run checks at the same steps as an uninterrupted
        # one. The step is read at the first batch: BackupAndRestore may
        # restore the optimizer in its on_train_begin, after this one.
        self._steps = StepTracker()
        self._last_step = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.target_density is None:
            return
        self._steps.batch_begin(batch, self.model)
        if self._last_step is None:
            self._last_step = self._steps.upper_bound()

    def on_train_batch_end(self, batch, logs=None):
        if self.target_density is None:
            return
        # Several steps per call with steps_per_execution > 1. The exact
        # step is read only when a multiple of check_every may be passed.
        self._steps.batch_end(batch)
        every, last = self.check_every, self._last_step
        if self._steps.upper_bound() // every <= last // every:
            return
        self._last_step = self._steps.read(self.model)
        if self._last_step // every <= last // every:
            return
        layers = er_layers(self.model)
        if st.is_frozen(layers):
            return
        if st.effective_density(layers) <= self.target_density:
            delta = st.freeze_at_density(layers, self.target_density)
            if self.verbose:
                logger.info(
                    "STR: reached target density %.4g; thresholds frozen "
                    "(shift %.3g).", self.target_density, delta,
                )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["density"] = self.density(self.model)

    def on_train_end(self, logs=None):
        if self.fold_at_end:
            self.fold(self.model, self.target_density)
            if self.verbose:
                logger.info(
                    "STR: folded thresholds into the masks; density %.4g.",
                    self.density(self.model),
                )
        super().on_train_end(logs)

    def get_config(self):
        return {
            "s_init": self.s_init,
            "target_density": self.target_density,
            "s_weight_decay": self.s_weight_decay,
            "check_every": self.check_every,
            "fold_at_end": self.fold_at_end,
            "verbose": self.verbose,
        }
