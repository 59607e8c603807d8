"""The chain network of the `proxyless` space built from a `ChainGenotype` (ProxylessNAS's `ProxylessNASNets`).

Stem (3x3 stride-2 conv, BN, ReLU6), a fixed first MBConv (e1, k3), 21 searchable MBConv blocks
with an identity shortcut where the stride is 1 and the width is kept (`zero`: the block is absent),
a 1x1 head conv with BN and ReLU6, global pooling and a dense classifier.
"""

import keras
from keras import ops

from itnas_tf.counting import count
from itnas_tf.genotypes import ChainGenotype, GenotypeError
from itnas_tf.ops import MBConv, batch_norm, make_op
from itnas_tf.ops.base import BuildsInCall, builds_by_calling, register, same_padding

DEFAULT_WIDTHS = {
    "stem": 32,
    "first": 16,
    "stages": [24] * 4 + [40] * 4 + [80] * 4 + [96] * 4 + [192] * 4 + [320],
    "head": 1280,
}
STRIDES = [2, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]


def block_plan(genotype):
    """`[(op, width, stride, shortcut)]` per searchable block; refuses `zero` where the block must exist."""
    widths = {**DEFAULT_WIDTHS, **(genotype.widths or {})}
    if len(genotype.ops) != len(STRIDES):
        raise GenotypeError(f"A proxyless chain has {len(STRIDES)} searchable blocks; the genotype has {len(genotype.ops)} ops.")
    plan, width_in = [], widths["first"]
    for i, (op, width, stride) in enumerate(zip(genotype.ops, widths["stages"], STRIDES)):
        shortcut = stride == 1 and width == width_in
        if op == "zero" and not shortcut:
            raise GenotypeError(
                f"Block {i} is 'zero' but changes the {'stride' if stride != 1 else 'width'} "
                f"({width_in} -> {width}, stride {stride}); only a block with stride 1 that keeps its "
                "width can be left out."
            )
        plan.append((op, width, stride, shortcut))
        width_in = width
    return plan, widths


@register
class ChainNetwork(BuildsInCall, keras.Model):
    """`ChainGenotype` -> Keras model; `PROXYLESS_GPU` gives ProxylessNAS-GPU."""

    def __init__(self, genotype, **kwargs):
        super().__init__(**kwargs)
        if isinstance(genotype, str):
            genotype = ChainGenotype.from_json(genotype)
        self.genotype = genotype
        self.num_classes = genotype.num_classes
        plan, widths = block_plan(genotype)
        self.stem_pad, padding = same_padding(3, 2)
        self.stem = keras.layers.Conv2D(widths["stem"], 3, 2, padding=padding, use_bias=False, name="stem")
        self.stem_bn = batch_norm(name="stem_bn")
        self.first = MBConv(widths["first"], 3, 1, 1, se=genotype.se, name="first")
        self.blocks = [
            (None if op == "zero" else make_op(op, width, stride, se=genotype.se), shortcut)
            for op, width, stride, shortcut in plan
        ]
        for i, (block, _) in enumerate(self.blocks):
            if block is not None:
                setattr(self, f"block_{i}", block)
        self.head = keras.layers.Conv2D(widths["head"], 1, use_bias=False, name="head")
        self.head_bn = batch_norm(name="head_bn")
        self.classifier = keras.layers.Dense(genotype.num_classes, name="classifier")

    @builds_by_calling
    def build(self, input_shape):  # Keras's own would trace `call` in a graph of its own
        self.call(keras.KerasTensor(tuple(input_shape)))
        self.built = True

    def call(self, x, training=None):
        x = ops.relu6(self.stem_bn(self.stem(self.stem_pad(x)), training=training))
        x = self.first(x, training=training)
        for block, shortcut in self.blocks:
            if block is not None:
                x = block(x, training=training) + x if shortcut else block(x, training=training)
        x = ops.relu6(self.head_bn(self.head(x), training=training))
        return self.classifier(ops.mean(x, axis=(1, 2)))

    def get_config(self):
        return {**super().get_config(), "genotype": self.genotype.to_json()}


def block_madds(genotype):
    """`(MAdds per searchable block (0 where `zero`), {"params", "madds"} of the network)` at the
    genotype's input size and classes."""
    network = ChainNetwork(genotype)
    blocks = [block for block, _ in network.blocks]
    side = genotype.input_size
    cost = count(network, (side, side, 3), by=[b for b in blocks if b is not None])
    per_block = iter(cost.pop("by"))
    return [0 if block is None else next(per_block) for block in blocks], cost
