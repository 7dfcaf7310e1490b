r"""Performance ratios of keras_er, printed as one table with goals.

One command measures every ratio of the performance issue, side by side in
one run:

  masked     masked / dense train step (LeNet-300-100 and conv_small,
             `keras_er.sparsify(model, "erk", 0.1)`, default bool masks),
             XLA off and on.
             Goal <= 1.05. Without XLA also an op-level estimate: the mask
             ops of a step timed alone (low noise) over the dense step.
  tfmot      keras_er / tfmot train step at the same sparsity (0.9): tfmot's
             `prune_low_magnitude` with `ConstantSparsity(0.9)` and the
             `UpdatePruningStep` callback, on the same architectures built in
             tf_keras (Keras 2). Goal <= 0.8. Also reported: tfmot / tf_keras
             dense, Keras 3 dense / tf_keras dense (the framework's own
             share of the difference), and the two overheads compared:
             (keras_er / Keras 3 dense) / (tfmot / tf_keras dense). For the Dense-only LeNet without XLA,
             also a raw TensorFlow train step with sparse compute
             (`tf.sparse.sparse_dense_matmul` on the mask's nonzeros) over
             the same step with masked dense kernels: what sparse kernels
             would gain on this CPU.
  rigl       RiGL / static train step: the sparsified model with the
             `keras_er.callbacks.RiGL` callback (a mask update every
             --rigl_update_every steps) against the same model without it.
             Goal <= 1.10.
  edgepopup  edge-popup / dense train step (scores trained, weights frozen).
             Reported only.
  clone      `keras_er.sparsify(ResNet50, "erk", 0.1)` / `clone_model`.
             Goal <= 2.0.
  memory     mask bytes / kernel bytes for each mask dtype (goal <= 0.25),
             and the train step with a float32 or uint8 mask against
             keras_er's default bool mask and against dense.

Method: the machine may be shared, so the variants of one ratio are timed in
the same run, interleaved (A B A B ..., the order rotating every repeat) so
that they see the same load. Each ratio is the median of the per-repeat
ratios; `[q1, q3]` are their quartiles (the noise at a glance). Process CPU
time (all threads) is printed next to wall time: it is less sensitive to other
processes on the machine. A train step is timed as one `fit` over --steps
(LeNet-300-100: --lenet_steps) batches of MNIST-shaped random data, Adam,
divided by the number of steps.

tfmot needs Keras 2, which cannot live in a process that imported Keras 3, so
it runs in a persistent worker subprocess (this script with --worker=tfmot and
TF_USE_LEGACY_KERAS=1) that receives "run <config>" lines on stdin and answers
one JSON line per run; its runs are interleaved with the main process's runs.

On JAX (`KERAS_BACKEND=jax`) every train step is XLA-compiled, so the XLA-off
rows are skipped, and so are the tfmot rows (tfmot is TensorFlow only: the
ratio would compare two backends).

The flags --batch_size, --density, --ratio, --xla, --steps, --train_repeats
and --clone_repeats are shared with core_perf.py (whose helpers this script
imports); some defaults are changed here.

Usage, from the repository root:

    python benchmarks/perf.py                  # full run, ~10-15 min
    python benchmarks/perf.py --quick          # smoke run, ~3-5 min
    python benchmarks/perf.py --only=masked,memory --xla=off
    python benchmarks/perf.py --steps_per_execution=20 --json_out=perf.json
    KERAS_BACKEND=jax python benchmarks/perf.py --only=masked,memory
"""

import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import core_perf  # noqa: E402  (defines the shared flags)
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS

GROUPS = ("masked", "tfmot", "rigl", "edgepopup", "clone", "memory")
ARCHS = ("lenet300_100", "conv_small")

