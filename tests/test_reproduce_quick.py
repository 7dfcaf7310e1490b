"""Smoke test of benchmarks/reproduce.py: --quick, --resume and --report.

Runs in-process (the script uses argparse, no global flags), so TensorFlow is
imported once; the quick grid is 3 tiny MNIST runs (< 60 s on two cores).
"""

import importlib.util
import json
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "reproduce", REPO / "benchmarks" / "reproduce.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_quick_run_resume_and_report(tmp_path):
    pytest.importorskip("matplotlib")
    reproduce = _load_script()
    out = tmp_path / "quick.jsonl"
    reproduce.main(["--quick", "--out", str(out)])

    rows = _lines(out)
    assert rows[0]["type"] == "run_start" and rows[-1]["type"] == "run_end"
    results = [r for r in rows if r["type"] == "result"]
    assert len(results) == 3
    assert {r["part"] for r in results} == {"a", "c"}
    for r in results:
        assert 0.0 <= r["accuracy"] <= 1.0
        assert r["train_size"] == 2000 and r["epochs"] == 1
        assert r["train_flops"] > 0

    # --resume finds every config done: no new result lines.
    reproduce.main(["--quick", "--resume", "--out", str(out)])
    assert len([r for r in _lines(out) if r["type"] == "result"]) == 3

    md, img = tmp_path / "results.md", tmp_path / "img"
    reproduce.main(["--report", "--out", str(out), "--results_md", str(md),
                    "--img_dir", str(img)])
    text = md.read_text()
    assert "--quick" in text  # the exact command is recorded
    assert "| erk |" in text and "rigl erk" in text
    assert (img / "reproduce_a_lenet300.png").stat().st_size > 0
    assert "](img/reproduce_a_lenet300.png)" in text


def test_shards_partition_the_grid_and_balance_time():
    reproduce = _load_script()
    args = reproduce.parse_args(["--models", "lenet300", "--shard", "1/3"])
    todo = reproduce.configs(args)
    shards = [reproduce.shard(todo, k, 3) for k in (1, 2, 3)]
    keys = [reproduce._key(kw) for part in shards for _, _, kw in part]
    assert sorted(keys) == sorted(reproduce._key(kw) for _, _, kw in todo)
    loads = [sum(reproduce.estimated_seconds(kw) for _, _, kw in part)
             for part in shards]
    longest = max(reproduce.estimated_seconds(kw) for _, _, kw in todo)
    assert max(loads) - min(loads) <= longest
    # Each shard keeps the grid's (seed-major) order.
    for part in shards:
        positions = [todo.index(item) for item in part]
        assert positions == sorted(positions)
    # The converged setting: all of MNIST, 30 LeNet epochs, every run
    # evaluated per epoch; widths only in part w.
    assert {kw["epochs"] for p, _, kw in todo if p not in ("b", "k")} == {30}
    assert all(kw["train_size"] is None and kw["eval_each_epoch"]
               for _, _, kw in todo)
    assert {kw.get("width", 1) for p, _, kw in todo if p != "w"} == {1}
    assert {kw["width"] for p, _, kw in todo if "width" in kw} == {2, 4, 8}
    with pytest.raises(SystemExit, match="--shard"):
        reproduce.parse_args(["--shard", "4/3"])
    with pytest.raises(SystemExit, match="conv_small"):
        reproduce.parse_args(["--epochs", "lenet300=30"])


def _row(reproduce, part, label, accuracy, per_epoch, **kw):
    row = dict(type="result", part=part, label=label, dataset="mnist",
               data_source="idx", model="lenet300", method="static",
               ratio="uniform", flow="addition", density=0.1, er_density=0.1,
               final_density=0.1, seed=0, epochs=30, width=1,
               train_size=60000, test_size=10000, optimizer="adam", lr=3e-3,
               wall_time_s=1.0, accuracy=accuracy, flow_edges_added=0,
               test_accuracy_per_epoch=per_epoch)
    row.update(kw)
    row["sparsity"] = round(1 - row["density"], 6)
    row["config_key"] = reproduce._key(row)
    return row


def test_report_of_width_control_and_convergence(tmp_path):
    pytest.importorskip("matplotlib")
    reproduce = _load_script()
    flat = [0.95] * 5
    rows = []
    for seed, noise in enumerate((0.0, 0.002, -0.002)):
        rows.append(_row(reproduce, "w", "dense x1", 0.98 + noise, flat,
                         density=1.0, seed=seed))
        # Density 0.1 reaches the dense accuracy at width 4; 0.01 never.
        for width, acc in ((1, 0.95), (2, 0.97), (4, 0.981), (8, 0.982)):
            rows.append(_row(reproduce, "w", f"uniform x{width}",
                             acc + noise, flat, width=width, seed=seed))
        for width, acc in ((1, 0.80), (2, 0.85), (4, 0.90), (8, 0.93)):
            rows.append(_row(reproduce, "w", f"uniform x{width}",
                             acc + noise, flat, width=width, density=0.01,
                             seed=seed))
        # Control: 60 epochs gain 0.1 pp; one run still climbing.
        rows.append(_row(reproduce, "k", "uniform 0.9", 0.951 + noise,
                         [0.90, 0.92, 0.93, 0.94, 0.951], epochs=60,
                         seed=seed))
    out = tmp_path / "rows.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    md, img = tmp_path / "results.md", tmp_path / "img"
    reproduce.main(["--report", "--out", str(out), "--results_md", str(md),
                    "--img_dir", str(img)])
    text = md.read_text()
    assert "matches dense from width x4" in text
    assert "does not match dense up to x8 (93.00 % vs 98.00 %)" in text
    assert "about 9.5x the width" in text and "about 99.5x" in text
    assert (img / "reproduce_width.png").stat().st_size > 0
    # Control: +0.10 pp from 30 to 60 epochs -> converged.
    assert "+0.10 pp (lenet300, uniform at 0.9)" in text
    assert "trained to convergence (< 0.5 pp) **agrees**" in text
    # The 60-epoch runs moved 5.1 pp over their last 5 epochs.
    assert "| k | lenet300 | 3 | 0 | 5.10" in text
    # Wide, dense and 60-epoch runs stay out of the part a table.
    part_a = text.split("## (a)")[1].split("## (b)")[0]
    assert "| uniform | 95.00 ± 0.20 |" in part_a
