"""Tests of the model zoo: sizes by hand, sparsify, forward pass, lookup."""

import keras
import numpy as np
import pytest

import keras_er
from keras_er.research import models


def _kernel_sizes(model):
    return [
        int(np.prod(w.shape)) for w in model.weights if w.path.endswith(
            "kernel"
        )
    ]


def test_lenet300_parameter_count_by_hand():
    model = models.get("lenet300")((28, 28, 1), 10)
    kernels = [784 * 300, 300 * 100, 100 * 10]
    biases = 300 + 100 + 10
    assert _kernel_sizes(model) == kernels
    assert model.count_params() == sum(kernels) + biases == 266_610


def test_lenet300_width_multiplies_both_hidden_layers():
    model = models.lenet300_100((28, 28, 1), 10, width=4)
    assert _kernel_sizes(model) == [784 * 1200, 1200 * 400, 400 * 10]
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="width must be a positive int"):
            models.lenet300_100(width=bad)


@pytest.mark.parametrize(
    "input_shape, flat",
    # Two 2x2 poolings: 32 -> 8 and 28 -> 7 pixels, 128 channels.
    [((32, 32, 3), 8 * 8 * 128), ((28, 28, 1), 7 * 7 * 128)],
)
def test_conv4_parameter_count_by_hand(input_shape, flat):
    model = models.conv4(input_shape, 10)
    channels = input_shape[-1]
    kernels = [
        3 * 3 * channels * 64, 3 * 3 * 64 * 64, 3 * 3 * 64 * 128,
        3 * 3 * 128 * 128, flat * 256, 256 * 256, 256 * 10,
    ]
    biases = 64 + 64 + 128 + 128 + 256 + 256 + 10
    assert _kernel_sizes(model) == kernels
    assert model.count_params() == sum(kernels) + biases
    if input_shape == (32, 32, 3):
        assert sum(kernels) == 2_425_024  # as in the conv4 docstring


def test_resnet20_has_19_convolutions_and_cifar_resolutions():
    model = models.resnet20((32, 32, 3), 10)
    convs = [
        layer for layer in model.layers
        if type(layer).__name__ == "Conv2D" and layer.kernel_size == (3, 3)
    ]
    assert len(convs) == 19
    # Three stages: 32x32, 16x16, 8x8 (CIFAR-style, no stem pooling).
    assert model.get_layer("stage1_block3_out").output.shape[1:] == (
        32, 32, 16
    )
    assert model.get_layer("stage3_block3_out").output.shape[1:] == (
        8, 8, 64
    )


# Trainable parameters with 10 classes (the docstrings' numbers; ResNet18's
# is the usual CIFAR ResNet18 count).
TRAINABLE = {
    "lenet300": 266_610,
    "conv_small": 421_642,
    "conv4": 2_425_930,
    "vgg16": 14_724_042,
    "resnet18": 11_173_962,
    "resnet20": 272_474,
}

# CIFAR-style: 32x32 inputs end at 4x4 (ResNet18) and 1x1 (VGG16).
LAST_FEATURES = {
    "resnet18": ("stage4_block2_out", (4, 4, 512)),
    "vgg16": ("pool5", (1, 1, 512)),
}


@pytest.mark.parametrize(
    "name, input_shape",
    [
        ("lenet300", (28, 28, 1)),
        ("conv_small", (28, 28, 1)),
        ("conv4", (32, 32, 3)),
        ("vgg16", (32, 32, 3)),
        ("resnet18", (32, 32, 3)),
        ("resnet20", (32, 32, 3)),
    ],
)
def test_builders_sparsify_and_run(name, input_shape):
    dense = models.get(name)(input_shape, 10)
    trainable = sum(int(np.prod(w.shape)) for w in dense.trainable_weights)
    assert trainable == TRAINABLE[name]
    if name in LAST_FEATURES:
        layer, shape = LAST_FEATURES[name]
        assert dense.get_layer(layer).output.shape[1:] == shape
    sparse = keras_er.sparsify(dense, ratio="erk", density=0.1, seed=0)
    x = np.random.default_rng(0).random((2, *input_shape), dtype=np.float32)
    # Not np.asarray: torch outputs require grad (any backend here).
    logits = keras.ops.convert_to_numpy(sparse(x, training=False))
    assert logits.shape == (2, 10)
    assert np.all(np.isfinite(logits))
    rows = keras_er.summary(sparse, print_fn=None)
    assert abs(rows[-1]["density"] - 0.1) < 0.01
    # Every Dense/Conv2D became an ER layer.
    assert all(row["type"].startswith("ER") for row in rows[:-1])


def test_builders_accept_small_images():
    # digits is 8x8x1: the convolutional models must still build and run.
    x = np.zeros((2, 8, 8, 1), np.float32)
    for name in ("conv4", "resnet20", "vgg16"):
        model = models.get(name)((8, 8, 1), 10)
        assert model(x).shape == (2, 10)


def test_get_unknown_name_lists_models():
    with pytest.raises(ValueError, match="Unknown model 'resnet50'.*resnet18"):
        models.get("resnet50")
    assert models.get("lenet300") is models.lenet300_100
    assert models.get("lenet300_100") is models.lenet300_100


@pytest.mark.parametrize("builder", [models.conv4, models.resnet20])
def test_builders_reject_bad_arguments(builder):
    with pytest.raises(ValueError, match="input_shape"):
        builder((32, 32), 10)
    with pytest.raises(ValueError, match="num_classes"):
        builder((32, 32, 3), 1)
