"""keras_er.research.plot: figures, files, and the numbers drawn."""

import sys

import numpy as np
import pytest

import keras_er
from keras_er.research import models, plot, theory

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402

LENET = {"fc1": (784, 300), "fc2": (300, 100), "fc3": (100, 10)}


def bar_heights(figure):
    ax = figure.axes[0]
    return [[patch.get_height() for patch in c] for c in ax.containers]


def test_layer_densities_bars_match_the_ratio_methods(tmp_path):
    path = tmp_path / "fig7.png"
    figure = plot.plot_layer_densities(LENET, density=0.1, path=str(path))
    assert isinstance(figure, Figure)
    shapes = list(LENET.values())
    expected = [
        keras_er.ratios.get(name)(shapes, 0.1)
        for name in ("uniform", "erk", "balanced", "pyramidal")
    ]
    np.testing.assert_allclose(bar_heights(figure), expected)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(LENET)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["uniform", "erk", "balanced", "pyramidal"]
    # Bars of one layer sit side by side around the layer's tick.
    centers = [[p.get_x() + p.get_width() / 2 for p in c]
               for c in ax.containers]
    np.testing.assert_allclose(np.mean(centers, axis=0), [0, 1, 2])
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_layer_densities_of_a_model_and_its_masks(tmp_path):
    model = models.lenet300_100()
    figure = plot.plot_layer_densities(model, ("erk", "balanced"), 0.05)
    expected = [
        list(keras_er.layer_densities(model, r, 0.05).values())
        for r in ("erk", "balanced")
    ]
    np.testing.assert_allclose(bar_heights(figure), expected)
    sparse = keras_er.sparsify(model, "pyramidal", 0.05, seed=0)
    figure = plot.plot_layer_densities(
        sparse, {"drawn masks": "mask", "pyramidal": "pyramidal"}, 0.05,
        path=str(tmp_path / "masks.svg"), log_scale=True,
    )
    masks = keras_er.get_masks(sparse)
    heights = bar_heights(figure)
    np.testing.assert_allclose(heights[0], [m.mean() for m in masks.values()])
    np.testing.assert_allclose(
        heights[1], keras_er.ratios.pyramidal(list(LENET.values()), 0.05)
    )
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend == ["drawn masks", "pyramidal"]
    assert figure.axes[0].get_yscale() == "log"
    assert (tmp_path / "masks.svg").read_text().lstrip().startswith("<?xml")


def test_layer_densities_single_ratio_and_custom_dict():
    custom = {"fc1": 0.2, "fc2": 0.5, "fc3": 1.0}
    figure = plot.plot_layer_densities(LENET, custom)
    assert bar_heights(figure) == [[0.2, 0.5, 1.0]]
    figure = plot.plot_layer_densities(LENET, "erk", 0.1)
    assert len(figure.axes[0].containers) == 1
    with pytest.raises(ValueError, match="no density"):
        plot.plot_layer_densities(LENET, {"fc1": 0.2})
    with pytest.raises(ValueError, match="pass a model"):
        plot.plot_layer_densities(LENET, "mask")
    with pytest.raises(ValueError, match="Unknown ratio"):
        plot.plot_layer_densities(LENET, "nope")


RESULTS = [
    # erk: two seeds at 0.9, three at 0.99 (one given by density).
    {"ratio": "erk", "sparsity": 0.9, "accuracy": 0.90, "seed": 0},
    {"ratio": "erk", "sparsity": 0.9, "accuracy": 0.94, "seed": 1},
    {"ratio": "erk", "sparsity": 0.99, "accuracy": 0.70, "seed": 0},
    {"ratio": "erk", "density": 0.01, "accuracy": 0.80, "seed": 1},
    {"ratio": "erk", "sparsity": 0.99, "accuracy": 0.75, "seed": 2},
    {"ratio": "balanced", "sparsity": 0.99, "accuracy": 0.85, "seed": 0},
    {"ratio": "balanced", "sparsity": 0.9, "accuracy": 0.95, "seed": 0},
]


