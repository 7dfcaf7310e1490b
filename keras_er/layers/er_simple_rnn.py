"""`ERSimpleRNN`: a SimpleRNN layer whose two kernels carry ER masks."""

import keras

from keras_er.layers.recurrent import MaskedRecurrentMixin


@keras.saving.register_keras_serializable(package="keras_er")
class ERSimpleRNN(MaskedRecurrentMixin, keras.layers.SimpleRNN):
    """Drop-in replacement of `keras.layers.SimpleRNN` with sparse kernels.

    The input kernel ``(n_in, units)`` (role ``"kernel"``) and the
    recurrent kernel ``(units, units)`` (role ``"recurrent_kernel"``)
    each have their own mask, a variable of the cell beside the kernel
    (``<name>/<cell>/kernel_mask``, ``.../recurrent_kernel_mask``; unit
    names ``"<name>-<role>"``); every Keras variable keeps its path; the bias
    sits in the ``"kernel"`` unit. Units for the ratios and flow
    preservation: the kernel's rows (inputs or state) and its ``units``
    columns. The summary counts each kernel once per
    time step.

    Args:
        units: As in `keras.layers.SimpleRNN`.
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
        **kwargs: Every other `keras.layers.SimpleRNN` argument.

    Example:

    ```python
    rnn = keras_er.ERSimpleRNN(32, density=0.2, mask_seed=0)
    y = rnn(keras.ops.ones((2, 10, 8)))      # (2, 32)
    [role for role, _ in rnn.er_units()]     # kernel, recurrent_kernel
    ```
    """

    GATES = 1
