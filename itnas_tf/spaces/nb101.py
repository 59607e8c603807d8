"""NAS-Bench-1Shot1's search spaces 1-3 (Zela et al. 2020): NAS-Bench-101 cells searched one-shot.

A cell has an input node, `n` choice blocks (4 in spaces 1 and 2, 5 in space 3) and an output node.
Each choice block applies one of `NB101_OPS` to the sum of its parents; the spaces differ in how
many parents each block and the output may have (`PARENTS`), so that every cell has at most 9 edges.

Here both choices are IT choices: a `MixedLayer` over the ops of each block, and, for each block with
more than one possible parent and for the output, a `MixedLayer` whose candidates are the possible
parents (`Parent` picks one node's channels out of the concatenated nodes). Selection keeps the op of
largest importance and the `k` parents of largest importance. The input node reaches the blocks
through a 1x1 projection (conv-bn-relu), and the supernet's output node sums its parents where the
benchmark concatenates them (as NAS-Bench-1Shot1's one-shot model mixes them).
"""

import dataclasses
import json

import keras
import numpy as np
from keras import ops

from itnas_tf.engine import MixedLayer, Supernet
from itnas_tf.genotypes import GenotypeError
from itnas_tf.ops import NB101_OPS, ConvBNReLU, Op
from itnas_tf.ops.base import register

# Parents allowed per choice block (1..n), then of the output node (the benchmark's num_parents_per_node).
PARENTS = {1: (1, 2, 2, 2, 2), 2: (1, 1, 2, 2, 3), 3: (1, 1, 1, 2, 2, 2)}
SPACES = {f"nb101_1shot1_s{k}": k for k in PARENTS}
MAX_EDGES = 9  # NAS-Bench-101


@register
class Parent(Op):
    """Node `index` out of the nodes concatenated on the channel axis (each `channels` wide)."""

    def __init__(self, index, channels, **kwargs):
        super().__init__(**kwargs)
        self.index = index
        self.channels = channels

    def call(self, x):
        return x[..., self.index * self.channels:(self.index + 1) * self.channels]

    def get_config(self):
        return {**super().get_config(), "index": self.index, "channels": self.channels}


def _parents(count, channels, mix, name):
    return MixedLayer([Parent(j, channels) for j in range(count)], names=[f"node_{j}" for j in range(count)],
                      mix=mix, name=name)


@register
class SearchCell(keras.layers.Layer):
    """Input projection, the choice blocks and the output node of one NB101 cell."""

    def __init__(self, channels, search_space=1, mix="weighted", **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.search_space = search_space
        self.mix = mix
        self.blocks = len(PARENTS[search_space]) - 1
        self.project = ConvBNReLU(channels, 1, name="project")
        self.ops = [MixedLayer.from_ops(NB101_OPS, channels, mix=mix, name=f"op_{k}") for k in range(1, self.blocks + 1)]
        self.inputs = [_parents(k, channels, mix, f"inputs_{k}") for k in range(2, self.blocks + 1)]
        self.output_node = _parents(self.blocks + 1, channels, mix, "output")

    def build(self, input_shape):
        self.project.build(input_shape)
        shape = (*input_shape[:-1], self.channels)
        for layer in self.ops:
            layer.build(shape)
        for k, layer in enumerate(self.inputs, start=2):
            layer.build((*shape[:-1], k * self.channels))
        self.output_node.build((*shape[:-1], (self.blocks + 1) * self.channels))

    def call(self, x, weights=None):
        """`weights`: `{group: softmaxed alphas}` under the DARTS strategy."""
        w = weights or {}
        nodes = [self.project(x)]
        for k in range(1, self.blocks + 1):
            total = nodes[0] if k == 1 else self.inputs[k - 2](ops.concatenate(nodes, axis=-1), weights=_row(w, f"inputs_{k}"))
            nodes.append(self.ops[k - 1](total, weights=_row(w, "ops", k - 1)))
        return self.output_node(ops.concatenate(nodes, axis=-1), weights=_row(w, "output"))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "search_space": self.search_space, "mix": self.mix}


def _row(weights, group, row=0):
    return weights[group][row] if group in weights else None


