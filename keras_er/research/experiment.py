"""`run_experiment`: load data, sparsify a zoo model, train it with a method.

The engine behind ``examples/train.py`` and the reproduction benchmark: one
call trains one ER network with one of the sparse-to-sparse methods and
returns a dict of results (accuracy, requested and final density, training
FLOPs estimate, wall time, ...). Every field of `Config` is a keyword
argument of `run_experiment` and a flag of ``examples/train.py`` with the
same name.

Methods (see ``docs/methods_*.md``):

==============  ===========================================================
``static``      the fixed ER mask of `keras_er.sparsify`
``imp``         `keras_er.callbacks.IMP`: iterative magnitude pruning with
                rewinding, down to ``imp_target_density``
``str``         `keras_er.callbacks.STR`: soft threshold reparameterization
``gmp``         `keras_er.callbacks.MagnitudePruning`: gradual magnitude
                pruning (cubic schedule) down to ``gmp_final_density``
``rigl``        `keras_er.callbacks.RiGL`: rewiring with gradient growth
``set``         `keras_er.callbacks.SET`: rewiring with random growth
``edgepopup``   `keras_er.callbacks.EdgePopup`: a strong lottery ticket
                (weights frozen) at ``ep_final_density``
==============  ===========================================================
"""

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import os
import time

import keras
import numpy as np

from keras_er import callbacks as callbacks_lib
from keras_er.research import data as data_lib
from keras_er.research import models as models_lib
from keras_er.sparsify import sparsify
from keras_er.summary import summary

logger = logging.getLogger("keras_er")

METHODS = ("static", "imp", "str", "gmp", "rigl", "set", "edgepopup")
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "cosine")
STRATEGIES = ("default", "mirrored")

# Default learning rates: the paper's SGD 0.1, Adam's usual 1e-3.
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3}

# Backward pass ~ 2x the forward pass: training costs ~3 forward passes per
# example (the convention of the RiGL and ER papers).
TRAIN_FLOPS_PER_FORWARD = 3