flags.DEFINE_bool(
    "quick", False,
    "Smoke run (~3-5 min): 3 repeats of 10 steps, RiGL over 20 steps with "
    "an update every 10, one clone repeat. Overrides the repeat and step "
    "flags.",
    allow_override=True,  # core_perf.py has its own --quick.
)
flags.DEFINE_list(
    "only", list(GROUPS), f"Row groups to run, a subset of {list(GROUPS)}."
)
flags.DEFINE_list("archs", list(ARCHS), f"Architectures, from {list(ARCHS)}.")
flags.DEFINE_integer(
    "steps_per_execution", 1,
    "steps_per_execution of every compiled model. 1 is what `fit` does by "
    "default; a larger value runs several steps per tf.function call, so "
    "the step's own cost weighs more than fit's per-step overhead. Must "
    "divide --rigl_update_every (RiGL only runs between executions).",
    lower_bound=1,
)
flags.DEFINE_integer(
    "lenet_steps", 200,
    "Steps per timed fit of LeNet-300-100 (--steps is for conv_small). Its "
    "step is ~8 ms, and each `fit` call costs ~60 ms on top of its steps: "
    "over 50 steps that fixed cost would be ~15 %% of every timing and pull "
    "every LeNet ratio toward 1.", lower_bound=1,
)
flags.DEFINE_integer(
    "rigl_steps", 200,
    "Steps per timed RiGL run (and its static reference), so that several "
    "mask updates happen in each.", lower_bound=1,
)
flags.DEFINE_integer(
    "rigl_update_every", 100, "RiGL steps between mask updates.",
    lower_bound=1,
)
flags.DEFINE_string("json_out", None, "Also write the results to this file.")
flags.DEFINE_enum(
    "worker", None, ["tfmot"],
    "Internal: run as the Keras 2 / tfmot worker subprocess.",
)

# Full-run defaults of the flags shared with core_perf.py: ~10-15 min here.
FLAGS.set_default("train_repeats", 5)
FLAGS.set_default("steps", 50)
FLAGS.set_default("clone_repeats", 5)

MASKED_GOAL = core_perf.TRAIN_GOAL  # 1.05
TFMOT_GOAL = 0.8
RIGL_GOAL = 1.10
CLONE_GOAL = core_perf.CLONE_GOAL  # 2.0
MASK_BYTES_GOAL = 0.25
TFMOT_FREQUENCY = 100  # Steps between tfmot's mask updates.

# Ratio rows of the train step table: (group, label, numerator variant,
# denominator variant, goal or None). Variants are timed together per
# architecture and XLA mode, so rows of several groups share timings.
STEP_ROWS = [
    ("masked", "masked / dense", "masked", "dense", MASKED_GOAL),
    ("tfmot", "keras_er / tfmot", "masked", "tfmot", TFMOT_GOAL),
    ("tfmot", "tfmot / tf_keras dense", "tfmot", "tf_keras_dense", None),
    ("tfmot", "keras 3 dense / tf_keras dense", "dense", "tf_keras_dense",
     None),
    ("edgepopup", "edge-popup / dense", "edgepopup", "dense", None),
    # "masked" has keras_er's default bool masks; the other mask dtypes
    # against it and against dense.
    ("memory", "masked[float32] / masked[bool]", "masked_float32", "masked",
     None),
    ("memory", "masked[float32] / dense", "masked_float32", "dense",
     MASKED_GOAL),
    ("memory", "masked[uint8] / masked[bool]", "masked_uint8", "masked",
     None),
    ("memory", "masked[uint8] / dense", "masked_uint8", "dense", MASKED_GOAL),
]
WORKER_VARIANTS = ("tfmot", "tf_keras_dense")


# ------------------------------------------------------------ shared helpers


def _data(steps, batch_size):
    """MNIST-shaped random images and labels, the same in every process."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((steps * batch_size, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, steps * batch_size)
    return x, y


def _short(error):
    """One line of an exception, for a row note."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:150] if text else ''}"


def _per_step(fit, steps):
    """Times ``fit()``; returns (wall, cpu) seconds per train step."""
    _, wall, cpu = core_perf._timed(fit)
    return wall / steps, cpu / steps


# ------------------------------------------------------- Keras 2 / tfmot side


def _tf_keras_model(arch):
    """LeNet-300-100 or conv_small of keras_er.research.models, in tf_keras."""
    import tf_keras

    layers = tf_keras.layers
    inputs = tf_keras.Input((28, 28, 1), name="image")
    if arch == "lenet300_100":
        x = layers.Flatten(name="flatten")(inputs)
        x = layers.Dense(300, activation="relu", name="fc1")(x)
        x = layers.Dense(100, activation="relu", name="fc2")(x)
        outputs = layers.Dense(10, name="fc3")(x)
    else:
        x = layers.Conv2D(32, 3, padding="same", activation="relu",
                          name="conv1")(inputs)
        x = layers.MaxPooling2D(2, name="pool1")(x)
        x = layers.Conv2D(64, 3, padding="same", activation="relu",
                          name="conv2")(x)
        x = layers.MaxPooling2D(2, name="pool2")(x)
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(128, activation="relu", name="fc1")(x)
        outputs = layers.Dense(10, name="fc2")(x)
    return tf_keras.Model(inputs, outputs, name=arch)