def test_aggregate_results_groups_and_averages():
    rows = plot.aggregate_results(RESULTS)
    assert [(r["label"], r["sparsity"], r["n"]) for r in rows] == [
        ("erk", 0.9, 2), ("erk", 0.99, 3),
        ("balanced", 0.9, 1), ("balanced", 0.99, 1),
    ]
    assert rows[0]["mean"] == pytest.approx(0.92)
    # Sample std of (0.90, 0.94): |0.04| / sqrt(2).
    assert rows[0]["std"] == pytest.approx(0.04 / np.sqrt(2))
    assert rows[1]["mean"] == pytest.approx(0.75)
    # (0.70, 0.80, 0.75): deviations -0.05, 0.05, 0 -> sqrt(0.005 / 2).
    assert rows[1]["std"] == pytest.approx(0.05)
    assert rows[2]["std"] == 0.0
    labelled = plot.aggregate_results(
        [{"method": "imp", "ratio": "erk", "sparsity": 0.5, "acc": 1}],
        metric="acc",
    )
    assert labelled[0]["label"] == "imp / erk"
    with pytest.raises(ValueError, match="'sparsity' or 'density'"):
        plot.aggregate_results([{"ratio": "erk", "accuracy": 1.0}])
    with pytest.raises(ValueError, match="no 'accuracy'"):
        plot.aggregate_results([{"ratio": "erk", "sparsity": 0.5}])
    with pytest.raises(ValueError, match="'label', 'method' or 'ratio'"):
        plot.aggregate_results([{"sparsity": 0.5, "accuracy": 1.0}])


def test_accuracy_curves_draw_the_means(tmp_path):
    path = tmp_path / "fig3.png"
    figure = plot.plot_accuracy_vs_sparsity(RESULTS, str(path))
    ax = figure.axes[0]
    assert [line.get_label() for line in ax.lines] == ["erk", "balanced"]
    erk, balanced = ax.lines
    # Log scale: x is the density 1 - sparsity, shown as sparsity ticks.
    np.testing.assert_allclose(erk.get_xdata(), [0.1, 0.01])
    np.testing.assert_allclose(erk.get_ydata(), [0.92, 0.75])
    np.testing.assert_allclose(balanced.get_ydata(), [0.95, 0.85])
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.9", "0.99"]
    assert len(ax.collections) == 2  # One std band per line.
    assert path.stat().st_size > 1000
    figure = plot.plot_accuracy_vs_sparsity(RESULTS, log_scale=False)
    np.testing.assert_allclose(figure.axes[0].lines[0].get_xdata(),
                               [0.9, 0.99])


def test_accuracy_curves_split_by_style_into_own_axes():
    results = [dict(r, flow=r["seed"] != 1) for r in RESULTS]
    own = Figure().add_subplot()
    figure = plot.plot_accuracy_vs_sparsity(results, style="flow", ax=own)
    assert figure is own.figure
    lines = {line.get_label(): line for line in own.lines}
    assert set(lines) == {"erk (flow=True)", "erk (flow=False)",
                          "balanced (flow=True)"}
    assert lines["erk (flow=True)"].get_linestyle() == "-"
    assert lines["erk (flow=False)"].get_linestyle() == ":"
    assert lines["erk (flow=True)"].get_color() == (
        lines["erk (flow=False)"].get_color()
    )
    np.testing.assert_allclose(lines["erk (flow=False)"].get_ydata(),
                               [0.94, 0.80])


def test_overparameterization_plot_draws_figure2_data(tmp_path):
    path = tmp_path / "fig2.svg"
    figure = plot.plot_overparameterization(path=str(path))
    data = theory.figure2_data()
    width = figure.axes[0].lines[0]
    np.testing.assert_allclose(width.get_ydata(), data["width"])
    np.testing.assert_allclose(width.get_xdata(), data["density"])
    assert figure.axes[0].get_yscale() == "log"
    assert "<svg" in path.read_text()


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install keras_er\[plot\]"):
        plot.plot_overparameterization()


def test_docstring_examples():
    import doctest

    failures, _ = doctest.testmod(
        plot, extraglobs=vars(plot), optionflags=doctest.ELLIPSIS
    )
    assert failures == 0
