"""Ranking consistency per edge (paper 4.3, A.7): Kendall tau between a selection indicator and a ground truth."""

import math

from scipy import stats


def kendall_per_edge(indicator, truth):
    """`{edge: tau}` between two `{edge: {op: value}}` tables, over the ops both give on each edge.

    Edges are matched by position (the tables of one space list them in the same order), so an
    importance table keyed by layer name pairs with a benchmark table keyed by edge index. `tau` is
    scipy's tau-b (ties allowed); NaN where either side is constant on the edge.
    """
    if len(indicator) != len(truth):
        raise ValueError(f"The indicator has {len(indicator)} edges, the ground truth {len(truth)}: not the same space.")
    taus = {}
    for (edge, scores), reference in zip(indicator.items(), truth.values()):
        common = [op for op in scores if op in reference]
        if len(common) < 2:
            raise ValueError(f"Edge {edge}: fewer than two ops in both tables ({sorted(scores)} vs {sorted(reference)}).")
        tau = stats.kendalltau([scores[op] for op in common], [reference[op] for op in common]).statistic
        taus[edge] = float(tau)
    return taus


def mean_tau(taus):
    """The mean over the edges where tau is defined (NaN if none)."""
    values = [t for t in taus.values() if not math.isnan(t)]
    return sum(values) / len(values) if values else math.nan