def _tfmot_sparsity(model):
    """Fraction of zeros in tfmot's pruning masks (checks it really prunes)."""
    import numpy as np

    masks = [
        np.asarray(mask) for layer in model.layers
        for _, mask, _ in getattr(layer, "pruning_vars", [])
    ]
    return 1.0 - sum(m.sum() for m in masks) / sum(m.size for m in masks)


def _worker_fit(config, cache):
    """One timed `fit` of a tf_keras model; builds and warms it up first."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    key = tuple(sorted(config.items()))
    if key not in cache:
        model = _tf_keras_model(config["arch"])
        callbacks = []
        if config["variant"] == "tfmot":
            sparsity = tfmot.sparsity.keras
            model = sparsity.prune_low_magnitude(
                model,
                pruning_schedule=sparsity.ConstantSparsity(
                    config["sparsity"], begin_step=0,
                    frequency=TFMOT_FREQUENCY,
                ),
            )
            callbacks = [sparsity.UpdatePruningStep()]
        model.compile(
            optimizer=tf_keras.optimizers.Adam(1e-3),
            loss=tf_keras.losses.SparseCategoricalCrossentropy(
                from_logits=True
            ),
            jit_compile=config["xla"],
            steps_per_execution=config["steps_per_execution"],
        )
        x, y = _data(config["steps"], config["batch_size"])

        def fit():
            model.fit(x, y, batch_size=config["batch_size"], epochs=1,
                      verbose=0, shuffle=False, callbacks=callbacks)

        fit()  # Warm-up: traces (and XLA-compiles) the train function.
        if config["variant"] == "tfmot":
            # tfmot's masks stay all ones until its first mask update, at
            # step TFMOT_FREQUENCY: time the pruned model, not the dense one.
            while model.optimizer.iterations.numpy() < TFMOT_FREQUENCY:
                fit()
        cache[key] = fit, model
    fit, model = cache[key]
    wall, cpu = _per_step(fit, config["steps"])
    answer = {"wall": wall, "cpu": cpu}
    if config["variant"] == "tfmot":
        answer["sparsity"] = float(_tfmot_sparsity(model))
    return answer


def worker_main():
    """The --worker=tfmot loop: "run <json config>" in, one JSON line out."""
    # Answers go to the real stdout; anything a library prints goes to stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def answer(message):
        answers.write(json.dumps(message) + "\n")

    try:
        import tensorflow as tf
        import tensorflow_model_optimization  # noqa: F401
        import tf_keras
    except Exception as error:  # noqa: BLE001  (reported as a skipped row)
        answer({"error": f"import failed: {_short(error)}"})
        return
    answer({"ready": f"tf_keras {tf_keras.__version__}, tensorflow "
                     f"{tf.__version__}"})
    cache = {}
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command != "run":
            break
        try:
            answer(_worker_fit(json.loads(argument), cache))
        except Exception as error:  # noqa: BLE001  (e.g. XLA refuses tfmot)
            answer({"error": _short(error)})


class Keras2Worker:
    """The main process's handle on the --worker=tfmot subprocess."""

    def __init__(self):
        # Started first thing, so that its imports overlap the main run's.
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
        env.pop("KERAS_BACKEND", None)
        self._process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker=tfmot"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, env=env,
        )
        self._hello = None
        self.last_sparsity = float("nan")  # Of tfmot's masks, last run.

    def _greeting(self):
        if self._hello is None:
            self._hello = self._read()
        return self._hello

    @property
    def error(self):
        """Why the worker cannot run (tfmot import failed...), or None."""
        return self._greeting().get("error")

    @property
    def versions(self):
        return self._greeting().get("ready")

    def _read(self):
        line = self._process.stdout.readline()
        if not line:
            return {"error": "the tfmot worker exited"}
        return json.loads(line)

    def run(self, config):
        """Answers {"wall", "cpu"[, "sparsity"]} or {"error"}."""
        if self.error:
            return {"error": self.error}
        try:
            self._process.stdin.write("run " + json.dumps(config) + "\n")
            self._process.stdin.flush()
        except OSError as error:
            return {"error": _short(error)}
        return self._read()

    def close(self):
        if self._process.poll() is None:
            try:
                self._process.stdin.write("quit\n")
                self._process.stdin.close()
            except OSError:
                pass
            self._process.wait(timeout=30)


# ------------------------------------------------------------ Keras 3 side


def _is_jax():
    import keras

    return keras.backend.backend() == "jax"


def _sparsify(model, **options):
    import keras_er

    return keras_er.sparsify(
        model, FLAGS.ratio, FLAGS.density, seed=0, **options
    )


