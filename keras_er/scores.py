"""Pruning-at-initialization scores (SNIP, SynFlow) and ratios borrowed from
them.

The paper's "ER SNIP" / "ER SynFlow" baselines (Gadhikar et al., 2023) run a
one-shot pruning method once, keep only the *layerwise densities* it
produces, and draw a random ER mask with those densities. Here:

* `snip_scores`: ``|w * dL/dw|`` on one batch (Lee et al., 2019).
* `synflow_scores`: ``|w * dR/dw|`` with every parameter replaced by its
  absolute value, an all-ones input and ``R`` the sum of the output
  (Tanaka et al., 2020); `synflow_masks` iterates it (100 rounds, exponential
  density schedule), which is the actual SynFlow pruning algorithm.
* `borrowed_densities`: the per-layer densities of the global top-scoring
  weights; ``keras_er.layer_densities(model, "snip" | "synflow", density,
  data=...)`` and ``keras_er.sparsify(...)`` route to it.
* `prune_at_init`: the plain one-shot SNIP / SynFlow masks themselves, as ER
  layers, for comparison with the random ER masks.

Gradients are taken with the model's variables mapped to given values inside
a `keras.StatelessScope`, so the model is never modified (BatchNorm moving
statistics included) and the same code runs on the TensorFlow, JAX and torch
backends; only the gradient call itself is backend-specific (`keras_er.gradients`).
"""

import keras
import numpy as np
from keras import ops

from keras_er._checks import (
    check_int,
    check_layers,
    check_model,
    check_options,
)
from keras_er.algorithms import saliency
from keras_er.batches import BatchSource
from keras_er.processes import global_batch, mean_over_workers
from keras_er.gradients import gradients
from keras_er.model_walk import (
    clone_layerwise,
    is_cloneable,
    iter_maskable,
    kernel_variable,
    select_layers,
    unit_name,
)
from keras_er.ratios import check_density

__all__ = [
    "METHODS",
    "borrowed_densities",
    "prune_at_init",
    "pruning_masks",
    "snip_masks",
    "snip_scores",
    "synflow_masks",
    "synflow_scores",
]

METHODS = ("snip", "synflow")

# Output activations that belong to the loss rather than to the network:
# SynFlow's R = sum(output) of a softmax is the constant 1 (zero gradient),
# so the linearized clone uses the logits.
_OUTPUT_ACTIVATIONS = ("softmax", "log_softmax", "sigmoid")


def _gradients(fn, variables, values, fixed=()):
    """Gradient of the scalar ``fn()`` w.r.t. ``variables`` set to ``values``.

    The variables take ``values`` (and the ``(variable, value)`` pairs of
    ``fixed`` theirs) only inside a `keras.StatelessScope`; they are never
    assigned.

    Returns:
        A list of backend tensors, left where they were computed (zeros
        where a variable does not affect ``fn``).
    """
    fixed = list(fixed)

    def loss_of(tensors):
        mapping = list(zip(variables, tensors)) + fixed
        with keras.StatelessScope(state_mapping=mapping):
            return fn()

    tensors = [
        ops.convert_to_tensor(v, dtype=w.dtype)
        for v, w in zip(values, variables)
    ]
    return gradients(loss_of, tensors, as_numpy=False)


def _to_numpy64(tensors):
    return [
        np.asarray(ops.convert_to_numpy(t), dtype=np.float64) for t in tensors
    ]


def _unpack_data(data, method="snip"):
    """``(x, y, sample_weight)`` of one batch of ``data``.

    ``data`` takes what every keras_er ``data=`` takes
    (`keras_er.batches.BatchSource`): a batch tuple ``(x, y)``, or an
    iterable of batches (``tf.data.Dataset``, `keras.utils.PyDataset`, ...),
    whose first batch is used.
    """
    if data is None:
        raise ValueError(
            f"{method!r} scores need a batch of data: pass data=(x, y)."
        )
    # Several processes: one global batch (see `global_batch`).
    x, y, sample_weight = global_batch(keras.utils.unpack_x_y_sample_weight(
        BatchSource(data, owner=method.upper()).next()
    ))
    if y is None:
        raise ValueError(
            f"{method!r} scores need labels: data must give (x, y) batches."
        )
    return x, y, sample_weight


