r"""Speed of the keras_er core: `sparsify` and the masked train step.

Two measurements, printed as one table:

(a) Cloning ResNet50 (`keras.applications.ResNet50(weights=None)`, 25.6M
    parameters, 53 Conv2D + 1 Dense): `keras_er.sparsify(model, "erk", 0.1)`
    against `keras.models.clone_model(model)` (which does NOT copy weights)
    and against `clone_model` + `set_weights` (which does, like sparsify).
    Goal: sparsify / clone_model <= 2.0. A per-phase breakdown of one
    sparsify call shows where its time goes.

(b) The train step of LeNet-300-100 (Flatten -> Dense 300 relu -> Dense 100
    relu -> Dense 10) on MNIST-shaped random data, batch 128: the model
    sparsified at density 0.1 against the dense one, with XLA off and on.
    Goal: masked / dense <= 1.05.

The machine is small and shared, so every figure is a median over repeats,
the runs being compared are interleaved (A B A B ...) so that they see the
same load, and each ratio is the median of the per-repeat ratios. CPU time
(all threads of this process) is printed next to wall time: it is less
sensitive to other processes on the machine.

Usage, from the repository root:

    python benchmarks/core_perf.py            # full run, a few minutes
    python benchmarks/core_perf.py --quick    # smoke run, < 60 s
    python benchmarks/core_perf.py --nobreakdown --xla=off --train_repeats=5
"""

import contextlib
import gc
import logging
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_bool(
    "quick", False,
    "Smoke run (< 60 s): 1 clone repeat, 3 train repeats of 20 steps. "
    "Overrides the repeat and step flags.",
)
flags.DEFINE_integer(
    "clone_repeats", 7, "Timed repeats of each clone variant.", lower_bound=1
)
flags.DEFINE_integer(
    "train_repeats", 15,
    "Timed runs per model, XLA mode and method.", lower_bound=1,
)
flags.DEFINE_integer(
    "steps", 100, "Train steps in each timed run.", lower_bound=1
)
flags.DEFINE_integer("batch_size", 128, "Train batch size.", lower_bound=1)
flags.DEFINE_float("density", 0.1, "Overall density passed to sparsify.")
flags.DEFINE_string("ratio", "erk", "Layerwise ratio passed to sparsify.")
flags.DEFINE_enum(
    "xla", "both", ["off", "on", "both"], "jit_compile for the train step."
)
flags.DEFINE_list(
    "method", ["fit", "train_on_batch", "graph"],
    "How train steps are timed (comma list). fit: one `fit` over --steps "
    "batches (what a user sees; fit's fixed per-call cost is spread over "
    "the steps). train_on_batch: --steps calls on ready tensors (the step "
    "plus a Python round trip each). graph: one `fit` with "
    "steps_per_execution=--steps, so all steps run inside one tf.function "
    "call: the step's own cost, where the mask's extra ops weigh most.",
)
flags.DEFINE_bool("clone", True, "Run part (a), the ResNet50 clone.")
flags.DEFINE_bool("train", True, "Run part (b), the LeNet train step.")
flags.DEFINE_bool(
    "breakdown", True, "Time the phases of one sparsify call (part a)."
)

CLONE_GOAL = 2.0
TRAIN_GOAL = 1.05


def _cpu():
    # Process CPU time: the sum over TF's worker threads too.
    return time.process_time()


def _timed(fn):
    """Runs ``fn()`` and returns (result, wall seconds, CPU seconds)."""
    gc.collect()  # Do not bill the previous model's teardown to this run.
    wall, cpu = time.perf_counter(), _cpu()
    result = fn()
    return result, time.perf_counter() - wall, _cpu() - cpu


def _median(values):
    return statistics.median(values) if values else float("nan")


def _paired_ratio(numerators, denominators):
    # Median of per-repeat ratios: a slow spell of the machine hits both
    # halves of a pair, so it mostly cancels.
    return _median([n / d for n, d in zip(numerators, denominators)])


