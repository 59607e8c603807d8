"""Cells as graphs: DARTS's normal and reduction cells and the NB201 cell, edges labelled with their op.

Given the importance table of a search (`result.json`), each edge also carries the IT importance of
its op and of the runner-up on that edge, and is coloured by the margin between the two: the
margin says how sure the selection was (`LEGEND`).
"""

import dataclasses
import math

from matplotlib import colors

# The colour of an edge: its op's lead over the runner-up, as a fraction of the op's importance, on a
# log scale from a tie (TIE or less: red) to a clear pick (CLEAR or more: green); dark throughout, so
# that it reads on white however small the margins.
TIE, CLEAR = 1e-3, 0.5
MARGIN_COLOURS = colors.LinearSegmentedColormap.from_list("margin", ["#b03a2e", "#ca6f1e", "#1e8449"])
LEGEND = (f"edge colour: the pick's lead over the runner-up, red: a tie (under {TIE:.1%} of the pick), "
          f"green: {CLEAR:.0%} or more")


@dataclasses.dataclass
class CellGraph:
    """What a renderer draws: nodes `(id, label, kind)` with kind input/node/output, and edges
    `(source, target, label, colour or None)`."""

    title: str
    nodes: list
    edges: list


def margin_colour(margin, pick):
    """The colour of a lead of `margin` over the runner-up for a pick of importance `pick`."""
    relative = margin / pick if pick > 0 else 0.0
    position = math.log(max(relative, TIE) / TIE) / math.log(CLEAR / TIE)
    return colors.to_hex(MARGIN_COLOURS(min(1.0, position)))


def edge_label(op, row):
    """`(label, colour)` of an edge whose op is `op`, with its importance row `{op: value}` if any.

    Four decimals tell the pick from the runner-up where the IT's rows are flat, and the margin is
    printed to two significant digits whatever its size.
    """
    if not row or op not in row:
        return op, None
    others = {o: v for o, v in row.items() if o != op}
    runner_up = max(others, key=others.get)
    margin = row[op] - others[runner_up]
    label = f"{op} {row[op]:.4f}\\nnext: {runner_up} {others[runner_up]:.4f} (lead {margin:+.2g})"
    return label, margin_colour(margin, row[op])


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
        graphs.append(CellGraph(_titled(f"{cell} cell", edges), nodes, edges))
    return graphs


def nb201_cell(genotype, importance=None):
    """The NB201 cell: nodes 0-3, six edges; `importance` keys edges `edge_k_j`."""
    importance = importance or {}
    nodes = [("0", "0 (in)", "input"), ("1", "1", "node"), ("2", "2", "node"), ("3", "3 (out)", "output")]
    edges = []
    for op, k, j in genotype.edges():
        label, colour = edge_label(op, importance.get(f"edge_{k}_{j}"))
        edges.append((str(j), str(k), label, colour))
    return [CellGraph(_titled("NB201 cell", edges), nodes, edges)]


def _titled(title, edges):
    """The title, with the colour legend under it when the edges are coloured."""
    return f"{title}\\n{LEGEND}" if any(colour for *_, colour in edges) else title
