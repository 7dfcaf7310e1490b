"""Export formats reproduce the model; files shrink with density; packed masks.

The size checks use LeNet-300-100 at density 0.1 (issue 7: every format at
most 0.2x its dense counterpart); `benchmarks/export_size.py` has the full
table.
"""

import gzip
import json
import os
import sys
import zipfile

import h5py
import keras
import numpy as np
import pytest

import keras_er
from keras_er.layers.masked_kernel import ER_CONFIG_ENTRY
from keras_er.export import gzipped_size
from keras_er.layers import compact_storage
from keras_er.layers.masked_kernel import MaskedKernelMixin
from keras_er.research.models import lenet300_100
from tests.conftest import interpreter_for, mlp, to_numpy

tf = pytest.importorskip("tensorflow")
needs_tf_backend = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="TFLite export needs the TensorFlow backend.",
)

DENSITY = 0.1
MAX_RATIO = 0.2


def _export_all(model, directory):
    """Writes every format of ``model``; returns {kind: (path, gzip'd size)}."""
    paths = {
        "tf_saved_model": os.path.join(directory, "saved_model"),
        "tflite": os.path.join(directory, "model.tflite"),
        "keras": os.path.join(directory, "stripped.keras"),
    }
    for format, path in paths.items():
        keras_er.export(model, path, format=format)
    paths["model.save"] = os.path.join(directory, "model.keras")
    model.save(paths["model.save"])
    sizes = {kind: gzipped_size(path) for kind, path in paths.items()}
    # A .tflite file is deployed as is: its raw size is the one that counts.
    sizes["tflite"] = os.path.getsize(paths["tflite"])
    return paths, sizes


@pytest.fixture(scope="module")
def lenet_exports(tmp_path_factory):
    """LeNet-300-100 dense and at density 0.1, each exported in every format."""
    keras.utils.set_random_seed(0)
    dense = lenet300_100()
    sparse = keras_er.sparsify(dense, "pyramidal", DENSITY, seed=0)
    dense_paths, dense_sizes = _export_all(
        dense, str(tmp_path_factory.mktemp("dense")))
    sparse_paths, sparse_sizes = _export_all(
        sparse, str(tmp_path_factory.mktemp("sparse")))
    return {
        "sparse": sparse,
        "paths": sparse_paths,
        "sizes": sparse_sizes,
        "dense_sizes": dense_sizes,
    }


def _tflite_outputs(path, x):
    interpreter = interpreter_for(path)  # LiteRT where it installs
    runner = interpreter.get_signature_runner()
    (name,) = runner.get_input_details()
    (output,) = runner(**{name: x}).values()
    return output, interpreter


@needs_tf_backend
def test_every_format_reproduces_the_sparse_model(lenet_exports):
    sparse, paths = lenet_exports["sparse"], lenet_exports["paths"]
    x = np.random.default_rng(1).normal(size=(4, 28, 28, 1)).astype("float32")
    expected = to_numpy(sparse(x))

    reloaded = tf.saved_model.load(paths["tf_saved_model"])
    np.testing.assert_allclose(reloaded.serve(x).numpy(), expected,
                               rtol=1e-5, atol=1e-5)

    stripped = keras.saving.load_model(paths["keras"])
    assert not any(isinstance(layer, MaskedKernelMixin)
                   for layer in stripped.layers)
    np.testing.assert_allclose(to_numpy(stripped(x)), expected,
                               rtol=1e-5, atol=1e-5)

    loaded = keras.saving.load_model(paths["model.save"])
    np.testing.assert_array_equal(to_numpy(loaded(x)), expected)

    # TFLite kernels may sum in another order (XNNPACK): float tolerance.
    output, interpreter = _tflite_outputs(paths["tflite"], x)
    np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-4)
    # The weights really are stored in TFLite's sparse (CSR) encoding.
    encoded = [t for t in interpreter.get_tensor_details()
               if t["sparsity_parameters"]]
    assert len(encoded) == 3  # the three kernels


@needs_tf_backend
@pytest.mark.parametrize("kind", ["tf_saved_model", "tflite", "keras",
                                  "model.save"])
def test_sizes_at_density_0_1_are_at_most_0_2_of_dense(lenet_exports, kind):
    ratio = lenet_exports["sizes"][kind] / lenet_exports["dense_sizes"][kind]
    assert ratio <= MAX_RATIO, (kind, ratio)


def test_stripped_kernels_have_no_negative_zeros():
    sparse = keras_er.sparsify(mlp(), "uniform", 0.3, seed=0)
    for layer in keras_er.strip(sparse).layers:
        kernel = to_numpy(layer.kernel)
        # -0.0 would break the zero runs gzip compresses (docs/export.md).
        assert not np.signbit(kernel[kernel == 0]).any()


def _stored(path):
    """The arrays stored for the first ERDense layer inside a .keras file."""
    with zipfile.ZipFile(path) as archive:
        archive.extract("model.weights.h5", os.path.dirname(path))
    h5_path = os.path.join(os.path.dirname(path), "model.weights.h5")
    with h5py.File(h5_path, "r") as f:
        # Keras names the entries after the layer class, not the layer.
        group = f["layers"]["er_dense"]["vars"]
        return {key: np.asarray(group[key]) for key in group}


