r"""Interleaved A/B of the masked train step's cost, TensorFlow, XLA off.

A focused companion of `perf.py --only=masked` (docs/performance.md,
"Always-on projection"): the traced train function of LeNet-300-100 (or
conv_small) is called directly, ``--steps`` times per timing, so `fit`'s
per-step Python work is left out, and variants are interleaved (the order
rotating every repeat) so that they see the same machine load. Prints the
median process CPU time per step and the median of per-repeat ratios to the
first variant, with quartiles.

Variants:

  dense           the plain Keras model.
  masked          `keras_er.sparsify(model, "erk", 0.1)`, as shipped.
  masked_float32  masked with `mask_dtype="float32"`: no bool -> float cast
                  of the mask, at 4 bytes per kernel entry instead of 1.
  masked_noproj   masked without the after-update projection: NOT correct
                  (entries outside the mask may move), a reference only.

Usage, from the repository root:

    python benchmarks/projection_ab.py
    python benchmarks/projection_ab.py --variants=dense,masked --repeats=20
    python benchmarks/projection_ab.py --threads=1   # one TF thread
"""

import argparse
import gc
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = ("dense", "masked", "masked_float32", "masked_noproj")


def build(arch, variant, steps, batch_size):
    """Compiles and warms up a variant; returns its timed run."""
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_er
    from keras_er.research import models as models_lib

    model = getattr(models_lib, arch)()
    if variant != "dense":
        mask_dtype = "float32" if variant == "masked_float32" else "bool"
        model = keras_er.sparsify(model, "erk", 0.1, seed=0,
                                  mask_dtype=mask_dtype)
        if variant == "masked_noproj":
            for layer in keras_er.er_layers(model):
                layer._kernel.constraint = None
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    rng = np.random.default_rng(0)
    x = rng.random((steps * batch_size, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, steps * batch_size)
    model.fit(x[:4 * batch_size], y[:4 * batch_size], batch_size=batch_size,
              verbose=0, shuffle=False)  # Traces the train function.
    iterator = iter(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).repeat()
    )
    train_function = model.train_function
    for _ in range(5):
        train_function(iterator)

    def run():
        for _ in range(steps):
            train_function(iterator)
        model.optimizer.iterations.numpy()  # Waits for the last step.

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="lenet300_100",
                        choices=["lenet300_100", "conv_small"])
    parser.add_argument("--variants", default="dense,masked,masked_noproj")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0,
                        help="TF intra- and inter-op threads (0: default).")
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    import logging

    import keras
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    logging.getLogger("keras_er").setLevel(logging.WARNING)
    keras.utils.set_random_seed(0)
    load_before = os.getloadavg()
    runs = {
        v: build(args.arch, v, args.steps, args.batch_size) for v in variants
    }
    cpu = {v: [] for v in variants}
    for repeat in range(args.repeats):
        shift = repeat % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            gc.collect()
            start = time.process_time()
            runs[variant]()
            cpu[variant].append((time.process_time() - start) / args.steps)
    base = variants[0]
    print(f"{args.arch}, TF, XLA off, Adam, batch {args.batch_size}, "
          f"{args.repeats} interleaved repeats of {args.steps} steps, "
          f"threads {args.threads or 'default'}; load average before "
          f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    for variant in variants:
        ratios = [a / b for a, b in zip(cpu[variant], cpu[base])]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        print(f"  {variant:<14} cpu {1e3 * statistics.median(cpu[variant]):6.2f}"
              f" ms/step   / {base}: {statistics.median(ratios):.3f} "
              f"[{q1:.3f}, {q3:.3f}]")


if __name__ == "__main__":
    main()