def _compile(model, jit):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
        steps_per_execution=FLAGS.steps_per_execution,
    )


def _keras3_model(arch, variant):
    """(model, callbacks factory) of one Keras 3 variant."""
    from keras_er.callbacks.edge_popup import EdgePopup
    from keras_er.research import models as models_lib

    dense = getattr(models_lib, arch)()
    if variant == "dense":
        return dense, list
    if variant == "masked":
        return _sparsify(dense), list
    if variant.startswith("masked_"):  # masked_float32, masked_uint8
        return _sparsify(dense, mask_dtype=variant[len("masked_"):]), list
    if variant == "edgepopup":
        model = _sparsify(dense)
        EdgePopup.prepare(model, seed=0)  # Before compile: scores trained.
        # finalize=False: every timed fit trains the same prepared model.
        return model, lambda: [
            EdgePopup(target_density=FLAGS.density / 2, finalize=False)
        ]
    raise ValueError(f"Unknown variant {variant!r}.")


def _keras3_runner(arch, variant, jit, steps):
    """Builds, compiles and warms up a variant; returns its timed run."""
    model, make_callbacks = _keras3_model(arch, variant)
    _compile(model, jit)
    x, y = _data(steps, FLAGS.batch_size)

    def fit(callbacks=()):
        model.fit(x, y, batch_size=FLAGS.batch_size, epochs=1, verbose=0,
                  shuffle=False, callbacks=list(callbacks))

    fit(make_callbacks())  # Warm-up: traces (and XLA-compiles) the step.
    return lambda: _per_step(lambda: fit(make_callbacks()), steps)


def _rigl_runners(arch, jit, steps, update_every, repeats):
    """Timed runs of the static masked model and of the same with RiGL."""
    import keras_er
    from keras_er.research import models as models_lib

    static = _keras3_runner(arch, "masked", jit, steps)
    model = _sparsify(getattr(models_lib, arch)())
    _compile(model, jit)
    x, y = _data(steps, FLAGS.batch_size)
    batch = (x[:FLAGS.batch_size], y[:FLAGS.batch_size])
    # One callback for all runs, as in one long training: its schedule spans
    # them all, and a constant drop fraction keeps every update equally big.
    rigl = keras_er.callbacks.RiGL(
        update_every=update_every, drop_fraction=0.3,
        schedule="constant", end_fraction=1.0,
        total_steps=(repeats + 1) * steps, data=batch, seed=0,
    )

    def fit():
        model.fit(x, y, batch_size=FLAGS.batch_size, epochs=1, verbose=0,
                  shuffle=False, callbacks=[rigl])

    fit()  # Warm-up, with the first mask update(s).
    updates = len(rigl.updates)
    return {
        "static": static,
        "rigl": lambda: _per_step(fit, steps),
    }, f"{updates} mask update(s) per run of {steps} steps"


# ----------------------------------------------------------------- timing


def _interleave(runners, repeats):
    """Runs every runner ``repeats`` times, rotating the order each repeat.

    Returns {name: (wall list, cpu list)} of per-step seconds and
    {name: error} for the runners that failed.
    """
    times = {name: ([], []) for name in runners}
    errors = {}
    names = list(runners)
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            if name in errors:
                continue
            try:
                wall, cpu = runners[name]()
            except Exception as error:  # noqa: BLE001  (a row note)
                errors[name] = _short(error)
                continue
            times[name][0].append(wall)
            times[name][1].append(cpu)
    return times, errors


def _ratio_row(group, label, times, numerator, denominator, goal, **extra):
    """A table row for numerator / denominator from interleaved timings."""
    (num_wall, num_cpu), (den_wall, den_cpu) = (
        times[numerator], times[denominator]
    )
    wall = core_perf._paired_ratio(num_wall, den_wall)
    cpu = core_perf._paired_ratio(num_cpu, den_cpu)
    return dict(
        group=group, row=label, wall=wall, cpu=cpu,
        wall_spread=core_perf._spread(num_wall, den_wall),
        cpu_spread=core_perf._spread(num_cpu, den_cpu),
        num_ms=1e3 * core_perf._median(num_cpu),
        den_ms=1e3 * core_perf._median(den_cpu),
        goal=goal,
        verdict=(
            core_perf._verdict(wall, cpu, goal) if goal is not None
            else "report"
        ),
        repeats=len(num_wall), **extra,
    )


def _skipped(group, label, reason, **extra):
    return dict(group=group, row=label, skipped=reason, **extra)


