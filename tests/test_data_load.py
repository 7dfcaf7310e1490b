"""keras_er.research.data.load: digits, offline MNIST (idx and TFDS)."""

import socket

import numpy as np
import pytest

from keras_er.research import data


@pytest.fixture
def no_network(monkeypatch):
    """Makes every connection attempt or DNS lookup fail loudly."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted during an offline test")

    for owner, name in (
        (socket.socket, "connect"),
        (socket.socket, "connect_ex"),
        (socket, "getaddrinfo"),
        (socket, "create_connection"),
    ):
        monkeypatch.setattr(owner, name, refuse)
    return attempts


def test_digits_fixed_stratified_split(no_network):
    (x_train, y_train), (x_test, y_test) = data.load("digits")
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    assert x_train.max() == 255 and x_train.min() == 0
    # Stratified: every class has 35-37 of the 360 test images.
    assert set(np.bincount(y_test, minlength=10)) <= {35, 36, 37}
    # The same split on every call (and machine).
    (again, _), _ = data.load("digits")
    np.testing.assert_array_equal(again, x_train)
    assert no_network == []


def test_single_split_info_and_tf_data():
    (x, y), info = data.load("digits", "test", with_info=True)
    assert x.shape == (360, 8, 8, 1) and y.shape == (360,)
    assert info == {
        "name": "digits",
        "source": "sklearn",
        "num_classes": 10,
        "image_shape": (8, 8, 1),
        "num_examples": {"test": 360},
    }
    dataset = data.load("digits", "test", as_numpy=False)
    image, label = next(iter(dataset))
    assert tuple(image.shape) == (8, 8, 1) and int(label) == y[0]


def test_bad_split_and_source():
    with pytest.raises(ValueError, match="splits"):
        data.load("digits", "validation")
    with pytest.raises(ValueError, match="source"):
        data.load("mnist", source="web")


def test_mnist_offline_from_idx_files(no_network, tmp_path):
    # An empty TFDS data dir: "auto" falls back to the shipped idx files.
    ((x_train, y_train), (x_test, _)), info = data.load(
        "mnist", data_dir=tmp_path, with_info=True
    )
    assert x_train.shape == (60000, 28, 28, 1) and x_test.shape == (
        10000, 28, 28, 1
    )
    assert info["source"] == "idx" and info["num_classes"] == 10
    (ref_x, ref_y), _ = data.load_mnist(source="idx")
    np.testing.assert_array_equal(x_train, ref_x)
    np.testing.assert_array_equal(y_train, ref_y)
    assert no_network == []


def test_tfds_prepares_mnist_from_shipped_files_offline(no_network, tmp_path):
    # TFDS's download manager takes the idx files from manual_dir (checking
    # their registered SHA-256) and downloads nothing. 60 examples per split
    # keep it fast; the full preparation is the same code path.
    data_dir = tmp_path / "tfds"
    builder = data.prepare_tfds(
        "mnist", data_dir=data_dir, max_examples_per_split=60
    )
    assert builder.is_prepared()
    # Only the prepared data set is left: the download dir was temporary.
    assert [p.name for p in data_dir.iterdir()] == ["mnist"]
    (x_test, y_test), info = data.load(
        "mnist", "test", data_dir=data_dir, with_info=True
    )
    assert info["source"] == "tfds" and info["num_examples"] == {"test": 60}
    assert x_test.shape == (60, 28, 28, 1) and x_test.dtype == np.uint8
    # The same examples as the idx files (TFDS stores them in its order).
    _, (idx_x, idx_y) = data.load_mnist(source="idx")
    index = {img.tobytes(): label for img, label in zip(idx_x, idx_y)}
    assert [index[img.tobytes()] for img in x_test] == list(y_test)
    assert no_network == []


def test_other_tfds_name_without_download_fails_fast(no_network, tmp_path):
    with pytest.raises(FileNotFoundError, match="not prepared"):
        data.load("cifar10", data_dir=tmp_path, download=False)
    assert no_network == []
