"""keras_er.research.data.mnist on the real, shipped MNIST idx files."""

import gzip
import logging
import os
import shutil
import socket

import numpy as np
import pytest

from keras_er.research.data import find_mnist_dir, load_mnist, read_idx
from keras_er.research.data import mnist as mnist_lib

# Class counts of the published MNIST splits.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist_dir():
    return find_mnist_dir()


@pytest.fixture(scope="module")
def idx_arrays(mnist_dir):
    return {
        key: read_idx(mnist_dir / name)
        for key, name in mnist_lib.FILES.items()
    }


@pytest.fixture
def no_network(monkeypatch):
    """Makes every connection attempt or DNS lookup fail loudly."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def _write_idx(path, magic, shape, payload=None, compress=False):
    """Writes a small idx file: big-endian magic, dims, then the bytes."""
    if payload is None:
        payload = bytes((i * 7) % 256 for i in range(int(np.prod(shape))))
    raw = magic.to_bytes(4, "big")
    raw += b"".join(int(d).to_bytes(4, "big") for d in shape) + payload
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def test_read_idx_real_files(idx_arrays):
    assert idx_arrays["train_images"].shape == (60000, 28, 28)
    assert idx_arrays["train_labels"].shape == (60000,)
    assert idx_arrays["test_images"].shape == (10000, 28, 28)
    assert idx_arrays["test_labels"].shape == (10000,)
    for array in idx_arrays.values():
        assert array.dtype == np.uint8
    for split, counts in (("train", TRAIN_COUNTS), ("test", TEST_COUNTS)):
        labels = idx_arrays[f"{split}_labels"]
        assert labels.min() == 0 and labels.max() == 9
        np.testing.assert_array_equal(np.bincount(labels), counts)
        images = idx_arrays[f"{split}_images"]
        assert images.min() == 0 and images.max() == 255
    # The well-known MNIST normalization mean, 0.1307 of full scale.
    mean = idx_arrays["train_images"].mean() / 255.0
    assert mean == pytest.approx(0.1307, abs=5e-4)
    # Writable copies, not read-only views of the file buffer.
    assert idx_arrays["test_labels"].flags.writeable


def test_read_idx_gzip_and_plain_agree(mnist_dir, idx_arrays, tmp_path):
    for key in ("test_images", "test_labels"):
        name = mnist_lib.FILES[key]
        plain = tmp_path / name[: -len(".gz")]
        with gzip.open(mnist_dir / name, "rb") as src:
            plain.write_bytes(src.read())
        assert plain.read_bytes()[:2] != b"\x1f\x8b"
        np.testing.assert_array_equal(read_idx(plain), idx_arrays[key])
        # Compression is detected from the content, not the file name.
        renamed = tmp_path / f"{key}.bin"
        shutil.copy(mnist_dir / name, renamed)
        np.testing.assert_array_equal(read_idx(renamed), idx_arrays[key])


def test_read_idx_small_files_roundtrip(tmp_path):
    for compress in (False, True):
        images = _write_idx(
            tmp_path / f"img{compress}", 2051, (3, 2, 4), compress=compress
        )
        labels = _write_idx(
            tmp_path / f"lab{compress}", 2049, (5,), bytes([9, 0, 3, 3, 1]),
            compress=compress,
        )
        array = read_idx(images)
        assert array.shape == (3, 2, 4)
        np.testing.assert_array_equal(
            array.ravel(), [(i * 7) % 256 for i in range(24)]
        )
        np.testing.assert_array_equal(read_idx(labels), [9, 0, 3, 3, 1])


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_rejects_bad_magic(tmp_path, compress):
    bad = _write_idx(tmp_path / "bad.gz", 2050, (4,), compress=compress)
    with pytest.raises(ValueError, match="magic number is 2050"):
        read_idx(bad)
    html = tmp_path / "train-images-idx3-ubyte.gz"
    html.write_bytes(b"<!DOCTYPE html><html>Not Found</html>")
    with pytest.raises(ValueError, match="not an MNIST idx file"):
        read_idx(html)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="magic number is None"):
        read_idx(empty)


def test_read_idx_rejects_truncated_files(tmp_path, mnist_dir):
    short = _write_idx(tmp_path / "short", 2049, (10,), bytes(5))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(short)
    # A gzip stream cut in the middle.
    data = (mnist_dir / mnist_lib.FILES["test_labels"]).read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot be decompressed"):
        read_idx(cut)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing.gz")


def test_load_mnist_idx(mnist_dir, idx_arrays):
    (x_train, y_train), (x_test, y_test) = load_mnist(
        data_dir=mnist_dir, source="idx"
    )
    assert x_train.shape == (60000, 28, 28, 1)
    assert x_test.shape == (10000, 28, 28, 1)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    np.testing.assert_array_equal(x_test[..., 0], idx_arrays["test_images"])
    np.testing.assert_array_equal(y_train, idx_arrays["train_labels"])
    np.testing.assert_array_equal(y_test, idx_arrays["test_labels"])


def test_load_mnist_auto_never_touches_network(
    no_network, mnist_dir, idx_arrays, caplog
):
    # mnist_dir is not a prepared TFDS directory, so "auto" must try TFDS
    # (offline), log why it falls back, and read the idx files there.
    with caplog.at_level(logging.INFO, logger="keras_er.research.data"):
        (x_train, y_train), (x_test, y_test) = load_mnist(
            data_dir=mnist_dir, source="auto"
        )
    assert "reading the idx files instead" in caplog.text
    assert x_train.shape == (60000, 28, 28, 1)
    np.testing.assert_array_equal(y_test, idx_arrays["test_labels"])
    assert no_network == []


def test_load_mnist_auto_logs_no_tfds_warnings(tmp_path, monkeypatch, caplog):
    # No prepared TFDS copy (an empty TFDS_DATA_DIR): "auto" reads the idx
    # files without TFDS' misleading warnings ("no dataset_info.json",
    # "download_and_prepare"), which it used to print on every load.
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    (tmp_path / "mnist" / "3.0.1").mkdir(parents=True)  # An unprepared one.
    with caplog.at_level(logging.DEBUG):
        (_, y_train), _ = load_mnist()
    assert len(y_train) == 60000
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]


def test_load_mnist_tfds_unprepared_raises_offline(no_network, tmp_path):
    with pytest.raises(FileNotFoundError, match="source='idx'"):
        load_mnist(data_dir=tmp_path, source="tfds")
    assert no_network == []
    # TFDS must not have started a download into the directory.
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_load_mnist_rejects_unknown_source():
    with pytest.raises(ValueError, match="source must be one of"):
        load_mnist(source="internet")


def test_load_mnist_detects_swapped_files(mnist_dir, tmp_path):
    for key, name in mnist_lib.FILES.items():
        # Every images file gets the labels of its split and vice versa.
        other = key.replace("images", "@").replace("labels", "images")
        other = other.replace("@", "labels")
        os.symlink(mnist_dir / mnist_lib.FILES[other], tmp_path / name)
    with pytest.raises(ValueError, match="swapped"):
        load_mnist(data_dir=tmp_path, source="idx")


def test_find_mnist_dir_search_order(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(mnist_lib.ENV_VAR, raising=False)
    # Walking up from the working directory finds a shared/ folder there.
    local = tmp_path / "shared" / "datasets" / "mnist"
    local.mkdir(parents=True)
    for name in mnist_lib.FILES.values():
        os.symlink(mnist_dir / name, local / name)
    deep = tmp_path / "project" / "sub"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_mnist_dir() == local
    # The environment variable wins over the search ...
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    for name in mnist_lib.FILES.values():
        os.symlink(mnist_dir / name, env_dir / name[: -len(".gz")])
    monkeypatch.setenv(mnist_lib.ENV_VAR, str(env_dir))
    assert find_mnist_dir() == env_dir
    # ... and data_dir wins over the environment variable.
    assert find_mnist_dir(local) == local
    # Without a local shared/ folder the package location is searched.
    monkeypatch.delenv(mnist_lib.ENV_VAR)
    monkeypatch.chdir(tmp_path / "project")
    shutil.rmtree(tmp_path / "shared")
    assert find_mnist_dir().resolve() == mnist_dir.resolve()


def test_find_mnist_dir_errors_name_the_fix(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(mnist_lib.ENV_VAR, str(empty))
    with pytest.raises(FileNotFoundError, match=mnist_lib.ENV_VAR):
        find_mnist_dir()
    with pytest.raises(FileNotFoundError, match="data_dir="):
        find_mnist_dir(empty)
    monkeypatch.delenv(mnist_lib.ENV_VAR)
    # Nothing above the working directory or the (pretend) package.
    monkeypatch.chdir(empty)
    monkeypatch.setattr(mnist_lib, "__file__", str(empty / "mnist.py"))
    with pytest.raises(FileNotFoundError, match="set KERAS_ER_MNIST_DIR"):
        find_mnist_dir()
