"""Offline dataset loaders for keras_er examples, tests and benchmarks.

`load(name)` serves sklearn's digits, MNIST (a prepared TFDS copy or the
shipped idx files, offline) and any TFDS image classification data set.
TFDS is only imported where needed; reading the idx files needs only NumPy.
Nothing here downloads anything, except `load` / `prepare_tfds` for TFDS
names other than mnist with ``download=True``.
"""

from keras_er.research.data.datasets import load, load_digits, prepare_tfds
from keras_er.research.data.mnist import find_mnist_dir, load_mnist, read_idx

__all__ = [
    "find_mnist_dir",
    "load",
    "load_digits",
    "load_mnist",
    "prepare_tfds",
    "read_idx",
]
