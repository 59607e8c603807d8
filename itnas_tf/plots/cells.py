"""Cells as graphs: DARTS's normal and reduction cells and the NB201 cell, edges labelled with their op.

Given the importance table of a search (`result.json`), each edge also carries the IT importance of
its op and of the runner-up on that edge, and is coloured by the margin between the two: the
margin says how sure the selection was.
"""

import dataclasses

from matplotlib import colormaps, colors

MARGIN_SCALE = 0.25  # a margin this large or larger gets the far (green) end of the colour map


@dataclasses.dataclass
class CellGraph:
    """What a renderer draws: nodes `(id, label, kind)` with kind input/node/output, and edges
    `(source, target, label, colour or None)`."""

    title: str
    nodes: list
    edges: list


def edge_label(op, row):
    """`(label, colour)` of an edge whose op is `op`, with its importance row `{op: value}` if any."""
    if not row or op not in row:
        return op, None
    others = {o: v for o, v in row.items() if o != op}
    runner_up = max(others, key=others.get)
    margin = row[op] - others[runner_up]
    colour = colors.to_hex(colormaps["RdYlGn"](0.5 + 0.5 * max(-1.0, min(1.0, margin / MARGIN_SCALE))))
    return f"{op} {row[op]:.2f}\\nnext: {runner_up} {others[runner_up]:.2f}", colour


def darts_cells(genotype, importance=None):
    """The normal and reduction cells of a DARTS `Genotype`; `importance` keys edges `normal_k_j`."""
    importance = importance or {}
    graphs = []
    for cell in ("normal", "reduce"):
        pairs, concat = getattr(genotype, cell), list(getattr(genotype, cell + "_concat"))
        steps = len(pairs) // 2
        prefix = f"{cell}_"
        nodes = [(prefix + "c_k-2", "c_{k-2}", "input"), (prefix + "c_k-1", "c_{k-1}", "input")]
        nodes += [(f"{prefix}{k}", str(k - 2), "node") for k in range(2, steps + 2)]
        nodes.append((prefix + "c_k", "c_{k}", "output"))
        names = [prefix + "c_k-2", prefix + "c_k-1"] + [f"{prefix}{k}" for k in range(2, steps + 2)]
        edges = []
        for i, (op, j) in enumerate(pairs):
            k = i // 2 + 2
            label, colour = edge_label(op, importance.get(f"{cell}_{k}_{j}"))
            edges.append((names[j], names[k], label, colour))
        edges += [(names[k], prefix + "c_k", "", None) for k in concat]
        graphs.append(CellGraph(f"{cell} cell", nodes, edges))
    return graphs


def nb201_cell(genotype, importance=None):
    """The NB201 cell: nodes 0-3, six edges; `importance` keys edges `edge_k_j`."""
    importance = importance or {}
    nodes = [("0", "0 (in)", "input"), ("1", "1", "node"), ("2", "2", "node"), ("3", "3 (out)", "output")]
    edges = []
    for op, k, j in genotype.edges():
        label, colour = edge_label(op, importance.get(f"edge_{k}_{j}"))
        edges.append((str(j), str(k), label, colour))
    return [CellGraph("NB201 cell", nodes, edges)]
