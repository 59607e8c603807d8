"""`analyze`: every analysis of issue 7 over a set of search output folders, as PNGs, `analysis.json`
and a Markdown report."""

import json
import math
import pathlib
import statistics
import time

import numpy as np

from itnas_tf import plots, spaces
from itnas_tf.analysis.benchmark import DATASETS
from itnas_tf.analysis.discretization import discretization_accuracy
from itnas_tf.analysis.gradcam import candidate_cams, plot_cams
from itnas_tf.analysis.ranking import kendall_per_edge, mean_tau
from itnas_tf.analysis.runs import AnalysisError, load_runs
from itnas_tf.analysis.trajectory import accuracy_trajectories, plot_trajectories
from itnas_tf.analysis.zero_cost import zero_cost_importance
from itnas_tf.results import staged_files, write_json_atomic, write_text_atomic

INDICATOR_NAMES = {"it": "IT importance", "darts": "DARTS alphas", "naswot": "NASWOT", "synflow": "SynFlow"}


def _mean_std(values):
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def selected_cells(runs, table):
    """Per run: the selected cell's accuracy on every dataset of `table` (paper Table 5)."""
    return [{"folder": str(r.folder), "label": r.label, "seed": r.config["seed"], "genotype": r.genotype,
             **{d: table.accuracy(r.genotype, d) for d in table.datasets}} for r in runs]


def zero_cost_tables(run, data_dir=None):
    """NASWOT/SynFlow importances on a freshly initialised supernet of `run`'s space and sizes (its
    seed, uniform alphas), scored on the first search-train batch."""
    searcher = run.searcher(data_dir)
    data, c = searcher.local_data(), searcher.config
    model = spaces.supernet(c["space"], data.num_classes, c["init_channels"], c["layers"], strategy="darts")
    x, _ = next(iter(data.train(0)))
    model(x[:1])
    return zero_cost_importance(model, x)


def collect(runs, table=None, discretize=True, zero_cost=True, finetune_steps=10, data_dir=None):
    """`{run folder: {"indicators": {name: table}, "truths": {name: table}}}` per run."""
    per_run, zero_cost_cache = {}, {}
    best = table.best_with_op("cifar10") if table is not None else None
    for run in runs:
        entry = {"indicators": {run.config["strategy"]: run.importance}, "truths": {}}
        if best is not None:
            entry["truths"]["benchmark"] = best
        if discretize:
            start = time.perf_counter()
            searcher = run.searcher(data_dir)
            model = searcher.restore_supernet()
            entry["truths"]["discretization"] = discretization_accuracy(model, searcher.data, finetune_steps)
            entry["discretization_seconds"] = time.perf_counter() - start
            print(f"{run.folder}: discretisation accuracies in {entry['discretization_seconds']:.0f} s", flush=True)
        if zero_cost:
            key = tuple(run.config.get(k) for k in ("space", "dataset", "init_channels", "layers", "seed", "batch_size"))
            if key not in zero_cost_cache:
                zero_cost_cache[key] = zero_cost_tables(run, data_dir)
            entry["indicators"].update(zero_cost_cache[key])
        per_run[str(run.folder)] = entry
    return per_run


def kendall_summary(per_run):
    """`{truth: {indicator: {edge: (mean tau, comparisons)}}}`: tau per run, averaged over runs.

    A comparison counts once: zero-cost scores of one seed (shared by that seed's strategies) against
    the benchmark, which every run shares, are one comparison, not one per strategy."""
    taus, seen = {}, set()
    for entry in per_run.values():
        for truth, reference in entry["truths"].items():
            for name, indicator in entry["indicators"].items():
                key = (truth, name, json.dumps(indicator, sort_keys=True), json.dumps(reference, sort_keys=True))
                if key in seen:
                    continue
                seen.add(key)
                for edge, tau in kendall_per_edge(indicator, reference).items():
                    taus.setdefault(truth, {}).setdefault(name, {}).setdefault(edge, []).append(tau)
    return {truth: {name: {edge: (float(np.nanmean(v)) if not all(map(math.isnan, v)) else math.nan, len(v))
                           for edge, v in edges.items()} for name, edges in names.items()}
            for truth, names in taus.items()}


