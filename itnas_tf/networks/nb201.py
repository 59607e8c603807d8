"""The NAS-Bench-201 cell network built from an `NB201Genotype` (NB201's `TinyNetwork` with `InferCell`).

Stem (3x3 conv C, BN), three stages of N cells at C, 2C, 4C with a ResNet block between stages,
BN-ReLU, global pooling, a classifier. A cell sums, per node, its incoming edges; `none` edges are
left out, as in NB201's `InferCell`.
"""

import keras
from keras import ops

from itnas_tf.genotypes import NB201Genotype
from itnas_tf.ops import batch_norm, make_op
from itnas_tf.ops.base import BuildsInCall, builds_by_calling, register
from itnas_tf.spaces.nb201 import stages


@register
class InferCell(BuildsInCall, keras.layers.Layer):
    def __init__(self, genotype, channels, **kwargs):
        super().__init__(**kwargs)
        self.genotype = NB201Genotype.from_string(str(genotype))
        self.channels = channels
        self.edge_ops = [
            (k, j, make_op(op, channels, 1)) for op, k, j in self.genotype.edges() if op != "none"
        ]

    @builds_by_calling  # every op on the input's shape, as `call` runs them
    def build(self, input_shape):
        for _, _, op in self.edge_ops:
            op.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):  # else Keras traces `call` in a graph of its own for it
        return (*input_shape[:-1], self.channels)

    def call(self, x, training=None):
        nodes = [x]
        for k in range(1, len(self.genotype.nodes) + 1):
            inputs = [op(nodes[j], training=training) for t, j, op in self.edge_ops if t == k]
            nodes.append(sum(inputs[1:], inputs[0]) if inputs else ops.zeros_like(x))
        return nodes[-1]

    def get_config(self):
        return {**super().get_config(), "genotype": str(self.genotype), "channels": self.channels}


@register
class NB201Network(BuildsInCall, keras.Model):
    """The benchmark's network: `init_channels=16`, `layers=5` (N cells per stage)."""

    def __init__(self, genotype, num_classes=10, init_channels=16, layers=5, **kwargs):
        super().__init__(**kwargs)
        self.genotype = NB201Genotype.from_string(str(genotype))
        self.num_classes = num_classes
        self.init_channels = init_channels
        self.num_layers = layers
        C = init_channels
        self.stem = keras.layers.Conv2D(C, 3, padding="same", use_bias=False, name="stem")
        self.stem_bn = batch_norm(name="stem_bn")
        self.body = stages(C, layers, lambda width, name: InferCell(self.genotype, width, name=name))
        self.last_bn = batch_norm(name="last_bn")
        self.classifier = keras.layers.Dense(num_classes, name="classifier")

    @builds_by_calling
    def build(self, input_shape):  # weights from a shape alone, as `load_weights` after `build_from_config` needs
        self.call(keras.KerasTensor(tuple(input_shape)))
        self.built = True

    def call(self, x, training=None):
        x = self.stem_bn(self.stem(x), training=training)
        for layer in self.body:
            x = layer(x, training=training)
        x = ops.relu(self.last_bn(x, training=training))
        return self.classifier(ops.mean(x, axis=(1, 2)))

    def get_config(self):
        config = {
            "genotype": str(self.genotype),
            "num_classes": self.num_classes,
            "init_channels": self.init_channels,
            "layers": self.num_layers,
        }
        return {**super().get_config(), **config}