def _verdict(wall_ratio, cpu_ratio, goal):
    # Both: on a busy machine wall time swings with the other processes.
    return ", ".join(
        f"{kind} {'met' if ratio <= goal else 'MISSED'}"
        for kind, ratio in (("wall", wall_ratio), ("cpu", cpu_ratio))
    )


def _spread(numerators, denominators):
    """'median [q1, q3]' of the per-repeat ratios: the noise, at a glance."""
    ratios = sorted(n / d for n, d in zip(numerators, denominators))
    if len(ratios) < 4:
        return f"{_median(ratios):.3f}"
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f"{_median(ratios):.3f} [{q1:.2f}, {q3:.2f}]"


# ---------------------------------------------------------------- part (a)


@contextlib.contextmanager
def _phase_timers():
    """Wraps sparsify's steps with timers; yields the dict they fill.

    Instrumentation only (restored on exit): the library is unchanged. Each
    wrapper adds ~1 us per call, over ~300 calls.
    """
    import keras
    import keras_er.masks
    from keras_er.layers.masked_kernel import MaskedKernelMixin

    sparsify_module = sys.modules["keras_er.sparsify"]
    totals = {}

    def wrap(fn, key):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[key] = (
                    totals.get(key, 0.0) + time.perf_counter() - start
                )

        return wrapper

    patches = [
        (sparsify_module, "layer_densities", "densities"),
        (keras_er.masks, "draw_masks", "draw_masks"),
        (sparsify_module, "clone_layerwise", "clone_layerwise"),
        (keras.models, "clone_model", "clone_model"),
        (MaskedKernelMixin, "_build_mask", "build_mask"),
    ]
    # A step the library no longer has is skipped (its row reads 0).
    patches = [p for p in patches if p[1] in vars(p[0])]
    saved = [(owner, name, vars(owner)[name]) for owner, name, _ in patches]
    try:
        for owner, name, key in patches:
            setattr(owner, name, wrap(getattr(owner, name), key))
        yield totals
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def run_clone(repeats, breakdown):
    import keras

    import keras_er

    model = keras.applications.ResNet50(weights=None)
    params = model.count_params()

    def plain_clone():
        return keras.models.clone_model(model)

    def clone_and_copy():
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        return clone

    def sparsify():
        return keras_er.sparsify(
            model, FLAGS.ratio, FLAGS.density, seed=0
        )

    variants = [
        ("clone_model", plain_clone),
        ("clone_model + set_weights", clone_and_copy),
        (f"sparsify({FLAGS.ratio!r}, {FLAGS.density})", sparsify),
    ]
    # Warm-up: the first call of each traces ops and fills caches.
    for _, fn in variants:
        fn()
    wall = {name: [] for name, _ in variants}
    cpu = {name: [] for name, _ in variants}
    for repeat in range(repeats):
        # Rotate the order so no variant always runs right after another.
        order = variants[repeat % 3:] + variants[:repeat % 3]
        for name, fn in order:
            result, w, c = _timed(fn)
            del result
            wall[name].append(w)
            cpu[name].append(c)

    phases = None
    if breakdown:
        gc.collect()
        with _phase_timers() as totals:
            _, total, _ = _timed(sparsify)
        phases = dict(totals, total=total)
    return params, variants, wall, cpu, phases


