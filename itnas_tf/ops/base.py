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
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        """From a symbolic pass of `call`, remembered per input shape: Keras would trace `call` again
        for every symbolic call of the op (a mixed layer's shape check, a parent op's build)."""
        key = str(input_shape)
        shapes = self.__dict__.setdefault("_output_shapes", {})
        if key not in shapes:
            inputs = keras.tree.map_shape_structure(
                lambda shape: keras.KerasTensor(tuple(shape), dtype=self.compute_dtype), input_shape
            )
            shapes[key] = tuple(self.call(inputs).shape)
        return shapes[key]


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

    `synchronized=True` on several replicas: the moments of the global batch, from per-replica sums
    all-reduced in one call (`moment_sums`, `from_sums`). Masks, renorm and other layouts take
    Keras's own path.
    """

    def _fused(self, inputs):
        return not (self.renorm or len(inputs.shape) != 4 or self.axis not in (-1, 3))

    def call(self, inputs, training=None, mask=None):
        if mask is not None or not self._fused(inputs):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        context = replica_context() if training and self.trainable and self.synchronized else None
        if context is not None:  # the moments of the global batch
            return self.from_sums(inputs, context.all_reduce(tf.distribute.ReduceOp.SUM, self.moment_sums(inputs)))
        x = tf.cast(inputs, "float32")  # as Keras does: statistics in float32 under mixed precision
        scale, offset = self._affine(x.shape[-1])
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, scale, offset, epsilon=self.epsilon, is_training=True
            )[:3]
            self._update_moving(mean, variance)
        else:
            y = tf.compat.v1.nn.fused_batch_norm(
                x, scale, offset, mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"), epsilon=self.epsilon, is_training=False,
            )[0]
        return tf.cast(y, self.compute_dtype)

    def moment_sums(self, inputs):
        """This replica's `[count, sum over (b, h, w), sum of squares]`, `(2c + 1,)` float32: summed
        over replicas, the input of `from_sums`. A caller may all-reduce many BatchNorms' at once."""
        import tensorflow as tf

        x = tf.cast(inputs, "float32")
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), "float32")
        return tf.concat([count[None], tf.reduce_sum(x, (0, 1, 2)), tf.reduce_sum(tf.square(x), (0, 1, 2))], 0)

    def from_sums(self, inputs, sums):
        """Training-mode output from the global batch's `moment_sums`. With no sample at all (a
        candidate that a sampled path skips): sums of 0, no NaN (in the gradient either), and the
        moving statistics stay as they are."""
        import tensorflow as tf

        x = tf.cast(inputs, "float32")
        c = x.shape[-1]
        count = tf.maximum(sums[0], 1.0)
        mean = sums[1:c + 1] / count
        variance = tf.maximum(sums[c + 1:] / count - tf.square(mean), 0.0)
        self._update_moving(mean, variance * count / tf.maximum(count - 1.0, 1.0), seen=sums[0] > 0)
        scale, offset = self._affine(c)
        y = (x - mean) * (scale * tf.math.rsqrt(variance + self.epsilon)) + offset
        return tf.cast(y, self.compute_dtype)

    def _affine(self, c):
        import tensorflow as tf

        scale = tf.cast(self.gamma, "float32") if self.scale else tf.ones([c])
        offset = tf.cast(self.beta, "float32") if self.center else tf.zeros([c])
        return scale, offset

    def _update_moving(self, mean, unbiased_variance, seen=None):
        """PyTorch's running averages; `seen` false (a tensor): no sample this step, no change."""
        import tensorflow as tf

        for stat, batch_stat in ((self.moving_mean, mean), (self.moving_variance, unbiased_variance)):
            value = stat * self.momentum + batch_stat * (1.0 - self.momentum)
            stat.assign(value if seen is None else tf.where(seen, value, stat))


def replica_context():
    """The replica context of a step on several replicas, where an all-reduce spans them; else None."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def batch_norm(affine=True, **kwargs):
    """BatchNorm with PyTorch's defaults (momentum 0.1 there is 0.9 here, eps 1e-5).

    `affine=False` is the DARTS search supernet's BatchNorm: no gamma/beta.
    """
    return BatchNorm(momentum=0.9, epsilon=1e-5, center=affine, scale=affine, **kwargs)
