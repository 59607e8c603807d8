"""Measuring helpers that import neither TensorFlow nor PyTorch (the peer's process loads only PyTorch)."""

import resource
import time


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def op_shares(seconds, top=8):
    """`[(op type, share of the op time)]`, the `top` largest, then `("other", rest)`."""
    total = sum(seconds.values())
    ranked = [(op, t / total) for op, t in seconds.most_common(top)]
    return ranked + [("other", 1 - sum(share for _, share in ranked))]


def timed(fn, count):
    """Seconds of each of `count` calls of `fn()`."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times
