"""Keras's SGD and Adam with a decoupled weight decay that reads the learning rate once per step.

Keras (3.x, TensorFlow backend) evaluates `self.learning_rate`, a whole cosine schedule of some ten
ops, inside the weight decay of every variable. A supernet has thousands of variables (the chain
space at any width: 1,700), so the train step's graph carried thousands of copies of the schedule:
on the chain supernet 21 s of its 79 s trace, and the graph optimiser's time on top. The same
values, computed once: the decay still uses the step's learning rate, before the update.
"""

import keras
import tensorflow as tf


class _DecayWithOneLearningRate:
    """Replaces `TFOptimizer._apply_weight_decay` with the same update, the schedule read once."""

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return

        def apply(distribution, variables, **kwargs):
            learning_rate = self.learning_rate

            def decay(variable):
                if self._use_weight_decay(variable):
                    lr = tf.cast(learning_rate, variable.dtype)
                    wd = tf.cast(self.weight_decay, variable.dtype)
                    variable.assign_sub(variable * wd * lr)

            for variable in variables:
                if isinstance(variable, keras.Variable):
                    variable = variable.value
                distribution.extended.update(variable, decay, group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(apply, self._distribution_strategy, variables)


@keras.saving.register_keras_serializable(package="itnas_tf")
class SGD(_DecayWithOneLearningRate, keras.optimizers.SGD):
    pass


@keras.saving.register_keras_serializable(package="itnas_tf")
class Adam(_DecayWithOneLearningRate, keras.optimizers.Adam):
    pass
