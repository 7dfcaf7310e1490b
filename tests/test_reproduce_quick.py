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
