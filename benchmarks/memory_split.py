"""Where the IT step's extra memory goes: the peak resident set of one supernet training step, with
and without the backward pass through the edges' mixing weights (docs/performance.md).

    python -m benchmarks.memory_split [--layers 5]

Four processes, same DARTS supernet (C=16, batch 64, 32x32): the DARTS strategy's weight step
alone and with its alpha step (the full first-order step), and the IT step (weighted mix) with its
mixing weights' gradient cut (`stop_gradient`: only the convolutions learn) and in full.
"""

import argparse
import json
import subprocess
import sys

VARIANTS = [("darts", "weight step only"), ("darts", "full step"), ("it", "mixing weights' gradient cut"),
            ("it", "full step")]


def measure(strategy, variant, layers):
    """The peak of `supernet_worker`, the main suite's measurement, with `variant` patched in."""
    import tensorflow as tf

    from benchmarks.workers import supernet_worker
    from itnas_tf.engine import mixed_layer, supernet

    if variant == "weight step only":
        supernet.Supernet._arch_step = lambda self, x, y: None
    elif variant == "mixing weights' gradient cut":
        plain = mixed_layer.weighted_sum
        mixed_layer.weighted_sum = lambda weights, outputs: plain(tf.stop_gradient(weights), outputs)
    figures = supernet_worker(lambda: None, "darts", strategy, "weighted", 16, layers, 64, 32, warmup=1, steps=2)
    return figures["peak_mb"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=5, help="Cells of the DARTS supernet.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*json.loads(args.worker), args.layers)))
        return
    print(f"| strategy | step | peak memory (MB), DARTS supernet C=16, {args.layers} cells, batch 64 |\n|---|---|---|")
    for strategy, variant in VARIANTS:
        out = subprocess.run([sys.executable, "-m", "benchmarks.memory_split", f"--layers={args.layers}",
                              "--worker", json.dumps([strategy, variant])], capture_output=True, text=True, check=True)
        print(f"| {strategy} | {variant} | {float(out.stdout.split()[-1]):.0f} |", flush=True)


if __name__ == "__main__":
    main()
