"""Batch-1 latency of an exported file on this CPU: the median of warm runs."""

import platform
import time

import numpy as np

WARMUP, RUNS = 5, 30


def median_ms(run, shape, runs=RUNS, warmup=WARMUP):
    """The median wall time in milliseconds of `run` on one random float32 image of `shape` (HWC),
    after `warmup` untimed runs."""
    x = np.random.default_rng(0).standard_normal((1, *shape)).astype("float32")
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def interleaved_median_ms(runs, runs_each=RUNS, warmup=WARMUP):
    """`{name: median ms}` of each `runs[name] = (run, shape)`, timed in turn: each round calls every
    graph twice and times its second call, `runs_each` rounds (after `warmup` untimed rounds).

    Why in turn: a shared machine's speed changes for seconds at a time (seen here: one network at
    10 ms, then at 16 ms, in one process). Timed one after another, each graph's median would be that
    of its own moment, and the parts and the whole networks they are checked against would each see
    another machine. Why the second call: it finds its weights and input in cache, as one run after
    another does; timing the first, after all the others have run, made every part slower than it is
    in a whole network (the table over-predicted by 12-18%).
    """
    inputs = {name: np.random.default_rng(0).standard_normal((1, *shape)).astype("float32")
              for name, (_, shape) in runs.items()}
    times = {name: [] for name in runs}
    for k in range(warmup + runs_each):
        for name, (run, _) in runs.items():
            run(inputs[name])
            start = time.perf_counter()
            run(inputs[name])
            if k >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t) * 1e3) for name, t in times.items()}


def cpu_name():
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