def print_clone(params, variants, wall, cpu, phases, repeats):
    base = variants[0][0]
    copy = variants[1][0]
    sparse = variants[2][0]
    print(
        f"\n(a) ResNet50(weights=None), {params / 1e6:.1f}M params; median "
        f"of {repeats} interleaved repeats"
    )
    print(
        f"  {'variant':<28}{'wall s':>8}{'cpu s':>8}  "
        f"{'/clone wall [q1, q3]':<22}{'/clone cpu [q1, q3]'}"
    )
    for name, _ in variants:
        print(
            f"  {name:<28}{_median(wall[name]):>8.3f}"
            f"{_median(cpu[name]):>8.3f}  "
            f"{_spread(wall[name], wall[base]):<22}"
            f"{_spread(cpu[name], cpu[base])}"
        )
    ratio = _paired_ratio(wall[sparse], wall[base])
    cpu_ratio = _paired_ratio(cpu[sparse], cpu[base])
    print(
        f"  sparsify / clone_model = {ratio:.2f} wall, {cpu_ratio:.2f} cpu "
        f"(goal <= {CLONE_GOAL}: {_verdict(ratio, cpu_ratio, CLONE_GOAL)}); "
        f"sparsify / (clone_model + set_weights) = "
        f"{_paired_ratio(wall[sparse], wall[copy]):.2f} wall, "
        f"{_paired_ratio(cpu[sparse], cpu[copy]):.2f} cpu"
    )
    if phases is None:
        return
    clone_total = phases.get("clone_model", 0.0)
    copy_total = phases.get("clone_layerwise", 0.0) - clone_total
    rows = [
        ("layer_densities", phases.get("densities", 0.0)),
        ("draw_masks (numpy, + flow)", phases.get("draw_masks", 0.0)),
        ("clone_model with ER layers", clone_total),
        # Kernels are created masked (no apply_mask pass, no copy).
        ("  of which mask variables", phases.get("build_mask", 0.0)),
        ("copy weights (not built from values)", copy_total),
    ]
    known = sum(value for name, value in rows if not name.startswith(" "))
    rows.append(("other", phases["total"] - known))
    print(f"  one sparsify call, {phases['total']:.3f} s wall, by phase:")
    for name, value in rows:
        print(
            f"    {name:<40}{value:>8.3f} s"
            f"{100 * value / phases['total']:>6.0f} %"
        )


# ---------------------------------------------------------------- part (b)


def lenet300_100():
    import keras

    return keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="lenet300_100",
    )


def run_train(repeats, steps, batch_size, xla_modes, methods):
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_er

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((steps * batch_size, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, steps * batch_size)
    # train_on_batch gets ready tensors so that no numpy conversion is timed.
    batches = [
        (tf.constant(x[i:i + batch_size]), tf.constant(y[i:i + batch_size]))
        for i in range(0, len(x), batch_size)
    ]

    def fit(model):
        model.fit(
            x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False
        )

    def train_on_batch(model):
        for xb, yb in batches:
            model.train_on_batch(xb, yb)

    runners = {"fit": fit, "train_on_batch": train_on_batch, "graph": fit}
    dense = lenet300_100()
    masked = keras_er.sparsify(dense, FLAGS.ratio, FLAGS.density, seed=0)
    models = [("dense", dense), ("masked", masked)]
    results = {}
    for jit in xla_modes:
        for method in methods:
            for _, model in models:
                # Same optimizer for both: the masked model's extra work is
                # kernel*mask in the forward pass (and in the gradient) and
                # the kernel constraint (read, multiply, assign) per update.
                model.compile(
                    optimizer=keras.optimizers.Adam(1e-3),
                    loss=keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True
                    ),
                    jit_compile=jit,
                    steps_per_execution=steps if method == "graph" else 1,
                )
                # Warm-up: trace (and XLA-compile) the train function.
                runners[method](model)
            run = runners[method]
            wall = {name: [] for name, _ in models}
            cpu = {name: [] for name, _ in models}
            for repeat in range(repeats):
                order = models if repeat % 2 == 0 else models[::-1]
                for name, model in order:
                    _, w, c = _timed(lambda: run(model))
                    wall[name].append(w / steps)
                    cpu[name].append(c / steps)
            results[jit, method] = (wall, cpu)
    return results, _extra_ops(models, batches[0])


