"""The package layout: the core never loads the research tooling.

``import keras_er`` loads the pipeline (ratios -> masks -> layers ->
sparsify -> algorithms/callbacks -> export) and nothing of
``keras_er.research`` (experiment runner, data loaders, model zoo, plots,
theory), nor matplotlib or tensorflow_datasets. ``keras_er.research`` may
import the core; the core must never import it. Every module imports on its
own, whatever is imported first (no import cycles).
"""

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_er"
RESEARCH = PACKAGE / "research"
RESEARCH_SUBMODULES = ("data", "experiment", "models", "plot", "theory")
# Imported by `import keras_er` only through the research tooling. Keras
# itself may import parts of matplotlib (keras.src.visualization) when it is
# installed, so the check is on what `import keras_er` adds after Keras.
HEAVY = ("matplotlib", "tensorflow_datasets")


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(include_research):
    paths = sorted(PACKAGE.rglob("*.py"))
    return [
        _module_name(p) for p in paths
        if "__pycache__" not in p.parts
        and (include_research or RESEARCH not in (p, *p.parents))
    ]


CORE_MODULES = _modules(include_research=False)
ALL_MODULES = _modules(include_research=True)


def _run(code):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _imported_names(path):
    """Every module name an ``import`` statement in ``path`` names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # Relative: resolve against the package.
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def test_core_modules_found():
    assert "keras_er" in CORE_MODULES
    assert "keras_er.sparsify" in CORE_MODULES
    assert "keras_er.layers.er_dense" in CORE_MODULES
    assert not any(m.startswith("keras_er.research") for m in CORE_MODULES)
    for name in RESEARCH_SUBMODULES:
        assert f"keras_er.research.{name}" in ALL_MODULES
    # The old top-level places are gone.
    for name in RESEARCH_SUBMODULES:
        assert f"keras_er.{name}" not in ALL_MODULES
        assert not (PACKAGE / name).exists()


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_source_never_names_research(module):
    path = ROOT / pathlib.Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    bad = [
        name for name in _imported_names(path)
        if name == "keras_er.research" or name.startswith("keras_er.research.")
    ]
    assert not bad, f"{module} imports {bad}"
    # Nor by a string (importlib, lazy attributes); docstrings may name it.
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                             ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    strings = [
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings and "research" in node.value
    ]
    assert not strings, f"{module} names the research package: {strings}"


def test_import_keras_er_loads_no_research_tooling():
    loaded = _run(
        "import json, sys\n"
        "import keras\n"
        "before = set(sys.modules)\n"
        "import keras_er\n"
        "new = set(sys.modules) - before\n"
        "print(json.dumps({\n"
        "    'keras_er': sorted(m for m in sys.modules\n"
        "                       if m.startswith('keras_er')),\n"
        "    'new': sorted(new),\n"
        "}))\n"
    )
    research = [
        m for m in loaded["keras_er"]
        if m == "keras_er.research" or m.startswith("keras_er.research.")
    ]
    assert not research
    heavy = [m for m in loaded["new"] if m.split(".")[0] in HEAVY]
    assert not heavy, f"import keras_er loaded {heavy}"
    assert "keras_er.sparsify" in loaded["keras_er"]
    assert "keras_er.callbacks" in loaded["keras_er"]


def test_research_loads_lazily_and_without_matplotlib():
    loaded = _run(
        "import json, sys\n"
        "import keras\n"
        "before = set(sys.modules)\n"
        "import keras_er.research as research\n"
        "bare = sorted(m for m in sys.modules\n"
        "              if m.startswith('keras_er.research'))\n"
        "from keras_er.research import data, experiment, models, plot,"
        " theory\n"
        "assert research.plot is plot and research.models is models\n"
        "new = sorted(set(sys.modules) - before)\n"
        "print(json.dumps({'bare': bare, 'new': new}))\n"
    )
    assert loaded["bare"] == ["keras_er.research"]
    for name in RESEARCH_SUBMODULES:
        assert f"keras_er.research.{name}" in loaded["new"]
    # plot imports matplotlib when plotting; the loaders import TFDS when a
    # TFDS data set is asked for.
    heavy = [m for m in loaded["new"] if m.split(".")[0] in HEAVY]
    assert not heavy, f"importing keras_er.research loaded {heavy}"


def test_research_unknown_attribute():
    import keras_er.research

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        keras_er.research.nope  # noqa: B018
    assert set(keras_er.research.__all__) == set(RESEARCH_SUBMODULES)


@pytest.mark.heavy  # One fresh interpreter per module.
def test_every_module_imports_first_without_cycles():
    """Each module, imported first (no keras_er module loaded), succeeds.

    One interpreter for all modules (Keras loads once): before each import
    every ``keras_er`` module is dropped from ``sys.modules``, so the import
    order starts at that module, as in a fresh interpreter. A cycle between
    keras_er modules shows as an ImportError (partially initialized module)
    for some starting point.
    """
    failures = _run(
        "import importlib, json, sys, traceback\n"
        "import keras\n"
        f"modules = {ALL_MODULES!r}\n"
        "failures = {}\n"
        "for module in modules:\n"
        "    for name in [m for m in sys.modules\n"
        "                 if m == 'keras_er' or m.startswith('keras_er.')]:\n"
        "        del sys.modules[name]\n"
        "    try:\n"
        "        importlib.import_module(module)\n"
        "    except Exception:\n"
        "        failures[module] = traceback.format_exc(limit=-3)\n"
        "print(json.dumps(failures))\n"
    )
    assert not failures, "\n".join(
        f"{module}:\n{error}" for module, error in failures.items()
    )


def test_no_import_cycles_between_modules():
    """No cycle of module-level imports between keras_er modules.

    Edges go from a module to each keras_er module its top-level
    (not function-local) imports name; a package's ``__init__`` importing
    its own submodules, and submodules importing siblings by full name, are
    fine unless they close a loop.
    """
    known = set(ALL_MODULES)
    graph = {}
    for module in ALL_MODULES:
        path = ROOT / pathlib.Path(*module.split("."))
        path = (
            path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        )
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = [
            n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
        ]
        targets = set()
        for node in top:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                base = node.module or ""
                names = [f"{base}.{a.name}" for a in node.names]
                names = [n if n in known else base for n in names]
            targets |= {n for n in names if n in known and n != module}
        # A submodule's own package is always initialized first; that
        # edge (and the package's edges back to its submodules) is how
        # packages work, not a cycle of concern.
        graph[module] = {
            t for t in targets if not module.startswith(t + ".")
        }

    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles: " + "; ".join(
        " -> ".join(c) for c in cycles
    )
