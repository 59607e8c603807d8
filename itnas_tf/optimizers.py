"""Keras's SGD and Adam with a decoupled weight decay that reads the learning rate once per step,
gradient clipping that sees the whole batch's gradient on several replicas, and, on one device, one
TensorFlow kernel per variable update.

Keras (3.x, TensorFlow backend) evaluates `self.learning_rate`, a whole cosine schedule of some ten
ops, inside the weight decay of every variable. A supernet has thousands of variables (the chain
space at any width: 1,700), so the train step's graph carried thousands of copies of the schedule:
on the chain supernet 21 s of its 79 s trace, and the graph optimiser's time on top. The same
values, computed once: the decay still uses the step's learning rate, before the update.

Keras then updates each variable with some ten more ops (reads, products, assignments, the default
strategy's all-reduce identity): on the NB201 supernet (C=16, N=5, 651 variables) the optimiser was
12,700 of the train step's 54,500 graph nodes, each traced in Python and instantiated. Without a
`tf.distribute` strategy, the decay is one `ResourceApplyGradientDescent` and SGD's momentum update
one `ResourceApplyKerasMomentum` per variable: TensorFlow's kernels for the same float32 expressions
in the same order, so the values are Keras's bit for bit (tests/test_optimizers.py). Distributed
steps keep Keras's path.
"""

import functools

import keras
import tensorflow as tf


class _DecayWithOneLearningRate:
    """Replaces `TFOptimizer._apply_weight_decay` with the same update, the schedule read once."""

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return

        if _one_device():
            learning_rate = self.learning_rate

            @functools.cache  # one cast per dtype and step (Keras casts per variable)
            def scalars(dtype):
                return tf.cast(learning_rate, dtype), tf.cast(self.weight_decay, dtype)

            for variable in _tf_variables(variables):
                if self._use_weight_decay(variable):  # v - lr * (v * wd): Keras's v - v * wd * lr
                    lr, wd = scalars(variable.dtype)
                    tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=lr, delta=variable * wd)
            return

        def apply(distribution, variables, **kwargs):
            learning_rate = self.learning_rate

            def decay(variable):
                if self._use_weight_decay(variable):
                    lr = tf.cast(learning_rate, variable.dtype)
                    wd = tf.cast(self.weight_decay, variable.dtype)
                    variable.assign_sub(variable * wd * lr)

            for variable in _tf_variables(variables):
                distribution.extended.update(variable, decay, group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(apply, self._distribution_strategy, variables)


class _MomentumInOneKernel:
    """SGD's update of each variable as `ResourceApplyKerasMomentum` on one device: `m = m * momentum -
    g * lr; v += m`, as Keras's `SGD.update_step` computes it."""

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        dense = all(isinstance(g, tf.Tensor) for g in grads)
        if not (_one_device() and dense and self.momentum and not self.nesterov):
            return super()._backend_update_step(grads, trainable_variables, learning_rate)

        @functools.cache
        def scalars(dtype):
            return tf.cast(learning_rate, dtype), tf.cast(self.momentum, dtype)

        for gradient, variable in zip(grads, _tf_variables(trainable_variables)):
            lr, momentum = scalars(variable.dtype)
            tf.raw_ops.ResourceApplyKerasMomentum(
                var=variable.handle, accum=self.momentums[self._get_variable_index(variable)].value.handle,
                lr=lr, grad=tf.cast(gradient, variable.dtype), momentum=momentum, use_nesterov=False,
            )


def _one_device():
    """No `tf.distribute` strategy: the updates may write the variables' own handles."""
    return not tf.distribute.has_strategy() and tf.distribute.get_replica_context() is not None


def _tf_variables(variables):
    return [v.value if isinstance(v, keras.Variable) else v for v in variables]


class _ClipTheGlobalGradient:
    """Clips the gradient summed over the replicas, not each replica's part of it.

    Keras (3.x, TensorFlow backend) clips in the replica context, before it all-reduces: under
    `MirroredStrategy` `global_clipnorm=5` bounded each replica's share, so a step on 2 replicas
    clipped where the one-device step did not (or less), and the steps parted. Here the gradients
    are all-reduced first, clipped, and handed on divided by the replica count, so that Keras's own
    all-reduce sums them back to the clipped whole. One more all-reduce per step, only when clipping.
    On one replica a global clip norm is Keras's own, with fewer nodes (`_clip_by_global_norm`).
    """

    def _clip_gradients(self, grads):
        context = tf.distribute.get_replica_context()
        clipping = self.clipnorm or self.global_clipnorm or self.clipvalue
        if not clipping or context is None or context.num_replicas_in_sync == 1:
            global_only = not self.clipnorm and (self.global_clipnorm or 0) > 0
            if global_only and all(g is None or isinstance(g, tf.Tensor) for g in grads):
                return _clip_by_global_norm(grads, self.global_clipnorm)
            return super()._clip_gradients(grads)
        present = [g for g in grads if g is not None]
        summed = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
        clipped = super()._clip_gradients([None if g is None else next(summed) for g in grads])
        share = 1.0 / context.num_replicas_in_sync
        return [None if g is None else g * tf.cast(share, g.dtype) for g in clipped]


def _clip_by_global_norm(grads, clip_norm):
    """Keras's `clip_by_global_norm`, its expressions in its order, with one reduction-axes constant per
    rank where `ops.sum` makes one per gradient: a supernet's step has thousands of gradients
    (651 on the NB201 supernet, C=16, N=5), and each constant is a node to trace and instantiate."""

    @functools.cache
    def axes(rank):
        return tf.constant(list(range(rank)), tf.int32)

    squared_norms = [tf.reduce_sum(tf.square(g), axis=axes(g.shape.rank)) for g in grads if g is not None]
    use_norm = keras.ops.sqrt(keras.ops.sum(keras.ops.stack(squared_norms)))
    scale_for_finite = clip_norm * keras.ops.minimum(1.0 / use_norm, 1.0 / clip_norm)
    scale = scale_for_finite + (use_norm - use_norm)  # NaN for a non-finite norm, as in Keras
    return [None if g is None else g * scale for g in grads]


@keras.saving.register_keras_serializable(package="itnas_tf")
class SGD(_ClipTheGlobalGradient, _DecayWithOneLearningRate, _MomentumInOneKernel, keras.optimizers.SGD):
    pass


@keras.saving.register_keras_serializable(package="itnas_tf")
class Adam(_ClipTheGlobalGradient, _DecayWithOneLearningRate, keras.optimizers.Adam):
    pass
