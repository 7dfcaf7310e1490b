"""`load`: image classification data sets by name, offline where possible.

* ``"digits"``: scikit-learn's 8x8 digits (shipped with scikit-learn, no
  download), with a fixed stratified train/test split.
* ``"mnist"``: a prepared TFDS copy if ``data_dir`` holds one, else the idx
  files shipped in ``../shared/datasets/mnist`` (see `load_mnist`). With
  ``source="tfds"`` TFDS prepares its own copy *from the shipped files*:
  TFDS's download manager takes a file from ``manual_dir`` when its name is
  the one registered for the URL, checks its SHA-256 against TFDS's
  registered checksum, and downloads nothing (`prepare_tfds`).
* Any other name goes to ``tfds.load`` (``download=True`` needs internet,
  unless the archives are put in ``manual_dir`` under their registered
  names, e.g. ``cifar-10-binary.tar.gz``).

Images are ``uint8`` arrays ``(n, height, width, channels)`` with values
0-255 and labels ``int64`` arrays ``(n,)``, whatever the source.
"""

import logging
import os
import tempfile

import numpy as np

from keras_er.research.data import mnist as mnist_lib

logger = logging.getLogger("keras_er.research.data")

SOURCES = ("auto", "tfds", "idx")

# digits: 1797 examples; 360 (20 %) held out, stratified, fixed seed.
DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0

# Names answered without TFDS (TFDS has no "digits").
OFFLINE_DATASETS = ("digits", "mnist")


