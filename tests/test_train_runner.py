"""End-to-end tests of the runner: every method on sklearn's digits.

`keras_er.research.experiment.run_experiment` runs in-process for each
method (a few seconds each); ``examples/train.py`` runs once in a subprocess,
exactly as a user starts it, so its absl flags never meet other test
modules' flags.
"""

import dataclasses
import json
import logging
import pathlib
import re
import subprocess
import sys

import pytest

from keras_er.research import experiment

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "train.py"

# Tiny runs: LeNet-300-100 on 8x8 digits, ER density 0.3, 3 epochs of 35
# batches; Adam trains fastest here. Edge-popup trains scores with SGD.
# 1400 = 35 x 40 examples: no partial batch, so the train step is traced
# once (tracing is most of the time of these runs).
COMMON = dict(
    dataset="digits", model="lenet300", ratio="erk", density=0.3, epochs=3,
    batch_size=40, train_size=1400, optimizer="adam", lr=3e-3, verbose=0,
    print_fn=None,
)
METHODS = {
    "static": {},
    "imp": dict(imp_target_density=0.1, imp_prune_fraction=0.5),
    # STR reads the kernels after every batch: fewer, larger batches.
    "str": dict(str_target_density=0.1, str_s_init=-5.0, batch_size=70),
    "gmp": dict(gmp_final_density=0.1, gmp_frequency=10),
    "rigl": dict(rigl_update_every=10, rigl_target_density=0.1),
    "set": dict(rigl_update_every=10),
    "edgepopup": dict(
        ep_final_density=0.1, ep_levels=2, optimizer="sgd", lr=0.1
    ),
}
FIELDS = {
    "dataset", "model", "method", "ratio", "density", "er_density",
    "target_density", "final_density", "accuracy", "loss", "epochs",
    "train_flops", "dense_train_flops", "forward_flops", "wall_time_s",
    "train_time_s", "density_per_epoch", "seed", "train_size", "test_size",
}


def test_every_method_has_a_test():
    assert set(METHODS) == set(experiment.METHODS)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_end_to_end_on_digits(method):
    results = experiment.run_experiment(
        method=method, **{**COMMON, **METHODS[method]}
    )
    assert FIELDS <= set(results)
    json.dumps(results)  # one JSON line
    assert (results["dataset"], results["model"], results["method"]) == (
        "digits", "lenet300", method
    )
    # Ten classes: chance is 0.1.
    assert results["accuracy"] > 0.4, results
    assert abs(results["er_density"] - 0.3) < 0.01
    target = results["target_density"]
    if method in ("static", "set"):
        # Fixed mask, or rewiring at constant density.
        assert target is None
        assert results["final_density"] == pytest.approx(
            results["er_density"], abs=1e-9
        )
    else:
        assert target == 0.1
        # Within a few weights of the 50,200 kernel entries.
        assert results["final_density"] == pytest.approx(0.1, abs=2e-4)
        assert results["train_flops"] < results["dense_train_flops"]
    assert len(results["density_per_epoch"]) == results["epochs"]


def test_imp_spreads_epochs_over_cycles(caplog):
    # 0.3 -> 0.1 at 50 % per cycle: 0.3, 0.15, 0.1, one epoch each.
    with caplog.at_level(logging.WARNING, logger="keras_er"):
        results = experiment.run_experiment(
            method="imp",
            **{**COMMON, **METHODS["imp"], "epochs": 2, "train_size": 300,
               "test_size": 100},
        )
    # 3 epochs where 2 were asked: said, not silent.
    assert "3 cycles of 1 epochs = 3 epochs, not epochs=2" in caplog.text
    assert results["method_options"] == {"cycles": 3, "epochs_per_cycle": 1}
    assert results["epochs"] == 3
    densities = results["density_per_epoch"]
    assert densities[0] > densities[1] > densities[2] == pytest.approx(0.1)
    assert (results["train_size"], results["test_size"]) == (300, 100)


@pytest.mark.tf_only  # tf.distribute / SavedModel export
def test_mirrored_strategy_runs():
    results = experiment.run_experiment(
        strategy="mirrored", **{**COMMON, "epochs": 1, "train_size": 400}
    )
    assert results["strategy"] == "mirrored" and results["accuracy"] > 0.2


def test_bad_settings_name_the_fix():
    with pytest.raises(ValueError, match="needs imp_target_density"):
        experiment.run_experiment(method="imp", print_fn=None)
    with pytest.raises(ValueError, match="method must be one of"):
        experiment.run_experiment(method="snip", print_fn=None)
    with pytest.raises(ValueError, match="Unknown model"):
        experiment.run_experiment(model="resnet50", print_fn=None)


def test_wide_lenet_with_per_epoch_test_accuracy():
    results = experiment.run_experiment(
        width=2, eval_each_epoch=True, **{**COMMON, "epochs": 2}
    )
    # Hidden 600 and 200 on 8x8 digits (64 inputs); "params" counts the
    # maskable kernels.
    assert results["width"] == 2
    assert results["params"] == 64 * 600 + 600 * 200 + 200 * 10
    per_epoch = results["test_accuracy_per_epoch"]
    assert len(per_epoch) == 2
    assert per_epoch[-1] == pytest.approx(results["accuracy"], abs=1e-6)
    plain = experiment.run_experiment(**{**COMMON, "epochs": 1})
    assert plain["test_accuracy_per_epoch"] is None and plain["width"] == 1
    with pytest.raises(ValueError, match="model='lenet300' only"):
        experiment.run_experiment(model="conv_small", width=2, print_fn=None)
    with pytest.raises(ValueError, match="width must be a positive int"):
        experiment.run_experiment(width=0, print_fn=None)


def test_every_config_field_is_a_flag():
    source = SCRIPT.read_text()
    flags = set(re.findall(r'DEFINE_\w+\(\s*"(\w+)"', source))
    fields = {f.name for f in dataclasses.fields(experiment.Config)}
    assert flags == fields


@pytest.mark.heavy  # A fresh process, every export format.
@pytest.mark.tf_only  # tf.distribute / SavedModel export
def test_train_script_end_to_end(tmp_path):
    results_json = tmp_path / "results.json"
    export_dir = tmp_path / "export"
    logs = tmp_path / "logs"
    result = subprocess.run(
        [
            sys.executable, str(SCRIPT), "--dataset=digits", "--epochs=1",
            "--batch_size=32", "--optimizer=adam", "--lr=3e-3",
            "--ratio=pyramidal", "--density=0.2", "--verbose=2",
            f"--results_json={results_json}", f"--export_dir={export_dir}",
            f"--tensorboard_dir={logs}",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    results = json.loads(lines[-1])
    assert results == json.loads(results_json.read_text())
    assert results["ratio"] == "pyramidal" and results["density"] == 0.2
    assert results["accuracy"] > 0.4
    # The summary table is printed before the JSON line.
    assert any(line.startswith("total") for line in lines)
    assert "Test accuracy:" in result.stdout
    assert (export_dir / "saved_model.pb").is_file()
    assert list(logs.rglob("events.out.tfevents.*"))
