"""Architectures of a space in order of total log-importance, exactly (k-best, not sampling).

An architecture's score is the sum, over its chosen `(edge, op)`, of `log importance[edge][op]`. The
score splits into independent factors: one per edge (NB201) or one per DARTS node (its input pair
and the two ops). The best architecture takes every factor's best choice, which is the IT selection
(argmax per edge; per node the two strongest edges); the next ones come from a best-first walk over
the factors' sorted choices, which yields every architecture once in non-increasing score.
"""

import heapq
import itertools
import math

from itnas_tf.tuner import space as space_lib

FLOOR = 1e-30  # importances are softmax averages, so > 0; the floor keeps log finite all the same


def check_table(space, table):
    """Raises `ValueError` unless `table` is an importance table of `space` (edges and ops alike)."""
    expected = space_lib.edge_ops(space)
    if set(table) != set(expected):
        missing, extra = sorted(set(expected) - set(table)), sorted(set(table) - set(expected))
        raise ValueError(
            f"The importance table is not one of the {space} space: missing edges {missing[:4]}, "
            f"unexpected edges {extra[:4]}. Is the result.json from another space?"
        )
    for edge, ops in expected.items():
        lacking = [op for op in ops if op not in table[edge]]
        if lacking:
            raise ValueError(f"The importance table's edge {edge} lacks op(s) {lacking} of the {space} space.")


def log_importance(table, values):
    """Total log-importance of the edges and ops that hyperparameter `values` choose."""
    return sum(math.log(max(table[edge][op], FLOOR)) for edge, op in values.items() if edge in table)


def factors(space, table):
    """Per independent part of an architecture, its choices `[(score, values), ...]`, best first.

    Ties keep table order, as the derivation rules do.
    """
    choices = space_lib.edge_ops(space)
    parts = []
    if space == "nb201":
        for edge, ops in choices.items():
            parts.append([(log_importance(table, {edge: op}), {edge: op}) for op in ops])
    else:
        for cell, k in space_lib.nodes(space):
            part = []
            for a, b in itertools.combinations(range(k), 2):
                ea, eb = f"{cell}_{k}_{a}", f"{cell}_{k}_{b}"
                for op_a, op_b in itertools.product(choices[ea], choices[eb]):
                    values = {space_lib.inputs_name(cell, k): f"{a},{b}", ea: op_a, eb: op_b}
                    part.append((log_importance(table, values), values))
            parts.append(part)
    return [sorted(part, key=lambda c: -c[0]) for part in parts]


def ranked(parts):
    """Yields `(score, values)` for every combination of one choice per part, in non-increasing score."""
    start = (0,) * len(parts)

    def score(index):
        return sum(part[i][0] for part, i in zip(parts, index))

    heap, seen = [(-score(start), start)], {start}
    while heap:
        negative, index = heapq.heappop(heap)
        values = {}
        for part, i in zip(parts, index):
            values.update(part[i][1])
        yield -negative, values
        for p in range(len(parts)):
            if index[p] + 1 < len(parts[p]):
                successor = index[:p] + (index[p] + 1,) + index[p + 1:]
                if successor not in seen:
                    seen.add(successor)
                    heapq.heappush(heap, (-score(successor), successor))


def cheapest(parts, cost):
    """The least `cost(values)` of any combination when `cost` adds up over the parts."""
    return sum(min(cost(values) for _, values in part) for part in parts)
