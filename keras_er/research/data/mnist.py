"""MNIST from local files only: a prepared TFDS directory or the idx files.

No function here downloads anything. The original idx files ship with the
project in ``../shared/datasets/mnist`` (relative to the repository root);
`find_mnist_dir` locates them.
"""

import gzip
import logging
import os
import pathlib

import numpy as np

logger = logging.getLogger("keras_er.research.data")

ENV_VAR = "KERAS_ER_MNIST_DIR"
SOURCES = ("auto", "tfds", "idx")

# Magic numbers of the idx files: 0x08 (unsigned byte data) in the third
# byte, the number of dimensions in the fourth.
LABELS_MAGIC = 2049
IMAGES_MAGIC = 2051

# File names as published (and as the TFDS mnist builder downloads them).
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# Where the shared data lives below some ancestor of the repository.
_SHARED_SUBDIR = pathlib.Path("shared", "datasets", "mnist")

_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path):
    """Reads an MNIST idx file (gzip-compressed or not) into a NumPy array.

    Compression is detected from the file's content, not its name. Only the
    two MNIST layouts are accepted: labels (magic number 2049, one dimension)
    and images (magic number 2051, three dimensions), both unsigned bytes.

    Args:
        path: Path (str or path-like) of the idx file.

    Returns:
        A ``uint8`` array: ``(n,)`` for a label file, ``(n, rows, cols)`` for
        an image file.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not an MNIST idx file (wrong magic number,
            corrupt gzip stream, or a size that does not match its header).

    Example:

    ```python
    from keras_er.research.data import read_idx

    labels = read_idx("mnist/train-labels-idx1-ubyte.gz")
    labels.shape  # (60000,)
    ```
    """
    path = os.fspath(path)
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise ValueError(
                f"{path} looks gzip-compressed but cannot be decompressed "
                f"({error}). The file is probably truncated or corrupt: "
                "replace it with a fresh copy of the MNIST file."
            ) from error
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic not in (LABELS_MAGIC, IMAGES_MAGIC):
        raise ValueError(
            f"{path} is not an MNIST idx file: its magic number is {magic}, "
            f"expected {LABELS_MAGIC} (labels) or {IMAGES_MAGIC} (images). "
            "Pass one of the four MNIST files, e.g. "
            f"{FILES['train_images']!r} (an HTML page saved under that name "
            "by a failed download also ends up here)."
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path} ends inside its idx header ({len(raw)} bytes). The file "
            "is truncated: replace it with a fresh copy."
        )
    shape = tuple(
        int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)
    )
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(
            f"{path} holds {len(raw)} bytes but its header (shape {shape}) "
            f"announces {expected}. The file is truncated or corrupt: "
            "replace it with a fresh copy."
        )
    # Copy: np.frombuffer over bytes is read-only, and callers may want to
    # modify the arrays in place.
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(
        shape
    ).copy()


def _idx_path(directory, name):
    """The path of ``name`` in ``directory``, gzip'd or not; None if absent."""
    for candidate in (name, name[: -len(".gz")]):
        path = pathlib.Path(directory, candidate)
        if path.is_file():
            return path
    return None


def _missing_files(directory):
    return [
        name for name in FILES.values() if _idx_path(directory, name) is None
    ]


def _search_roots():
    """Starting points of the upward search for ``shared/datasets/mnist``."""
    roots = [pathlib.Path.cwd(), pathlib.Path(__file__).resolve().parent]
    seen, result = set(), []
    for root in roots:
        for directory in (root, *root.parents):
            if directory not in seen:
                seen.add(directory)
                result.append(directory)
    return result


def find_mnist_dir(data_dir=None):
    """Finds the directory holding the four MNIST idx files.

    Looks, in order, at ``data_dir``; the environment variable
    ``KERAS_ER_MNIST_DIR``; then ``shared/datasets/mnist`` below every
    ancestor of the current working directory and of the installed package
    (so the project's shipped ``../shared/datasets/mnist`` is found from the
    repository root). Each file may be gzip-compressed (``*.gz``) or not
    (the same name without ``.gz``).

    Args:
        data_dir: Optional directory to use; it must hold all four files.

    Returns:
        The directory as a `pathlib.Path`.

    Raises:
        FileNotFoundError: If ``data_dir`` (or ``KERAS_ER_MNIST_DIR``) lacks
            files, or no directory is found; the message says how to fix it.

    Example:

    ```python
    from keras_er.research.data import find_mnist_dir

    find_mnist_dir()  # e.g. PosixPath('.../shared/datasets/mnist')
    ```
    """
    # An explicit directory is never silently replaced by another one.
    for origin, directory in (
        ("data_dir", data_dir),
        (ENV_VAR, os.environ.get(ENV_VAR) or None),
    ):
        if directory is None:
            continue
        directory = pathlib.Path(os.fspath(directory)).expanduser()
        missing = _missing_files(directory)
        if not missing:
            return directory
        raise FileNotFoundError(
            f"{origin}={str(directory)!r} does not hold the MNIST idx files "
            f"{missing}. Point {origin} at a directory with all four of "
            f"{sorted(FILES.values())} (gzip'd or not)."
        )
    roots = _search_roots()
    for root in roots:
        candidate = root / _SHARED_SUBDIR
        if candidate.is_dir() and not _missing_files(candidate):
            return candidate
    raise FileNotFoundError(
        "Found no MNIST idx files: no data_dir was given, "
        f"{ENV_VAR} is not set, and no '{_SHARED_SUBDIR}' with all four "
        f"files exists above {str(pathlib.Path.cwd())!r} or the keras_er "
        f"package. Fix: pass data_dir=... or set {ENV_VAR} to a directory "
        f"holding {sorted(FILES.values())}, or run from the project "
        "checkout next to its 'shared/' folder."
    )