def _loss_function(model, loss):
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ValueError(
                "SNIP needs a loss: compile the model first or pass loss= "
                "(e.g. loss='sparse_categorical_crossentropy')."
            )
    if isinstance(loss, (dict, list, tuple)):
        raise ValueError(
            "SNIP supports a single loss; the model has several. Pass one "
            "loss function of (y_true, y_pred) as loss=."
        )
    try:
        return keras.losses.get(loss)
    except (ValueError, TypeError) as error:
        raise ValueError(f"Unknown loss {loss!r}: {error}") from None


def _kernel_values(layers):
    # The raw kernel variable: for ER layers the mask (and any
    # reparameterization) is applied in the forward pass, so the gradient is
    # zero outside the mask and those entries score 0.
    return [kernel_variable(layer) for layer in layers]


def snip_scores(model, data, *, loss=None, layers=None, training=False):
    """SNIP connection sensitivity ``|w * dL/dw|`` of every maskable kernel.

    Args:
        model: A built Keras model (plain or with ER layers; entries outside
            an ER mask score 0). It is not modified.
        data: One batch ``(x, y)``, or an iterable of batches (a
            ``tf.data.Dataset``, a `keras.utils.PyDataset`, ...) whose first
            batch is used (`keras_er.batches.BatchSource`).
        loss: Loss ``fn(y_true, y_pred)`` or its name; default: the loss the
            model was compiled with.
        layers: Which maskable layers to score (names, regex or callable, see
            `keras_er.sparsify`); default all.
        training: Call the model in training mode (batch statistics in
            BatchNorm, active dropout). False, the reference default, uses
            inference mode. Either way no variable of the model changes.

    Returns:
        ``{layer_name: float64 array of the kernel's shape}``.

    Raises:
        ValueError: Without ``data``, without a loss, or for a model without
            maskable layers.

    Example:

    ```python
    scores = keras_er.scores.snip_scores(model, (x[:256], y[:256]),
                                         loss="sparse_categorical_crossentropy")
    ```
    """
    names, tensors = _snip_tensors(model, data, loss, layers, training)
    return dict(zip(names, _to_numpy64(tensors)))


def _snip_tensors(model, data, loss=None, layers=None, training=False):
    """Names and SNIP score tensors (where the kernels live)."""
    x, y, sample_weight = _unpack_data(data)
    loss_fn = _loss_function(model, loss)
    chosen = select_layers(model, layers)
    variables = _kernel_values(chosen)
    values = [v.value for v in variables]
    weighted = sample_weight is not None and isinstance(
        loss_fn, keras.losses.Loss
    )

    def objective():
        y_pred = model(x, training=training)
        if weighted:
            return loss_fn(y, y_pred, sample_weight=sample_weight)
        return ops.mean(loss_fn(y, y_pred))

    grads = _gradients(objective, variables, values)
    # TF multi-worker: one gradient, the mean over the workers' batches.
    grads = mean_over_workers(grads, model)
    return (
        [unit_name(layer) for layer in chosen],
        [saliency.connection_scores(w, g) for w, g in zip(values, grads)],
    )


def _linearized_clone(model, dtype):
    """SynFlow's network: |parameters|, no output softmax, ``dtype`` compute.

    Products of |w| over many layers overflow float32 in deep networks,
    hence float64 by default. A reparameterization (e.g. STR) is dropped and
    its effective kernel copied instead.
    """
    from keras_er.layers import is_er_layer

    activation_layers = (keras.layers.Activation, keras.layers.Softmax)

    def make_layer(layer):
        if isinstance(layer, activation_layers):
            config = layer.get_config()
            act = config.get("activation", "softmax")
            if isinstance(layer, keras.layers.Softmax) or (
                act in _OUTPUT_ACTIVATIONS
            ):
                return keras.layers.Identity(name=layer.name, dtype=dtype)
        config = layer.get_config()
        if config.get("activation") in _OUTPUT_ACTIVATIONS:
            config["activation"] = "linear"
        if dtype is not None and "dtype" in config:
            config["dtype"] = dtype
        if is_er_layer(layer):
            config["reparameterization"] = None
        return layer.__class__.from_config(config)

    def copy_weights(old_layer, new_layer):
        if is_er_layer(old_layer):
            values = [ops.convert_to_numpy(old_layer.kernel)]
            if old_layer.bias is not None:
                values.append(ops.convert_to_numpy(old_layer.bias))
            values.append(ops.convert_to_numpy(old_layer.mask))
        else:
            values = old_layer.get_weights()
        if len(values) != len(new_layer.weights):
            return  # e.g. an activation replaced by Identity.
        new_layer.set_weights([np.abs(np.asarray(v)) for v in values])

    return clone_layerwise(model, make_layer, copy_weights)


