r"""Cost of keras_er on big models: sparsify, loading, a RiGL update.

Issue 14's budget, measured side by side in one run on a Transformer built
from keras.layers (token embedding, ``--layers`` blocks of multi-head
attention and a 4x MLP, an output projection):

* ``sparsify`` time and peak host memory, against ``clone_model`` +
  ``set_weights(get_weights())`` (what copying a Keras model costs);
* loading the sparse ``.keras`` file with `keras_er.load_model` (the
  attention layers' inner projections are masked where they sit, which
  `keras.saving.load_model` alone cannot rebuild), against loading the
  dense one with `keras.saving.load_model`;
* one RiGL update (dense gradient, drop and grow on every kernel; the
  second one, the first also traces its operations), against 10 train
  steps, and the extra peak host memory of two updates per kernel entry
  (and, sampled every 2 ms, the resident memory growth of the second one
  alone: the first also compiles).

Each measurement runs in a fresh process (``--measure``), so peak memory
(``ru_maxrss``) is that operation's own: the row gives the time and the
growth of the peak over the process's state just before the operation. With
``--devices=8`` every process runs under `keras.distribution.DataParallel`
over 8 virtual CPU devices (JAX).

Usage, from the repository root (JAX backend unless KERAS_BACKEND is set):

    python benchmarks/scale.py                       # d_model 1024, 12 layers
    python benchmarks/scale.py --d_model=1536 --layers=24 --devices=8
    python benchmarks/scale.py --out=benchmarks/results/scale.jsonl

Prints one JSON line per measurement and a table.
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPERATIONS = ("clone", "sparsify", "load_dense", "load_sparse",
              "train_steps", "rigl_update")


def rss_mb():
    """The process's resident memory now (Linux)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """The highest resident memory seen every 2 ms while active: the
    transient memory of one operation, which the process's lifetime peak
    (`peak_mb`) hides once an earlier one (e.g. compiling) went higher."""

    def __enter__(self):
        import threading

        self.start_mb = self.max_mb = rss_mb()
        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(0.002):
                self.max_mb = max(self.max_mb, rss_mb())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.max_mb = max(self.max_mb, rss_mb())


def peak_mb():
    # Linux reports kilobytes.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(args):
    import keras

    keras.utils.set_random_seed(0)
    tokens = keras.Input((args.seq,), dtype="int32")
    x = keras.layers.Embedding(args.vocab, args.d_model)(tokens)
    heads = args.d_model // 64
    for i in range(args.layers):
        attention = keras.layers.MultiHeadAttention(
            heads, 64, name=f"block{i}_attention"
        )(x, x)
        x = keras.layers.LayerNormalization()(x + attention)
        hidden = keras.layers.Dense(
            4 * args.d_model, activation="gelu", name=f"block{i}_up"
        )(x)
        x = keras.layers.LayerNormalization()(
            x + keras.layers.Dense(args.d_model, name=f"block{i}_down")(hidden)
        )
    logits = keras.layers.Dense(args.vocab, name="logits")(x)
    return keras.Model(tokens, logits)


def distribute(args):
    if args.devices > 1:
        import jax
        import keras

        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=jax.devices())
        )


def batch(args):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.integers(0, args.vocab, size=(args.batch, args.seq))
    return x.astype("int32"), np.roll(x, -1, axis=1).astype("int32")


def compiled(model):
    import keras

    model.compile(
        keras.optimizers.SGD(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def measure(args):
    """One operation in this process; prints its JSON line."""
    distribute(args)
    import keras

    import keras_er

    files = args.files
    model = None
    if args.measure in ("clone", "sparsify", "train_steps", "rigl_update"):
        model = build(args)
    if args.measure == "rigl_update":
        model = keras_er.sparsify(model, "erk", args.density, seed=0)
    if args.measure in ("train_steps", "rigl_update"):
        compiled(model)
        x, y = batch(args)
        model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)  # Traced.
    first = None
    before = peak_mb()
    start = time.perf_counter()
    if args.measure == "clone":
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    elif args.measure == "sparsify":
        keras_er.sparsify(model, "erk", args.density, seed=0)
    elif args.measure == "load_dense":
        keras.saving.load_model(os.path.join(files, "dense.keras"))
    elif args.measure == "load_sparse":
        keras_er.load_model(os.path.join(files, "sparse.keras"))
    elif args.measure == "train_steps":
        for _ in range(10):
            model.train_on_batch(x, y)
    elif args.measure == "rigl_update":
        rigl = keras_er.callbacks.RiGL(
            update_every=1, drop_fraction=0.3, data=(x, y)
        )
        rigl.set_model(model)
        rigl.set_params({"epochs": 1, "steps": 100, "verbose": 0})
        rigl.on_train_begin()
        rigl.on_epoch_begin(0)
        rigl.on_train_batch_begin(0)  # Starts the schedule.
        before = peak_mb()
        start = time.perf_counter()
        rigl._update(1)  # The first update also traces its operations.
        first = time.perf_counter() - start
        start = time.perf_counter()  # The second update alone.
        with RssSampler() as sampler:
            rigl._update(2)
        second_growth = sampler.max_mb - sampler.start_mb
    seconds = time.perf_counter() - start
    entries = None
    if args.measure == "rigl_update":
        entries = sum(
            math.prod(layer.mask.shape) for layer in keras_er.er_layers(model)
        )
    print(json.dumps({
        "operation": args.measure, "seconds": round(seconds, 3),
        "first_seconds": None if first is None else round(first, 3),
        "peak_growth_mb": round(peak_mb() - before, 1),
        "second_update_rss_growth_mb": (
            round(second_growth, 1) if args.measure == "rigl_update"
            else None),
        "params": int(build_params(args)), "kernel_entries": entries,
        "devices": args.devices, "backend": keras.backend.backend(),
    }))


def build_params(args):
    d, v = args.d_model, args.vocab
    return args.layers * (12 * d * d + 13 * d) + 2 * v * d + v


def prepare_files(args, files):
    """The dense and the sparse .keras files the load rows read."""
    distribute(args)
    import keras_er

    model = build(args)
    model.save(os.path.join(files, "dense.keras"))
    keras_er.sparsify(model, "erk", args.density, seed=0).save(
        os.path.join(files, "sparse.keras")
    )


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--d_model", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--out", default=None, help="Append rows (jsonl).")
    parser.add_argument(
        "--operations", default=",".join(OPERATIONS),
        help="Comma-separated subset of " + ", ".join(OPERATIONS) + ".",
    )
    parser.add_argument("--measure", choices=OPERATIONS + ("prepare",),
                        help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch % args.devices:
        parser.error("--batch must be divisible by --devices")
    return args


def main():
    args = parse()
    if args.measure == "prepare":
        prepare_files(args, args.files)
        return
    if args.measure:
        measure(args)
        return
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "jax")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if args.devices > 1:
        env["XLA_FLAGS"] = (
            f"--xla_force_host_platform_device_count={args.devices}"
        )
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    passed = [a for a in sys.argv[1:] if not a.startswith("--out")]
    rows = []
    with tempfile.TemporaryDirectory() as files:
        subprocess.run(
            [sys.executable, __file__, *passed, "--measure=prepare",
             f"--files={files}"],
            env=env, check=True,
        )
        for operation in args.operations.split(","):
            result = subprocess.run(
                [sys.executable, __file__, *passed, f"--measure={operation}",
                 f"--files={files}"],
                env=env, check=True, capture_output=True, text=True,
            )
            row = json.loads(result.stdout.strip().splitlines()[-1])
            row.update(d_model=args.d_model, layers=args.layers)
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        with open(args.out, "a") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    by = {row["operation"]: row for row in rows}
    print(f"\n{rows[0]['params']:,} parameters, {args.devices} device(s), "
          f"{rows[0]['backend']}")
    print(f"{'operation':24s} {'seconds':>8s} {'peak +MB':>9s}")
    for row in rows:
        print(f"{row['operation']:24s} {row['seconds']:8.2f} "
              f"{row['peak_growth_mb']:9.1f}")
    def ratio(a, b, key="seconds"):
        return by[a][key] / max(by[b][key], 1e-9)

    if {"sparsify", "clone"} <= set(by):
        print(f"sparsify / clone: time {ratio('sparsify', 'clone'):.2f}x, "
              f"peak {ratio('sparsify', 'clone', 'peak_growth_mb'):.2f}x")
    if {"load_sparse", "load_dense"} <= set(by):
        print(f"load sparse / dense: "
              f"{ratio('load_sparse', 'load_dense'):.2f}x")
    if {"rigl_update", "train_steps"} <= set(by):
        rigl = by["rigl_update"]
        per_entry = rigl["peak_growth_mb"] * 2**20 / rigl["kernel_entries"]
        steady = rigl.get("second_update_rss_growth_mb")
        print(f"RiGL update / 10 steps: "
              f"{ratio('rigl_update', 'train_steps'):.2f}x, {per_entry:.1f} "
              "extra bytes per kernel entry over two updates (the first "
              "compiles)"
              + ("" if steady is None else
                 f", {steady * 2**20 / rigl['kernel_entries']:.1f} during "
                 "the second alone"))


if __name__ == "__main__":
    main()