def load_digits(test_size=DIGITS_TEST_SIZE, seed=DIGITS_SPLIT_SEED):
    """scikit-learn's digits as MNIST-like image arrays, split in two.

    The 1797 8x8 images (values 0-16) are scaled to ``uint8`` 0-255
    (``round(v * 255 / 16)``) so that every data set here follows MNIST's
    convention, and split with a stratified shuffle (`sklearn`'s
    ``train_test_split``, ``random_state=seed``): by default 1437 training
    and 360 test images, the same on every machine.

    Args:
        test_size: Number of test images.
        seed: Seed of the split.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: images ``uint8`` of shape
        ``(n, 8, 8, 1)``, labels ``int64`` of shape ``(n,)``, values 0-9.

    Raises:
        ImportError: Without scikit-learn (``pip install scikit-learn``).

    Example:

    ```python
    from keras_er.research import data

    (x_train, y_train), (x_test, y_test) = data.load_digits()
    x_train.shape  # (1437, 8, 8, 1)
    ```
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError(
            "The digits data set comes with scikit-learn: pip install "
            "scikit-learn."
        ) from error
    bunch = sklearn_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    images = images[..., np.newaxis]
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_size, random_state=seed,
        stratify=labels,
    )
    return (x_train, y_train), (x_test, y_test)


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "Loading this data set needs tensorflow-datasets: pip install "
            f"tensorflow-datasets ({error})."
        ) from error
    return tfds


def prepare_tfds(
    name,
    data_dir=None,
    manual_dir=None,
    download=True,
    max_examples_per_split=None,
):
    """Prepares a TFDS data set on disk, from local files where given.

    Files in ``manual_dir`` named as TFDS registers them for the data set's
    URLs (e.g. ``train-images-idx3-ubyte.gz`` for mnist,
    ``cifar-10-binary.tar.gz`` for cifar10) are used instead of
    downloading; TFDS checks their SHA-256 against its registered checksums.
    For ``"mnist"``, ``manual_dir`` defaults to the shipped idx files
    (`find_mnist_dir`), ``download`` is ignored (nothing is downloaded) and
    the download directory is a temporary one, removed afterwards. Preparing
    MNIST takes about a minute on two cores, once; it is then read from
    ``data_dir``.

    Args:
        name: TFDS name, e.g. ``"mnist"`` or ``"cifar10"``.
        data_dir: TFDS data directory (``None``: TFDS's default,
            ``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``).
        manual_dir: Directory of already downloaded source files.
        download: Allow downloading what is neither prepared nor in
            ``manual_dir``. With False, raise `FileNotFoundError` instead.
        max_examples_per_split: Write at most this many examples per split
            (for tests).

    Returns:
        The prepared ``tfds.core.DatasetBuilder``.

    Raises:
        FileNotFoundError: If the data set is not prepared and
            ``download=False`` (and it is not mnist).
        ImportError: Without tensorflow-datasets.

    Example:

    ```python
    from keras_er.research import data

    data.prepare_tfds("mnist", data_dir="/tmp/tfds")  # offline
    ```
    """
    tfds = _tfds()
    builder = tfds.builder(
        name, data_dir=None if data_dir is None else os.fspath(data_dir)
    )
    if builder.is_prepared():
        return builder
    offline_mnist = name == "mnist"
    if offline_mnist:
        manual_dir = mnist_lib.find_mnist_dir(manual_dir)
    elif not download:
        raise FileNotFoundError(
            f"TFDS data set {name!r} is not prepared in "
            f"data_dir={str(builder.data_dir)!r} and download=False. Fix: "
            "allow the download (needs internet), put its source files in "
            "manual_dir, or prepare it elsewhere and copy the data dir here."
        )
    config = tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else os.fspath(manual_dir),
        max_examples_per_split=max_examples_per_split,
        # The prepared copy on GCS is a download: never for offline mnist.
        try_download_gcs=not offline_mnist,
    )
    if offline_mnist:
        # The extracted idx files (53 MB) are not worth keeping.
        with tempfile.TemporaryDirectory(prefix="keras_er_tfds_") as tmp:
            builder.download_and_prepare(
                download_dir=tmp, download_config=config
            )
        logger.info(
            "Prepared TFDS mnist in %s from the idx files in %s (offline).",
            builder.data_dir, manual_dir,
        )
    else:
        builder.download_and_prepare(download_config=config)
    return builder


def _splits_tuple(split):
    if isinstance(split, str):
        return (split,), True
    splits = tuple(split)
    if not splits or not all(isinstance(s, str) for s in splits):
        raise ValueError(
            f"split must be a split name or a sequence of them, e.g. "
            f"('train', 'test'), got {split!r}."
        )
    return splits, False


def _pick(arrays, splits, name):
    """Selects ``splits`` from ``{"train": (x, y), "test": (x, y)}``."""
    unknown = [s for s in splits if s not in arrays]
    if unknown:
        raise ValueError(
            f"{name} has the splits {sorted(arrays)} (no slicing), got "
            f"{unknown}."
        )
    return [arrays[s] for s in splits]


def _info(name, source, pairs, splits, num_classes):
    return {
        "name": name,
        "source": source,
        "num_classes": int(num_classes),
        "image_shape": tuple(int(d) for d in pairs[0][0].shape[1:]),
        "num_examples": {s: int(len(p[0])) for s, p in zip(splits, pairs)},
    }


def load(
    name,
    split=("train", "test"),
    data_dir=None,
    *,
    source="auto",
    download=True,
    manual_dir=None,
    as_numpy=True,
    with_info=False,
):
    """Loads an image classification data set as arrays or `tf.data`.

    Args:
        name: ``"digits"`` (scikit-learn, offline), ``"mnist"`` (offline,
            see ``source``) or any TFDS image classification name with
            ``image`` / ``label`` features (``"cifar10"``,
            ``"fashion_mnist"``, ...).
        split: A split name or a sequence of them. TFDS names accept TFDS
            split strings (``"train[:10%]"``); digits and the mnist idx files
            know ``"train"`` and ``"test"``.
        data_dir: TFDS data directory (``None``: TFDS's default).
        source: For mnist: ``"auto"`` reads a TFDS copy prepared in
            ``data_dir`` if there is one, else the idx files (same
            examples; TFDS stores them in another order); ``"tfds"`` reads
            the TFDS copy, preparing it offline from the idx files first if
            needed (about a minute, once); ``"idx"`` reads the idx files.
            Other data sets ignore it.
        download: For TFDS names other than mnist, allow downloading data
            that is not prepared yet (needs internet).
        manual_dir: Directory of source files: for mnist the four idx files
            (default: the shipped ``../shared/datasets/mnist``), for other
            TFDS names files downloaded by hand (see `prepare_tfds`).
        as_numpy: Return NumPy arrays (whole splits in memory); False
            returns unbatched ``tf.data.Dataset`` s of ``(image, label)``.
        with_info: Also return a dict ``{"name", "source", "num_classes",
            "image_shape", "num_examples"}``.

    Returns:
        For a sequence of splits a tuple with one entry per split, for a
        single split name that entry alone; each entry is ``(x, y)`` (images
        ``uint8`` ``(n, h, w, c)``, labels ``int64`` ``(n,)``) or a
        `tf.data.Dataset`. With ``with_info``, ``(result, info)``.

    Raises:
        ValueError: For an unknown source or split.
        FileNotFoundError: If the data is not on disk and may not be
            downloaded (the message names the fix).
        ImportError: Without scikit-learn (digits) or tensorflow-datasets.

    Example:

    ```python
    from keras_er.research import data

    (x_train, y_train), (x_test, y_test) = data.load("digits")
    x_test, y_test = data.load("mnist", split="test")
    train_ds = data.load("mnist", "train", as_numpy=False)
    ```
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}.")
    splits, single = _splits_tuple(split)
    if name == "digits":
        train, test = load_digits()
        pairs = _pick({"train": train, "test": test}, splits, name)
        used, num_classes = "sklearn", 10
    elif name == "mnist" and source != "tfds":
        used = "idx"
        if source == "auto":
            try:
                train, test = mnist_lib._load_tfds(data_dir)
                used = "tfds"
            except (ImportError, FileNotFoundError) as error:
                logger.info(
                    "keras_er.research.data.load: no prepared TFDS mnist (%s); "
                    "reading the idx files.", error,
                )
        if used == "idx":
            train, test = mnist_lib._load_idx(manual_dir)
        pairs = _pick({"train": train, "test": test}, splits, name)
        num_classes = 10
    else:
        return _load_tfds(
            name, splits, single, data_dir, download, manual_dir, as_numpy,
            with_info,
        )
    if as_numpy:
        result = tuple(pairs)
    else:
        import tensorflow as tf

        result = tuple(tf.data.Dataset.from_tensor_slices(p) for p in pairs)
    info = _info(name, used, pairs, splits, num_classes)
    result = result[0] if single else result
    return (result, info) if with_info else result


