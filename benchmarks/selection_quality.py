"""Selection quality on real data: S4 noise rejection and the NB201 lookup (issues 3 and 23; docs/results.md).

Runs `python -m itnas_tf.search` on a CIFAR-10 subset of `../shared/data/cifar10/` for each
strategy/mix and seed: `--data=1k` (1000 training images, so 500/500 after the search split; batch 32,
SGD 0.05) or `--data=10k` (10,000 images, 5,000/5,000; NB201 only, batch 64, the search defaults
otherwise, 30 epochs). Then
- S4 (noise vs sep_conv_3x3 on every edge): counts the edges whose derived op is `noise`, and the
  edges where `noise` outranks `sep_conv_3x3`;
- NB201: looks the selected cell up in `../shared/data/nb201/nb201_table.csv` (CIFAR-10 test
  accuracy after 200 epochs, mean over the benchmark's seeds).

The `naswot` variant trains no supernet: it scores `--naswot_cells` random NB201 cells at
initialisation (NASWOT, Mellor et al. 2021: the benchmark's network, C=16 and N=5, one batch of 128
search-train images) and selects the best-scoring one, per seed.

Each run goes to `--runs/<name>` with `--resume`, so an interrupted benchmark continues where it
stopped. Prints a markdown table and writes the figures to `--json`.

    python benchmarks/selection_quality.py --shared=../shared
    python benchmarks/selection_quality.py --shared=../shared --data=10k --variants it-weighted darts naswot
"""

import argparse
import csv
import json
import os
import random
import pathlib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from itnas_tf.genotypes import NB201Genotype, parse_genotype  # noqa: E402
from itnas_tf.results import write_text_atomic  # noqa: E402

VARIANTS = {
    "it-weighted": ["--strategy=it", "--mix=weighted"],
    "it-transformer": ["--strategy=it", "--mix=transformer"],
    "darts": ["--strategy=darts"],
}
SETTINGS = {
    "nb201": ["--space=nb201", "--layers=2"],
    "s4": ["--space=s4", "--layers=3"],
}
# data -> (training file, flags of every search, epochs per space). 50 S4 epochs on 1k are 800 steps:
# the supernet's loss is well below chance by then and the rankings have settled (docs/results.md)
DATA = {
    "1k": ("cifar10_train_1000.npz", ["--batch_size=32", "--learning_rate=0.05", "--init_channels=8"],
           {"nb201": 25, "s4": 50}),
    "10k": ("cifar10_train_10000.npz", ["--batch_size=64", "--init_channels=8"], {"nb201": 30}),
}

# the switches of the screens in benchmarks/patches/ (it_row_screen.patch: ITNAS_S0, _ST, _SG;
# it_mix_batch_mean.patch: ITNAS_MIX), recorded with the figures they made
SCREEN_VARIABLES = ("ITNAS_S0", "ITNAS_ST", "ITNAS_SG", "ITNAS_MIX")


def search(space, variant, seed, args):
    warmup = [] if args.warmup_epochs is None else [f"--warmup_epochs={args.warmup_epochs}"]
    file, common, epochs = DATA[args.data]
    runs = pathlib.Path(args.runs) / ("" if args.data == "1k" else args.data)
    out = runs / f"{space}-{variant}-seed{seed}{'-warmup%d' % args.warmup_epochs if warmup else ''}"
    cmd = [
        sys.executable, "-m", "itnas_tf.search", *SETTINGS[space], *common, *VARIANTS[variant],
        f"--dataset=npz:{args.shared}/data/cifar10/{file}", f"--epochs={args.epochs or epochs[space]}",
        f"--seed={seed}", f"--output_dir={out}", "--resume", *warmup,
    ]
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    print(f"{space} {variant} seed {seed}: {time.time() - start:.0f} s", file=sys.stderr)
    return json.loads((out / "result.json").read_text())


