"""Parameter-free ops and the building blocks shared by the DARTS and NB201 spaces."""

import keras
from keras import ops
from keras.src.backend.common.stateless_scope import in_stateless_scope

from itnas_tf.ops.base import Op, batch_norm, register, same_padding


def _check_stride(stride):
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}.")
    return stride


def _strided_shape(input_shape, stride, channels):
    """`x[:, ::stride, ::stride, :]`'s shape, with `channels` channels where given."""
    b, h, w, c = input_shape
    return (b, *(None if d is None else -(-d // stride) for d in (h, w)), channels or c)


@register
class Identity(Op):
    """`skip_connect` at stride 1."""

    def call(self, x):
        return x


@register
class Zero(Op):
    """`none` (DARTS, NB201) and `zero` (chain spaces): zeros of the output shape.

    Like DARTS, the output is `x * 0` so its shape follows the input at any batch size; with
    `channels` set, the channel count changes to it.
    """

    def __init__(self, stride=1, channels=None, **kwargs):
        super().__init__(**kwargs)
        self.stride = _check_stride(stride)
        self.channels = channels

    def build(self, input_shape):
        self.built = True  # no weights: `Op.build`'s symbolic walk would only find the shape

    def compute_output_shape(self, input_shape):
        return _strided_shape(input_shape, self.stride, self.channels)

    def call(self, x):
        if self.stride > 1:
            x = x[:, :: self.stride, :: self.stride, :]
        if self.channels is None:
            return x * 0.0
        return x[..., :1] * ops.zeros((1, 1, 1, self.channels), dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride, "channels": self.channels}


@register
class Noise(Op):
    """RobustDARTS S4's `noise`: fresh N(0, 1) of the output shape; ignores its input's values."""

    def __init__(self, stride=1, channels=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stride = _check_stride(stride)
        self.channels = channels
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.built = True  # no weights; the symbolic shape walk of `Op.build` cannot sample

    def compute_output_shape(self, input_shape):
        return _strided_shape(input_shape, self.stride, self.channels)

    def call(self, x):
        x = x[:, :: self.stride, :: self.stride, :]
        shape = ops.shape(x)
        if self.channels is not None:
            shape = (*shape[:3], self.channels)
        return keras.random.normal(shape, seed=self.seed_generator, dtype=x.dtype)

    def get_config(self):
        config = {"stride": self.stride, "channels": self.channels, "seed": self.seed}
        return {**super().get_config(), **config}


@register
class Pool(Op):
    """3x3 max or average pooling with PyTorch's `padding=1`; average excludes the padding.

    At stride 1 TensorFlow's 'same' pooling is exactly that. At stride 2 the input is padded
    symmetrically and the average is divided by the count of real pixels. Max pooling pads by
    repeating the edge pixels, not with -inf: with a padding of `pool_size // 2` every window that
    reaches into the padding also holds the edge pixel it repeats, so the maxima (and their
    gradients) are PyTorch's, and the padded map stays finite, which int8 calibration needs.
    """

    def __init__(self, kind, stride=1, pool_size=3, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("max", "avg"):
            raise ValueError(f"Pool kind must be 'max' or 'avg', got {kind!r}.")
        self.kind = kind
        self.stride = _check_stride(stride)
        self.pool_size = pool_size

    def _pool(self, x, padding):
        if self.kind == "max" and in_stateless_scope():  # a shared edge's trace
            return _max_pool(x, self.pool_size, self.stride, padding)
        fn = ops.max_pool if self.kind == "max" else ops.average_pool
        return fn(x, self.pool_size, self.stride, padding=padding)

    def call(self, x):
        if self.stride == 1:
            return self._pool(x, "same")
        p = self.pool_size // 2
        pads = [[0, 0], [p, p], [p, p], [0, 0]]
        if self.kind == "max":
            x = ops.concatenate([x[:, :1]] * p + [x] + [x[:, -1:]] * p, axis=1)
            return self._pool(ops.concatenate([x[:, :, :1]] * p + [x] + [x[:, :, -1:]] * p, axis=2), "valid")
        total = self._pool(ops.pad(x, pads), "valid")
        ones = ops.ones_like(x[:1, :, :, :1])
        coverage = self._pool(ops.pad(ones, pads), "valid")
        return total / coverage

    def get_config(self):
        config = {"kind": self.kind, "stride": self.stride, "pool_size": self.pool_size}
        return {**super().get_config(), **config}


def _max_pool(x, size, stride, padding):
    """TensorFlow's max pooling, whose gradient pools once more: for shared edges.

    oneDNN's fast gradient of a max pool reads a record its forward pass keeps, and finds it only
    where the gradient takes the forward op's own output. A shared edge (`shared_edges.py`) hands its
    outputs to the gradient through the function's boundary, so TensorFlow's gradient ran 5x slower
    there; pooling again beside the gradient costs a forward pool, and the values are the same.
    (Elsewhere Keras's pooling stays: the extra ops would reorder the sum of its input's gradients.)
    """
    import tensorflow as tf

    window, strides, padding = [1, size, size, 1], [1, stride, stride, 1], padding.upper()

    @tf.custom_gradient
    def pool(x):
        def gradient(upstream):
            again = tf.nn.max_pool2d(x, window, strides, padding)
            return tf.raw_ops.MaxPoolGrad(
                orig_input=x, orig_output=again, grad=upstream, ksize=window, strides=strides, padding=padding
            )

        return tf.nn.max_pool2d(x, window, strides, padding), gradient

    # an op of this graph for the gradient to read: inside a `cond` of a nested function, `x` may
    # belong to the function outside the branch, which the branch's gradient cannot reach
    return pool(tf.identity(x))


@register
class ReLUConvBN(Op):
    """ReLU, kxk convolution, BatchNorm: DARTS preprocessing and NB201's `nor_conv_{1x1,3x3}`."""

    def __init__(self, channels, kernel_size=1, stride=1, affine=True, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = _check_stride(stride)
        self.affine = affine
        self.pad, padding = same_padding(kernel_size, stride)
        self.conv = keras.layers.Conv2D(
            channels, kernel_size, stride, padding=padding, use_bias=False, name="conv"
        )
        self.bn = batch_norm(affine, name="bn")

    def call(self, x, training=None):
        x = ops.relu(x)
        if self.pad is not None:
            x = self.pad(x)
        return self.bn(self.conv(x), training=training)

    def get_config(self):
        config = {
            "channels": self.channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "affine": self.affine,
        }
        return {**super().get_config(), **config}


@register
class ConvBNReLU(ReLUConvBN):
    """kxk convolution, BatchNorm, ReLU: NAS-Bench-101's `conv{1x1,3x3}-bn-relu` (stride 1 there).
    The layers of `ReLUConvBN` in the other order."""

    def call(self, x, training=None):
        if self.pad is not None:
            x = self.pad(x)
        return ops.relu(self.bn(self.conv(x), training=training))


@register
class FactorizedReduce(Op):
    """DARTS `skip_connect` at stride 2: two stride-2 1x1 convs, the second shifted by one pixel.

    Each runs as a 1x1 conv over every other pixel, the same products and sums: TensorFlow's oneDNN
    filter gradient of a stride-2 1x1 conv corrupts the heap at some shapes on AVX-512 CPUs (8 to 4
    channels on a 56x56 map: the ImageNet network's first cell at C=8).
    """

    def __init__(self, channels, affine=True, **kwargs):
        super().__init__(**kwargs)
        if channels % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {channels}.")
        self.channels = channels
        self.affine = affine
        half = channels // 2
        self.conv_1 = keras.layers.Conv2D(half, 1, use_bias=False, name="conv_1")
        self.conv_2 = keras.layers.Conv2D(half, 1, use_bias=False, name="conv_2")
        self.bn = batch_norm(affine, name="bn")

    def make_for_input(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        if (h is not None and h % 2) or (w is not None and w % 2):
            raise ValueError(
                f"FactorizedReduce needs an even height and width, got {h}x{w}: "
                "use an input size that stays even down to the last reduction."
            )

    def call(self, x, training=None):
        x = ops.relu(x)
        y = ops.concatenate([self.conv_1(x[:, ::2, ::2, :]), self.conv_2(x[:, 1::2, 1::2, :])], axis=-1)
        return self.bn(y, training=training)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "affine": self.affine}
