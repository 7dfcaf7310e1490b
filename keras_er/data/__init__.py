"""Offline dataset loaders for keras_er examples, tests and benchmarks.

TensorFlow-only: `load_mnist` can read a prepared TFDS directory through
``tensorflow_datasets``; reading the original idx files needs only NumPy.
Nothing here ever downloads anything.
"""

from keras_er.data.mnist import find_mnist_dir, load_mnist, read_idx

__all__ = ["find_mnist_dir", "load_mnist", "read_idx"]