def _input_structure(model):
    """The model's input tensors (a dict for keras-hub backbones) or None."""
    try:
        return model.input
    except (AttributeError, ValueError):
        pass
    try:
        inputs = list(model.inputs)
    except (AttributeError, TypeError, ValueError):
        return None
    if not inputs:
        return None
    return inputs[0] if len(inputs) == 1 else inputs


def _ones_inputs(model, input_shape):
    """All-ones inputs (token ids 1 for int inputs), batch size 1.

    ``input_shape`` (without the batch dimension) fills in what the model
    does not know: one shape, a list of shapes (several inputs), or a dict
    ``{input name: shape}`` for a dict input; one shape is used for every
    input of a dict (e.g. ``(sequence_length,)`` for a keras-hub backbone).
    """
    fix = (
        "SynFlow feeds an all-ones input, but the model's input shape is "
        "not fully known. Pass input_shape= (without the batch dimension; "
        "for a dict input a dict {name: shape} or one shape for all)."
    )
    structure = _input_structure(model)
    if structure is None or (
        input_shape is not None and not isinstance(structure, dict)
    ):
        if input_shape is None:
            raise ValueError(fix)
        shapes = [tuple(input_shape)]
        if input_shape and isinstance(input_shape[0], (tuple, list)):
            shapes = [tuple(s) for s in input_shape]
        inputs = [np.ones((1,) + tuple(int(d) for d in s), "float32")
                  for s in shapes]
        return inputs[0] if len(inputs) == 1 else inputs

    def ones(key, tensor):
        shape = tuple(tensor.shape[1:])
        if input_shape is not None:
            if isinstance(input_shape, dict):
                shape = tuple(input_shape.get(key, shape))
            else:
                shape = tuple(input_shape)
        if None in shape:
            raise ValueError(fix)
        dtype = tensor.dtype or "float32"
        # Token ids (int inputs) are all 1 too; float inputs in float32.
        if not str(dtype).startswith("int"):
            dtype = "float32"
        return np.ones((1,) + tuple(int(d) for d in shape), dtype)

    if isinstance(structure, dict):
        return {key: ones(key, tensor) for key, tensor in structure.items()}
    return keras.tree.map_structure(lambda t: ones(None, t), structure)


def _is_float(value):
    dtype = keras.backend.standardize_dtype(value.dtype)
    return dtype.startswith(("float", "bfloat"))


def _output_activation_swaps(model):
    """``(layer, attribute, value)`` that linearize the output layers.

    For a model that is not cloned: its top-level layers whose activation is
    an output activation (softmax, sigmoid) get ``linear``, a top-level
    ``Softmax`` layer an identity ``call``.
    """
    swaps = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.Softmax):
            swaps.append((layer, "call", lambda inputs, mask=None: inputs))
            continue
        activation = getattr(layer, "activation", None)
        if getattr(activation, "__name__", None) in _OUTPUT_ACTIVATIONS:
            swaps.append((layer, "activation", keras.activations.linear))
    return swaps


