"""The DARTS convolutions, exactly as in the DARTS repository's `operations.py`."""

import keras
from keras import ops

from itnas_tf.ops.base import Op, batch_norm, register, same_padding

PRIMITIVES = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


def _depthwise(kernel_size, name):
    return keras.layers.DepthwiseConv2D(kernel_size, padding="same", use_bias=False, name=name)


def _pointwise(channels, name):
    return keras.layers.Conv2D(channels, 1, use_bias=False, name=name)


@register
class DilConv(Op):
    """ReLU, dilated depthwise kxk, 1x1, BN (dilation 2).

    TensorFlow has no strided dilated depthwise convolution. With PyTorch's padding `d*(k-1)/2`, a
    stride-2, dilation-2 conv equals a dense kxk conv ('same') on the even pixels `x[::2, ::2]`, with
    the same weights: that is how stride 2 is computed, at a quarter of the cost.
    """

    def __init__(self, channels, kernel_size, stride=1, dilation=2, affine=True, **kwargs):
        super().__init__(**kwargs)
        if stride not in (1, 2) or (stride == 2 and dilation != 2):
            raise ValueError(f"DilConv supports stride 1, or stride 2 with dilation 2; got {stride}, {dilation}.")
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilation = dilation
        self.affine = affine
        self.depthwise = keras.layers.DepthwiseConv2D(
            kernel_size,
            padding="same",
            dilation_rate=1 if stride == 2 else dilation,
            use_bias=False,
            name="depthwise",
        )
        self.pointwise = _pointwise(channels, "pointwise")
        self.bn = batch_norm(affine, name="bn")

    def call(self, x, training=None):
        x = ops.relu(x)
        if self.stride == 2:
            x = x[:, ::2, ::2, :]
        return self.bn(self.pointwise(self.depthwise(x)), training=training)

    def get_config(self):
        config = {
            "channels": self.channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "dilation": self.dilation,
            "affine": self.affine,
        }
        return {**super().get_config(), **config}


@register
class SepConv(Op):
    """(ReLU, depthwise kxk, 1x1, BN) twice; only the first depthwise is strided."""

    def __init__(self, channels, kernel_size, stride=1, affine=True, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.affine = affine
        self.pad, padding = same_padding(kernel_size, stride)
        self.depthwise_1 = keras.layers.DepthwiseConv2D(
            kernel_size, stride, padding=padding, use_bias=False, name="depthwise_1"
        )
        self.pointwise_1 = None  # made in `make_for_input`: its width is the input's channel count
        self.bn_1 = batch_norm(affine, name="bn_1")
        self.depthwise_2 = _depthwise(kernel_size, "depthwise_2")
        self.pointwise_2 = _pointwise(channels, "pointwise_2")
        self.bn_2 = batch_norm(affine, name="bn_2")

    def make_for_input(self, input_shape):
        self.pointwise_1 = _pointwise(input_shape[-1], "pointwise_1")

    def call(self, x, training=None):
        x = ops.relu(x)
        if self.pad is not None:
            x = self.pad(x)
        x = self.bn_1(self.pointwise_1(self.depthwise_1(x)), training=training)
        x = ops.relu(x)
        return self.bn_2(self.pointwise_2(self.depthwise_2(x)), training=training)

    def get_config(self):
        config = {
            "channels": self.channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "affine": self.affine,
        }
        return {**super().get_config(), **config}