@dataclasses.dataclass
class Config:
    """Settings of one experiment (all optional; see `run_experiment`).

    Attributes:
        dataset: ``"digits"``, ``"mnist"`` (both offline) or a TFDS image
            classification name (see `keras_er.research.data.load`).
        model: A `keras_er.research.models.get` name: ``lenet300``,
            ``conv_small``, ``conv4``, ``vgg16``, ``resnet18``, ``resnet20``.
        width: ``lenet300`` only: multiplies its hidden widths (1: 300-100).
        method: One of `METHODS`.
        ratio: Layerwise density method of `keras_er.sparsify`:
            ``uniform``, ``er``, ``erk``, ``balanced``, ``pyramidal``, or
            the borrowed ``snip`` (scored on 256 training examples) and
            ``synflow``.
        density: Overall ER density at the start (1.0: a dense start).
        sampling: ``"bernoulli"`` or ``"exact"``.
        flow: ``"addition"``, ``"rejection"`` or ``None`` / ``"none"``.
        init: ``"keep"`` or ``"sparse_he_normal"``.
        seed: Seed of the masks, weights, data subset and batch order.
        eval_each_epoch: Also evaluate on the test split after every epoch
            (``test_accuracy_per_epoch`` in the results), to check
            convergence.
        epochs: Training epochs (IMP: all cycles together, unless
            ``imp_epochs_per_cycle`` is set).
        batch_size: Global batch size.
        optimizer: ``"sgd"`` (momentum ``momentum``) or ``"adam"``.
        lr: Learning rate; ``None``: 0.1 for SGD, 1e-3 for Adam.
        momentum: SGD momentum.
        weight_decay: Decoupled weight decay of the optimizer (0: none).
        lr_schedule: ``"constant"`` or ``"cosine"`` (decay to 1 % over
            training; with IMP, 10 % restarted every cycle as in the paper).
        data_dir: TFDS data directory.
        data_source: For mnist: ``"auto"``, ``"tfds"`` or ``"idx"`` (see
            `keras_er.research.data.load`).
        download: Allow TFDS downloads (data sets other than mnist).
        train_split: Split to train on.
        test_split: Split to report accuracy on.
        train_size: Train on a seeded random subset of this many examples.
        test_size: Evaluate on a seeded random subset of this many examples.
        jit_compile: Compile the train step with XLA.
        strategy: ``"default"`` or ``"mirrored"``
            (`tf.distribute.MirroredStrategy` over all local GPUs).
        export_dir: Write the stripped model there (`keras_er.export`).
        tensorboard_dir: Write TensorBoard logs there: Keras' TensorBoard
            callback (loss and accuracy; needs the ``tensorboard`` package)
            and `keras_er.callbacks.SparsitySummaries` (densities and
            pruning state) when this install has it.
        results_json: Write the results dict there as JSON.
        verbose: Keras ``fit`` verbosity (1: progress bar).
        imp_target_density: IMP: final density (required).
        imp_prune_fraction: IMP: fraction of the remaining weights pruned
            per cycle.
        imp_epochs_per_cycle: IMP: epochs per cycle; ``None`` spreads
            ``epochs`` over the cycles (at least one epoch each).
        imp_rewind: IMP: ``"init"`` or a step count (as a string or int).
        imp_scope: IMP: ``"global"`` or ``"layerwise"``.
        str_target_density: STR: target density (``None``: plain STR).
        str_s_init: STR: initial threshold parameter.
        str_s_weight_decay: STR: weight decay on the threshold parameter.
        gmp_final_density: GMP: final density (required).
        gmp_begin_fraction: GMP: fraction of training before pruning starts.
        gmp_end_fraction: GMP: fraction of training at which the final
            density is reached.
        gmp_frequency: GMP: steps between mask updates (capped to the
            pruning span).
        gmp_scope: GMP: ``"global"`` or ``"layerwise"``.
        rigl_update_every: RiGL/SET: steps between mask updates.
        rigl_drop_fraction: RiGL/SET: initial drop fraction.
        rigl_end_fraction: RiGL/SET: fraction of training after which the
            masks are frozen.
        rigl_schedule: RiGL/SET: ``"cosine"`` or ``"constant"``.
        rigl_target_density: RiGL/SET: final density (prune and rewire);
            ``None`` keeps the density.
        ep_final_density: Edge-popup: final density (required).
        ep_levels: Edge-popup: annealing levels.
        ep_weight_init: Edge-popup: ``"signed_constant"`` or
            ``"kaiming_normal"``.
    """

    dataset: str = "digits"
    model: str = "lenet300"
    width: int = 1
    method: str = "static"
    ratio: str = "erk"
    density: float = 0.1
    sampling: str = "bernoulli"
    flow: str | None = "addition"
    init: str = "keep"
    seed: int = 0
    eval_each_epoch: bool = False
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    data_dir: str | None = None
    data_source: str = "auto"
    download: bool = True
    train_split: str = "train"
    test_split: str = "test"
    train_size: int | None = None
    test_size: int | None = None
    jit_compile: bool = False
    strategy: str = "default"
    export_dir: str | None = None
    tensorboard_dir: str | None = None
    results_json: str | None = None
    verbose: int = 1
    imp_target_density: float | None = None
    imp_prune_fraction: float = 0.2
    imp_epochs_per_cycle: int | None = None
    imp_rewind: str = "init"
    imp_scope: str = "global"
    str_target_density: float | None = None
    str_s_init: float = -200.0
    str_s_weight_decay: float = 5e-4
    gmp_final_density: float | None = None
    gmp_begin_fraction: float = 0.0
    gmp_end_fraction: float = 0.75
    gmp_frequency: int = 100
    gmp_scope: str = "global"
    rigl_update_every: int = 100
    rigl_drop_fraction: float = 0.3
    rigl_end_fraction: float = 0.75
    rigl_schedule: str = "cosine"
    rigl_target_density: float | None = None
    ep_final_density: float | None = None
    ep_levels: int = 1
    ep_weight_init: str = "signed_constant"

    def validate(self):
        """Checks the settings that fail late otherwise.

        Raises:
            ValueError: Naming the bad setting and the allowed values.
        """
        for field, allowed in (
            ("method", METHODS),
            ("optimizer", OPTIMIZERS),
            ("lr_schedule", LR_SCHEDULES),
            ("strategy", STRATEGIES),
        ):
            if getattr(self, field) not in allowed:
                raise ValueError(
                    f"{field} must be one of {allowed}, got "
                    f"{getattr(self, field)!r}."
                )
        models_lib.get(self.model)
        if isinstance(self.width, bool) or not isinstance(self.width, int) or (
            self.width < 1
        ):
            raise ValueError(
                f"width must be a positive int, got {self.width!r}."
            )
        if self.width != 1 and self.model not in ("lenet300", "lenet300_100"):
            raise ValueError(
                f"width={self.width} is supported by model='lenet300' only, "
                f"got model={self.model!r}; use width=1."
            )
        if not 0.0 < self.density <= 1.0:
            raise ValueError(
                f"density must be in (0, 1], got {self.density!r}."
            )
        for field in ("epochs", "batch_size"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1.")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}.")
        required = {
            "imp": "imp_target_density",
            "gmp": "gmp_final_density",
            "edgepopup": "ep_final_density",
        }
        field = required.get(self.method)
        if field is not None and getattr(self, field) is None:
            raise ValueError(
                f"method={self.method!r} needs {field} (the final density, "
                f"below density={self.density})."
            )
        if not 0.0 <= self.gmp_begin_fraction < self.gmp_end_fraction <= 1.0:
            raise ValueError(
                "Need 0 <= gmp_begin_fraction < gmp_end_fraction <= 1, got "
                f"{self.gmp_begin_fraction} and {self.gmp_end_fraction}."
            )