def test_packed_masks_round_trip_exactly(tmp_path):
    sparse = keras_er.sparsify(mlp(), "erk", 0.3, seed=0)
    path = str(tmp_path / "m.keras")
    sparse.save(path)
    masks = keras_er.get_masks(sparse)
    name = next(iter(masks))
    stored = _stored(path)
    mask, kernel = masks[name], to_numpy(sparse.get_layer(name).kernel)
    # kernel, bias, mask: one slot per variable, and the record
    # keras_er.load_model reads (unit name and mask options).
    assert sorted(stored) == ["0", "1", "2", ER_CONFIG_ENTRY]
    assert stored["2"].dtype == np.uint8  # packed bits + shape header
    assert stored["2"].size == 2 + 4 * 2 + (mask.size + 7) // 8
    assert stored["0"].shape == (int(mask.sum()),)  # in-mask values only

    loaded = keras.saving.load_model(path)
    for layer_name, loaded_mask in keras_er.get_masks(loaded).items():
        np.testing.assert_array_equal(loaded_mask, masks[layer_name])
    for a, b in zip(loaded.weights, sparse.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    x = np.random.default_rng(0).normal(size=(3, 20)).astype("float32")
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(sparse(x)))
    np.testing.assert_array_equal(
        to_numpy(loaded.get_layer(name).kernel), kernel)


def _drop_config_key(path, key):
    """Removes ``key`` everywhere in the config.json of a .keras file."""

    def drop(node):
        if isinstance(node, dict):
            node.pop(key, None)
            for value in node.values():
                drop(value)
        elif isinstance(node, list):
            for value in node:
                drop(value)

    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(entries["config.json"])
    drop(config)
    assert key not in json.dumps(config)
    entries["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def test_files_with_float_masks_still_load(tmp_path, monkeypatch):
    sparse = keras_er.sparsify(mlp(), "uniform", 0.4, seed=1,
                               mask_dtype="float32")
    path = str(tmp_path / "old.keras")
    # The layout of earlier keras_er versions: float mask, full kernel.
    with monkeypatch.context() as patch:
        patch.setattr(MaskedKernelMixin, "_compact_encoding", lambda self: {})
        sparse.save(path)
    stored = _stored(path)
    assert stored["2"].dtype == np.float32 and stored["2"].ndim == 2
    # And their config, which had no `mask_dtype` yet.
    _drop_config_key(path, "mask_dtype")
    loaded = keras.saving.load_model(path)
    assert [l.mask_dtype for l in keras_er.er_layers(loaded)] == ["bool"] * 3
    for layer_name, mask in keras_er.get_masks(sparse).items():
        np.testing.assert_array_equal(keras_er.get_masks(loaded)[layer_name],
                                      mask)
    x = np.ones((2, 20), "float32")
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(sparse(x)))


def test_weights_file_round_trip_with_packed_masks(tmp_path):
    sparse = keras_er.sparsify(mlp(), "uniform", 0.2, seed=0)
    other = keras_er.sparsify(mlp(), "uniform", 0.7, seed=5)
    path = str(tmp_path / "w.weights.h5")
    sparse.save_weights(path)
    other.load_weights(path)
    for a, b in zip(other.weights, sparse.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


@pytest.mark.parametrize("shape", [(5,), (3, 7), (2, 3, 5, 9), (1, 1)])
def test_pack_unpack_mask(shape):
    mask = (np.random.default_rng(0).random(shape) < 0.3).astype("float32")
    packed = compact_storage.pack_mask(mask)
    assert packed.dtype == np.uint8 and packed.ndim == 1
    assert compact_storage.is_packed_mask(packed)
    restored = compact_storage.unpack_mask(packed)
    assert restored.shape == mask.shape and restored.dtype == np.float32
    np.testing.assert_array_equal(restored, mask)
    kernel = np.where(mask > 0, 1.5, 0.0).astype("float32")
    values = compact_storage.compact_kernel(kernel, mask)
    np.testing.assert_array_equal(
        compact_storage.expand_kernel(values, restored), kernel)


def test_compact_storage_rejects_bad_input():
    mask = np.array([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="only 0 and 1"):
        compact_storage.pack_mask(mask * 2)
    packed = compact_storage.pack_mask(mask)
    newer = packed.copy()
    newer[0] = 9
    with pytest.raises(ValueError, match="version"):
        compact_storage.unpack_mask(newer)
    with pytest.raises(ValueError, match="bytes of bits"):
        compact_storage.unpack_mask(packed[:-1])
    with pytest.raises(ValueError, match="1-D uint8"):
        compact_storage.unpack_mask(mask)
    # A kernel that is not zero outside its mask is stored in full.
    assert compact_storage.compact_kernel(np.ones((2, 2)), mask) is None
    with pytest.raises(ValueError, match="one value per mask entry"):
        compact_storage.expand_kernel(np.ones(3), mask)


def test_gzipped_size_is_reproducible(tmp_path):
    data = os.urandom(1000) + bytes(5000)
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "a.bin").write_bytes(data)
    (tmp_path / "d" / "b.txt").write_bytes(b"hello")
    file_size = gzipped_size(tmp_path / "d" / "sub" / "a.bin")
    assert file_size == len(gzip.compress(data, 9, mtime=0))
    first = gzipped_size(tmp_path / "d")
    os.utime(tmp_path / "d" / "b.txt", (0, 12345))  # mtime is not recorded
    assert gzipped_size(tmp_path / "d") == first


def test_tflite_export_errors(tmp_path, monkeypatch):
    sparse = keras_er.sparsify(mlp(), "uniform", 0.5, seed=0)
    with pytest.raises(ValueError, match="ending in '.tflite'"):
        keras_er.export(sparse, tmp_path / "m.keras", format="tflite")
    export_module = sys.modules["keras_er.export"]
    monkeypatch.setattr(export_module.keras.backend, "backend",
                        lambda: "jax")
    with pytest.raises(ValueError, match="needs the TensorFlow backend"):
        keras_er.export(sparse, tmp_path / "m.tflite", format="tflite")