def _extra_ops(models, batch):
    """Op types the masked train step has beyond the dense one.

    Deterministic, unlike the timings: it says what the mask costs per step
    (each op is a pass over a kernel-sized buffer plus executor overhead).
    """
    import collections

    import tensorflow as tf

    counts = {}
    for name, model in models:
        graph = (
            tf.function(model.train_step).get_concrete_function(batch).graph
        )
        counts[name] = collections.Counter(
            op.type for op in graph.get_operations()
        )
    extra = counts["masked"] - counts["dense"]
    return sum(counts["dense"].values()), sum(counts["masked"].values()), extra


def print_train(results, extra_ops, repeats, steps, batch_size):
    print(
        f"\n(b) LeNet-300-100 train step (Adam, batch {batch_size}, "
        f"{steps} steps per timing), median of {repeats} interleaved repeats"
    )
    print(
        f"  {'XLA':<5}{'timed via':<16}{'model':<8}{'wall ms':>9}"
        f"{'cpu ms':>8}  {'/dense wall [q1, q3]':<22}{'/dense cpu [q1, q3]'}"
    )
    for (jit, method), (wall, cpu) in results.items():
        for name in ("dense", "masked"):
            print(
                f"  {'on' if jit else 'off':<5}{method:<16}{name:<8}"
                f"{1e3 * _median(wall[name]):>9.3f}"
                f"{1e3 * _median(cpu[name]):>8.3f}  "
                f"{_spread(wall[name], wall['dense']):<22}"
                f"{_spread(cpu[name], cpu['dense'])}"
            )
    for (jit, method), (wall, cpu) in results.items():
        ratio = _paired_ratio(wall["masked"], wall["dense"])
        cpu_ratio = _paired_ratio(cpu["masked"], cpu["dense"])
        print(
            f"  XLA {'on' if jit else 'off'}, {method}: masked / dense = "
            f"{ratio:.3f} wall, {cpu_ratio:.3f} cpu (goal <= {TRAIN_GOAL}: "
            f"{_verdict(ratio, cpu_ratio, TRAIN_GOAL)})"
        )
    dense_ops, masked_ops, extra = extra_ops
    print(
        f"  ops in one train step graph: dense {dense_ops}, masked "
        f"{masked_ops}; extra: "
        + ", ".join(f"{count} {op}" for op, count in sorted(extra.items()))
    )


# --------------------------------------------------------------------- main


def _source_of(module):
    """Where ``module`` was imported from, with its git commit if any.

    The figures belong to one version of the library: say which.
    """
    import subprocess

    folder = os.path.dirname(os.path.dirname(os.path.abspath(module.__file__)))
    try:
        commit = subprocess.run(
            ["git", "-C", folder, "describe", "--always", "--dirty"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return folder
    return f"{folder} (git {commit})"


def main(argv):
    del argv
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_er

    if FLAGS.quick:
        clone_repeats, train_repeats, steps = 1, 3, 20
    else:
        clone_repeats, train_repeats = FLAGS.clone_repeats, FLAGS.train_repeats
        steps = FLAGS.steps
    xla_modes = {"off": [False], "on": [True], "both": [False, True]}[
        FLAGS.xla
    ]
    # sparsify logs one INFO line per call; keep the table readable.
    logging.getLogger("keras_er").setLevel(logging.WARNING)
    start = time.perf_counter()
    print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"tensorflow {tf.__version__}, numpy {np.__version__}, python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}"
    )
    print(f"keras_er {keras_er.__version__} from {_source_of(keras_er)}")
    print(f"command: python {' '.join(sys.argv)}")
    if FLAGS.clone:
        print_clone(
            *run_clone(clone_repeats, FLAGS.breakdown), clone_repeats
        )
    if FLAGS.train:
        methods = FLAGS.method
        unknown = set(methods) - {"fit", "train_on_batch", "graph"}
        if unknown:
            raise app.UsageError(f"Unknown --method {sorted(unknown)}.")
        results, extra_ops = run_train(
            train_repeats, steps, FLAGS.batch_size, xla_modes, methods
        )
        print_train(
            results, extra_ops, train_repeats, steps, FLAGS.batch_size
        )
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    app.run(main)
