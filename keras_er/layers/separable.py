"""Mask mechanics of separable convolutions (private base class).

`ERSeparableConv1D` and `ERSeparableConv2D` differ only in the sublayer
classes that hold their two kernels: role ``"depthwise"`` a depthwise
convolution, role ``"pointwise"`` a 1-wide convolution with the bias.
"""

import keras

from keras_er.layers.composite import MaskedCompositeMixin


class MaskedSeparableMixin(MaskedCompositeMixin):
    """Per-role masks of a Keras ``SeparableConv{1,2}D``.

    Subclasses set ``DEPTHWISE`` and ``POINTWISE`` to ``(ER class, plain
    Keras class)`` of the sublayers (the plain class holds a role kept
    dense).
    """

    ROLES = ("depthwise", "pointwise")
    DEPTHWISE = ()
    POINTWISE = ()

    def build(self, input_shape):
        # Not the Keras build: the two kernels live in sublayers.
        channels_last = self.data_format == "channels_last"
        channel_axis = -1 if channels_last else 1
        self.input_spec = keras.layers.InputSpec(
            min_ndim=self.rank + 2,
            axes={channel_axis: input_shape[channel_axis]},
        )
        self.compute_output_shape(input_shape)  # Validates the shape.
        common = {"data_format": self.data_format, "dtype": self.dtype_policy}
        self.depthwise_layer = self._make_unit(
            "depthwise",
            *self.DEPTHWISE,
            dict(
                kernel_size=self.kernel_size,
                strides=self.strides,
                padding=self.padding,
                depth_multiplier=self.depth_multiplier,
                dilation_rate=self.dilation_rate,
                use_bias=False,
                depthwise_initializer=self.depthwise_initializer,
                depthwise_regularizer=self.depthwise_regularizer,
                depthwise_constraint=self.depthwise_constraint,
                **common,
            ),
        )
        self.pointwise_layer = self._make_unit(
            "pointwise",
            *self.POINTWISE,
            dict(
                filters=self.filters,
                kernel_size=1,
                use_bias=self.use_bias,
                kernel_initializer=self.pointwise_initializer,
                bias_initializer=self.bias_initializer,
                kernel_regularizer=self.pointwise_regularizer,
                bias_regularizer=self.bias_regularizer,
                kernel_constraint=self.pointwise_constraint,
                bias_constraint=self.bias_constraint,
                **common,
            ),
        )
        self.depthwise_layer.build(input_shape)
        self.pointwise_layer.build(
            self.depthwise_layer.compute_output_shape(input_shape)
        )

    # The inherited `call` reads these three.
    @property
    def depthwise_kernel(self):
        return self.depthwise_layer.kernel

    @property
    def pointwise_kernel(self):
        return self.pointwise_layer.kernel

    @property
    def bias(self):
        return self.pointwise_layer.bias

    def er_units(self):
        if not self.built:
            return []
        return [
            ("depthwise", self.depthwise_layer),
            ("pointwise", self.pointwise_layer),
        ]

    @classmethod
    def plain_kernels(cls, layer):
        return [
            ("depthwise", layer.depthwise_kernel, None,
             cls.DEPTHWISE[0].UNIT_AXES, layer),
            ("pointwise", layer.pointwise_kernel, layer.bias,
             cls.POINTWISE[0].UNIT_AXES, layer),
        ]

    def get_config(self):
        config = super().get_config()
        config.update(self._composite_config())
        return config