class _SynFlow:
    """SynFlow's network, scored repeatedly under different masks.

    Sequential and Functional models are cloned with ``|parameters|``,
    without output softmax and in ``dtype`` (`_linearized_clone`). Any other
    model (a keras-hub backbone, a subclassed model) is scored as it is:
    every float variable is mapped to its absolute value inside a
    `keras.StatelessScope`, its top-level output activations are switched
    off during the call, and it computes in its own dtype. The model is
    never modified.
    """

    def __init__(self, model, layers, input_shape, dtype):
        chosen = select_layers(model, layers)
        lookups = [
            unit_name(layer) for layer in chosen
            if isinstance(layer, keras.layers.Embedding)
        ]
        if lookups:
            raise ValueError(
                f"SynFlow cannot score the Embedding layers {lookups}: its "
                "all-ones input looks up a single token. Leave them out "
                "with layers=..., or use SNIP or an ER ratio for them."
            )
        self.names = [unit_name(layer) for layer in chosen]
        if is_cloneable(model):
            self.network = _linearized_clone(model, dtype)
            by_name = {
                unit_name(layer): layer
                for layer in iter_maskable(self.network)
            }
            self.variables = [
                kernel_variable(by_name[name]) for name in self.names
            ]
            self.fixed = []
            self.swaps = []
        else:
            self.network = model
            self.variables = [kernel_variable(layer) for layer in chosen]
            scored = {id(v) for v in self.variables}
            self.fixed = [
                (v, ops.abs(v.value)) for v in model.variables
                if id(v) not in scored and _is_float(v)
            ]
            self.swaps = _output_activation_swaps(model)
        self.magnitudes = [
            ops.abs(ops.convert_to_tensor(v.value)) for v in self.variables
        ]
        self.inputs = _ones_inputs(self.network, input_shape)

    def scores(self, masks):
        """Score tensors with ``masks`` (tensors, 0/1 or bool) applied."""
        values = [
            ops.multiply(w, ops.cast(m, w.dtype))
            for w, m in zip(self.magnitudes, masks)
        ]

        def objective():
            outputs = self.network(self.inputs, training=False)
            # R = sum of every output (several for multi-output models).
            return sum(
                ops.sum(ops.cast(o, "float32") if not _is_float(o) else o)
                for o in keras.tree.flatten(outputs)
            )

        saved = [(layer, name, layer.__dict__.get(name, _MISSING))
                 for layer, name, _ in self.swaps]
        try:
            for layer, name, value in self.swaps:
                object.__setattr__(layer, name, value)
            grads = _gradients(objective, self.variables, values, self.fixed)
        finally:
            for layer, name, old in saved:
                if old is _MISSING:
                    object.__delattr__(layer, name)
                else:
                    object.__setattr__(layer, name, old)
        return [saliency.connection_scores(v, g) for v, g in zip(values, grads)]


_MISSING = object()


def synflow_scores(
    model, *, masks=None, layers=None, input_shape=None, dtype="float64"
):
    """One round of SynFlow scores ``|w * dR/dw|`` (data-free).

    Computed on a network like ``model`` (the model is untouched) whose
    parameters, BatchNorm statistics included, are replaced by their absolute
    values, with BatchNorm and dropout in inference mode and output
    softmax/sigmoid removed; the input is all ones and
    ``R = sum(output)``, i.e. ``R = 1^T (prod_l |W_l|) 1`` for an MLP.
    Sequential and Functional models are cloned in ``dtype``; other models
    (keras-hub backbones, kernels inside custom layers of a subclassed model)
    are scored in place, statelessly, in their own dtype.

    Args:
        model: A built model.
        masks: Optional ``{layer_name: 0/1 array}`` applied to the kernels
            first (SynFlow's iterations score the pruned network).
        layers: Which maskable layers to score; default all.
        input_shape: Input shape without batch dim, if the model's is not
            fully known (a list of shapes for several inputs).
        dtype: Compute dtype of the clone; float64 avoids overflow of the
            product of magnitudes in deep networks. ``None`` keeps the
            model's. Models scored in place keep theirs.

    Returns:
        ``{layer_name: float64 array of the kernel's shape}``.

    Raises:
        ValueError: For an unknown input shape, a model without maskable
            layers, or an Embedding among the layers.

    Example:

    ```python
    scores = keras_er.scores.synflow_scores(model)
    ```
    """
    flow = _SynFlow(model, layers, input_shape, dtype)
    masks = masks or {}
    current = [
        ops.convert_to_tensor(
            np.broadcast_to(
                np.asarray(masks.get(name, 1.0), dtype=np.float32),
                tuple(w.shape),
            )
        )
        for name, w in zip(flow.names, flow.magnitudes)
    ]
    return dict(zip(flow.names, _to_numpy64(flow.scores(current))))


def _budget(scores, density):
    total = sum(int(np.prod(tuple(s.shape))) for s in scores)
    return max(1, int(round(density * total)))


def _snip_mask_tensors(model, density, data, *, per_layer=0, **options):
    names, tensors = _snip_tensors(model, data, **options)
    kept = saliency.global_top_k(
        tensors, _budget(tensors, density), per_layer=per_layer
    )
    return names, kept


