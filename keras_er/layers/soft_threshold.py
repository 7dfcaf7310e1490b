"""`SoftThreshold`: soft threshold reparameterization (STR) of an ER kernel.

Kusupati et al. (2020), "Soft Threshold Weight Reparameterization for
Learnable Sparsity". Every ER layer ``l`` learns one scalar ``s_l``; its
forward pass uses

    W_eff = mask * sign(W) * relu(|W| - sigmoid(s_l))

so weights whose magnitude falls below the threshold ``tau_l = sigmoid(s_l)``
are pruned (their effective value and their loss gradient are zero), and the
survivors are shrunk by ``tau_l``. Everything stays inside the ER mask.

Besides ``s_l`` the reparameterization owns two non-trainable variables: a
gate ``str_frozen`` (0 or 1) and a frozen threshold ``str_frozen_tau``. When
the gate is 1 the forward pass uses ``str_frozen_tau`` instead of
``sigmoid(s_l)``, and ``s_l`` gets no gradient from the loss. This is how
`keras_er.callbacks.STR` stops the sparsity from moving once a target density
is reached; because both are layer variables, the frozen state is saved with
the model and restored by `keras.callbacks.BackupAndRestore`.

The functions below work on whole models: `fold` bakes the learned sparsity
into the masks and removes the reparameterization; `freeze_at_density`
shifts all thresholds so that an exact overall density survives. The math
itself (effective kernel, survivors, folding, the threshold shift) is in
`keras_er.algorithms.soft_threshold`, on tensors.
"""

import keras
import numpy as np
from keras import ops

from keras_er._checks import check_real
from keras_er.algorithms import soft_threshold as _math
from keras_er.algorithms._select import count as _count
from keras_er.layers.reparameterization import KernelReparameterization


@keras.saving.register_keras_serializable(package="keras_er")
class ThresholdDecay(keras.regularizers.Regularizer):
    """Weight decay on the threshold parameter that does not show in the loss.

    Adds ``weight_decay * s`` to the gradient of ``s`` (PyTorch-style coupled
    weight decay, as in the STR paper) while contributing exactly 0 to the
    reported loss: with ``s = -200`` an L2 term would add tens to the loss and
    hide the task loss in the logs.

    Args:
        weight_decay: The decay coefficient (paper: 5e-4 or 1e-3).
    """

    def __init__(self, weight_decay):
        self.weight_decay = float(weight_decay)

    def __call__(self, s):
        square = ops.square(s)
        # Value 0, gradient weight_decay * s.
        return 0.5 * self.weight_decay * (square - ops.stop_gradient(square))

    def get_config(self):
        return {"weight_decay": self.weight_decay}


@keras.saving.register_keras_serializable(package="keras_er")
class SoftThreshold(KernelReparameterization):
    """STR: ``mask * sign(w) * relu(|w| - sigmoid(s))`` with learnable ``s``.

    Install it on a built ER layer with ``layer.set_reparameterization`` (or
    on every ER layer of a model with `keras_er.callbacks.STR.prepare`)
    *before* ``model.compile``.

    Args:
        s_init: Initial value of the threshold parameter ``s`` (paper: -200
            for CIFAR, -3200 for ImageNet; ``sigmoid(-200)`` is 0 in float32,
            so training starts with the plain ER network).
        s_weight_decay: Weight decay on ``s`` (paper: 5e-4 for final sparsity
            0.96, 1e-3 for 0.995). It pulls ``s`` towards 0, i.e. raises the
            threshold; at ``s_init=-200`` it is what starts the pruning,
            because ``sigmoid'(-200)`` is 0 in float32. ``None`` or 0 for no
            decay on ``s`` (an optimizer's own ``weight_decay`` still applies
            unless ``s`` is excluded from it).

    Raises:
        ValueError: For a non-finite ``s_init`` or a negative decay.

    Example:

    ```python
    layer = keras_er.ERDense(32, density=0.3, seed=0)
    layer.build((None, 16))
    layer.set_reparameterization(SoftThreshold(s_init=-5.0))
    layer.str_s  # the learnable scalar
    ```
    """

    ATTRIBUTES = ("str_s", "str_frozen", "str_frozen_tau")

    def __init__(self, s_init=-200.0, s_weight_decay=5e-4):
        s_init = check_real(
            s_init, "s_init", "Paper: -200 (CIFAR), -3200 (ImageNet)."
        )
        if s_weight_decay is None:
            s_weight_decay = 0.0
        s_weight_decay = check_real(
            s_weight_decay, "s_weight_decay", "Paper: 5e-4 or 1e-3."
        )
        if not s_weight_decay >= 0.0:
            raise ValueError(
                f"s_weight_decay must be >= 0 (or None), got {s_weight_decay}."
            )
        self.s_init = s_init
        self.s_weight_decay = s_weight_decay

    def build(self, layer):
        regularizer = (
            ThresholdDecay(self.s_weight_decay) if self.s_weight_decay else None
        )
        layer.str_s = layer.add_weight(
            name="str_s",
            shape=(),
            initializer=keras.initializers.Constant(self.s_init),
            regularizer=regularizer,
            trainable=True,
        )
        layer.str_frozen = layer.add_weight(
            name="str_frozen",
            shape=(),
            initializer="zeros",
            trainable=False,
        )
        layer.str_frozen_tau = layer.add_weight(
            name="str_frozen_tau",
            shape=(),
            initializer="zeros",
            trainable=False,
        )
        return list(self.ATTRIBUTES)

    def threshold(self, layer, dtype=None):
        """The threshold ``tau`` the forward pass uses, as a scalar tensor.

        Args:
            layer: The ER layer carrying this reparameterization.
            dtype: Dtype of the result (default: the variable's).

        Returns:
            ``sigmoid(s)``, or the frozen threshold when the gate is set.
        """
        s = layer.str_s
        dtype = dtype or s.dtype
        gate = ops.cast(layer.str_frozen, dtype)
        learned = ops.sigmoid(ops.cast(s, dtype))
        frozen = ops.cast(layer.str_frozen_tau, dtype)
        # Arithmetic gate: with gate == 1 the loss gradient of `s` is 0.
        return gate * frozen + (1.0 - gate) * learned

    def effective_kernel(self, layer, kernel, mask):
        tau = self.threshold(layer, kernel.dtype)
        return _math.effective_kernel(kernel, mask, tau)

    def get_config(self):
        config = super().get_config()
        config.update(
            s_init=self.s_init, s_weight_decay=self.s_weight_decay
        )
        return config


