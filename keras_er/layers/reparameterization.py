"""`KernelReparameterization`: how an ER layer computes its effective kernel.

By default an ER layer uses ``kernel * mask``. Methods such as soft threshold
reparameterization (STR) or edge-popup replace that map and add variables of
their own (a learnable threshold, a score per weight). A reparameterization is
installed on a built ER layer with ``layer.set_reparameterization(r)``; its
variables then belong to the layer, are saved with it (after the mask) and are
restored on load, since the layer config names the reparameterization.

Install it before ``model.compile`` (the optimizer tracks the variables that
exist when it is built).
"""

import keras


@keras.saving.register_keras_serializable(package="keras_er")
class KernelReparameterization:
    """Base class for kernel reparameterizations of ER layers.

    Subclasses implement ``build`` (create variables with
    ``layer.add_weight`` and assign them to layer attributes) and
    ``effective_kernel``. They must keep the effective kernel zero outside the
    mask.

    Example:

    ```python
    class Scaled(keras_er.layers.KernelReparameterization):
        def build(self, layer):
            layer.scale = layer.add_weight(name="scale", shape=(),
                                           initializer="ones")
            return ["scale"]

        def effective_kernel(self, layer, kernel, mask):
            return kernel * mask * layer.scale
    ```
    """

    def build(self, layer):
        """Creates the variables on ``layer``.

        Args:
            layer: The built ER layer.

        Returns:
            The names of the layer attributes holding the new variables, in
            the order they are saved.
        """
        return []

    def effective_kernel(self, layer, kernel, mask):
        """Returns the kernel used in the forward pass.

        Args:
            layer: The ER layer.
            kernel: The stored kernel (``layer._kernel``).
            mask: The 0/1 mask, cast to the kernel dtype.
        """
        raise NotImplementedError

    def mask_changed(self, layer):
        """Called after ``layer``'s mask changed (``set_mask``, loading).

        Args:
            layer: The ER layer.
        """

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
