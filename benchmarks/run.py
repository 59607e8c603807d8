"""`python -m benchmarks.run`: what a search step costs, IT against DARTS, and how fast found networks serve.

Writes `docs/benchmarks.md` (and `benchmarks/results/benchmarks.json`). Every figure is a median over
timed steps after warm-up steps (the first holds the tracing). Each measurement runs in a process of
its own, so its peak memory (peak resident set, less the process's peak before the model was built)
is its own. Tracing and warm-up, most of the wall time, run `--parallel` processes at once; the timed
steps run alone: the other workers are paused (SIGSTOP) meanwhile. `--quick` runs the same code at
toy sizes, for the smoke test.

Parts:
- startup: process start to the end of the first training step of each supernet, by part; each row
  runs `STARTUP_RUNS` times, one process at a time, and shows its median run;
- supernet: training step, forward pass (the selection cost per batch) and peak memory of the IT
  strategy (`weighted` and `transformer` mix) and the DARTS strategy (first-order: an alpha step on
  a valid batch, then the weight step), same network;
- edge: one mixed edge, IT vs plain alpha weighting, as candidates, channels and batch grow, and the
  fast paths (XLA, mixed precision) on the ops of each space;
- pipeline: the share of a step spent waiting for the next batch of the real search pipeline;
- serving: target networks in Keras (`predict` and a plain call), SavedModel and onnxruntime.

`--peer` runs instead our supernet against the NAS-Bench-201 authors' PyTorch one (`benchmarks/peer.py`)
and adds that section to the same report. The sizes are in `benchmarks/sizes.py`, the workers in
`benchmarks/workers.py`, the report's text in `benchmarks/report.py`.
"""

import argparse
import contextlib
import gc
import inspect
import json
import os
import pathlib
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time

from benchmarks.report import render
from benchmarks.sizes import EDGE_OPS, FAST_PATHS, ONLY_WITH_ALL, PEER_LAYOUTS, SIZES, STARTUP_RUNS, VARIANTS, cells

ROOT = pathlib.Path(__file__).resolve().parents[1]


def worker_main(spec):
    """The worker side: runs one spec, waiting for the parent's go between warm-up and timing."""

    def ready():
        print("READY", flush=True)
        if sys.stdin.readline().strip() != "GO":
            sys.exit("benchmark worker: the parent went away")

    kind = spec.pop("kind")
    if kind == "peer":  # PyTorch alone in its process, no TensorFlow loaded beside it
        from benchmarks.peer import peer_worker as worker
    else:
        gc.disable()  # TensorFlow loads as in a command line (`itnas_tf.cli.quiet_start`)
        from benchmarks import workers

        gc.enable()
        gc.freeze()
        worker = getattr(workers, f"{kind}_worker")
    if "launched" not in inspect.signature(worker).parameters:
        spec.pop("launched")
    print("RESULT " + json.dumps(worker(ready, **spec)), flush=True)


# --------------------------------------------------------------------------------------------------
# Orchestration


def run_workers(specs, parallel, log):
    """Runs every spec in its own process, up to `parallel` at a time; one at a time is timed while
    the others are paused. Returns the results in the order of `specs`."""
    from itnas_tf import malloc  # not at the top: a peer worker loads no TensorFlow

    system = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    preloaded = malloc.preloaded(system) or system  # the training workers, the peer's too: the command lines'
    events = queue.Queue()
    results, procs, logs = [None] * len(specs), {}, {}
    pending, ready, timing = list(range(len(specs))), [], None

    def start(i):
        logs[i] = tempfile.TemporaryFile("w+")
        spec = json.dumps({**specs[i], "launched": time.time()})  # the start-up part's clock starts here
        procs[i] = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.run", "--worker", spec], cwd=ROOT,
            # serving times models for deployment, as `itnas_tf.latency` and `export` do: the system's allocator
            env=system if specs[i]["kind"] == "serving" else preloaded,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logs[i], text=True,
        )
        threading.Thread(target=lambda: [events.put((i, line)) for line in procs[i].stdout] + [events.put((i, None))],
                         daemon=True).start()

    def signal_others(sig):
        for j, proc in procs.items():
            if j != timing and proc.poll() is None:
                proc.send_signal(sig)

    try:
        while pending or procs:
            while pending and len(procs) < parallel:
                start(pending.pop(0))
            i, line = events.get()
            if line is None:
                code = procs.pop(i).wait()
                if results[i] is None:
                    logs[i].seek(0)
                    raise RuntimeError(f"benchmark worker {specs[i]} failed ({code}):\n{logs[i].read()[-3000:]}")
            elif line.startswith("READY"):
                ready.append(i)
            elif line.startswith("RESULT "):
                results[i] = json.loads(line[len("RESULT "):])
                log(specs[i], results[i])
                timing = None
                signal_others(signal.SIGCONT)
            if timing is None and ready:
                timing = ready.pop(0)
                signal_others(signal.SIGSTOP)
                procs[timing].stdin.write("GO\n")
                procs[timing].stdin.flush()
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGCONT)
            proc.kill()
    return results


