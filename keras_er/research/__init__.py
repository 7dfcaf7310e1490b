"""keras_er.research: the tooling around the library, not part of it.

The reproduction and experiment kit of the paper, kept apart from the core so
that ``import keras_er`` never loads it (nor matplotlib or TFDS):

* `keras_er.research.experiment`: `run_experiment` / `Config`, the engine of
  ``examples/train.py`` and ``benchmarks/reproduce.py``.
* `keras_er.research.data`: offline loaders (sklearn digits, the shipped
  MNIST idx files, prepared TFDS data sets).
* `keras_er.research.models`: the model zoo (LeNet-300-100, conv nets, VGG16,
  ResNets), plain dense Keras models to pass to `keras_er.sparsify`.
* `keras_er.research.plot`: the paper's figures (matplotlib is imported only
  when a function is called).
* `keras_er.research.theory`: the width bounds of Theorem 2.1.

This package imports the core (``keras_er``); the core never imports it.
Submodules load on first access, so
``from keras_er.research import data, models, plot, theory, experiment`` and
``keras_er.research.models.lenet300_100()`` both work, and importing
``keras_er.research`` alone loads none of them.
"""

import importlib

_SUBMODULES = ("data", "experiment", "models", "plot", "theory")

__all__ = list(_SUBMODULES)


def __getattr__(name):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