def _load_tfds(
    name, splits, single, data_dir, download, manual_dir, as_numpy,
    with_info,
):
    tfds = _tfds()
    builder = prepare_tfds(name, data_dir, manual_dir, download=download)
    features = builder.info.features
    if "label" not in features or not hasattr(
        features["label"], "num_classes"
    ):
        raise ValueError(
            f"TFDS data set {name!r} has no class 'label' feature; load "
            "supports image classification data sets."
        )
    datasets = builder.as_dataset(
        split=list(splits), as_supervised=True,
        batch_size=-1 if as_numpy else None,
    )
    if as_numpy:
        result = tuple(
            (np.asarray(x), np.asarray(y).astype(np.int64))
            for x, y in tfds.as_numpy(datasets)
        )
        shapes = [x.shape[1:] for x, _ in result]
        counts = {s: int(len(p[0])) for s, p in zip(splits, result)}
    else:
        result = tuple(datasets)
        shapes = [tuple(features["image"].shape)]
        counts = {
            s: int(builder.info.splits[s].num_examples) for s in splits
        }
    info = {
        "name": name,
        "source": "tfds",
        "num_classes": int(features["label"].num_classes),
        "image_shape": tuple(
            None if d is None else int(d) for d in shapes[0]
        ),
        "num_examples": counts,
    }
    result = result[0] if single else result
    return (result, info) if with_info else result
