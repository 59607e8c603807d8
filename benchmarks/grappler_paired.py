"""What Grappler costs and gives a supernet's step, paired in one process (docs/performance.md).

    python -m benchmarks.grappler_paired --space nb201 --strategy it [--layers 5] [--steps 10]

The step is traced once, then instantiated with Grappler off (`disable_meta_optimizer`), lean (its
model pruner alone, as the supernets' steps run on a CPU: `itnas_tf/engine/tracing.py`) and on, and
called in turn, so the step-time medians share the machine's state. Prints the first call of each
(graph optimisation and instantiation included) and the steps, as JSON.
"""

import argparse
import json
import statistics
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--strategy", default="it", choices=("it", "darts"))
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--side", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="Steps timed each way.")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from benchmarks.workers import built_supernet, supernet_data
    from itnas_tf.engine.tracing import lean_grappler

    keras.utils.set_random_seed(0)
    x, y, data = supernet_data(args.space, args.strategy, args.batch, args.side)
    model = built_supernet(args.space, args.strategy, "weighted", args.channels, args.layers, x, y)
    step = tf.function(model.train_step)
    step.get_concrete_function(data)
    calls = {"off": step, "lean": lean_grappler(step), "on": step}

    def call(mode):
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": mode == "off"})
        start = time.perf_counter()
        for value in calls[mode](data).values():
            float(value)
        return time.perf_counter() - start

    modes = list(calls)
    first = {mode: call(mode) for mode in modes}
    steps = {mode: [] for mode in modes}
    for i in range(args.steps):
        for mode in modes[i % len(modes):] + modes[:i % len(modes)]:
            steps[mode].append(call(mode))
    print(json.dumps({
        **vars(args),
        **{f"grappler {mode}": {
            "first_call_s": round(first[mode], 3), "step_median_s": round(statistics.median(t), 4),
            "steps_s": [round(v, 4) for v in t]} for mode, t in steps.items()},
    }, indent=1))


if __name__ == "__main__":
    main()
