"""The DARTS top-2 edge rule read from `a` or from `a / sum(a)`, on finished DARTS-cell searches
(issue 23; docs/results.md, "The DARTS top-2 rule").

For each `result.json`: the IT's own column (`1 - sum(a)` per edge), its Spearman correlation with
the best op's `a` over the edges, and how many derived edges differ between ranking edges by `a`
and by the share (the rule of `itnas_tf.spaces.darts.derive`).

    python -m benchmarks.top2_rule runs/selection_quality/s4-it-weighted-seed{0,1,2}/result.json
"""

import argparse
import json
import pathlib

from scipy.stats import spearmanr

from itnas_tf.spaces import darts


def edges(genotype):
    return {f"{cell}_{i // 2 + 2}_{j}" for cell in ("normal", "reduce")
            for i, (_, j) in enumerate(getattr(genotype, cell))}


def by_a(table):
    """`table` with `none` topped up so every row sums to 1: the share rule then ranks edges by `a`."""
    return {name: {**row, "none": row.get("none", 0.0) + 1.0 - sum(row.values())} for name, row in table.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="result.json files of DARTS-cell IT searches")
    args = parser.parse_args()
    print("| run | IT's own column | Spearman (best op's a, IT column) | derived edges that differ |")
    print("|---|---|---|---|")
    for path in args.results:
        table = json.loads(pathlib.Path(path).read_text())["importance"]
        own = {e: 1.0 - sum(row.values()) for e, row in table.items()}
        best = {e: max(v for op, v in row.items() if op != "none") for e, row in table.items()}
        rho = spearmanr([best[e] for e in table], [own[e] for e in table])[0]
        share, plain = edges(darts.derive(table)), edges(darts.derive(by_a(table)))
        print(f"| {path} | {min(own.values()):.3f}-{max(own.values()):.3f} | {rho:+.2f} | "
              f"{len(share - plain)} of {len(share)} |")


if __name__ == "__main__":
    main()
