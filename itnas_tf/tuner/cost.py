"""MAdds of a cell space's target network for any architecture, without building each one.

A cell network's MAdds are a fixed part (stems, preprocessing, reductions, classifier) plus one term
per chosen `(edge, op)`. In a cell every edge's op sees the same shape, except that in a DARTS
reduction cell the edges from the two cell inputs have stride 2. So the counter (`counting.count`)
runs once per candidate op on a network built for measuring: every edge holds that op, and
`count(..., by=...)` gives each op layer's MAdds. Those sum, per cell kind and stride, into a table;
an architecture's MAdds are then a sum of table entries, exact to what `count` gives its network.
"""

from itnas_tf.counting import count
from itnas_tf.genotypes import Genotype, NB201Genotype
from itnas_tf.networks import build_network, space_network
from itnas_tf.tuner import space as space_lib


class CellCost:
    """`cost(values)`: MAdds of the target network of `space` that hyperparameter `values` choose.

    Args:
        space: a cell space.
        num_classes, init_channels, layers, input_shape: the target network (`darts_cifar` for the
            DARTS-like spaces, `nb201` for NB201), as `networks.build_network` takes them.
    """

    def __init__(self, space, num_classes, init_channels, layers, input_shape):
        self.space = space
        self.network = space_network(space)
        self.sizes = dict(num_classes=num_classes, init_channels=init_channels, layers=layers)
        self.input_shape = tuple(input_shape)
        ops = sorted({op for choices in space_lib.edge_ops(space).values() for op in choices} - {"none", "noise"})
        self.table, bases = {}, set()
        for op in ops:
            base, terms = self._measure(op)
            bases.add(base)
            self.table.update(terms)
        if len(bases) != 1:  # the fixed part does not depend on the op measured
            raise AssertionError(f"MAdds are not additive over edges here: fixed parts {sorted(bases)}")
        self.base = bases.pop()

    def _measure(self, op):
        """`(fixed MAdds, {term key: MAdds})` from a network whose every edge holds `op`."""
        if self.space == "nb201":
            net = build_network(self.network, NB201Genotype.from_ops([op] * 6), **self.sizes)
            cells = [layer for layer in net.body if hasattr(layer, "edge_ops")]
            layers = [edge for cell in cells for _, _, edge in cell.edge_ops]
            result = count(net, self.input_shape, by=layers)
            per_edge = sum(result["by"]) // 6
            return result["madds"] - sum(result["by"]), {op: per_edge}
        # node 2 reads inputs 0 and 1 (strided in reduction cells), nodes 3-5 read nodes 2-4 and input 0
        gene = [(op, 0), (op, 1), (op, 2), (op, 0), (op, 3), (op, 0), (op, 4), (op, 0)]
        net = build_network(self.network, Genotype(gene, [2, 3, 4, 5], gene, [2, 3, 4, 5]), **self.sizes)
        layers = [edge for cell in net.cells for edge in cell.ops_]
        result = count(net, self.input_shape, by=layers)
        terms = {}
        for c, cell in enumerate(net.cells):
            kind = "reduce" if cell.reduction else "normal"
            per_op = result["by"][8 * c: 8 * c + 8]
            for strided, madds in ((True, per_op[0]), (False, per_op[2])) if cell.reduction else ((False, per_op[2]),):
                terms[(kind, strided, op)] = terms.get((kind, strided, op), 0) + madds
        return result["madds"] - sum(result["by"]), terms

    def term(self, edge, op):
        """MAdds that choosing `op` on `edge` adds (summed over the cells sharing the edge)."""
        if op in ("none", "noise"):
            return 0
        if self.space == "nb201":
            return self.table[op]
        cell, _, j = edge.split("_")
        return self.table[(cell, cell == "reduce" and int(j) < 2, op)]

    def part(self, values):
        """The edge terms of `values`; inputs choices cost nothing themselves."""
        return sum(self.term(edge, op) for edge, op in values.items() if not edge.endswith("_inputs"))

    def __call__(self, values):
        return self.base + self.part(values)
