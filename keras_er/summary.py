"""`summary`: a per-layer table of sizes, densities and FLOPs."""

import keras
import numpy as np

from keras_er._checks import check_model, describe
from keras_er.algorithms._select import count
from keras_er.layers import is_er_layer
from keras_er.layers.multi_kernel import KernelUnit
from keras_er.model_walk import (
    KernelSlot,
    iter_maskable,
    kernel_shape,
    kernel_variable,
    unit_name,
)

# A transposed convolution applies its kernel once per *input* position.
_TRANSPOSED_CONVS = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)

COLUMNS = (
    ("name", "Layer"),
    ("type", "Type"),
    ("kernel_shape", "Kernel shape"),
    ("params", "Params"),
    ("nonzeros", "Nonzeros"),
    ("density", "Density"),
    ("dense_flops", "Dense FLOPs"),
    ("sparse_flops", "Sparse FLOPs"),
)


def _positions_per_example(layer, shape):
    """How often the kernel is applied per example (1 for a flat Dense).

    Dense on a ``(batch, t, d)`` input applies its kernel ``t`` times; a
    convolution once per output pixel (a transposed one once per input
    pixel); an EinsumDense once per input entry not contracted with the
    kernel; an Embedding never (a lookup); a recurrent kernel once per time
    step. Unknown (``None``) when the layer was never called on a known
    shape (or the sequence length is not fixed).
    """
    if isinstance(layer, keras.layers.Embedding):
        return 0  # A lookup: no multiply-adds.
    views = (KernelSlot, KernelUnit)
    if isinstance(layer, views) and isinstance(
        layer.owner, keras.layers.RNN
    ):
        return _time_steps(layer.owner)
    if isinstance(layer, views) and layer.role == "attention_output":
        # Keras builds this projection without the sequence length; it is
        # applied as often as the query projection.
        return _einsum_positions(layer.owner.query_dense)
    if getattr(layer, "equation", None) is not None:
        return _einsum_positions(layer)
    if isinstance(layer, _TRANSPOSED_CONVS):
        output_shape = _build_input_shape(layer)
    else:
        output_shape = _output_shape(layer)
    if output_shape is None:
        return None
    channels_first = getattr(layer, "data_format", None) == "channels_first"
    spatial = output_shape[2:] if channels_first else output_shape[1:-1]
    if any(s is None for s in spatial):
        return None
    return int(np.prod(spatial)) if spatial else 1


def _time_steps(rnn):
    """Sequence length of a plain RNN layer (its kernels apply once a step).

    The ER RNN layers build their kernel units on the whole sequence shape,
    so the generic rule below already gives them the number of steps.
    """
    try:
        steps = tuple(rnn.input.shape)[1]
    except (AttributeError, ValueError, IndexError):
        return None
    return None if steps is None else int(steps)


def _build_input_shape(layer):
    try:
        shape = layer.get_build_config()["input_shape"]
    except (AttributeError, KeyError, TypeError):
        return None
    return None if shape is None else tuple(shape)


def _output_shape(layer):
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        pass
    # The kernels of a SeparableConv1D/2D or MultiHeadAttention live in
    # sublayers that never see a symbolic tensor: use their build shape.
    input_shape = _build_input_shape(layer)
    if input_shape is None:
        return None
    try:
        return tuple(layer.compute_output_shape(input_shape))
    except Exception:  # Any layer-specific shape error: FLOPs unknown.
        return None


def _einsum_positions(layer):
    """Input entries per example that the kernel does not contract."""
    input_shape = _build_input_shape(layer)
    if input_shape is None:
        return None
    input_spec, kernel_spec = (
        layer.equation.replace(" ", "").split("->")[0].split(",")
    )
    if "..." in input_spec:
        left, right = input_spec.split("...")
        middle = len(input_shape) - len(left) - len(right)
        letters = list(left) + [None] * middle + list(right)
    else:
        letters = list(input_spec)
    # Dim 0 is the batch.
    free = [
        size for size, letter in zip(input_shape[1:], letters[1:])
        if letter is None or letter not in kernel_spec
    ]
    if any(size is None for size in free):
        return None
    return int(np.prod(free)) if free else 1


def summary(model, print_fn=print):
    """Prints and returns a per-layer table of the model's weight layers.

    For every maskable kernel (ER layers, plain layers keras_er can mask,
    and each kernel of a SeparableConv1D/2D or MultiHeadAttention): name,
    type, kernel shape, kernel parameters, nonzeros (kept connections for an
    ER layer, nonzero entries otherwise), density, and the forward FLOPs per
    example of the dense and of the sparse layer (2 per multiply-add; bias
    and activation not counted; an Embedding lookup counts 0). A last row
    holds the totals.

    Args:
        model: A built Keras model.
        print_fn: Called with each line of the table; ``None`` prints nothing.

    Returns:
        A list of dicts (one per layer, then one with ``name="total"``) with
        the keys ``name, type, kernel_shape, params, nonzeros, density,
        dense_flops, sparse_flops``. FLOPs are ``None`` when the layer's
        output shape is unknown.

    Example:

    ```python
    rows = keras_er.summary(sparse)
    rows[-1]["density"]  # overall density of the maskable weights
    ```
    """
    check_model(model)
    if print_fn is not None and not callable(print_fn):
        raise ValueError(
            "print_fn must be a callable taking one line (e.g. print) or "
            f"None to print nothing, got {describe(print_fn)}."
        )
    rows = []
    for layer in iter_maskable(model):
        shape = tuple(kernel_shape(layer))
        params = int(np.prod(shape))
        if is_er_layer(layer):
            nonzeros = count(layer.mask)  # On device.
        else:
            nonzeros = count(kernel_variable(layer))
        positions = _positions_per_example(layer, shape)
        rows.append(
            {
                "name": unit_name(layer),
                "type": type(layer.owner).__name__
                if isinstance(layer, (KernelSlot, KernelUnit))
                else type(layer).__name__,
                "kernel_shape": shape,
                "params": params,
                "nonzeros": nonzeros,
                "density": nonzeros / params,
                "dense_flops": None if positions is None
                else 2 * params * positions,
                "sparse_flops": None if positions is None
                else 2 * nonzeros * positions,
            }
        )
    params = sum(r["params"] for r in rows)
    nonzeros = sum(r["nonzeros"] for r in rows)
    flops_known = rows and all(r["dense_flops"] is not None for r in rows)
    rows.append(
        {
            "name": "total",
            "type": "",
            "kernel_shape": "",
            "params": params,
            "nonzeros": nonzeros,
            "density": nonzeros / params if params else float("nan"),
            "dense_flops": sum(r["dense_flops"] for r in rows)
            if flops_known else None,
            "sparse_flops": sum(r["sparse_flops"] for r in rows)
            if flops_known else None,
        }
    )
    if print_fn is not None:
        for line in format_table(rows):
            print_fn(line)
    return rows


def _cell(key, value):
    if value is None:
        return "?"
    if key == "density":
        return f"{value:.4f}"
    if key == "kernel_shape" and isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(rows):
    """Formats summary rows as aligned text lines."""
    table = [[title for _, title in COLUMNS]]
    table += [[_cell(key, row[key]) for key, _ in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]

    def render(cells):
        return "  ".join(
            cell.ljust(width) if i < 3 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths))
        )

    rule = "-" * len(render(table[0]))
    lines = [render(table[0]), rule]
    lines += [render(cells) for cells in table[1:-1]]
    lines += [rule, render(table[-1])]
    return lines
