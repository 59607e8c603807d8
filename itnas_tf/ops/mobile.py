"""MBConv candidates of the ProxylessNAS space, with optional squeeze-and-excitation."""

import keras
from keras import ops

from itnas_tf.ops.base import Op, batch_norm, register, same_padding


def make_divisible(value, divisor=8):
    """Rounds a width to a multiple of `divisor` (the MobileNet rule, as in OFA's SE module)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@register
class PooledConv2D(keras.layers.Conv2D):
    """Keras's 1x1 Conv2D on a pooled `(b, 1, 1, c)` input, computed as a matmul of `(b, c)`.

    The same weights, MAdds and values; but a skipped candidate's empty batch keeps its shape. On
    AVX-512 CPUs with oneDNN, TensorFlow's Conv2D on an empty batch returns its input's shape, or no
    filter gradient at all (measured on a pooled SE input under MirroredStrategy).
    """

    def call(self, inputs):
        cin, cout = self.kernel.shape[-2:]
        x = ops.matmul(ops.reshape(inputs, (-1, cin)), ops.reshape(self.kernel, (cin, cout)))
        if self.use_bias:
            x = x + self.bias
        return ops.reshape(x, (-1, 1, 1, cout))


@register
class SqueezeExcite(Op):
    """SE as in once-for-all's MBConv: pool, 1x1 to `make_divisible(c/4)`, ReLU, 1x1, hard sigmoid."""

    def __init__(self, reduction=4, **kwargs):
        super().__init__(**kwargs)
        self.reduction = reduction
        self.squeeze = None
        self.excite = None

    def make_for_input(self, input_shape):
        channels = input_shape[-1]
        mid = make_divisible(channels // self.reduction)
        self.squeeze = PooledConv2D(mid, 1, name="squeeze")
        self.excite = PooledConv2D(channels, 1, name="excite")

    def call(self, x):
        s = ops.mean(x, axis=(1, 2), keepdims=True)
        s = self.excite(ops.relu(self.squeeze(s)))
        return x * (ops.relu6(s + 3.0) / 6.0)

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction}


@register
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """Keras's DepthwiseConv2D (no bias, no activation) whose kernel gradient is zero for an empty batch.

    TensorFlow's `DepthwiseConv2dNativeBackpropFilter` returns uninitialised memory, not zeros, when
    the batch is empty (measured: kernels of 1e30 after one step). A sampled path skips an MBConv by
    running it on an empty batch when its BatchNorms are synchronised across replicas.
    """

    def call(self, inputs, training=None):
        kernel = ops.convert_to_tensor(self.kernel)
        if training:  # the same value; exported and inference graphs are the plain convolution
            kernel = ops.where(ops.shape(inputs)[0] > 0, kernel, ops.stop_gradient(kernel))
        return ops.depthwise_conv(inputs, kernel, strides=self.strides, padding=self.padding,
                                  dilation_rate=self.dilation_rate, data_format=self.data_format)


@register
class MBConv(Op):
    """Inverted bottleneck: 1x1 expand (none when e=1), BN, ReLU6; kxk depthwise, BN, ReLU6;
    [SE]; 1x1 project, BN.

    The identity shortcut belongs to the block around the op (a chain layer adds it when stride is 1
    and widths match), so that `zero` in the same layer leaves exactly the shortcut.
    """

    def __init__(self, channels, kernel_size, expand_ratio, stride=1, se=False, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.kernel_size = kernel_size
        self.expand_ratio = expand_ratio
        self.stride = stride
        self.se = se
        self.pad, self._dw_padding = same_padding(kernel_size, stride)
        self.expand = self.expand_bn = self.depthwise = self.depthwise_bn = None
        self.squeeze_excite = SqueezeExcite(name="se") if se else None
        self.project = keras.layers.Conv2D(channels, 1, use_bias=False, name="project")
        self.project_bn = batch_norm(name="project_bn")

    def make_for_input(self, input_shape):
        mid = round(input_shape[-1] * self.expand_ratio)
        if self.expand_ratio != 1:
            self.expand = keras.layers.Conv2D(mid, 1, use_bias=False, name="expand")
            self.expand_bn = batch_norm(name="expand_bn")
        self.depthwise = DepthwiseConv2D(
            self.kernel_size, self.stride, padding=self._dw_padding, use_bias=False, name="depthwise"
        )
        self.depthwise_bn = batch_norm(name="depthwise_bn")

    def call(self, x, training=None):
        for layer, bn in self.segments():
            x = bn(layer(x), training=training)
        return x

    def segments(self):
        """The op as `[(f, bn), ...]`: each BatchNorm `bn` normalises `f` of the previous one's output.

        `call` runs them in turn. A mixed layer with synchronised BatchNorms runs its candidates'
        segments side by side, to all-reduce the moments of a whole stage of candidates at once.
        """

        def depthwise(x):
            x = ops.relu6(x) if self.expand is not None else x
            return self.depthwise(self.pad(x) if self.pad is not None else x)

        def project(x):
            x = ops.relu6(x)
            return self.project(self.squeeze_excite(x) if self.squeeze_excite is not None else x)

        expand = [(self.expand, self.expand_bn)] if self.expand is not None else []
        return expand + [(depthwise, self.depthwise_bn), (project, self.project_bn)]

    def get_config(self):
        config = {
            "channels": self.channels,
            "kernel_size": self.kernel_size,
            "expand_ratio": self.expand_ratio,
            "stride": self.stride,
            "se": self.se,
        }
        return {**super().get_config(), **config}
