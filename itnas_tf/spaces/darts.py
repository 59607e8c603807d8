"""The DARTS space and RobustDARTS's reduced spaces S1-S4: the search network of DARTS's `model_search.py`.

A stem (3x3 conv, 3C channels, BN), `layers` cells with reduction cells at `layers//3` and
`2*layers//3`, global pooling and a classifier. A cell has two inputs (the two previous cells'
outputs, preprocessed to C channels), 4 intermediate nodes, 14 edges (node k reads every earlier node)
and outputs the concatenation of its intermediate nodes. Each edge is a `MixedLayer`; as in DARTS's
`MixedOp`, BatchNorms are not affine and every pooling candidate is followed by a BatchNorm.
"""

import keras
from keras import ops

from itnas_tf.engine import MixedLayer, Supernet
from itnas_tf.genotypes import Genotype, GenotypeError, parse_genotype, validate
from itnas_tf.ops import PRIMITIVES, FactorizedReduce, ReLUConvBN, batch_norm, make_op
from itnas_tf.ops.base import Op, register

STEPS = 4
NUM_EDGES = sum(range(2, STEPS + 2))  # 14

_SHORT = {
    "skip": "skip_connect",
    "dil3": "dil_conv_3x3",
    "dil5": "dil_conv_5x5",
    "sep3": "sep_conv_3x3",
    "max": "max_pool_3x3",
    "avg": "avg_pool_3x3",
}


def _s1(text):
    return [tuple(_SHORT[op] for op in pair.split()) for pair in text.split(",")]


# Candidates per edge, `{space: {"normal": [ops of edge 0..13], "reduce": [...]}}` (reference.md).
SPACE_OPS = {
    "darts": {cell: [PRIMITIVES] * NUM_EDGES for cell in ("normal", "reduce")},
    "s1": {
        "normal": _s1(
            "skip dil3, skip dil5, skip dil5, skip sep3, skip dil3, max skip, skip sep3, skip sep3, "
            "skip dil3, skip sep3, max skip, skip dil3, dil3 dil5, dil3 dil5"
        ),
        "reduce": _s1(
            "max avg, max dil3, max avg, max avg, skip dil5, max avg, max sep3, skip dil3, "
            "skip dil5, max avg, max avg, skip dil5, skip dil5, skip dil5"
        ),
    },
    "s2": {cell: [("skip_connect", "sep_conv_3x3")] * NUM_EDGES for cell in ("normal", "reduce")},
    "s3": {cell: [("none", "skip_connect", "sep_conv_3x3")] * NUM_EDGES for cell in ("normal", "reduce")},
    "s4": {cell: [("noise", "sep_conv_3x3")] * NUM_EDGES for cell in ("normal", "reduce")},
}


def edge_names(cell):
    """`normal_2_0` ... `normal_5_4`: the edge from node j into node k, in DARTS edge order."""
    return [f"{cell}_{k}_{j}" for k in range(2, STEPS + 2) for j in range(k)]


def _search_op(name, channels, stride):
    if "pool" in name:
        return PoolBN(name, channels, stride, name=name)
    return make_op(name, channels, stride, affine=False)


@register
class PoolBN(Op):
    """A search edge's pooling candidate and its BatchNorm (not affine): DARTS's
    `nn.Sequential(OPS[name], nn.BatchNorm2d(C, affine=False))`.

    One op rather than a `keras.Sequential`, whose build makes a functional model of its two layers
    and whose calls run through it: 224 of them in the 8-cell supernet. The layers, their names and
    their variables' paths are the `Sequential`'s.
    """

    def __init__(self, op, channels, stride=1, **kwargs):
        super().__init__(**kwargs)
        self.op = op
        self.channels = channels
        self.stride = stride
        self.pool = make_op(op, channels, stride, affine=False)
        self.bn = batch_norm(affine=False)

    def call(self, x, training=None):
        return self.bn(self.pool(x), training=training)

    def get_config(self):
        return {**super().get_config(), "op": self.op, "channels": self.channels, "stride": self.stride}


