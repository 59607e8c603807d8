"""The NAS-Bench-201 search space: a cell of 4 nodes and 6 edges shared by the whole network.

The supernet follows the NB201 authors' search network (`TinyNetworkDarts`): a 3x3 stem, three
stages of `layers` cells at C, 2C and 4C, ResNet basic blocks between stages, BN-ReLU, pooling
and a classifier. Each cell edge is a `MixedLayer` over the five NB201 ops (search BN: not affine).
"""

import keras
from keras import ops

from itnas_tf.engine import MixedLayer, Supernet
from itnas_tf.genotypes import NB201Genotype
from itnas_tf.ops import NB201_OPS, ReLUConvBN, batch_norm
from itnas_tf.ops.base import BuildsInCall, Op, builds_by_calling, register

NUM_NODES = 4  # node 0 is the cell input


@register
class ResNetBlock(Op):
    """NB201's reduction block: two ReLU-conv3x3-BN (the first strided) plus an avg-pool 1x1 shortcut."""

    def __init__(self, channels, stride=2, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.stride = stride
        self.conv_a = ReLUConvBN(channels, 3, stride, name="conv_a")
        self.conv_b = ReLUConvBN(channels, 3, 1, name="conv_b")
        self.pool = keras.layers.AveragePooling2D(2, 2) if stride == 2 else None
        self.shortcut = keras.layers.Conv2D(channels, 1, use_bias=False, name="shortcut")

    def call(self, x):
        skip = self.shortcut(self.pool(x) if self.pool is not None else x)
        return skip + self.conv_b(self.conv_a(x))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "stride": self.stride}


@register
class SearchCell(BuildsInCall, keras.layers.Layer):
    """Node k = sum over j < k of edge(j -> k)(node j); the cell returns node 3."""

    def __init__(self, channels, mix="weighted", **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.mix = mix
        self.edges = [
            MixedLayer.from_ops(NB201_OPS, channels, 1, affine=False, mix=mix, name=f"edge_{k}_{j}")
            for k in range(1, NUM_NODES)
            for j in range(k)
        ]

    @builds_by_calling  # every edge on the input's shape, in the order `call` runs them
    def build(self, input_shape):
        for edge in self.edges:
            edge.build(input_shape)

    def call(self, x, weights=None):
        nodes, e = [x], 0
        for k in range(1, NUM_NODES):
            total = 0
            for j in range(k):
                total = total + self.edges[e](nodes[j], weights=None if weights is None else weights[e])
                e += 1
            nodes.append(total)
        return nodes[-1]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "mix": self.mix}


def stages(init_channels, layers, make_cell):
    """The NB201 body: `layers` cells at C, 2C and 4C, a ResNet block between stages.

    `make_cell(width, name)` makes one cell; the search network and the target network differ only there.
    """
    C, body = init_channels, []
    for stage, width in enumerate((C, 2 * C, 4 * C)):
        if stage:
            body.append(ResNetBlock(width, 2, name=f"reduce_{stage}"))
        body += [make_cell(width, f"cell_{stage}_{i}") for i in range(layers)]
    return body


@register
class NB201Supernet(Supernet):
    """The NB201 search network; `layers` is N, the cells per stage (5 in the benchmark).

    Under the DARTS strategy all cells share one `(6, 5)` alpha matrix, as in the NB201 baselines.
    """

    def __init__(self, num_classes=10, init_channels=16, layers=5, mix="weighted", strategy="it", **kwargs):
        super().__init__(mix=mix, strategy=strategy, **kwargs)
        self.num_classes = num_classes
        self.init_channels = init_channels
        self.num_layers = layers
        C = init_channels
        self.add_alphas("cell", 6, len(NB201_OPS))
        self.stem = keras.layers.Conv2D(C, 3, padding="same", use_bias=False, name="stem")
        self.stem_bn = batch_norm(name="stem_bn")
        self.body = stages(C, layers, lambda width, name: SearchCell(width, self.edge_mix, name=name))
        self.last_bn = batch_norm(name="last_bn")
        self.classifier = keras.layers.Dense(num_classes, name="classifier")

    def call(self, x, training=None):
        x = self.stem_bn(self.stem(x))
        weights = self.edge_weights("cell")
        for layer in self.body:
            x = layer(x, weights=weights) if isinstance(layer, SearchCell) else layer(x)
        x = ops.relu(self.last_bn(x))
        return self.classifier(ops.mean(x, axis=(1, 2)))

    def search_edges(self):
        cells = [layer for layer in self.body if isinstance(layer, SearchCell)]
        return {
            edge.name: ("cell", i, [cell.edges[i] for cell in cells])
            for i, edge in enumerate(cells[0].edges)
        }

    def get_config(self):
        config = {
            "num_classes": self.num_classes,
            "init_channels": self.init_channels,
            "layers": self.num_layers,
        }
        return {**super().get_config(), **config}


def reductions(layers):
    """How often the supernet halves the input: the two ResNet blocks."""
    return 2


def derive(table):
    """NB201 rule: the argmax op on each of the six edges (DESIGN.md 1.8)."""
    if len(table) != 6:
        raise ValueError(f"An NB201 importance table has 6 edges, got {len(table)}.")
    return NB201Genotype.from_ops([max(row, key=row.get) for row in table.values()])


parse = NB201Genotype.from_string