def _check_pair(images, labels, split, directory):
    """Validates one split read from idx files."""
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"The {split} image file in {directory} has shape "
            f"{images.shape}, not (n, 28, 28). Check that the image and "
            "label files are not swapped."
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"The {split} label file in {directory} has shape "
            f"{labels.shape} for {len(images)} images. Check that the image "
            "and label files are not swapped and belong to the same split."
        )


def _load_idx(data_dir):
    directory = find_mnist_dir(data_dir)
    arrays = {
        key: read_idx(_idx_path(directory, name))
        for key, name in FILES.items()
    }
    splits = []
    for split in ("train", "test"):
        images = arrays[f"{split}_images"]
        labels = arrays[f"{split}_labels"]
        _check_pair(images, labels, split, directory)
        splits.append((images[..., np.newaxis], labels.astype(np.int64)))
    logger.info("Loaded MNIST from the idx files in %s.", directory)
    return tuple(splits)


def _tfds_prepared(data_dir):
    """Whether a TFDS data dir holds a prepared ``mnist`` (any version).

    Checked before TFDS is asked, because TFDS logs misleading warnings
    ("has no dataset_info.json", "call download_and_prepare") when it
    finds none, although the idx fallback then loads MNIST fine.
    """
    if data_dir is None:
        data_dir = os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    root = pathlib.Path(os.fspath(data_dir)).expanduser() / "mnist"
    return any(root.glob("*/dataset_info.json"))


def _load_tfds(data_dir):
    if not _tfds_prepared(data_dir):
        raise FileNotFoundError(
            f"MNIST is not prepared for TFDS in data_dir={data_dir!r} (no "
            "mnist/<version>/dataset_info.json). Fix: use source='idx' (the "
            "shipped idx files), or prepare it on a machine with internet "
            "access with tfds.builder('mnist', data_dir=...)"
            ".download_and_prepare() and copy that directory here."
        )
    import tensorflow_datasets as tfds

    try:
        # download=False and try_gcs=False: read only what is prepared on
        # disk; never reach the network.
        splits = tfds.load(
            "mnist",
            split=["train", "test"],
            data_dir=None if data_dir is None else os.fspath(data_dir),
            download=False,
            try_gcs=False,
            batch_size=-1,
            as_supervised=True,
        )
    except AssertionError as error:
        # TFDS reports "could not find data" with an AssertionError.
        raise FileNotFoundError(
            f"MNIST is not prepared for TFDS in data_dir={data_dir!r} "
            f"({error}). Fix: use source='idx' (the shipped idx files), or "
            "prepare it on a machine with internet access with "
            "tfds.builder('mnist', data_dir=...).download_and_prepare() and "
            "copy that directory here."
        ) from error
    result = []
    for images, labels in tfds.as_numpy(splits):
        result.append(
            (images.astype(np.uint8), labels.astype(np.int64))
        )
    logger.info("Loaded MNIST from TFDS (data_dir=%r).", data_dir)
    return tuple(result)


def load_mnist(data_dir=None, source="auto"):
    """Loads MNIST from local files, never from the network.

    Args:
        data_dir: Directory to read from. With ``source="tfds"`` a TFDS data
            directory (``None``: TFDS's default, ``~/tensorflow_datasets`` or
            ``$TFDS_DATA_DIR``); with ``source="idx"`` a directory holding
            the four idx files (``None``: see `find_mnist_dir`, which finds
            the project's shipped ``../shared/datasets/mnist``). With
            ``"auto"`` the same ``data_dir`` is tried for both.
        source: ``"tfds"`` reads a TFDS ``mnist`` dataset that is already
            prepared (``download=False``); ``"idx"`` reads the original idx
            files ``train-images-idx3-ubyte.gz``,
            ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz`` and
            ``t10k-labels-idx1-ubyte.gz``; ``"auto"`` tries TFDS and falls
            back to the idx files (logging why) when TFDS is not installed or
            has no prepared copy.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: images as ``uint8``
        arrays of shape ``(n, 28, 28, 1)`` (channels last, values 0-255,
        unscaled) and labels as ``int64`` arrays of shape ``(n,)`` with
        values 0-9; ``n`` is 60000 for train and 10000 for test.

    Raises:
        ValueError: For an unknown ``source`` or a corrupt idx file.
        FileNotFoundError: If the requested source has no data (the message
            names the fix).
        ImportError: For ``source="tfds"`` without tensorflow-datasets.

    Example:

    ```python
    from keras_er.research.data import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist()
    x_train.shape, x_train.dtype  # ((60000, 28, 28, 1), dtype('uint8'))
    x_train = x_train.astype("float32") / 255.0
    ```
    """
    if source not in SOURCES:
        raise ValueError(
            f"source must be one of {SOURCES}, got {source!r}. Use 'idx' "
            "for the shipped idx files."
        )
    if source == "idx":
        return _load_idx(data_dir)
    if source == "tfds":
        return _load_tfds(data_dir)
    try:
        return _load_tfds(data_dir)
    except ImportError:
        reason = "tensorflow-datasets is not installed"
    except FileNotFoundError:
        reason = f"TFDS has no prepared mnist in data_dir={data_dir!r}"
    logger.info(
        "keras_er.research.data.load_mnist: %s; reading the idx files instead.",
        reason,
    )
    return _load_idx(data_dir)