# --------------------------------------------------------------------------------------------------
# The suite


PARTS = ("startup", "supernet", "edge", "pipeline", "serving")


def plan(sizes, everything=False):
    """Every worker spec of a run, by part."""
    parts = {part: [] for part in PARTS}
    for _ in range(STARTUP_RUNS):  # the rows in turn, so that a slow spell of the machine touches each alike
        parts["startup"] += [{"kind": "startup", "mix": "weighted", **net} for net in sizes["startup"]]
    for net in sizes["supernets"]:
        for strategy, mix in VARIANTS:
            if (net["space"], strategy, mix) in ONLY_WITH_ALL and not everything:
                continue
            parts["supernet"].append({"kind": "supernet", "strategy": strategy, "mix": mix, **net})
    edge = sizes["edge"]
    points = []
    grid = [dict(edge["base"], **{axis: v}) for axis in ("n", "channels", "batch") for v in edge[axis]]
    for point in (dict(t) for t in dict.fromkeys(tuple(sorted(g.items())) for g in grid)):
        for mix in ("weighted", "alphas"):
            points.append({"table": "grid", "ops": "darts", "mix": mix, "policy": "float32", "jit": False, **point})
    for ops in EDGE_OPS:
        for policy, jit in FAST_PATHS:
            points.append({"table": "fast", "ops": ops, "mix": "weighted", "policy": policy, "jit": jit,
                           **edge["base"], "n": len(EDGE_OPS[ops])})
    parts["edge"].append({"kind": "edge", "points": points, "side": edge["side"], "warmup": edge["warmup"],
                          "steps": edge["steps"]})
    parts["pipeline"].append({"kind": "pipeline", **sizes["pipeline"]})
    serving = sizes["serving"]
    for network in ("darts_cifar", "proxyless"):
        parts["serving"].append({"kind": "serving", "network": network, "repeats": serving["repeats"],
                                 "batch_repeats": serving["batch_repeats"],
                                 "batch": serving["batch"], "sizes": serving["darts_cifar"],
                                 "side": serving["proxyless_side"]})
    return parts


def peer_plan(sizes):
    """Our supernet (the default mix, profiled) and xautodl's in each layout, per space."""
    from itnas_tf.searcher import DEFAULTS

    specs = []
    for net in sizes["peer"]:
        specs.append({"kind": "supernet", "strategy": "it", "mix": DEFAULTS["mix"], "profile": True, **net})
        specs += [{"kind": "peer", "layout": layout, **net} for layout in PEER_LAYOUTS]
    return specs


def measure(sizes, parallel, everything, log, only=None):
    """`{part: rows}` of the parts in `only` (default: all). Start-up runs one process at a time: a
    process tracing beside it would count in its figure."""
    parts = {part: specs for part, specs in plan(sizes, everything).items() if only is None or part in only}
    measured = {}
    for part_parallel, names in ((1, ["startup"]), (parallel, [p for p in parts if p != "startup"])):
        specs = [spec for name in names if name in parts for spec in parts[name]]
        results = iter(run_workers(specs, part_parallel, log))
        measured.update({name: [{**spec, **next(results)} for spec in parts[name]] for name in names if name in parts})
    if "startup" in measured:
        measured["startup"] = median_runs(measured["startup"])
    if "edge" in measured:
        edge = measured["edge"][0]
        measured["edge"] = [{**point, "side": edge["side"], "step_s": t} for point, t in zip(edge["points"], edge["step_s"])]
    return measured