def _as_float32(names, masks):
    return {
        name: np.asarray(ops.convert_to_numpy(m), dtype=np.float32)
        for name, m in zip(names, masks)
    }


def snip_masks(model, density, data, *, per_layer=0, **options):
    """One-shot SNIP: keep the global top-``density`` of `snip_scores`.

    Args:
        model: A built model.
        density: Fraction of the scored kernel entries kept.
        data: One batch ``(x, y)``.
        per_layer: Keep at least this many entries per layer.
        **options: ``loss``, ``layers``, ``training`` (see `snip_scores`).

    Returns:
        ``{layer_name: float32 0/1 array}``.
    """
    density = check_density(density)
    per_layer = check_int(per_layer, "per_layer", minimum=0)
    return _as_float32(*_snip_mask_tensors(
        model, density, data, per_layer=per_layer, **options
    ))


def synflow_masks(
    model,
    density,
    *,
    rounds=100,
    layers=None,
    input_shape=None,
    dtype="float64",
    per_layer=0,
):
    """Iterative SynFlow pruning (Tanaka et al., 2020).

    ``rounds`` times: score the currently pruned linearized network with
    `synflow_scores`, then keep the global top ``density ** (r / rounds)``
    (exponential schedule, ``r = 1..rounds``) among the surviving entries.

    Args:
        model: A built Sequential or Functional model (not modified).
        density: Final fraction of the scored kernel entries kept.
        rounds: Number of prune-rescore rounds (paper: 100).
        layers: Which maskable layers to prune; default all.
        input_shape: See `synflow_scores`.
        dtype: See `synflow_scores`.
        per_layer: Keep at least this many entries per layer.

    Returns:
        ``{layer_name: float32 0/1 array}``.

    Raises:
        ValueError: For bad arguments (see `synflow_scores`).
    """
    return _as_float32(*_synflow_mask_tensors(
        model, density, rounds=rounds, layers=layers,
        input_shape=input_shape, dtype=dtype, per_layer=per_layer,
    ))


def _synflow_mask_tensors(model, density, *, rounds=100, layers=None,
                          input_shape=None, dtype="float64", per_layer=0):
    """Names and SynFlow mask tensors (bool, where the kernels live)."""
    density = check_density(density)
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) \
            or rounds < 1:
        raise ValueError(f"rounds must be a positive int, got {rounds!r}.")
    per_layer = check_int(per_layer, "per_layer", minimum=0)
    flow = _SynFlow(model, layers, input_shape, dtype)
    alive = [ops.ones(tuple(w.shape), "bool") for w in flow.magnitudes]
    for r in range(1, rounds + 1):
        scores = flow.scores(alive)
        k = _budget(scores, density ** (r / rounds))
        alive = saliency.global_top_k(
            scores, k, alive=alive, per_layer=per_layer
        )
    return flow.names, alive


def pruning_masks(model, method, density, data=None, **options):
    """One-shot pruning masks by ``method`` (``"snip"`` or ``"synflow"``).

    Args:
        model: A built model.
        method: ``"snip"`` or ``"synflow"``.
        density: Overall fraction of the scored kernel entries kept.
        data: ``(x, y)``; required for SNIP, ignored by SynFlow.
        **options: Passed to `snip_masks` or `synflow_masks`.

    Returns:
        ``{layer_name: float32 0/1 array}``.

    Raises:
        ValueError: For an unknown method or SNIP without data.
    """
    return _as_float32(
        *_pruning_mask_tensors(model, method, density, data, **options)
    )


def _pruning_mask_tensors(model, method, density, data=None, **options):
    key = str(method).lower()
    if key == "snip":
        density = check_density(density)
        per_layer = check_int(
            options.pop("per_layer", 0), "per_layer", minimum=0
        )
        return _snip_mask_tensors(
            model, density, data, per_layer=per_layer, **options
        )
    if key == "synflow":
        return _synflow_mask_tensors(model, density, **options)
    raise ValueError(
        f"Unknown pruning method {method!r}; use one of {METHODS}."
    )