def _xla_modes():
    if _is_jax():
        return [True]  # JAX always compiles the train step with XLA.
    return {"off": [False], "on": [True], "both": [False, True]}[FLAGS.xla]


def _jax_skips(groups, arch):
    """Rows that cannot run on JAX, with the reason."""
    if not _is_jax():
        return []
    rows = []
    if FLAGS.xla in ("off", "both"):
        rows.append(_skipped(
            "all", "XLA off rows", "JAX compiles every train step with XLA",
            arch=arch, xla="off",
        ))
    if "tfmot" in groups:
        rows.append(_skipped(
            "tfmot", "keras_er / tfmot",
            "tfmot runs on TensorFlow / Keras 2 only (the ratio would "
            "compare two backends)", arch=arch,
        ))
    return rows


def run_train_steps(groups, arch, jit, steps, repeats, worker):
    """Times every variant the selected rows need, for one arch and mode."""
    step_rows = [
        row for row in STEP_ROWS
        if row[0] in groups and not (row[0] == "tfmot" and _is_jax())
    ]
    needed = []
    for _, _, numerator, denominator, _ in step_rows:
        needed += [v for v in (numerator, denominator) if v not in needed]
    runners, failed = {}, {}
    for variant in needed:
        if variant in WORKER_VARIANTS:
            config = dict(
                arch=arch, variant=variant, xla=jit, steps=steps,
                batch_size=FLAGS.batch_size, sparsity=1 - FLAGS.density,
                steps_per_execution=FLAGS.steps_per_execution,
            )
            runners[variant] = _worker_runner(worker, config)
            continue
        try:
            runners[variant] = _keras3_runner(arch, variant, jit, steps)
        except Exception as error:  # noqa: BLE001  (a row note)
            failed[variant] = _short(error)
    times, errors = _interleave(runners, repeats)
    failed.update(errors)
    where = dict(arch=arch, xla="on" if jit else "off")
    rows = []
    for group, label, numerator, denominator, goal in step_rows:
        broken = [v for v in (numerator, denominator) if v in failed]
        if broken:
            rows.append(_skipped(
                group, label, f"{broken[0]}: {failed[broken[0]]}", **where
            ))
            continue
        note = ""
        if "tfmot" in (numerator, denominator):
            note = f"tfmot mask sparsity {worker.last_sparsity:.3f}"
        rows.append(_ratio_row(
            group, label, times, numerator, denominator, goal, note=note,
            **where,
        ))
        if label == "masked / dense" and not jit:
            rows.append(mask_op_row(arch, times))
        if label == "keras_er / tfmot":
            rows.append(overhead_row(times, **where))
            if not jit and arch == "lenet300_100":
                rows.append(sparse_compute_row(arch))
    return rows


def overhead_row(times, **where):
    """Each library's cost over its own framework's dense step, compared.

    ``(keras_er / Keras 3 dense) / (tfmot / tf_keras dense)``, per repeat:
    below 1 when keras_er adds less to a Keras 3 step than tfmot adds to a
    tf_keras step. Unlike keras_er / tfmot, it leaves out the difference
    between the two frameworks' own dense steps.
    """
    overheads = {}
    for name, (library, dense) in {
        "keras_er": ("masked", "dense"), "tfmot": ("tfmot", "tf_keras_dense")
    }.items():
        overheads[name] = tuple(
            [a / b for a, b in zip(times[library][i], times[dense][i])]
            for i in (0, 1)
        )
    row = _ratio_row(
        "tfmot", "overhead: keras_er / tfmot", overheads, "keras_er",
        "tfmot", None, **where,
    )
    row["ms_text"] = "-"
    row["note"] = (
        f"keras_er {core_perf._median(overheads['keras_er'][1]):.3f}x its "
        f"dense step, tfmot {core_perf._median(overheads['tfmot'][1]):.3f}x"
    )
    return row


def _worker_runner(worker, config):
    """A runner for a variant that lives in the Keras 2 worker."""

    def run():
        answer = worker.run(config)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        if "sparsity" in answer:
            worker.last_sparsity = answer["sparsity"]
        return answer["wall"], answer["cpu"]

    answer = worker.run(config)  # Warm-up (and the first error, if any).
    if "error" in answer:
        # Raised by every call: the variant's rows become skipped rows.
        def failing():
            raise RuntimeError(answer["error"])

        return failing
    return run


