"""What every candidate operation shares: building from the input shape, PyTorch-style padding, BN."""

import keras
from keras.src.backend.common.name_scope import current_path
from keras.src.backend.common.stateless_scope import in_stateless_scope
from keras.src.layers.layer import get_shapes_dict, update_shapes_dict_for_target_fn

PACKAGE = "itnas_tf"


def register(cls):
    """Registers a layer class for `.keras` saving under the project's package name."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


def builds_by_calling(build):
    """Marks a `build` that only runs `call` on symbolic inputs, so that `build_in_call` may skip it."""
    build.by_calling = True
    return build


def build_in_call(layer, call_spec):
    """Lets the first eager call of `layer` build it, where its `build` only walks `call` symbolically.

    The walk puts every op of `call` in a graph of its own before the eager call runs them (a
    TensorFlow graph op costs some 0.4 ms of Python here): counting a 20-cell DARTS network spent
    more on it than on making its variables. Skipped, each sublayer builds from its input as the eager
    call reaches it, in the order the walk took, so with the same variables; the layer keeps the path
    and build config that `build` would have given it. Call it from `_maybe_build`.
    """
    import tensorflow as tf

    if layer.built or not getattr(type(layer).build, "by_calling", False):
        return
    values = keras.tree.flatten(list(call_spec.tensor_arguments_dict.values()))  # a cell's inputs: a pair
    if not tf.executing_eagerly() or in_stateless_scope() or not all(tf.is_tensor(v) for v in values):
        return
    layer._path = current_path()
    layer._build_shapes_dict = update_shapes_dict_for_target_fn(
        layer.build, get_shapes_dict(call_spec), call_spec, type(layer).__name__
    )
    if isinstance(layer, Op):
        layer.make_for_input(layer._build_shapes_dict["input_shape"])
    layer.built = True


class BuildsInCall:
    """Mixin of a layer whose `build` is marked `builds_by_calling`: its first eager call builds it."""

    def _maybe_build(self, call_spec):
        build_in_call(self, call_spec)
        super()._maybe_build(call_spec)


class Op(BuildsInCall, keras.layers.Layer):
    """Base of the candidate operations.

    Sub-layers are made in `__init__`, or in `make_for_input` where they depend on the input's
    shape; `build` creates their weights by running `call` on a symbolic input of the given shape, so
    every op is fully built (and loadable from `.keras`) from its input shape alone, without a
    hand-written shape walk per op. Called first on real tensors, an op builds in that call instead
    (`build_in_call`).
    """

    @builds_by_calling
    def build(self, input_shape):
        self.make_for_input(input_shape)
        self.compute_output_shape(input_shape)
        self.built = True

    def make_for_input(self, input_shape):
        """Makes the sub-layers that depend on the input's shape (and checks it), before any is built."""

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

    `synchronized=True` on several replicas: the moments of the global batch, two-pass as the fused
    kernel computes them (`synchronized_batch_norms`). Masks, renorm and other layouts take Keras's
    own path.
    """

    def _fused(self, inputs):
        return not (self.renorm or len(inputs.shape) != 4 or self.axis not in (-1, 3))

    def call(self, inputs, training=None, mask=None):
        if mask is not None or not self._fused(inputs):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        context = replica_context() if training and self.trainable and self.synchronized else None
        if context is not None:  # the moments of the global batch
            return synchronized_batch_norms([(self, inputs)], context)[0]
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
        """This replica's `[count, sum over (b, h, w)]`, `(c + 1,)` float32: summed over replicas, the
        global batch's mean (`synchronized_batch_norms`).

        Each image is summed first. One float32 sum down all b * h * w rows drifts like a random
        walk: on a batch whose mean is 100x its spread it put the output 5x, and the input gradient
        28x, further from exact than the fused kernel; summed per image, both are the kernel's.
        """
        import tensorflow as tf

        x = _pixels(inputs)
        count = tf.cast(tf.shape(x)[0] * tf.shape(x)[1], "float32")
        return tf.concat([count[None], tf.reduce_sum(tf.reduce_sum(x, 1), 0)], 0)

    def squared_deviations(self, inputs, sums):
        """This replica's sum of squared deviations from the global mean (`sums`: the all-reduced
        `moment_sums`), `(c,)`: summed over replicas, the two-pass variance's numerator."""
        import tensorflow as tf

        return tf.reduce_sum(tf.reduce_sum(tf.square(_pixels(inputs) - _mean(sums)), 1), 0)

    def from_moments(self, inputs, sums, squares):
        """Training-mode output from the global batch's all-reduced `moment_sums` and
        `squared_deviations`. With no sample at all (a candidate that a sampled path skips): no NaN
        (in the gradient either), and the moving statistics stay as they are."""
        import tensorflow as tf

        x = _pixels(inputs)
        count = tf.maximum(sums[0], 1.0)
        variance = squares / count
        self._update_moving(_mean(sums), squares / tf.maximum(count - 1.0, 1.0), seen=sums[0] > 0)
        scale, offset = self._affine(x.shape[-1])
        y = (x - _mean(sums)) * (scale * tf.math.rsqrt(variance + self.epsilon)) + offset
        y = tf.reshape(y, tf.stack(keras.ops.shape(inputs)))
        y.set_shape(inputs.shape)
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


def _pixels(inputs):
    """`(b, h, w, c)` as `(b, h * w, c)` float32, in the static sizes where they are known.

    The static sizes are restated because TensorFlow's Conv2D, handed an empty batch (the input of a
    candidate that a sampled path skips), returns a tensor of its input's shape at run time: a sum
    over that has the wrong length, and padded back to the batch it has the wrong size. A reshape to
    the same rank would not do: Grappler drops it.
    """
    import tensorflow as tf

    _, h, w, c = keras.ops.shape(inputs)  # ints where static, tensors where not
    return tf.reshape(tf.cast(inputs, "float32"), tf.stack([-1, h * w, c]))


def _mean(sums):
    """The per-channel mean from all-reduced `moment_sums` (0 where there was no sample)."""
    import tensorflow as tf

    return sums[1:] / tf.maximum(sums[0], 1.0)


def synchronized_batch_norms(pairs, context):
    """The training-mode outputs of `[(BatchNorm, its input)]` with the moments of the global batch.

    Two all-reduces serve them all: the sums (for the means), then the squared deviations from those
    means. That is the two-pass variance of the fused kernel; `E[x^2] - mean^2` from one all-reduce
    loses digits wherever the mean is large against the spread.

    Args:
        context: the replica context (`replica_context()`), or None for one replica (no all-reduce).
    """
    import tensorflow as tf

    def reduce(parts):
        total = tf.concat(parts, 0)
        if context is not None:
            total = context.all_reduce(tf.distribute.ReduceOp.SUM, total)
        return tf.split(total, [part.shape[0] for part in parts])

    sums = reduce([bn.moment_sums(x) for bn, x in pairs])
    squares = reduce([bn.squared_deviations(x, s) for (bn, x), s in zip(pairs, sums)])
    return [bn.from_moments(x, s, q) for (bn, x), s, q in zip(pairs, sums, squares)]


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
