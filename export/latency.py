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