def has_soft_threshold(layer):
    """Whether ``layer`` is an ER layer with a `SoftThreshold` installed."""
    return isinstance(getattr(layer, "reparameterization", None), SoftThreshold)


def threshold_value(layer):
    """The current threshold of an STR layer as a NumPy float32 scalar.

    Layers without `SoftThreshold` have threshold 0 (every nonzero survives).
    """
    if not has_soft_threshold(layer):
        return np.float32(0.0)
    tau = layer.reparameterization.threshold(layer, "float32")
    return np.float32(ops.convert_to_numpy(tau))


def _alive_counts(layers):
    """(alive entries, total entries) of each ER layer under its threshold."""
    alive, total = [], []
    for layer in layers:
        kernel = layer._kernel
        if has_soft_threshold(layer):
            tau = layer.reparameterization.threshold(layer, kernel.dtype)
        else:
            tau = ops.zeros((), kernel.dtype)
        # Counted where the kernel lives; only a scalar comes to the host.
        alive.append(_count(_math.survivors(kernel, layer.mask, tau)))
        total.append(int(np.prod(kernel.shape)))
    return alive, total


def effective_density(layers):
    """Overall density of the effective kernels of ``layers``.

    Args:
        layers: ER layers (with or without `SoftThreshold`).

    Returns:
        Surviving entries (inside the mask, above the threshold) divided by
        all kernel entries.
    """
    alive, total = _alive_counts(layers)
    return float(sum(alive)) / float(sum(total))


def freeze_at_density(layers, density):
    """Freezes every STR threshold, shifted so that ``density`` survives.

    All thresholds move by the same amount ``delta`` (``tau_l + delta``,
    clipped at 0): a global soft-threshold adjustment that keeps the layer
    distribution STR learned and removes (``delta > 0``) or revives
    (``delta < 0``) the entries closest to their layer's threshold until
    ``round(density * N)`` entries survive overall (up to ties). Entries
    outside the ER mask and exact zeros never survive. ER layers without
    `SoftThreshold` keep their nonzeros and count towards the total.

    Args:
        layers: ER layers; those with `SoftThreshold` are frozen.
        density: Target overall density of ``layers``.

    Returns:
        ``delta``, the shift applied to the thresholds.

    Raises:
        ValueError: If the fixed (non-STR) layers alone exceed the budget.
    """
    alive, total = _alive_counts(layers)
    budget = int(round(float(density) * sum(total)))
    stl, taus = [], []
    for layer, count in zip(layers, alive):
        if not has_soft_threshold(layer):
            budget -= count
            continue
        stl.append(layer)
        taus.append(float(threshold_value(layer)))
    if budget < 0:
        raise ValueError(
            f"Density {density} is below what the ER layers without STR "
            "already keep; install STR on every ER layer."
        )
    # On device (keras_er.algorithms.soft_threshold): midway between the
    # last kept and the first dropped margin |w| - tau_l, -inf when every
    # nonzero fits in the budget.
    delta = _math.threshold_shift(
        [layer._kernel for layer in stl], [layer.mask for layer in stl],
        taus, budget,
    )
    for layer, tau in zip(stl, taus):
        layer.str_frozen_tau.assign(max(tau + delta, 0.0))
        layer.str_frozen.assign(1.0)
    return float(delta)


def is_frozen(layers):
    """Whether every STR layer among ``layers`` has its threshold frozen."""
    stl = [layer for layer in layers if has_soft_threshold(layer)]
    return bool(stl) and all(
        float(ops.convert_to_numpy(layer.str_frozen)) > 0.5 for layer in stl
    )


def fold(layers):
    """Bakes the learned sparsity into masks and kernels; removes STR.

    For every layer with `SoftThreshold`:
    ``mask := mask * (|w| > tau)``, ``kernel := sign(w) * relu(|w| - tau)``
    on the kept entries, then the reparameterization is removed. The
    effective kernel, hence the model output, is unchanged (bit for bit), and
    the layer is an ordinary ER layer again (`keras_er.strip` and
    `keras_er.export` apply).

    Args:
        layers: ER layers; those without `SoftThreshold` are skipped.

    Returns:
        The number of layers folded.
    """
    folded = 0
    for layer in layers:
        if not has_soft_threshold(layer):
            continue
        kernel = layer._kernel
        tau = layer.reparameterization.threshold(layer, kernel.dtype)
        keep, value = _math.fold_kernel(kernel, layer.mask, tau)
        layer.mask.assign(ops.cast(keep, layer.mask.dtype))
        kernel.assign(value)
        layer.set_reparameterization(None)
        folded += 1
    return folded