@register
class NB101Supernet(Supernet):
    """Stem (3x3 conv-bn-relu), three stacks of `layers` cells with a 2x2 max-pool and double width
    between stacks (NAS-Bench-101: C=128, 3 cells per stack), global pool, dense. All cells share
    their choices' alphas under the DARTS strategy."""

    def __init__(self, num_classes=10, init_channels=16, layers=3, search_space=1, mix="weighted", strategy="it",
                 **kwargs):
        super().__init__(mix=mix, strategy=strategy, **kwargs)
        if search_space not in PARENTS:
            raise ValueError(f"NAS-Bench-1Shot1 has search spaces {sorted(PARENTS)}, got {search_space!r}.")
        self.num_classes = num_classes
        self.init_channels = init_channels
        self.num_layers = layers
        self.search_space = search_space
        blocks = len(PARENTS[search_space]) - 1
        self.add_alphas("ops", blocks, len(NB101_OPS))
        for k in range(2, blocks + 1):
            self.add_alphas(f"inputs_{k}", 1, k)
        self.add_alphas("output", 1, blocks + 1)
        self.stem = ConvBNReLU(init_channels, 3, name="stem")
        self.body = []
        for stack in range(3):
            if stack:
                self.body.append(keras.layers.MaxPooling2D(2, name=f"downsample_{stack}"))
            width = init_channels * 2 ** stack
            self.body += [SearchCell(width, search_space, self.edge_mix, name=f"cell_{stack}_{i}") for i in range(layers)]
        self.classifier = keras.layers.Dense(num_classes, name="classifier")

    def call(self, x, training=None):
        x = self.stem(x)
        weights = None
        if self.strategy == "darts":
            weights = {group: self.edge_weights(group) for group in self._alpha_index}
        for layer in self.body:
            x = layer(x, weights=weights) if isinstance(layer, SearchCell) else layer(x)
        return self.classifier(ops.mean(x, axis=(1, 2)))

    def search_edges(self):
        cells = [layer for layer in self.body if isinstance(layer, SearchCell)]
        edges = {f"op_{k + 1}": ("ops", k, [c.ops[k] for c in cells]) for k in range(cells[0].blocks)}
        edges.update({layer.name: (layer.name, 0, [c.inputs[i] for c in cells]) for i, layer in enumerate(cells[0].inputs)})
        edges["output"] = ("output", 0, [c.output_node for c in cells])
        return edges

    def get_config(self):
        config = {"num_classes": self.num_classes, "init_channels": self.init_channels, "layers": self.num_layers,
                  "search_space": self.search_space}
        return {**super().get_config(), **config}


@dataclasses.dataclass(frozen=True)
class NB101Cell:
    """A selected cell as NAS-Bench-101's `api.ModelSpec(matrix, ops)` takes it: a 7x7 upper-triangular
    0/1 matrix and 7 op labels (`input`, the ops, `output`). Spaces 1 and 2 have 4 choice blocks; as in
    NAS-Bench-1Shot1, a fifth, unconnected `conv1x1-bn-relu` vertex is inserted before the output,
    which the benchmark prunes."""

    search_space: int
    matrix: tuple
    ops: tuple

    def __post_init__(self):
        m = np.asarray(self.matrix)
        if m.shape != (7, 7) or not np.isin(m, (0, 1)).all() or np.tril(m).any():
            raise GenotypeError(f"An NB101 matrix is 7x7, 0/1 and strictly upper-triangular; got {self.matrix}.")
        if m.sum() > MAX_EDGES:
            raise GenotypeError(f"An NB101 cell has at most {MAX_EDGES} edges; this one has {int(m.sum())}.")
        if len(self.ops) != 7 or self.ops[0] != "input" or self.ops[-1] != "output" or \
                any(op not in NB101_OPS for op in self.ops[1:-1]):
            raise GenotypeError(f"NB101 ops are 'input', 5 of {NB101_OPS}, 'output'; got {list(self.ops)}.")

    @classmethod
    def from_choices(cls, search_space, block_ops, parents):
        """`block_ops`: the op of each choice block; `parents`: `{node: [parent nodes]}`, nodes numbered
        0 (input), 1..n (blocks), n+1 (output)."""
        n = len(block_ops)
        small = np.zeros((n + 2, n + 2), int)
        for node, sources in parents.items():
            small[list(sources), node] = 1
        ops_ = ["input", *block_ops, "output"]
        if n == 4:
            small = np.insert(np.insert(small, 5, 0, axis=1), 5, 0, axis=0)
            ops_.insert(5, "conv1x1-bn-relu")
        return cls(search_space, tuple(map(tuple, small.tolist())), tuple(ops_))

    @classmethod
    def from_json(cls, text):
        try:
            data = json.loads(text)
            return cls(int(data["search_space"]), tuple(map(tuple, data["matrix"])), tuple(data["ops"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            if isinstance(e, GenotypeError):
                raise
            raise GenotypeError(f'An NB101 cell is JSON {{"search_space": k, "matrix": [[...]], "ops": [...]}}: {e}') from None

    def __str__(self):
        return json.dumps({"search_space": self.search_space, "matrix": [list(r) for r in self.matrix],
                           "ops": list(self.ops)})


class Space:
    """The rules of one NAS-Bench-1Shot1 space, as the searcher reads them from a space module."""

    def __init__(self, number):
        self.number = number

    def reductions(self, layers):
        return 2

    def derive(self, table):
        """Each block's op of largest importance; each node's `k` parents of largest importance."""
        limits = PARENTS[self.number]
        blocks = len(limits) - 1
        block_ops = [max(table[f"op_{k}"], key=table[f"op_{k}"].get) for k in range(1, blocks + 1)]
        parents = {1: [0]}
        for node in range(2, blocks + 2):
            row = table["output" if node == blocks + 1 else f"inputs_{node}"]
            ranked = sorted(row, key=row.get, reverse=True)[:limits[node - 1]]
            parents[node] = sorted(int(name.split("_")[1]) for name in ranked)
        return NB101Cell.from_choices(self.number, block_ops, parents)

    parse = staticmethod(NB101Cell.from_json)


def space(name):
    return Space(SPACES[name])
