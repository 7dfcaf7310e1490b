"""Every Python block in README.md and docs/*.md runs as written.

The blocks of one page run in order in one namespace, like a notebook: a
later block may use what an earlier block of the same page defined (the
page's first block loads the data and builds the model). Each page runs in
a fresh temporary directory (blocks write files such as ``m.keras``).

To keep the suite short, ``keras.Model.fit`` is shortened while the blocks
run (`_short_fit`): at most ``KERAS_ER_DOCS_EPOCHS`` epochs (default 1) of
at most ``KERAS_ER_DOCS_STEPS`` batches each (default 4); ``evaluate`` runs
at most ``KERAS_ER_DOCS_STEPS`` batches too. Everything else
runs as written; a block of ``>>>`` lines is run as a doctest, so the
outputs it shows are checked too. Whether the Quickstart reaches the accuracy the README
states, trained in full, is a benchmark (a few minutes of training):
``python benchmarks/quickstart.py --readme`` runs the README's block as
written and fails below 0.95.
"""

import doctest
import os
import pathlib
import re

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Pages whose blocks train several models (CI runs them: pytest -m heavy).
HEAVY_PAGES = {"methods_str_borrowed.md", "migrating_from_tfmot.md"}
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page):
    """The ```python blocks of a Markdown page, in order."""
    return BLOCK.findall(page.read_text())


def _short_fit(monkeypatch):
    max_epochs = int(os.environ.get("KERAS_ER_DOCS_EPOCHS", "1"))
    max_steps = int(os.environ.get("KERAS_ER_DOCS_STEPS", "4"))
    fit = keras.Model.fit

    def short_fit(self, *args, epochs=1, initial_epoch=0, **kwargs):
        epochs = min(epochs, initial_epoch + max_epochs)
        steps = kwargs.get("steps_per_epoch") or max_steps
        kwargs["steps_per_epoch"] = min(steps, max_steps)
        if kwargs.get("validation_data") is not None:
            kwargs.setdefault("validation_steps", max_steps)
        return fit(
            self, *args, epochs=epochs, initial_epoch=initial_epoch, **kwargs
        )

    monkeypatch.setattr(keras.Model, "fit", short_fit)
    evaluate = keras.Model.evaluate

    def short_evaluate(self, *args, **kwargs):
        kwargs["steps"] = min(kwargs.get("steps") or max_steps, max_steps)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "evaluate", short_evaluate)


@pytest.mark.tf_only
@pytest.mark.parametrize(
    "page",
    [
        pytest.param(p, marks=pytest.mark.heavy) if p.name in HEAVY_PAGES
        else p
        for p in PAGES if python_blocks(p)
    ],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_page_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _short_fit(monkeypatch)
    namespace = {"__name__": "__docs__"}
    for index, block in enumerate(python_blocks(page)):
        where = f"{page.name}, block {index + 1}"
        if block.lstrip().startswith(">>>"):
            _run_doctest(block, namespace, where)
            continue
        try:
            exec(compile(block, where, "exec"), namespace)
        except Exception as error:
            raise AssertionError(
                f"{where} fails as written:\n{block}\n{error!r}"
            ) from error


def _run_doctest(block, namespace, where):
    # A `>>>` block shows outputs: they must be what the code prints.
    test = doctest.DocTestParser().get_doctest(
        block, namespace, where, where, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_every_page_with_code_is_collected():
    # The README has blocks; a page whose fence is misspelt would be missed.
    assert python_blocks(ROOT / "README.md")
    for page in PAGES:
        text = page.read_text()
        fences = re.findall(r"^```(\w*)$", text, re.M)
        assert "py" not in fences and "Python" not in fences, page.name