def run_rigl(arch, jit, steps, update_every, repeats):
    where = dict(arch=arch, xla="on" if jit else "off")
    label = "RiGL / static"
    if update_every % FLAGS.steps_per_execution:
        return [_skipped(
            "rigl", label, "--rigl_update_every must be a multiple of "
            "--steps_per_execution (RiGL runs between executions)", **where,
        )]
    try:
        runners, note = _rigl_runners(
            arch, jit, steps, update_every, repeats
        )
    except Exception as error:  # noqa: BLE001
        return [_skipped("rigl", label, _short(error), **where)]
    times, errors = _interleave(runners, repeats)
    if errors:
        name, reason = next(iter(errors.items()))
        return [_skipped("rigl", label, f"{name}: {reason}", **where)]
    return [_ratio_row(
        "rigl", label, times, "rigl", "static", RIGL_GOAL, note=note,
        **where,
    )]


def run_clone(repeats):
    label = "sparsify / clone_model"
    params, variants, wall, cpu, _ = core_perf.run_clone(
        repeats, breakdown=False
    )
    times = {name: (wall[name], cpu[name]) for name, _ in variants}
    clone, copy, sparse = (name for name, _ in variants)
    return [
        _ratio_row("clone", label, times, sparse, clone, CLONE_GOAL,
                   arch=f"ResNet50 {params / 1e6:.1f}M"),
        _ratio_row("clone", "sparsify / (clone_model + set_weights)", times,
                   sparse, copy,
                   None, arch=f"ResNet50 {params / 1e6:.1f}M"),
    ]


def _nbytes(variable):
    import keras
    import numpy as np

    dtype = np.dtype(keras.backend.standardize_dtype(variable.dtype))
    return int(np.prod(variable.shape)) * dtype.itemsize


def run_mask_bytes(arch):
    """Mask bytes / kernel bytes, summed over the ER layers, per mask dtype."""
    import keras_er
    from keras_er.mask_io import er_layers
    from keras_er.research import models as models_lib

    rows = []
    for dtype in keras_er.masks.MASK_DTYPES:  # The default first.
        label = f"mask bytes / kernel bytes [{dtype}]"
        model = _sparsify(getattr(models_lib, arch)(), mask_dtype=dtype)
        layers = er_layers(model)
        masks = sum(_nbytes(layer.mask) for layer in layers)
        kernels = sum(_nbytes(layer._kernel) for layer in layers)
        ratio = masks / kernels
        rows.append(dict(
            group="memory", row=label, arch=arch, wall=ratio, cpu=None,
            goal=MASK_BYTES_GOAL,
            verdict="met" if ratio <= MASK_BYTES_GOAL else "MISSED",
            note=f"{masks / 1e6:.2f} MB of masks for {kernels / 1e6:.2f} MB "
                 "of kernels",
        ))
    return rows


def _min_cpu_seconds(run, repeats):
    """Least CPU time of ``run()`` over ``repeats`` calls, after a first
    (tracing) call: the least disturbed by other processes."""
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def _mask_op_seconds(arch, loops=200, repeats=15):
    """CPU seconds per step of the mask work a masked train step adds.

    TensorFlow graph ops, XLA off: for every ER layer of the sparsified
    ``arch``, the forward ``kernel * cast(mask)``, its gradient
    ``grad * cast(mask)`` and the after-update projection
    ``kernel.assign(kernel * cast(mask))`` (run after every update, see
    docs/layers.md). Timed alone in a `tf.function` loop, minus the same
    loop without them; the minimum over repeats, the least disturbed by
    other processes. Far less noisy than a ratio of two whole steps.
    """
    import numpy as np
    import tensorflow as tf

    import keras_er
    from keras import ops
    from keras_er.research import models as models_lib

    layers = keras_er.er_layers(_sparsify(getattr(models_lib, arch)()))
    rng = np.random.default_rng(0)
    # Variables, not constants: the work must not be constant-folded.
    kernels = [tf.Variable(ops.convert_to_numpy(l._kernel)) for l in layers]
    masks = [tf.Variable(ops.convert_to_numpy(l.mask)) for l in layers]
    grads = [
        tf.Variable(rng.normal(size=k.shape).astype("float32"))
        for k in kernels
    ]

    def loop(with_masks):
        @tf.function
        def run():
            total = tf.constant(0.0)
            for _ in tf.range(loops):
                outs = []
                for kernel, mask, grad in zip(kernels, masks, grads):
                    if with_masks:
                        mask = tf.cast(mask, kernel.dtype)
                        outs += [kernel * mask, grad * mask]
                        kernel.assign(kernel * mask)  # The projection.
                    else:
                        outs += [kernel.read_value(), grad.read_value()]
                # One entry of each keeps the ops alive, at no real cost.
                total += tf.add_n([tf.reshape(o, [-1])[0] for o in outs])
            return total

        return _min_cpu_seconds(run, repeats) / loops

    return max(loop(True) - loop(False), 0.0)