def naswot_search(seed, args, accuracy):
    """NASWOT's procedure: the best-scoring of `--naswot_cells` random cells, each scored at initialisation."""
    import keras

    from itnas_tf.analysis.zero_cost import naswot
    from itnas_tf.data import search_data
    from itnas_tf.networks import NB201Network

    start = time.time()
    data = search_data(f"npz:{args.shared}/data/cifar10/{DATA[args.data][0]}", 128, seed, augment="none")
    x, _ = next(iter(data.train(0)))
    cells = random.Random(seed).sample(sorted(accuracy), args.naswot_cells)
    scores = {}
    for cell in cells:
        keras.utils.set_random_seed(seed)
        network = NB201Network(NB201Genotype.from_string(cell), 10, 16, 5)
        network.build(tuple(x.shape))  # outside `naswot`'s ReLU recording
        scores[cell] = naswot(network, x)
        keras.backend.clear_session()
    best = max(scores, key=scores.get)
    print(f"nb201 naswot seed {seed}: {time.time() - start:.0f} s", file=sys.stderr)
    return {"genotype": best, "wall_seconds": {"search_total": time.time() - start}, "final_train_loss": None,
            "naswot_score": scores[best], "cells_scored": len(cells)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--data", choices=sorted(DATA), default="1k", help="The training subset and its settings.")
    parser.add_argument("--naswot_cells", type=int, default=100, help="Random cells the naswot variant scores.")
    parser.add_argument("--runs", default="runs/selection_quality")
    parser.add_argument("--epochs", type=int, help="Instead of each space's default (DATA).")
    parser.add_argument("--warmup_epochs", type=int, help="For the IT searches (default: theirs, 3/10 of the epochs).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--spaces", nargs="+", default=list(SETTINGS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=[*VARIANTS, "naswot"])
    parser.add_argument("--json", default="benchmarks/results/selection_quality.json")
    args = parser.parse_args()
    with open(f"{args.shared}/data/nb201/nb201_table.csv") as f:
        accuracy = {row["arch_str"]: float(row["cifar10_test_acc_200ep"]) for row in csv.DictReader(f)}
    file, common, epochs = DATA[args.data]
    spaces = [space for space in args.spaces if space in epochs]
    figures = {"command": " ".join(sys.argv), "data": file, "common_flags": common, "settings": SETTINGS,
               "environment": {k: os.environ[k] for k in SCREEN_VARIABLES if k in os.environ},
               "epochs": {space: args.epochs or epochs[space] for space in spaces},
               "warmup_epochs": args.warmup_epochs, "runs": []}
    for space in spaces:
        for variant in args.variants:
            if variant == "naswot" and space != "nb201":
                continue
            for seed in args.seeds:
                result = naswot_search(seed, args, accuracy) if variant == "naswot" else search(space, variant, seed, args)
                run = {"space": space, "variant": variant, "seed": seed, "genotype": result["genotype"],
                       "search_seconds": result["wall_seconds"]["search_total"]}
                if space == "nb201":
                    run["cifar10_test_acc_200ep"] = accuracy[result["genotype"]]
                    run["final_train_loss"] = result["final_train_loss"]
                else:
                    ops = [op for cell in ("normal", "reduce") for op in _ops(result["genotype"])[cell]]
                    run["noise_edges"] = ops.count("noise")
                    run["edges"] = len(ops)
                    run["noise_leads"] = sum(v["noise"] > v["sep_conv_3x3"] for v in result["importance"].values())
                    run["final_train_loss"] = result["final_train_loss"]
                figures["runs"].append(run)
                # after each run: a stopped evaluation keeps what it measured
                write_text_atomic(args.json, json.dumps(figures, indent=2) + "\n")
    print(markdown(figures["runs"]))


def _ops(text):
    genotype = parse_genotype(text)
    return {"normal": [op for op, _ in genotype.normal], "reduce": [op for op, _ in genotype.reduce]}


def _escape(genotype):
    return genotype.replace("|", "\\|")  # a literal | ends a markdown table cell


def markdown(runs):
    lines = []
    for space in dict.fromkeys(r["space"] for r in runs):
        rows = [r for r in runs if r["space"] == space]
        if space == "nb201":
            lines += ["| strategy | per seed: selected cell, CIFAR-10 test acc. (200 ep.) | mean +- std | final train loss |",
                      "|---|---|---|---|"]
        else:
            lines += ["| strategy | `noise` edges chosen, per seed (of 16) | edges where `noise` outranks "
                      "`sep_conv_3x3` (of 28) | final train loss | total chosen |", "|---|---|---|---|---|"]
        for variant in dict.fromkeys(r["variant"] for r in rows):
            vr = [r for r in rows if r["variant"] == variant]
            if space == "nb201":
                accs = [r["cifar10_test_acc_200ep"] for r in vr]
                cells = "<br>".join(
                    f"seed {r['seed']}: `{_escape(r['genotype'])}` {r['cifar10_test_acc_200ep']:.2f}" for r in vr
                )
                std = statistics.stdev(accs) if len(accs) > 1 else 0.0
                losses = ", ".join("-" if r.get("final_train_loss") is None else f"{r['final_train_loss']:.3f}" for r in vr)
                lines.append(f"| {variant} | {cells} | {statistics.mean(accs):.2f} +- {std:.2f} | {losses} |")
            else:
                counts = [r["noise_edges"] for r in vr]
                leads = ", ".join(str(r["noise_leads"]) for r in vr)
                losses = ", ".join(f"{r['final_train_loss']:.3f}" for r in vr)
                lines.append(f"| {variant} | {', '.join(map(str, counts))} | {leads} | {losses} | {sum(counts)} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
