"""Search trajectories (paper Fig. 2): the benchmark accuracy of the genotype derived after each epoch."""

import numpy as np

from itnas_tf.analysis.runs import AnalysisError
from itnas_tf import plots


def accuracy_trajectories(runs, table, dataset="cifar10"):
    """`{label: (seeds, epochs) array}` of benchmark accuracies, one row per run of that label.

    Runs of one label must have the same number of epochs (else mean and std mix lengths). A warm-up
    epoch's genotype is an artefact of uniform attention (ties), so its accuracy is NaN, not plotted.
    """
    if any(r.space != "nb201" for r in runs):
        raise AnalysisError("Trajectories are looked up in the NAS-Bench-201 table: give nb201 searches.")
    grouped = {}
    for run in runs:
        grouped.setdefault(run.label, []).append([
            np.nan if t.get("warmup") else table.accuracy(t["genotype"], dataset) for t in run.trajectory
        ])
    for label, rows in grouped.items():
        if len({len(r) for r in rows}) > 1:
            raise AnalysisError(f"The {label} runs have different numbers of epochs ({sorted({len(r) for r in rows})}); "
                                "compare finished runs of the same length.")
    return {label: np.array(rows) for label, rows in grouped.items()}


def plot_trajectories(trajectories, path, dataset="cifar10", optimum=None):
    """Mean +- std over seeds per label, against the epoch; written to `path` (PNG)."""
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, rows in trajectories.items():
        epochs = np.arange(1, rows.shape[1] + 1)
        mean, std = rows.mean(axis=0), rows.std(axis=0)
        ax.plot(epochs, mean, label=f"{label} ({len(rows)} seeds)")
        ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
    if optimum is not None:
        ax.axhline(optimum, color="grey", linestyle="--", linewidth=1, label=f"benchmark optimum {optimum:.2f}")
    ax.set_xlabel("search epoch")
    ax.set_ylabel(f"{dataset} test accuracy (NB201, 200 ep.)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plots.write(fig, path)
