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


def lenet300_100(input_shape=(28, 28, 1), num_classes=10):
    """LeNet-300-100: a fully connected net with two hidden layers.

    ``Flatten -> Dense(300, relu) -> Dense(100, relu) -> Dense(num_classes)``
    (LeCun et al., 1998), the standard MLP of the sparse-training literature.
    The last layer has no activation: the model outputs logits.

    Layer names are ``fc1``, ``fc2`` and ``fc3``; the model is named
    ``lenet300_100``. With the defaults it has 266,610 parameters, 266,200 of
    them in the three kernels.

    Args:
        input_shape: Shape of one example without the batch dimension; any
            rank from 1 to 8 (it is flattened), e.g. ``(28, 28, 1)`` or
            ``(784,)``.
        num_classes: Number of output logits, at least 2.

    Returns:
        A (not compiled) `keras.Model`.

    Raises:
        ValueError: For a bad ``input_shape`` or ``num_classes``.

    Example:

    ```python
    from keras_er.models import lenet300_100

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
    inputs = keras.Input(shape=shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(300, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(100, activation="relu", name="fc2")(x)
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
    from keras_er.models import conv_small

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