def mask_op_row(arch, times):
    """masked / dense estimated from the isolated mask work.

    TensorFlow with XLA off only: on JAX every step is XLA-compiled, and
    this row is not made.
    """
    label = "masked / dense, op-level estimate"
    extra = _mask_op_seconds(arch)
    dense = core_perf._median(times["dense"][1])
    ratio = 1.0 + extra / dense
    return dict(
        group="masked", row=label, arch=arch, xla="off", wall=ratio,
        cpu=None, goal=MASKED_GOAL,
        verdict="met" if ratio <= MASKED_GOAL else "MISSED",
        note=f"{1e6 * extra:.0f} us of mask ops per step, dense step "
             f"{1e3 * dense:.2f} ms cpu",
    )


def _raw_step_seconds(arch, sparse, loops=50, repeats=15):
    """CPU seconds of one raw TensorFlow train step of a Dense-only arch.

    Forward, backward and an SGD update of the sparsified ``arch``'s ER
    kernels (ReLU between layers, softmax cross-entropy), no Keras: either
    dense matmuls with ``kernel * mask`` (what keras_er runs) or
    ``tf.sparse.sparse_dense_matmul`` of the batch with a `tf.SparseTensor`
    of the kernel's values at the mask's nonzeros (what a sparse-compute
    layer would run; its kernel gradient exists only at the nonzeros). The
    minimum over repeats of a `tf.function` loop.
    """
    import numpy as np
    import tensorflow as tf

    import keras_er
    from keras import ops
    from keras_er.research import models as models_lib

    layers = keras_er.er_layers(_sparsify(getattr(models_lib, arch)()))
    kernels = [tf.Variable(ops.convert_to_numpy(l._kernel)) for l in layers]
    masks = [
        tf.constant(ops.convert_to_numpy(l.mask).astype("float32"))
        for l in layers
    ]
    nonzeros = [tf.constant(np.argwhere(m.numpy() > 0)) for m in masks]
    x, y = _data(1, FLAGS.batch_size)
    x = tf.constant(x.reshape(FLAGS.batch_size, -1))
    y = tf.constant(y)

    def matmul(h, kernel, mask, where):
        if not sparse:
            return h @ (kernel * mask)
        values = tf.gather_nd(kernel, where)
        weights = tf.SparseTensor(where, values, kernel.shape)
        return tf.sparse.sparse_dense_matmul(h, weights)

    @tf.function
    def run():
        for _ in tf.range(loops):
            with tf.GradientTape() as tape:
                h = x
                for i, args in enumerate(zip(kernels, masks, nonzeros)):
                    h = matmul(h, *args)
                    if i < len(kernels) - 1:
                        h = tf.nn.relu(h)
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(y, h)
                )
            for kernel, grad in zip(kernels, tape.gradient(loss, kernels)):
                kernel.assign_sub(0.01 * tf.convert_to_tensor(grad))

    return _min_cpu_seconds(run, repeats) / loops


def sparse_compute_row(arch):
    """Raw TF step with sparse matmuls / the same step with masked kernels.

    Reported with the tfmot rows: keras_er / tfmot <= 0.8 would need
    keras_er's step well below a masked dense step, and skipping the zeros
    (sparse compute) is the only way to that.
    """
    masked = _raw_step_seconds(arch, sparse=False)
    sparse = _raw_step_seconds(arch, sparse=True)
    return dict(
        group="tfmot", row="raw TF step: tf.sparse / masked dense", arch=arch,
        xla="off", wall=sparse / masked, cpu=None, goal=None,
        verdict="report",
        note=f"{1e3 * sparse:.2f} / {1e3 * masked:.2f} ms cpu per step, "
             "SGD on the kernels, no Keras",
    )


# ----------------------------------------------------------------- output