def _subset(x, y, size, seed, what):
    """A seeded random subset (keeps the classes balanced on average)."""
    if size is None:
        return x, y
    if not 1 <= size <= len(x):
        raise ValueError(
            f"{what}={size} must be in [1, {len(x)}] (the split's size)."
        )
    keep = np.random.default_rng(seed).permutation(len(x))[:size]
    return x[keep], y[keep]


def _load_data(config):
    (train, test), info = data_lib.load(
        config.dataset,
        (config.train_split, config.test_split),
        config.data_dir,
        source=config.data_source,
        download=config.download,
        with_info=True,
    )
    x_train, y_train = _subset(*train, config.train_size, config.seed,
                               "train_size")
    # Another stream than the training subset's.
    x_test, y_test = _subset(*test, config.test_size, config.seed + 1,
                             "test_size")
    x_train = x_train.astype("float32") / 255.0
    x_test = x_test.astype("float32") / 255.0
    return (x_train, y_train), (x_test, y_test), info


def _strategy(name):
    if name == "default":
        return None
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"strategy={name!r} needs the TensorFlow backend, not "
            f"{keras.backend.backend()!r}. Fix: set KERAS_BACKEND=tensorflow "
            "(on JAX, use keras.distribution.DataParallel instead; see "
            "docs/backends.md)."
        )
    import tensorflow as tf

    return tf.distribute.MirroredStrategy()


def _learning_rate(config, lr, total_steps, cycle_steps=None):
    if config.lr_schedule == "constant":
        return lr
    if cycle_steps is not None:
        # The paper's IMP schedule: 0.1 -> 0.01 in every cycle.
        return callbacks_lib.CyclicCosine(lr, 0.1 * lr, cycle_steps)
    return keras.optimizers.schedules.CosineDecay(
        lr, decay_steps=max(1, total_steps), alpha=0.01
    )


def _optimizer(config, learning_rate):
    decay = config.weight_decay or None
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate, momentum=config.momentum, weight_decay=decay
        )
    return keras.optimizers.Adam(learning_rate, weight_decay=decay)


def _random_batches(x, y, batch_size, seed):
    """Endless random training batches for RiGL's dense gradient."""
    rng = np.random.default_rng([seed, 7])
    size = min(batch_size, len(x))
    while True:
        index = rng.choice(len(x), size=size, replace=False)
        yield x[index], y[index]


def _mask_density(model):
    return summary(model, print_fn=None)[-1]["density"]


