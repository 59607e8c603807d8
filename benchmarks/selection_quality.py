"""Selection quality on real data: S4 noise rejection and the NB201 lookup (issue 3; docs/results.md).

Runs `python -m itnas_tf.search` on the CIFAR-10 subset of `../shared/data/cifar10/` (1000 training
images, so 500/500 after the search split) for each strategy/mix and seed, then
- S4 (noise vs sep_conv_3x3 on every edge): counts the edges whose derived op is `noise`, and the
  edges where `noise` outranks `sep_conv_3x3`;
- NB201: looks the selected cell up in `../shared/data/nb201/nb201_table.csv` (CIFAR-10 test
  accuracy after 200 epochs, mean over the benchmark's seeds).

Each run goes to `--runs/<name>` with `--resume`, so an interrupted benchmark continues where it
stopped. Prints a markdown table and writes the figures to `--json`.

    python benchmarks/selection_quality.py --shared=../shared
"""

import argparse
import csv
import json
import pathlib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from itnas_tf.genotypes import parse_genotype  # noqa: E402

VARIANTS = {
    "it-weighted": ["--strategy=it", "--mix=weighted"],
    "it-transformer": ["--strategy=it", "--mix=transformer"],
    "darts": ["--strategy=darts"],
}
COMMON = ["--batch_size=32", "--learning_rate=0.05", "--init_channels=8"]
SETTINGS = {
    "nb201": ["--space=nb201", "--layers=2"],
    "s4": ["--space=s4", "--layers=3"],
}
# 50 S4 epochs are 800 steps: the supernet's loss is well below chance by then and the rankings have
# settled (docs/results.md)
EPOCHS = {"nb201": 25, "s4": 50}


def search(space, variant, seed, args):
    warmup = [] if args.warmup_epochs is None else [f"--warmup_epochs={args.warmup_epochs}"]
    out = pathlib.Path(args.runs) / f"{space}-{variant}-seed{seed}{'-warmup%d' % args.warmup_epochs if warmup else ''}"
    cmd = [
        sys.executable, "-m", "itnas_tf.search", *SETTINGS[space], *COMMON, *VARIANTS[variant],
        f"--dataset=npz:{args.shared}/data/cifar10/cifar10_train_1000.npz", f"--epochs={args.epochs or EPOCHS[space]}",
        f"--seed={seed}", f"--output_dir={out}", "--resume", *warmup,
    ]
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    print(f"{space} {variant} seed {seed}: {time.time() - start:.0f} s", file=sys.stderr)
    return json.loads((out / "result.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default="../shared")
    parser.add_argument("--runs", default="runs/selection_quality")
    parser.add_argument("--epochs", type=int, help=f"Instead of each space's default ({EPOCHS}).")
    parser.add_argument("--warmup_epochs", type=int, help="For the IT searches (default: theirs, 3/10 of the epochs).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--spaces", nargs="+", default=list(SETTINGS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--json", default="benchmarks/results/selection_quality.json")
    args = parser.parse_args()
    with open(f"{args.shared}/data/nb201/nb201_table.csv") as f:
        accuracy = {row["arch_str"]: float(row["cifar10_test_acc_200ep"]) for row in csv.DictReader(f)}
    figures = {"command": " ".join(sys.argv), "common_flags": COMMON, "settings": SETTINGS,
               "epochs": {space: args.epochs or EPOCHS[space] for space in args.spaces},
               "warmup_epochs": args.warmup_epochs, "runs": []}
    for space in args.spaces:
        for variant in args.variants:
            for seed in args.seeds:
                result = search(space, variant, seed, args)
                run = {"space": space, "variant": variant, "seed": seed, "genotype": result["genotype"],
                       "search_seconds": result["wall_seconds"]["search_total"]}
                if space == "nb201":
                    run["cifar10_test_acc_200ep"] = accuracy[result["genotype"]]
                else:
                    ops = [op for cell in ("normal", "reduce") for op in _ops(result["genotype"])[cell]]
                    run["noise_edges"] = ops.count("noise")
                    run["edges"] = len(ops)
                    run["noise_leads"] = sum(v["noise"] > v["sep_conv_3x3"] for v in result["importance"].values())
                    run["final_train_loss"] = result["final_train_loss"]
                figures["runs"].append(run)
    path = pathlib.Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
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
            lines += ["| strategy | per seed: selected cell, CIFAR-10 test acc. (200 ep.) | mean +- std |", "|---|---|---|"]
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
                lines.append(f"| {variant} | {cells} | {statistics.mean(accs):.2f} +- {std:.2f} |")
            else:
                counts = [r["noise_edges"] for r in vr]
                leads = ", ".join(str(r["noise_leads"]) for r in vr)
                losses = ", ".join(f"{r['final_train_loss']:.3f}" for r in vr)
                lines.append(f"| {variant} | {', '.join(map(str, counts))} | {leads} | {losses} | {sum(counts)} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
