"""`ERLSTM`: an LSTM layer whose two kernels carry ER masks."""

import keras

from keras_er.layers.recurrent import MaskedRecurrentMixin


@keras.saving.register_keras_serializable(package="keras_er")
class ERLSTM(MaskedRecurrentMixin, keras.layers.LSTM):
    """Drop-in replacement of `keras.layers.LSTM` with sparse kernels.

    The input kernel ``(n_in, 4 * units)`` (role ``"kernel"``) and the
    recurrent kernel ``(units, 4 * units)`` (role ``"recurrent_kernel"``)
    each have their own mask, a variable of the cell beside the kernel
    (``<name>/<cell>/kernel_mask``, ``.../recurrent_kernel_mask``; unit
    names ``"<name>-<role>"``); every Keras variable keeps its path; the bias
    (with ``unit_forget_bias``) sits in the ``"kernel"`` unit. Units for the
    ratios and flow preservation: the kernel's rows (inputs or state) and
    its ``4 * units`` gate columns. The summary counts each kernel once per
    time step.

    Args:
        units: As in `keras.layers.LSTM`.
        density: Fraction of entries kept in both kernels, or a dict
            ``{role: p}``; a role missing from the dict stays dense.
            Defaults to 1.0.
        mask_seed: Optional int seed of the masks drawn at build time.
            ``seed`` stays Keras' dropout seed.
        sampling: ``"bernoulli"`` or ``"exact"``.
        flow: ``"addition"``, ``"rejection"`` or ``None``.
        reparameterization: Optional dict ``{role: serialized
            KernelReparameterization}`` (written by `get_config`).
        mask_dtype: ``"bool"`` (default), ``"uint8"`` or ``"float32"``.
        **kwargs: Every other `keras.layers.LSTM` argument.

    Example:

    ```python
    lstm = keras_er.ERLSTM(32, density=0.2, mask_seed=0)
    y = lstm(keras.ops.ones((2, 10, 8)))      # (2, 32)
    [role for role, _ in lstm.er_units()]     # kernel, recurrent_kernel
    ```
    """

    GATES = 4