class _FlopsMeter(keras.callbacks.Callback):
    """Records the sparse forward FLOPs per example of every epoch.

    Counts the masks' nonzeros at the start and end of each epoch (after the
    method's own callbacks) and keeps their mean, so that pruning within an
    epoch is counted half. Also records the epoch logs' ``density`` (the
    method's own measure, e.g. STR's effective density) or the mask density.
    """

    def __init__(self):
        super().__init__()
        self.epoch_flops = []
        self.densities = []
        self._begin = None

    def _forward_flops(self):
        return summary(self.model, print_fn=None)[-1]["sparse_flops"]

    def on_epoch_begin(self, epoch, logs=None):
        self._begin = self._forward_flops()

    def on_epoch_end(self, epoch, logs=None):
        end = self._forward_flops()
        if self._begin is not None and end is not None:
            self.epoch_flops.append(0.5 * (self._begin + end))
        density = (logs or {}).get("density")
        self.densities.append(
            float(density) if density is not None
            else float(_mask_density(self.model))
        )


def _method_callbacks(config, model, train, steps_per_epoch, epochs):
    """Builds the method's callback; prepares the model where needed.

    Called inside the strategy scope, before ``compile`` (STR and edge-popup
    add variables the optimizer must see).

    Returns:
        ``(callbacks, epochs, target_density, options)``.
    """
    method = config.method
    start = _mask_density(model)
    total_steps = epochs * steps_per_epoch
    if method == "static":
        return [], epochs, None, {}
    if method == "imp":
        cycles = len(callbacks_lib.IMP.density_schedule(
            model, config.imp_target_density, config.imp_prune_fraction
        ))
        per_cycle = config.imp_epochs_per_cycle or max(1, epochs // cycles)
        if config.imp_epochs_per_cycle is None and per_cycle * cycles != epochs:
            # IMP trains whole cycles: say so rather than train another
            # number of epochs than asked without a word.
            logger.warning(
                "IMP: %d cycles of %d epochs = %d epochs, not epochs=%d "
                "(not a multiple of the cycles). Set epochs to a multiple of "
                "%d or imp_epochs_per_cycle to choose.",
                cycles, per_cycle, cycles * per_cycle, epochs, cycles,
            )
        rewind = config.imp_rewind
        if isinstance(rewind, str) and rewind.isdigit():
            rewind = int(rewind)
        callback = callbacks_lib.IMP(
            config.imp_target_density,
            prune_fraction=config.imp_prune_fraction,
            epochs_per_cycle=per_cycle,
            rewind=rewind,
            scope=config.imp_scope,
        )
        options = {"cycles": cycles, "epochs_per_cycle": per_cycle}
        return ([callback], cycles * per_cycle, config.imp_target_density,
                options)
    if method == "str":
        callback = callbacks_lib.STR(
            s_init=config.str_s_init,
            target_density=config.str_target_density,
            s_weight_decay=config.str_s_weight_decay,
        )
        callback.prepare(model)
        return [callback], epochs, config.str_target_density, {}
    if method == "gmp":
        begin = int(round(config.gmp_begin_fraction * total_steps))
        end = max(begin + 1, int(round(config.gmp_end_fraction * total_steps)))
        frequency = max(1, min(config.gmp_frequency, end - begin))
        # Only begin + i * frequency prunes: end on such a step so that the
        # final density is applied exactly.
        end = begin + ((end - begin) // frequency) * frequency
        schedule = callbacks_lib.schedules.PolynomialDecay(
            initial_sparsity=1.0 - start,
            final_sparsity=1.0 - config.gmp_final_density,
            begin_step=begin,
            end_step=end,
            frequency=frequency,
        )
        callback = callbacks_lib.MagnitudePruning(
            schedule, scope=config.gmp_scope
        )
        options = {"begin_step": begin, "end_step": end,
                   "frequency": frequency}
        return [callback], epochs, config.gmp_final_density, options
    if method in ("rigl", "set"):
        common = dict(
            update_every=config.rigl_update_every,
            drop_fraction=config.rigl_drop_fraction,
            end_fraction=config.rigl_end_fraction,
            schedule=config.rigl_schedule,
            target_density=config.rigl_target_density,
            total_steps=total_steps,
            seed=config.seed,
        )
        if method == "rigl":
            callback = callbacks_lib.RiGL(
                data=_random_batches(*train, config.batch_size, config.seed),
                **common,
            )
        else:
            callback = callbacks_lib.SET(**common)
        return [callback], epochs, config.rigl_target_density, {}
    # edgepopup
    report = callbacks_lib.EdgePopup.prepare(
        model, weight_init=config.ep_weight_init, seed=config.seed
    )
    callback = callbacks_lib.EdgePopup(
        config.ep_final_density, levels=config.ep_levels, total_epochs=epochs
    )
    return ([callback], epochs, config.ep_final_density,
            {"prepared_layers": len(report["layers"])})


def _logging_callbacks(log_dir, say):
    """Keras' TensorBoard callback and keras_er's SparsitySummaries."""
    result = []
    # Keras' callback needs the tensorboard package (tf.summary is a stub
    # without it); TensorFlow no longer installs it.
    if importlib.util.find_spec("tensorboard") is not None:
        result.append(keras.callbacks.TensorBoard(log_dir))
    else:
        say(
            "tensorboard is not installed: no loss/accuracy curves in "
            f"{log_dir} (pip install tensorboard)."
        )
    # SparsitySummaries lands separately; use it when this install has it.
    if hasattr(callbacks_lib, "SparsitySummaries"):
        result.append(callbacks_lib.SparsitySummaries(log_dir))
    return result


def run_experiment(config=None, *, print_fn=print, **kwargs):
    """Trains one sparse network and returns its results.

    Loads the data set (images scaled to ``[0, 1]``), builds the zoo model,
    sparsifies it with ``ratio`` / ``density``, sets up the method's
    callback (before ``compile`` where the method needs it), trains with
    ``fit`` (Keras progress bar for ``verbose=1``), evaluates on the test
    split, prints the test accuracy and the `keras_er.summary` table, and
    optionally exports the stripped model and writes the results as JSON.

    Args:
        config: A `Config`; or pass its fields as keyword arguments.
        print_fn: Called with each line of the report (``None``: silent).
        **kwargs: `Config` fields (override those of ``config``).

    Returns:
        A JSON-serializable dict: ``dataset, model, method, ratio, density``
        (requested), ``er_density`` (after `sparsify`),
        ``target_density`` (the method's, or None), ``final_density`` (of
        the trained model, over all Dense/Conv kernels), ``accuracy`` and
        ``loss`` (test split), ``train_accuracy`` (last epoch),
        ``test_accuracy_per_epoch`` (with ``eval_each_epoch``), ``epochs``
        (run), ``train_size``, ``test_size``, ``num_classes``,
        ``forward_flops`` (sparse, per example, at the end),
        ``train_flops`` and ``dense_train_flops`` (estimates: 3 x forward
        FLOPs per example x examples, with each epoch's mean mask; the dense
        gradients of RiGL and STR / edge-popup pruning inside the mask
        during training are not counted), ``density_per_epoch``,
        ``train_time_s``, ``wall_time_s`` and the other settings.

    Raises:
        ValueError: For bad settings (see `Config.validate`) and from the
            methods' callbacks.
        TypeError: For an unknown keyword argument.

    Example:

    ```python
    from keras_er.research.experiment import run_experiment

    results = run_experiment(dataset="digits", model="lenet300",
                             method="rigl", density=0.05, epochs=3,
                             rigl_update_every=10, verbose=0)
    results["accuracy"], results["final_density"]
    ```
    """
    config = dataclasses.replace(config or Config(), **kwargs)
    if config.flow == "none":
        config.flow = None
    config.validate()
    say = print_fn or (lambda *_: None)
    start_time = time.perf_counter()

    train, test, info = _load_data(config)
    steps_per_epoch = math.ceil(len(train[0]) / config.batch_size)
    say(
        f"{config.dataset} ({info['source']}): {len(train[0])} training and "
        f"{len(test[0])} test examples of shape {info['image_shape']}, "
        f"{info['num_classes']} classes."
    )

    # Same seed, same initial weights and batch order on every run.
    keras.utils.set_random_seed(config.seed)
    strategy = _strategy(config.strategy)
    scope = strategy.scope() if strategy else contextlib.nullcontext()
    with scope:
        builder_options = {"width": config.width} if config.width != 1 else {}
        dense = models_lib.get(config.model)(
            train[0].shape[1:], info["num_classes"], **builder_options
        )
        ratio_options = {}
        if config.ratio == "snip":
            # SNIP scores |w * dL/dw| on one batch of training data.
            ratio_options = dict(
                data=(train[0][:256], train[1][:256]),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True
                ),
            )
        model = sparsify(
            dense,
            ratio=config.ratio,
            density=config.density,
            seed=config.seed,
            sampling=config.sampling,
            flow=config.flow,
            init=config.init,
            **ratio_options,
        )
        er_density = float(_mask_density(model))
        method_callbacks, epochs, target, options = _method_callbacks(
            config, model, train, steps_per_epoch, config.epochs
        )
        lr = config.lr or DEFAULT_LR[config.optimizer]
        cycle_steps = (
            options["epochs_per_cycle"] * steps_per_epoch
            if config.method == "imp" else None
        )
        model.compile(
            optimizer=_optimizer(
                config,
                _learning_rate(
                    config, lr, epochs * steps_per_epoch, cycle_steps
                ),
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            jit_compile=config.jit_compile,
        )
    meter = _FlopsMeter()
    fit_callbacks = method_callbacks + [meter]
    if config.tensorboard_dir:
        fit_callbacks += _logging_callbacks(config.tensorboard_dir, say)

    train_start = time.perf_counter()
    history = model.fit(
        *train,
        batch_size=config.batch_size,
        epochs=epochs,
        callbacks=fit_callbacks,
        verbose=config.verbose,
        validation_data=test if config.eval_each_epoch else None,
        validation_batch_size=min(len(test[0]), 1000),
    )
    train_time = time.perf_counter() - train_start
    scores = model.evaluate(
        # Large batches: evaluation is cheap, and 1000 divides the usual
        # test sets (fewer partial batches, fewer traces).
        *test, batch_size=min(len(test[0]), 1000), verbose=0,
        return_dict=True,
    )
    say(f"Test accuracy: {scores['accuracy']:.4f}")
    rows = summary(model, print_fn=say if print_fn else None)
    total = rows[-1]
    if config.export_dir:
        from keras_er.export import export

        export(model, config.export_dir)
        say(f"Exported the stripped model to {config.export_dir}")

    n_train = len(train[0])
    forward_dense = total["dense_flops"]
    train_flops = (
        TRAIN_FLOPS_PER_FORWARD * n_train * sum(meter.epoch_flops)
        if meter.epoch_flops else None
    )
    results = {
        "dataset": config.dataset,
        "data_source": info["source"],
        "model": config.model,
        "width": int(config.width),
        "method": config.method,
        "ratio": config.ratio,
        "density": float(config.density),
        "er_density": er_density,
        "target_density": None if target is None else float(target),
        "final_density": float(total["density"]),
        "accuracy": float(scores["accuracy"]),
        "loss": float(scores["loss"]),
        "train_accuracy": float(history.history["accuracy"][-1]),
        "test_accuracy_per_epoch": (
            [round(float(a), 6) for a in history.history["val_accuracy"]]
            if config.eval_each_epoch else None
        ),
        "seed": int(config.seed),
        "sampling": config.sampling,
        "flow": config.flow,
        "init": config.init,
        "epochs": int(epochs),
        "batch_size": int(config.batch_size),
        "optimizer": config.optimizer,
        "lr": float(lr),
        "lr_schedule": config.lr_schedule,
        "train_size": int(n_train),
        "test_size": int(len(test[0])),
        "num_classes": int(info["num_classes"]),
        "params": int(total["params"]),
        "nonzeros": int(total["nonzeros"]),
        "forward_flops": total["sparse_flops"],
        "train_flops": None if train_flops is None else float(train_flops),
        "dense_train_flops": None if forward_dense is None else float(
            TRAIN_FLOPS_PER_FORWARD * n_train * epochs * forward_dense
        ),
        "density_per_epoch": [round(d, 6) for d in meter.densities],
        "method_options": options,
        "flow_edges_added": int(model.sparsify_report["total_edges_added"]),
        "jit_compile": bool(config.jit_compile),
        "strategy": config.strategy,
        "backend": keras.backend.backend(),
        "train_time_s": round(train_time, 3),
        "wall_time_s": round(time.perf_counter() - start_time, 3),
        "export_dir": config.export_dir,
    }
    if config.results_json:
        directory = os.path.dirname(os.fspath(config.results_json))
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(config.results_json, "w") as handle:
            json.dump(results, handle, indent=2)
    return results