def plot_kendall(summary, path):
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, len(summary), figsize=(6 * len(summary), 3.6), squeeze=False)
    for ax, (truth, names) in zip(axes[0], summary.items()):
        edges = list(next(iter(names.values())))
        width = 0.8 / len(names)
        for i, (name, row) in enumerate(names.items()):
            ax.bar(np.arange(len(edges)) + i * width, [row[e][0] for e in edges], width, label=INDICATOR_NAMES.get(name, name))
        ax.set_xticks(np.arange(len(edges)) + 0.4 - width / 2, edges, rotation=30, fontsize=7)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_ylim(-1, 1)
        ax.set_ylabel("Kendall tau")
        ax.set_title(f"vs {truth} ground truth", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    plots.write(fig, path)


def gradcam(runs, out, edge=None, num_images=6, data_dir=None):
    """The Grad-CAM grid of the first IT run (else the first run): `edge` (default: the last that
    chooses an op) in the last cell."""
    run = next((r for r in runs if r.config["strategy"] == "it"), runs[0])
    searcher = run.searcher(data_dir)
    model = searcher.restore_supernet()
    edges = model.search_edges()
    # default: the last edge that chooses an op (NB101's parent choices come after its op choices)
    edge = edge or [e for e in edges if not e.startswith(("inputs_", "output"))][-1]
    if edge not in edges:
        raise AnalysisError(f"No edge {edge!r} in {run.space}; its edges: {', '.join(edges)}.")
    layer = edges[edge][2][-1]
    x, y = _one_per_class(searcher.data.valid, num_images)
    maps = candidate_cams(model, layer, x, y)
    row = run.importance[edge]
    selected = max(row, key=row.get)
    path = pathlib.Path(out) / "gradcam.png"
    plot_cams(x, maps, layer.names, selected, path,
              title=f"{run.label} seed {run.config['seed']}: {layer.path} (search-valid images, one per class; maps for the true class)")
    return {"folder": str(run.folder), "edge": edge, "layer": layer.path, "selected": selected, "file": path.name}


def _one_per_class(dataset, count):
    """The first search-valid image of each class, up to `count` (the split is in class order)."""
    images, labels = [], []
    for x, y in dataset:
        for image, label in zip(x.numpy(), y.numpy()):
            if label not in labels:
                images.append(image)
                labels.append(label)
            if len(labels) == count:
                return np.stack(images), np.array(labels)
    return np.stack(images), np.array(labels)


def analyze(folders, out, table=None, discretize=True, zero_cost=True, gradcam_edge=None, finetune_steps=10,
            data_dir=None):
    """Runs every analysis that the runs and `table` (an `NB201Table` or None) allow; writes into `out`.

    The files go into `out` only once every analysis has finished (`staged_files`), so one that fails
    on the way (a cell missing from the table, an unknown edge) leaves `out` as it was.
    """
    start = time.perf_counter()
    runs = load_runs(folders)
    space = runs[0].space
    if space in spaces.CHAIN_SPACES:
        raise AnalysisError(f"The analyses cover the cell spaces; {space} is a chain space.")
    if table is not None and space != "nb201":
        raise AnalysisError(f"A NAS-Bench-201 table describes nb201 cells; these runs searched {space}.")
    with staged_files(out) as out:
        report = {"space": space, "runs": [str(r.folder) for r in runs]}
        if table is not None:
            report["selected"] = selected_cells(runs, table)
            report["optimum"] = {d: table.optimum(d) for d in table.datasets}
            trajectories = accuracy_trajectories(runs, table)
            plot_trajectories(trajectories, out / "trajectory.png", optimum=report["optimum"]["cifar10"][1])
            report["trajectory"] = {  # warm-up epochs as null
                label: [[None if np.isnan(v) else v for v in row] for row in rows.tolist()]
                for label, rows in trajectories.items()
            }
        if table is not None or discretize:
            per_run = collect(runs, table, discretize, zero_cost, finetune_steps, data_dir)
            report["per_run"] = per_run
            report["kendall"] = kendall_summary(per_run)
            plot_kendall(report["kendall"], out / "kendall.png")
        report["gradcam"] = gradcam(runs, out, gradcam_edge, data_dir=data_dir)
        report["wall_seconds"] = time.perf_counter() - start
        write_json_atomic(out / "analysis.json", report)
        write_text_atomic(out / "report.md", markdown(report))
        return report


def markdown(report):
    lines = [f"# IT-NAS analysis: {len(report['runs'])} {report['space']} searches", ""]
    if "selected" in report:
        datasets = [d for d in DATASETS if d in report["optimum"]]
        lines += ["## Selected cells in NAS-Bench-201 (200-epoch test accuracy)", "",
                  "| strategy | seeds | " + " | ".join(datasets) + " |", "|---|---|" + "---|" * len(datasets)]
        for label in dict.fromkeys(r["label"] for r in report["selected"]):
            rows = [r for r in report["selected"] if r["label"] == label]
            cells = [f"{m:.2f} +- {s:.2f}" for m, s in (_mean_std([r[d] for r in rows]) for d in datasets)]
            lines.append(f"| {label} | {len(rows)} | " + " | ".join(cells) + " |")
        lines.append("| benchmark optimum | | " + " | ".join(f"{report['optimum'][d][1]:.2f}" for d in datasets) + " |")
        lines += ["", "| run | seed | selected cell | " + " | ".join(datasets) + " |", "|---|---|---|" + "---|" * len(datasets)]
        for r in report["selected"]:
            cell = r["genotype"].replace("|", "\\|")
            lines.append(f"| {r['label']} | {r['seed']} | `{cell}` | " + " | ".join(f"{r[d]:.2f}" for d in datasets) + " |")
        lines += ["", "Trajectory (the genotype derived after each epoch, looked up): `trajectory.png`", ""]
    for truth, names in report.get("kendall", {}).items():
        edges = list(next(iter(names.values())))
        lines += [f"## Kendall tau per edge vs the {truth} ground truth (mean over runs)", "",
                  "| indicator | comparisons | " + " | ".join(edges) + " | mean |", "|---|---|" + "---|" * (len(edges) + 1)]
        for name, row in names.items():
            taus = {e: t for e, (t, _) in row.items()}
            runs = next(iter(row.values()))[1]
            lines.append(f"| {INDICATOR_NAMES.get(name, name)} | {runs} | "
                         + " | ".join(f"{taus[e]:+.2f}" for e in edges) + f" | {mean_tau(taus):+.2f} |")
        lines.append("")
    if "kendall" in report:
        lines += ["Figure: `kendall.png`.", ""]
    if "gradcam" in report:
        g = report["gradcam"]
        lines += ["## Grad-CAM per candidate", "",
                  f"`{g['file']}`: {g['layer']} of {g['folder']}; the run selected `{g['selected']}` there (its column is marked).", ""]
    lines.append(f"Wall time of this analysis: {report['wall_seconds']:.0f} s.")
    return "\n".join(lines) + "\n"