def borrowed_densities(model, method, layers, density, data=None, **options):
    """Per-layer densities of the one-shot ``method`` mask ("ER SNIP" etc.).

    The top-scoring entries are chosen globally over ``layers``; every layer
    keeps at least its best entry, so all densities are in ``(0, 1]`` and
    the overall density is exactly ``round(density * N) / N``.

    Args:
        model: A built model.
        method: ``"snip"`` or ``"synflow"``.
        layers: The maskable layers (objects or names) to distribute the
            budget over, in forward order.
        density: Overall density over those layers.
        data: ``(x, y)``, required for SNIP.
        **options: Passed to the scoring method.

    Returns:
        A list of densities, one per layer.

    Raises:
        ValueError: As `pruning_masks`.
    """
    names = [getattr(layer, "name", layer) for layer in layers]
    density = check_density(density)
    if density == 1.0:
        return [1.0] * len(names)
    # Only the per-layer counts come to the host.
    found, masks = _pruning_mask_tensors(
        model, method, density, data=data, layers=names, per_layer=1,
        **options,
    )
    by_name = dict(zip(found, saliency.densities(masks)))
    return [float(by_name[name]) for name in names]


def prune_at_init(model, method, density, data=None, *, layers=None,
                  **options):
    """A sparse copy of ``model`` with the one-shot SNIP / SynFlow masks.

    Unlike ``sparsify(model, ratio="snip", ...)``, which only borrows the
    layer densities and draws random masks, the masks here are the pruning
    method's own (no flow preservation, so a layer may even be emptied):
    the comparison baseline for the random ER masks.

    Args:
        model: A built dense Sequential or Functional model (not modified).
        method: ``"snip"`` or ``"synflow"``.
        density: Overall density (1 - sparsity) of the selected layers.
        data: One batch ``(x, y)``; required for SNIP.
        layers: Which maskable layers to prune (see `keras_er.sparsify`).
        **options: Passed to the scoring method (``loss``, ``training`` for
            SNIP; ``rounds``, ``input_shape``, ``dtype`` for SynFlow).

    Returns:
        A new model with ER layers whose masks are the pruning masks; its
        ``sparsify_report`` records the method and the layer densities.

    Raises:
        ValueError: For bad arguments, an already sparsified model, SNIP
            without data.

    Example:

    ```python
    snip = keras_er.prune_at_init(model, "snip", 0.05, data=(x[:256],
                                                             y[:256]))
    er_snip = keras_er.sparsify(model, "snip", 0.05, data=(x[:256],
                                                            y[:256]))
    ```
    """
    from keras_er.layers import is_er_layer
    from keras_er.sparsify import sparsify

    check_model(model)
    density = check_density(density)
    key = str(method).lower() if isinstance(method, str) else None
    if key not in METHODS:
        raise ValueError(
            f"Unknown pruning method {method!r}: method must be one of "
            f"{METHODS}."
        )
    check_layers(layers)
    check_options(
        options,
        {"snip": ("loss", "training", "per_layer"),
         "synflow": ("rounds", "input_shape", "dtype", "per_layer")}[key],
        f"the {key!r} scoring (keras_er.scores.{key}_masks)",
    )
    if any(is_er_layer(layer) for layer in iter_maskable(model)):
        raise ValueError(
            "prune_at_init expects a dense model; this one already has "
            "keras_er layers. Call keras_er.strip(model) first."
        )
    masks = pruning_masks(model, method, density, data=data, layers=layers,
                          **options)
    # The config density only seeds a mask that is replaced below; keep it
    # valid for a layer the method emptied.
    config_densities = {
        name: max(float(m.mean()), 1.0 / m.size) for name, m in masks.items()
    }
    sparse = sparsify(
        model, ratio=config_densities, density=density, layers=layers,
        flow=None, seed=0,
    )
    originals = {unit_name(layer): layer for layer in iter_maskable(model)}
    for layer in iter_maskable(sparse):
        if unit_name(layer) not in masks or not is_er_layer(layer):
            continue
        mask = masks[unit_name(layer)]
        kernel = ops.convert_to_numpy(originals[unit_name(layer)].kernel)
        layer.mask.assign(mask.astype(layer.mask.dtype))
        layer._kernel.assign((kernel * mask).astype(layer._kernel.dtype))
    report = sparse.sparsify_report  # A Keras TrackedDict: no kwargs update.
    report["ratio"] = str(method).lower()
    report["method"] = f"prune_at_init:{str(method).lower()}"
    report["densities"] = {n: float(m.mean()) for n, m in masks.items()}
    report["edges_added"] = {n: 0 for n in masks}
    report["total_edges_added"] = 0
    return sparse