def print_table(rows):
    header = (
        f"{'group':<10}{'row':<40}{'arch':<14}{'XLA':<5}"
        f"{'wall [q1, q3]':<22}{'cpu [q1, q3]':<22}{'cpu ms A/B':<15}"
        f"{'goal':<7}verdict"
    )
    print("\n" + header)
    print("-" * len(header))
    for row in rows:
        start = (
            f"{row['group']:<10}{row['row'][:39]:<40}"
            f"{row.get('arch', ''):<14}{row.get('xla', ''):<5}"
        )
        if "skipped" in row:
            print(f"{start}skipped: {row['skipped']}")
            continue
        if row["cpu"] is None:  # A ratio of sizes, not of times.
            wall, cpu, ms = f"{row['wall']:.3f}", "", ""
        else:
            wall, cpu = row["wall_spread"], row["cpu_spread"]
            ms = row.get("ms_text") or (
                f"{row['num_ms']:.2f}/{row['den_ms']:.2f}"
            )
        goal = f"<={row['goal']}" if row["goal"] is not None else ""
        note = f"  ({row['note']})" if row.get("note") else ""
        print(
            f"{start}{wall:<22}{cpu:<22}{ms:<15}{goal:<7}"
            f"{row['verdict']}{note}"
        )


def machine_info(worker):
    import keras
    import numpy as np

    import keras_er

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
        "keras_er": f"{keras_er.__version__} from "
                    f"{core_perf._source_of(keras_er)}",
        "command": "python " + " ".join(sys.argv),
    }
    for name in ("tensorflow", "jax"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    if worker is not None:
        info["tfmot_worker"] = worker.error or worker.versions
    return info


# ------------------------------------------------------------------- main


def _settings():
    if FLAGS.quick:
        return dict(repeats=3, steps=10, lenet_steps=10, rigl_steps=20,
                    rigl_update_every=10, clone_repeats=1)
    return dict(
        repeats=FLAGS.train_repeats, steps=FLAGS.steps,
        lenet_steps=FLAGS.lenet_steps,
        rigl_steps=FLAGS.rigl_steps,
        rigl_update_every=FLAGS.rigl_update_every,
        clone_repeats=FLAGS.clone_repeats,
    )


def main(argv):
    del argv
    if FLAGS.worker == "tfmot":
        worker_main()  # Never imports Keras 3 nor keras_er.
        return
    groups = set(FLAGS.only)
    if groups - set(GROUPS):
        raise app.UsageError(f"Unknown --only {sorted(groups - set(GROUPS))}.")
    if set(FLAGS.archs) - set(ARCHS):
        raise app.UsageError(f"Unknown --archs {FLAGS.archs}.")
    import logging

    import keras

    # sparsify logs one INFO line per call; keep the table readable.
    logging.getLogger("keras_er").setLevel(logging.WARNING)
    keras.utils.set_random_seed(0)
    settings = _settings()
    start = time.perf_counter()
    worker = None
    if "tfmot" in groups and not _is_jax():
        worker = Keras2Worker()
    rows = []
    try:
        step_groups = groups & {"masked", "tfmot", "edgepopup", "memory"}
        for arch in FLAGS.archs:
            if "memory" in groups:
                rows += run_mask_bytes(arch)
            rows += _jax_skips(groups, arch)
            for jit in _xla_modes():
                if step_groups:
                    steps = settings[
                        "lenet_steps" if arch == "lenet300_100" else "steps"
                    ]
                    rows += run_train_steps(
                        step_groups, arch, jit, steps,
                        settings["repeats"], worker,
                    )
                if "rigl" in groups:
                    rows += run_rigl(
                        arch, jit, settings["rigl_steps"],
                        settings["rigl_update_every"], settings["repeats"],
                    )
        if "clone" in groups:
            rows += run_clone(settings["clone_repeats"])
    finally:
        if worker is not None:
            worker.close()
    print(
        f"\nRatios A/B: median of per-repeat ratios over "
        f"{settings['repeats']} interleaved repeats (clone: "
        f"{settings['clone_repeats']}); train steps: fit over "
        f"{settings['steps']} steps (LeNet-300-100: {settings['lenet_steps']}; "
        f"RiGL: {settings['rigl_steps']}, an update "
        f"every {settings['rigl_update_every']}), "
        f"batch {FLAGS.batch_size}, Adam, steps_per_execution "
        f"{FLAGS.steps_per_execution}; masks {FLAGS.ratio!r} density "
        f"{FLAGS.density}. 'cpu ms A/B': median CPU ms per step."
    )
    print_table(rows)
    info = machine_info(worker)
    info["seconds"] = round(time.perf_counter() - start, 1)
    print()
    for key, value in info.items():
        print(f"{key + ':':<14}{value}")
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as file:
            json.dump({"settings": settings, "machine": info, "rows": rows},
                      file, indent=1)
        print(f"results written to {FLAGS.json_out}")


if __name__ == "__main__":
    app.run(main)