def median_runs(rows):
    """One start-up row per supernet: its run with the median time to the first step (and that run's
    parts, which add up to it), with every run's time in `runs_s`."""
    runs = {}
    for row in rows:
        spec = json.dumps({k: v for k, v in row.items() if k not in ("startup_s", "parts")}, sort_keys=True)
        runs.setdefault(spec, []).append(row)
    return [{**sorted(same, key=lambda r: r["startup_s"])[(len(same) - 1) // 2], "runs_s": [r["startup_s"] for r in same]}
            for same in runs.values()]


def measure_peer(sizes, parallel, log):
    specs = peer_plan(sizes)
    rows = []
    for spec, result in zip(specs, run_workers(specs, parallel, log)):
        implementation = "xautodl" if spec["kind"] == "peer" else "itnas_tf"
        rows.append({**spec, **result, "cells": cells(spec["space"], spec["layers"]), "implementation": implementation})
    return rows


def last_run(path, sizes):
    """The figures of the default run that `--only` updates, checked before anything is measured."""
    if not path.exists():
        sys.exit(f"--only updates the figures of a default run, and {path} is absent: run `python -m benchmarks.run` first.")
    results = json.loads(path.read_text())
    if results["sizes"] != sizes:
        sys.exit(f"{path} holds a {results['sizes']} run; --only would measure {sizes} sizes: give the same --quick.")
    return results


def merge_parts(results, measured, only):
    """`results` (the last default run's figures) with the parts in `only` replaced by `measured`'s; each
    part keeps the command, time and machine that made it."""
    made_by = {k: measured[k] for k in ("seconds", "machine", "command")}
    for part in only:
        results[part] = measured[part]
        results.setdefault("parts_made_by", {})[part] = made_by
    return results


def machine():
    import keras
    import onnxruntime
    import tensorflow as tf

    from itnas_tf import malloc

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = f"{names[0]} x {len(names)} logical" if names else cpu
    gpus = tf.config.list_physical_devices("GPU")
    return (f"{cpu}; {os.cpu_count()} CPUs visible; {'GPUs: ' + str(len(gpus)) if gpus else 'no GPU'}; "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
            f"onnxruntime {onnxruntime.__version__}; workers' allocator {malloc.library() or 'glibc'} "
            "(serving: the system's)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Toy sizes: every code path in a few minutes.")
    parser.add_argument("--all", action="store_true",
                        help="Also the transformer mix on the DARTS supernet (about 7 more minutes).")
    parser.add_argument("--peer", action="store_true",
                        help="Instead: our supernet against xautodl's PyTorch one (needs benchmarks/requirements-peer.txt).")
    parser.add_argument("--only", nargs="+", choices=PARTS,
                        help="Measure these parts only; the others keep the figures of the last default run.")
    parser.add_argument("--parallel", type=int, default=2, help="Workers warming up at once (timing is one at a time).")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"), help="The Markdown report.")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "benchmarks.json"),
                        help="The default run's figures; a --peer run's go beside it, in peer.json.")
    parser.add_argument("--report_only", action="store_true",
                        help="Measure nothing: write the report from the figures there are (e.g. after "
                             "`python -m itnas_tf.latency --output=benchmarks/results/latency_table.json`).")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(json.loads(args.worker))
        return
    if args.parallel < 1:
        parser.error("--parallel must be at least 1")
    if args.peer and args.all:
        parser.error("--peer and --all are separate runs: give one of them")
    if args.peer and args.only:
        parser.error("--only picks parts of the default run, not of --peer")
    from itnas_tf.results import write_json_atomic, write_text_atomic

    figures = {"main": pathlib.Path(args.json), "peer": pathlib.Path(args.json).with_name("peer.json"),
               "latency": pathlib.Path(args.json).with_name("latency_table.json")}
    if args.report_only:
        write_text_atomic(pathlib.Path(args.out), render(**read_figures(figures)))
        print(f"wrote {args.out}")
        return
    name = "quick" if args.quick else "full"
    previous = last_run(figures["main"], name) if args.only else None
    if args.peer:
        from benchmarks.peer import versions

        peer_versions = versions()  # before any work: says how to install the peer when it is missing

    def log(spec, result):
        what = {k: v for k, v in spec.items() if k != "points"}
        print(f"{what}: {result}", flush=True)

    start = time.perf_counter()
    if args.peer:
        from itnas_tf.searcher import DEFAULTS

        results = {"rows": measure_peer(SIZES[name], args.parallel, log), "versions": peer_versions,
                   "threads": len(os.sched_getaffinity(0)), "mix": DEFAULTS["mix"], "parallel": args.parallel}
    else:
        results = measure(SIZES[name], args.parallel, args.all, log, args.only)
    flags = [f"--{flag}" for flag in ("quick", "all", "peer") if getattr(args, flag)]
    command = " ".join(["python -m benchmarks.run", *flags, *(["--only", *args.only] if args.only else [])])
    results.update(sizes=name, seconds=time.perf_counter() - start, machine=machine(), command=command)
    written = figures["peer" if args.peer else "main"]
    if args.only:
        results = merge_parts(previous, results, args.only)
    write_json_atomic(written, results)
    write_text_atomic(pathlib.Path(args.out), render(**read_figures(figures)))
    print(f"wrote {args.out} and {written}")


def read_figures(figures):
    """`{"results", "peer", "latency"}`: the figures each run left, None where there are none."""
    runs = {part: json.loads(path.read_text()) for part, path in figures.items() if path.exists()}
    return {"results": runs.get("main"), "peer": runs.get("peer"), "latency": runs.get("latency")}


if __name__ == "__main__":
    main()
