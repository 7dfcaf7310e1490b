"""Small reference models for examples, tests and benchmarks.

All builders return plain (dense) Functional `keras.Model`s made of standard
`keras.layers`; pass them to `keras_er.sparsify` to make them sparse. Outputs
are logits (no softmax), so compile with ``from_logits=True``.
"""

import keras


def _check_args(input_shape, num_classes, min_rank, max_rank):
    """Validates the common builder arguments; returns the shape as a tuple."""
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"input_shape must be a tuple of positive ints without the batch "
            f"dimension, e.g. (28, 28, 1), got {input_shape!r}."
        ) from None
    if not min_rank <= len(shape) <= max_rank or any(s < 1 for s in shape):
        ranks = (
            str(min_rank) if min_rank == max_rank
            else f"{min_rank} to {max_rank}"
        )
        raise ValueError(
            f"input_shape must hold {ranks} positive ints (no batch "
            f"dimension), e.g. (28, 28, 1), got {input_shape!r}."
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or (
        num_classes < 2
    ):
        raise ValueError(
            f"num_classes must be an int >= 2, got {num_classes!r}."
        )
    return shape


def lenet300_100(input_shape=(28, 28, 1), num_classes=10, width=1):
    """LeNet-300-100: a fully connected net with two hidden layers.

    ``Flatten -> Dense(300, relu) -> Dense(100, relu) -> Dense(num_classes)``
    (LeCun et al., 1998), the standard MLP of the sparse-training literature.
    The last layer has no activation: the model outputs logits. ``width``
    multiplies both hidden layers (``width=4``: 1200 and 400 units), for the
    width experiments of the ER paper's Theorem 2.1.

    Layer names are ``fc1``, ``fc2`` and ``fc3``; the model is named
    ``lenet300_100``. With the defaults it has 266,610 parameters, 266,200 of
    them in the three kernels.

    Args:
        input_shape: Shape of one example without the batch dimension; any
            rank from 1 to 8 (it is flattened), e.g. ``(28, 28, 1)`` or
            ``(784,)``.
        num_classes: Number of output logits, at least 2.
        width: Positive int multiplying the hidden widths 300 and 100.

    Returns:
        A (not compiled) `keras.Model`.

    Raises:
        ValueError: For a bad ``input_shape``, ``num_classes`` or ``width``.

    Example:

    ```python
    from keras_er.research.models import lenet300_100

    model = lenet300_100()
    sparse = keras_er.sparsify(model, ratio="pyramidal", density=0.1, seed=0)
    sparse.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    ```
    """
    shape = _check_args(input_shape, num_classes, 1, 8)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}.")
    inputs = keras.Input(shape=shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(300 * width, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(100 * width, activation="relu", name="fc2")(x)
    outputs = keras.layers.Dense(num_classes, name="fc3")(x)
    return keras.Model(inputs, outputs, name="lenet300_100")


def conv_small(input_shape=(28, 28, 1), num_classes=10):
    """A small convolutional net for 28x28-sized images.

    ``Conv2D(32, 3x3, relu) -> MaxPool(2) -> Conv2D(64, 3x3, relu) ->
    MaxPool(2) -> Flatten -> Dense(128, relu) -> Dense(num_classes)``.
    Convolutions use ``"same"`` padding, so any image of at least 4x4 pixels
    works (28x28 gives a 7x7x64 feature map, 421,642 parameters). The last
    layer has no activation: the model outputs logits.

    Layer names are ``conv1``, ``conv2``, ``fc1`` and ``fc2``; the model is
    named ``conv_small``.

    Args:
        input_shape: ``(height, width, channels)``, channels last.
        num_classes: Number of output logits, at least 2.

    Returns:
        A (not compiled) `keras.Model`.

    Raises:
        ValueError: For a bad ``input_shape`` (not 3 positive ints, or
            smaller than 4x4) or ``num_classes``.

    Example:

    ```python
    from keras_er.research.models import conv_small

    model = conv_small()
    sparse = keras_er.sparsify(model, ratio="erk", density=0.2, seed=0)
    keras_er.summary(sparse)
    ```
    """
    shape = _check_args(input_shape, num_classes, 3, 3)
    if shape[0] < 4 or shape[1] < 4:
        # Two 2x2 poolings of a smaller image leave no pixels.
        raise ValueError(
            f"conv_small needs images of at least 4x4 pixels (channels "
            f"last), got input_shape={input_shape!r}."
        )
    inputs = keras.Input(shape=shape, name="image")
    x = keras.layers.Conv2D(
        32, 3, padding="same", activation="relu", name="conv1"
    )(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(
        64, 3, padding="same", activation="relu", name="conv2"
    )(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(num_classes, name="fc2")(x)
    return keras.Model(inputs, outputs, name="conv_small")


def conv4(input_shape=(32, 32, 3), num_classes=10):
    """Conv-4 of the lottery ticket paper (Frankle & Carbin, 2019).

    ``[Conv2D(64, 3x3, relu)] x 2 -> MaxPool(2) -> [Conv2D(128, 3x3, relu)]
    x 2 -> MaxPool(2) -> Flatten -> Dense(256, relu) -> Dense(256, relu) ->
    Dense(num_classes)``. Convolutions use ``"same"`` padding. The last layer
    has no activation: the model outputs logits.

    On CIFAR-10 (32x32x3) the feature map before ``Flatten`` is 8x8x128 and
    the kernels hold 2,425,024 weights (2,425,930 parameters with biases);
    on MNIST (28x28x1) it is 7x7x128 and the kernels hold 1,932,352 weights.

    Layer names are ``conv1`` to ``conv4`` and ``fc1`` to ``fc3``; the model
    is named ``conv4``.

    Args:
        input_shape: ``(height, width, channels)``, channels last, at least
            4x4 pixels.
        num_classes: Number of output logits, at least 2.

    Returns:
        A (not compiled) `keras.Model`.

    Raises:
        ValueError: For a bad ``input_shape`` or ``num_classes``.

    Example:

    ```python
    from keras_er.research import models

    model = models.conv4((32, 32, 3), 10)
    sparse = keras_er.sparsify(model, ratio="balanced", density=0.1, seed=0)
    ```
    """
    shape = _check_args(input_shape, num_classes, 3, 3)
    if shape[0] < 4 or shape[1] < 4:
        raise ValueError(
            f"conv4 needs images of at least 4x4 pixels (channels last), "
            f"got input_shape={input_shape!r}."
        )
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    for index, filters in enumerate((64, 64, 128, 128), start=1):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=f"conv{index}"
        )(x)
        if index % 2 == 0:
            x = keras.layers.MaxPooling2D(2, name=f"pool{index // 2}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(256, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(256, activation="relu", name="fc2")(x)
    outputs = keras.layers.Dense(num_classes, name="fc3")(x)
    return keras.Model(inputs, outputs, name="conv4")


def _conv_bn_relu(x, filters, name, strides=1, relu=True):
    """3x3 convolution (no bias: BatchNorm follows), BatchNorm, ReLU."""
    x = keras.layers.Conv2D(
        filters, 3, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


# Filters of VGG16's 13 convolutions; "M" is a 2x2 max pooling.
_VGG16 = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
    512, 512, 512, "M", 512, 512, 512, "M",
)


def vgg16(input_shape=(32, 32, 3), num_classes=10):
    """VGG16 with BatchNorm for CIFAR-sized images.

    Thirteen ``Conv2D(3x3, no bias) -> BatchNorm -> ReLU`` blocks with
    64, 64, 128, 128, 256 x 3, 512 x 3, 512 x 3 filters and a 2x2 max pooling
    after each group, then global average pooling and one
    ``Dense(num_classes)`` (the CIFAR variant used by the sparse-training
    literature, including Gadhikar et al. 2023: no 4096-wide dense layers).
    Poolings use ``"same"`` padding, so any image size works (32x32 ends at
    1x1). With 10 classes: 14,732,490 parameters (14,724,042 trainable;
    14,715,584 kernel weights).

    Layer names are ``block{i}_conv``, ``block{i}_bn``, ``block{i}_relu``
    (``i`` = 1..13), ``pool1`` to ``pool5``, ``gap`` and ``fc``; the model is
    named ``vgg16``.

    Args:
        input_shape: ``(height, width, channels)``, channels last.
        num_classes: Number of output logits, at least 2.

    Returns:
        A (not compiled) `keras.Model` that outputs logits.

    Raises:
        ValueError: For a bad ``input_shape`` or ``num_classes``.

    Example:

    ```python
    from keras_er.research import models

    model = models.vgg16((32, 32, 3), 10)
    sparse = keras_er.sparsify(model, ratio="pyramidal", density=0.01, seed=0)
    ```
    """
    shape = _check_args(input_shape, num_classes, 3, 3)
    inputs = keras.Input(shape=shape, name="image")
    x, block, pool = inputs, 0, 0
    for item in _VGG16:
        if item == "M":
            pool += 1
            x = keras.layers.MaxPooling2D(
                2, padding="same", name=f"pool{pool}"
            )(x)
        else:
            block += 1
            x = _conv_bn_relu(x, item, f"block{block}")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name="vgg16")


def _basic_block(x, filters, strides, name):
    """ResNet basic block: two 3x3 conv-BN, projection shortcut if needed.

    The shortcut is a 1x1 convolution with BatchNorm when the block changes
    the resolution or the width (He et al. 2016's option B), else identity.
    """
    shortcut = x
    y = _conv_bn_relu(x, filters, f"{name}_1", strides=strides)
    y = _conv_bn_relu(y, filters, f"{name}_2", relu=False)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(
            filters, 1, strides=strides, use_bias=False,
            kernel_initializer="he_normal", name=f"{name}_shortcut_conv",
        )(x)
        shortcut = keras.layers.BatchNormalization(
            name=f"{name}_shortcut_bn"
        )(shortcut)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def _resnet(input_shape, num_classes, stem_filters, stages, name):
    """CIFAR ResNet: 3x3 stem, stages of basic blocks, GAP, Dense."""
    shape = _check_args(input_shape, num_classes, 3, 3)
    inputs = keras.Input(shape=shape, name="image")
    x = _conv_bn_relu(inputs, stem_filters, "stem")
    for stage, (filters, blocks) in enumerate(stages, start=1):
        for block in range(1, blocks + 1):
            # The first block of every stage but the first halves the size.
            strides = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(x, filters, strides, f"stage{stage}_block{block}")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet18(input_shape=(32, 32, 3), num_classes=10):
    """ResNet18 for CIFAR-sized images (He et al. 2016, CIFAR-style stem).

    A 3x3, stride-1 convolution with 64 filters (no 7x7 stem, no max
    pooling, as in the CIFAR code of the sparse-training literature), then
    four stages of two basic blocks with 64, 128, 256 and 512 filters (each
    stage after the first halves the resolution; 1x1 projection shortcuts
    where the shape changes), global average pooling and
    ``Dense(num_classes)``. Convolutions have no bias (BatchNorm follows).
    With 10 classes: 11,183,562 parameters (11,173,962 trainable).

    Layer names: ``stem_conv``, ``stage{s}_block{b}_{1,2}_conv`` / ``_bn``,
    ``stage{s}_block1_shortcut_conv`` (s = 2..4), ``gap``, ``fc``; the model
    is named ``resnet18``.

    Args:
        input_shape: ``(height, width, channels)``, channels last; any size
            (32x32 ends at 4x4 before the pooling).
        num_classes: Number of output logits, at least 2.

    Returns:
        A (not compiled) `keras.Model` that outputs logits.

    Raises:
        ValueError: For a bad ``input_shape`` or ``num_classes``.

    Example:

    ```python
    from keras_er.research import models

    model = models.resnet18((32, 32, 3), 10)
    sparse = keras_er.sparsify(model, ratio="balanced", density=0.1, seed=0)
    ```
    """
    return _resnet(
        input_shape, num_classes, 64,
        ((64, 2), (128, 2), (256, 2), (512, 2)), "resnet18",
    )


def resnet20(input_shape=(32, 32, 3), num_classes=10):
    """ResNet20 for CIFAR (He et al. 2016, section 4.2).

    A 3x3 convolution with 16 filters, three stages of three basic blocks
    with 16, 32 and 64 filters (the second and third stage halve the
    resolution), global average pooling and ``Dense(num_classes)``: 19
    convolutions and one dense layer. Where the shape changes the shortcut is
    a 1x1 convolution with BatchNorm (option B; the paper's CIFAR nets use
    zero-padding, option A, which has no weights). With 10 classes: 274,042
    parameters (272,474 trainable).

    Layer names follow `resnet18`; the model is named ``resnet20``.

    Args:
        input_shape: ``(height, width, channels)``, channels last.
        num_classes: Number of output logits, at least 2.

    Returns:
        A (not compiled) `keras.Model` that outputs logits.

    Raises:
        ValueError: For a bad ``input_shape`` or ``num_classes``.

    Example:

    ```python
    from keras_er.research import models

    model = models.resnet20((32, 32, 3), 10)
    sparse = keras_er.sparsify(model, ratio="erk", density=0.2, seed=0)
    ```
    """
    return _resnet(
        input_shape, num_classes, 16, ((16, 3), (32, 3), (64, 3)), "resnet20"
    )


# Name -> builder. "lenet300" is the short name used by examples/train.py.
MODELS = {
    "lenet300": lenet300_100,
    "lenet300_100": lenet300_100,
    "conv_small": conv_small,
    "conv4": conv4,
    "vgg16": vgg16,
    "resnet18": resnet18,
    "resnet20": resnet20,
}


def get(name):
    """Returns the model builder called ``name``.

    Every builder is called as ``builder(input_shape, num_classes)`` and
    returns a dense Functional `keras.Model` with logits as outputs.

    Args:
        name: One of ``"lenet300"`` (alias ``"lenet300_100"``),
            ``"conv_small"``, ``"conv4"``, ``"vgg16"``, ``"resnet18"``,
            ``"resnet20"``.

    Returns:
        The builder function.

    Raises:
        ValueError: For an unknown name; the message lists the known ones.

    Example:

    ```python
    from keras_er.research import models

    model = models.get("resnet20")((32, 32, 3), 10)
    ```
    """
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown model {name!r}. Known models: {sorted(MODELS)}."
        ) from None
