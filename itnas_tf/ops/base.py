"""What every candidate operation shares: building from the input shape, PyTorch-style padding, BN."""

import keras

PACKAGE = "itnas_tf"


def register(cls):
    """Registers a layer class for `.keras` saving under the project's package name."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


class Op(keras.layers.Layer):
    """Base of the candidate operations.

    Sub-layers are made in `__init__`; `build` creates their weights by running `call` on a symbolic
    input of the given shape, so every op is fully built (and loadable from `.keras`) from its input
    shape alone, without a hand-written shape walk per op.
    """

    def build(self, input_shape):
        self.call(keras.KerasTensor(tuple(input_shape), dtype=self.compute_dtype))
        self.built = True


def same_padding(kernel_size, stride, dilation=1):
    """Padding that reproduces PyTorch's symmetric `padding=k//2` (times dilation).

    TensorFlow's 'same' pads the bottom/right first, which at stride 2 shifts every window by one
    pixel against the PyTorch definitions that DARTS, NB201 and ProxylessNAS use. At stride 1 with an
    odd kernel both agree, so only strided layers get an explicit `ZeroPadding2D` (and 'valid').

    Returns:
        `(pad_layer_or_None, conv_padding_string)`.
    """
    if stride == 1:
        return None, "same"
    pad = dilation * (kernel_size - 1) // 2
    return keras.layers.ZeroPadding2D(pad), "valid"


@register
class BatchNorm(keras.layers.BatchNormalization):
    """Keras's BatchNormalization on TensorFlow's fused kernel, with PyTorch's running variance.

    Keras 3 normalises with a dozen elementwise ops (moments, then scale and shift) and as many in
    the gradient; on the CPU that cost more than the convolutions of an NB201 supernet. One
    `FusedBatchNormV3` forward and one gradient op do the same work in a pass or two. As in PyTorch
    (and the DARTS/NB201 references), the running variance averages the unbiased batch variance.
    Masks, renorm, synchronized BN and other layouts take Keras's own path.
    """

    def _fused(self, inputs):
        return not (
            self.renorm or self.synchronized or len(inputs.shape) != 4 or self.axis not in (-1, 3)
        )

    def call(self, inputs, training=None, mask=None):
        if mask is not None or not self._fused(inputs):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, "float32")  # as Keras does: statistics in float32 under mixed precision
        c = x.shape[-1]
        scale = tf.cast(self.gamma, "float32") if self.scale else tf.ones([c])
        offset = tf.cast(self.beta, "float32") if self.center else tf.zeros([c])
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, scale, offset, epsilon=self.epsilon, is_training=True
            )[:3]
            for stat, batch_stat in ((self.moving_mean, mean), (self.moving_variance, variance)):
                stat.assign(stat * self.momentum + batch_stat * (1.0 - self.momentum))
        else:
            y = tf.compat.v1.nn.fused_batch_norm(
                x, scale, offset, mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"), epsilon=self.epsilon, is_training=False,
            )[0]
        return tf.cast(y, self.compute_dtype)


def batch_norm(affine=True, **kwargs):
    """BatchNorm with PyTorch's defaults (momentum 0.1 there is 0.9 here, eps 1e-5).

    `affine=False` is the DARTS search supernet's BatchNorm: no gamma/beta.
    """
    return BatchNorm(momentum=0.9, epsilon=1e-5, center=affine, scale=affine, **kwargs)