@register
class SearchCell(keras.layers.Layer):
    """One DARTS search cell; `candidates[e]` are the op names of edge `e`."""

    def __init__(self, channels, reduction, reduction_prev, candidates, mix="weighted", **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.reduction = reduction
        self.reduction_prev = reduction_prev
        self.candidates = [list(c) for c in candidates]
        self.mix = mix
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(channels, affine=False, name="preprocess0")
        else:
            self.preprocess0 = ReLUConvBN(channels, 1, 1, affine=False, name="preprocess0")
        self.preprocess1 = ReLUConvBN(channels, 1, 1, affine=False, name="preprocess1")
        cell = "reduce" if reduction else "normal"
        self.edges = []
        for e, name in enumerate(edge_names(cell)):
            j = int(name.rsplit("_", 1)[1])
            stride = 2 if reduction and j < 2 else 1
            ops_ = [_search_op(op, channels, stride) for op in self.candidates[e]]
            self.edges.append(MixedLayer(ops_, names=self.candidates[e], mix=mix, name=name))

    def build(self, input_shape):
        s0, s1 = input_shape
        self.preprocess0.build(s0)
        self.preprocess1.build(s1)
        self.built = True

    def call(self, inputs, weights=None):
        s0, s1 = inputs
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(STEPS):
            total = 0
            for j, h in enumerate(states):
                e = offset + j
                total = total + self.edges[e](h, weights=None if weights is None else weights[e])
            offset += len(states)
            states.append(total)
        return ops.concatenate(states[-STEPS:], axis=-1)

    def get_config(self):
        config = {
            "channels": self.channels,
            "reduction": self.reduction,
            "reduction_prev": self.reduction_prev,
            "candidates": self.candidates,
            "mix": self.mix,
        }
        return {**super().get_config(), **config}


def reduction_layers(layers):
    """The cell indices that reduce: `layers//3` and `2*layers//3` (one index when they coincide)."""
    return sorted({layers // 3, 2 * layers // 3})


def reductions(layers):
    """How often the supernet halves the input."""
    return len(reduction_layers(layers))


@register
class DartsSupernet(Supernet):
    """The DARTS search network (DARTS: `layers=8`, `init_channels=16`) over one of `SPACE_OPS`."""

    def __init__(
        self, num_classes=10, init_channels=16, layers=8, space="darts", mix="weighted", strategy="it",
        stem_multiplier=3, **kwargs,
    ):
        super().__init__(mix=mix, strategy=strategy, **kwargs)
        if space not in SPACE_OPS:
            raise ValueError(f"Unknown DARTS-like space {space!r}; known: {', '.join(SPACE_OPS)}.")
        if layers < 3:
            raise ValueError(
                f"The {space} supernet needs at least 3 cells (normal and reduction cells), got {layers}."
            )
        self.num_classes = num_classes
        self.init_channels = init_channels
        self.num_layers = layers
        self.space = space
        self.stem_multiplier = stem_multiplier
        for cell, edges in SPACE_OPS[space].items():
            self.add_alphas(cell, NUM_EDGES, len(edges[0]))
        self.stem = keras.layers.Conv2D(stem_multiplier * init_channels, 3, padding="same", use_bias=False, name="stem")
        self.stem_bn = batch_norm(affine=True, name="stem_bn")
        self.cells = []
        C, reduction_prev = init_channels, False
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            if reduction:
                C *= 2
            cell = "reduce" if reduction else "normal"
            self.cells.append(
                SearchCell(C, reduction, reduction_prev, SPACE_OPS[space][cell], self.edge_mix, name=f"cell_{i}")
            )
            reduction_prev = reduction
        self.classifier = keras.layers.Dense(num_classes, name="classifier")

    def call(self, x, training=None):
        s0 = s1 = self.stem_bn(self.stem(x))
        weights = {"normal": self.edge_weights("normal"), "reduce": self.edge_weights("reduce")}
        for cell in self.cells:
            s0, s1 = s1, cell((s0, s1), weights=weights["reduce" if cell.reduction else "normal"])
        return self.classifier(ops.mean(s1, axis=(1, 2)))

    def search_edges(self):
        edges = {}
        for group in ("normal", "reduce"):
            cells = [c for c in self.cells if c.reduction == (group == "reduce")]
            for e, name in enumerate(edge_names(group)):
                edges[name] = (group, e, [c.edges[e] for c in cells])
        return edges

    def get_config(self):
        config = {
            "num_classes": self.num_classes,
            "init_channels": self.init_channels,
            "layers": self.num_layers,
            "space": self.space,
            "stem_multiplier": self.stem_multiplier,
        }
        return {**super().get_config(), **config}


def derive(table):
    """The DARTS rule (DESIGN.md 1.8): per node, the 2 incoming edges whose best non-`none` op has the
    largest share of the edge's row (`a / sum(a)`), each with that op; listed strongest edge first, as
    DARTS's `_parse`.

    The share, not `a`: under the `weighted` mix the IT's own column (`1 - sum(a)`) gets no gradient,
    and on S4 it decided the ranking of edges by `a` alone (Spearman -0.96 to -1.00, docs/results.md).
    DARTS's alphas are shares already. Missing cells (a supernet with no reduction cell) cannot be derived.
    """
    cells = {}
    for cell in ("normal", "reduce"):
        names = edge_names(cell)
        missing = [n for n in names if n not in table]
        if missing:
            raise GenotypeError(f"The importance table lacks edge(s) {missing} of the {cell} cell.")
        gene = []
        for k in range(2, STEPS + 2):
            best = {}
            for j in range(k):
                row = table[f"{cell}_{k}_{j}"]
                total = sum(row.values()) or 1.0
                op = max((op for op in row if op != "none"), key=row.get)
                best[j] = (row[op] / total, op)
            for j in sorted(best, key=lambda j: -best[j][0])[:2]:
                gene.append((best[j][1], j))
        cells[cell] = gene
    concat = list(range(2, STEPS + 2))
    genotype = Genotype(cells["normal"], concat, cells["reduce"], concat)
    validate(genotype, steps=STEPS)
    return genotype


parse = parse_genotype
