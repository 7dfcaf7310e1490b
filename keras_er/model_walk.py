"""Finding maskable layers in a model and cloning a model layer by layer."""

import keras

from keras_er.layers import ER_LAYER_FOR, is_er_layer


def iter_layers(model):
    """Yields every leaf layer of ``model`` once, in forward order.

    Nested models (Sequential or Functional) are entered recursively; a layer
    shared between several call sites is yielded once.
    """
    seen = set()

    def walk(container):
        for layer in container.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if isinstance(layer, keras.Model):
                yield from walk(layer)
            else:
                yield layer

    yield from walk(model)


def is_maskable(layer):
    """Whether ``sparsify`` can mask ``layer`` (or it already has a mask)."""
    return type(layer) in ER_LAYER_FOR or is_er_layer(layer)


def kernel_shape(layer):
    """The shape of a built layer's kernel.

    Raises:
        ValueError: If the layer is not built yet.
    """
    if not layer.built:
        raise ValueError(
            f"Layer {layer.name!r} is not built, so its kernel shape is "
            "unknown. Give the model an input shape first (start it with "
            "`keras.Input(shape)`, or call `model.build(input_shape)`)."
        )
    return tuple(int(s) for s in layer._kernel.shape)


def select_layers(model, layers=None):
    """The maskable layers of ``model`` that pass the ``layers`` filter.

    Args:
        model: A Keras model.
        layers: ``None`` (all maskable layers), a list of layer names, a
            regex string matched against names with ``re.fullmatch``, or a
            callable ``fn(layer) -> bool``.

    Returns:
        A list of layers in forward order.

    Raises:
        ValueError: If a named layer does not exist or is not maskable, or if
            nothing is selected.
    """
    import re

    candidates = [layer for layer in iter_layers(model) if is_maskable(layer)]
    if layers is None:
        chosen = candidates
    elif callable(layers):
        chosen = [layer for layer in candidates if layers(layer)]
    elif isinstance(layers, str):
        try:
            pattern = re.compile(layers)
        except re.error as error:
            raise ValueError(
                f"layers={layers!r} is not a valid regular expression: {error}"
            ) from None
        chosen = [c for c in candidates if pattern.fullmatch(c.name)]
    else:
        names = list(layers)
        by_name = {layer.name: layer for layer in candidates}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise ValueError(
                f"layers names {unknown} are not maskable layers of the model."
                f" Maskable layers: {sorted(by_name)}."
            )
        chosen = [c for c in candidates if c.name in set(names)]
    if not chosen:
        supported = ", ".join(sorted(cls.__name__ for cls in ER_LAYER_FOR))
        raise ValueError(
            "The model has no maskable layer"
            + ("" if layers is None else f" matching layers={layers!r}")
            + f". keras_er masks these layer types: {supported}."
        )
    return chosen


def clone_layerwise(model, make_layer, copy_weights):
    """Clones a Sequential/Functional model, nested models included.

    Args:
        model: The model to clone; it is not modified.
        make_layer: ``fn(layer) -> new_layer`` for every leaf layer.
        copy_weights: ``fn(old_layer, new_layer)`` called once per leaf layer
            after the new model is built.

    Returns:
        The new model.

    Raises:
        ValueError: For a subclassed model, which Keras cannot clone.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"Expected a keras.Model, got {type(model).__name__}.")
    if not _is_cloneable(model):
        raise ValueError(
            f"Cannot rebuild the subclassed model {type(model).__name__!r}: "
            "keras_er replaces layers by cloning Sequential and Functional "
            "models. Build your subclassed model with keras_er layers "
            "directly (e.g. `keras_er.ERDense(units, density=0.1)` instead "
            "of `keras.layers.Dense(units)`), or express it as a Functional "
            "model."
        )
    pairs = []

    def clone_function(layer):
        new_layer = make_layer(layer)
        pairs.append((layer, new_layer))
        return new_layer

    new_model = keras.models.clone_model(
        model, clone_function=clone_function, recursive=True
    )
    for old_layer, new_layer in pairs:
        copy_weights(old_layer, new_layer)
    return new_model


def _is_cloneable(model):
    # Keras exposes no public name for Functional models.
    from keras.src.models.functional import Functional

    if not isinstance(model, (keras.Sequential, Functional)):
        return False
    return all(
        _is_cloneable(layer)
        for layer in model.layers
        if isinstance(layer, keras.Model)
    )


def plain_clone(layer):
    """A fresh copy of ``layer`` from its config."""
    return layer.__class__.from_config(layer.get_config())


def copy_all_weights(old_layer, new_layer):
    """Copies every weight of ``old_layer`` into ``new_layer``."""
    new_layer.set_weights(old_layer.get_weights())
