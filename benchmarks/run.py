"""`python -m benchmarks.run`: what a search step costs, IT against DARTS, and how fast found networks serve.

Writes `docs/benchmarks.md` (and `benchmarks/results/benchmarks.json`). Every figure is a median over
timed steps after warm-up steps (the first holds the tracing). Each measurement runs in a process of
its own, so its peak memory (peak resident set, less the process's peak before the model was built)
is its own. Tracing and warm-up, most of the wall time, run `--parallel` processes at once; the timed
steps run alone: the other workers are paused (SIGSTOP) meanwhile. `--quick` runs the same code at
toy sizes, for the smoke test.

Parts:
- supernet: training step, forward pass (the selection cost per batch) and peak memory of the IT
  strategy (`weighted` and `transformer` mix) and the DARTS strategy (first-order: an alpha step on
  a valid batch, then the weight step), same network;
- edge: one mixed edge, IT vs plain alpha weighting, as candidates, channels and batch grow, and the
  fast paths (XLA, mixed precision) on the ops of each space;
- pipeline: the share of a step spent waiting for the next batch of the real search pipeline;
- serving: target networks in Keras (`predict` and a plain call), SavedModel and onnxruntime.
"""

import argparse
import contextlib
import json
import os
import pathlib
import platform
import queue
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import keras

ROOT = pathlib.Path(__file__).resolve().parents[1]
EDGE_OPS = {
    "darts": ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
              "dil_conv_3x3", "dil_conv_5x5"],
    "nb201": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"],
}
# name -> sizes; "quick" keeps every code path at toy sizes
SIZES = {
    "full": {
        "supernets": [
            # the DARTS supernet first: its tracing is the longest, the rest fills the other core meanwhile
            {"space": "darts", "init_channels": 16, "layers": 8, "batch": 64, "side": 32, "warmup": 1, "steps": 3},
            {"space": "nb201", "init_channels": 16, "layers": 5, "batch": 64, "side": 32, "warmup": 2, "steps": 6},
        ],
        "edge": {"base": {"n": 8, "channels": 16, "batch": 64}, "n": [2, 4, 8], "channels": [16, 64], "batch": [16, 64],
                 "side": 32, "warmup": 2, "steps": 8},
        "pipeline": {"images": 4096, "batch": 64, "init_channels": 16, "layers": 5, "steps": 24},
        "serving": {"darts_cifar": {"init_channels": 36, "layers": 20}, "proxyless_side": 224, "repeats": 20, "batch": 64},
    },
    "quick": {
        "supernets": [
            {"space": "nb201", "init_channels": 4, "layers": 1, "batch": 8, "side": 16, "warmup": 1, "steps": 2},
        ],
        "edge": {"base": {"n": 4, "channels": 8, "batch": 8}, "n": [2, 4], "channels": [8], "batch": [8],
                 "side": 8, "warmup": 1, "steps": 2},
        "pipeline": {"images": 256, "batch": 16, "init_channels": 4, "layers": 1, "steps": 4},
        "serving": {"darts_cifar": {"init_channels": 4, "layers": 3}, "proxyless_side": 32, "repeats": 2, "batch": 4},
    },
}
VARIANTS = [("it", "weighted"), ("it", "transformer"), ("darts", "weighted")]
# Left out unless --all: tracing it alone takes ~7 min here, which would break the 15-minute default.
ONLY_WITH_ALL = {("darts", "it", "transformer")}
FAST_PATHS = [("float32", False), ("float32", True), ("mixed_bfloat16", False)]  # (dtype policy, XLA)


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_steps(fn, args, count):
    """Seconds of each of `count` calls of `fn(*args)`, each waited for (its output fetched)."""
    import tensorflow as tf

    times = []
    for _ in range(count):
        start = time.perf_counter()
        for leaf in tf.nest.flatten(fn(*args)):
            leaf.numpy()
        times.append(time.perf_counter() - start)
    return times


def train_function(model, jit=False):
    """The model's `train_step`, what `fit` runs per batch, as one `tf.function`. (`fit`'s own wrapper
    traces ~1.6x slower; at the DARTS supernet's size that is minutes per process.)"""
    import tensorflow as tf

    return tf.function(model.train_step, jit_compile=jit)


def compile_search(model):
    model.compile(
        optimizer=keras.optimizers.SGD(0.025, momentum=0.9, weight_decay=3e-4, global_clipnorm=5.0),
        arch_optimizer=keras.optimizers.Adam(3e-4, beta_1=0.5, weight_decay=1e-3) if model.strategy == "darts" else None,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )


# --------------------------------------------------------------------------------------------------
# Workers: each runs in its own process, calls `ready()` between its warm-up and its timed part, and
# returns its figures


def supernet_worker(ready, space, strategy, mix, init_channels, layers, batch, side, warmup, steps):
    import numpy as np
    import tensorflow as tf

    from itnas_tf import spaces
    from itnas_tf.engine import collecting_importance

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, side, side, 3)).astype("float32")
    y = rng.integers(0, 10, batch)
    base = peak_mb()
    model = spaces.supernet(space, 10, init_channels, layers, mix=mix, strategy=strategy)
    compile_search(model)
    model(x[:2])
    model.optimizer.build(model.trainable_variables)  # as the searcher does: not inside the traced step
    if strategy == "darts":
        model.arch_optimizer.build(model.arch_weights)
    data = (((x, y), (x, y)) if strategy == "darts" else (x, y),)
    step = train_function(model)
    forward = tf.function(lambda images: model(images, training=False))  # `predict`'s step
    def selection():
        return collecting_importance(model) if strategy == "it" else contextlib.nullcontext()

    warmup_s = sum(run_steps(step, data, warmup))
    with selection():
        run_steps(forward, (x,), warmup)
    ready()
    train = run_steps(step, data, steps)
    with selection():
        selection_forward = run_steps(forward, (x,), steps)
    return {
        "step_s": statistics.median(train), "forward_s": statistics.median(selection_forward), "warmup_s": warmup_s,
        "peak_mb": peak_mb() - base, "params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
    }


def edge_worker(ready, points, side, warmup, steps):
    """All edge points in one process (their memory is not measured): models built and warmed up
    first, then every point timed."""
    import numpy as np
    from keras import ops as kops

    from itnas_tf import MixedLayer

    class Edge(keras.Model):
        def __init__(self, names, channels, mix):
            super().__init__()
            self.edge = MixedLayer.from_ops(names, channels, 1, affine=False, mix=mix)
            self.alphas = self.add_weight(shape=(len(names),), initializer="zeros") if mix == "alphas" else None
            self.head = keras.layers.Dense(10, dtype="float32")

        def call(self, x):
            weights = kops.softmax(self.alphas) if self.alphas is not None else None
            return self.head(kops.mean(self.edge(x, weights=weights), axis=(1, 2)))

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    runs = []
    for p in points:
        keras.config.set_dtype_policy(p["policy"])
        model = Edge(EDGE_OPS[p["ops"]][-p["n"]:], p["channels"], p["mix"])  # the heaviest n ops
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = rng.normal(size=(p["batch"], side, side, p["channels"])).astype("float32")
        data = ((x, np.zeros(p["batch"], "int64")),)
        model(x[:1])
        model.optimizer.build(model.trainable_variables)
        step = train_function(model, p["jit"])
        run_steps(step, data, warmup)
        runs.append((step, data))
    ready()
    return {"step_s": [statistics.median(run_steps(step, data, steps)) for step, data in runs]}


def pipeline_worker(ready, images, batch, init_channels, layers, steps):
    """Time in `next()` of the real search pipeline (split, shuffle, crop+flip, normalise, prefetch)
    against the whole step, in a loop that trains on each batch as it comes."""
    import numpy as np

    from itnas_tf import spaces
    from itnas_tf.data import search_data

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        path = pathlib.Path(tmp) / "images.npz"
        np.savez(path, x=rng.integers(0, 256, (images, 32, 32, 3), dtype=np.uint8), y=rng.integers(0, 10, images))
        data = search_data(f"npz:{path}", batch, 0, 4, "crop_flip")
        keras.utils.set_random_seed(0)
        model = spaces.supernet("nb201", data.num_classes, init_channels, layers)
        compile_search(model)
        model(data.x[:1].astype("float32"))
        model.optimizer.build(model.trainable_variables)
        step = train_function(model)
        step(next(iter(data.train(0))))  # tracing
        ready()
        waits, totals = [], []
        for epoch in range(1_000_000):
            iterator = iter(data.train(epoch))
            for _ in range(data.train_size // batch):
                start = time.perf_counter()
                batch_data = next(iterator)
                got = time.perf_counter()
                float(step(batch_data)["loss"])
                waits.append(got - start)
                totals.append(time.perf_counter() - start)
            if len(totals) >= steps:
                break
    return {"wait_share": sum(waits) / sum(totals), "step_s": statistics.median(totals), "steps": len(totals)}


def serving_worker(ready, network, repeats, batch, sizes, side):
    import numpy as np
    import onnxruntime
    import tensorflow as tf

    from export.convert import INPUT_NAME, OUTPUT_NAME, to_onnx, to_saved_model
    from itnas_tf.genotypes import DARTS_V2, PROXYLESS_GPU
    from itnas_tf.networks import build_network

    keras.utils.set_random_seed(0)
    if network == "darts_cifar":
        model = build_network("darts_cifar", DARTS_V2, **sizes)
        shape = (32, 32, 3)
    else:
        model = build_network("proxyless", PROXYLESS_GPU, input_size=side)
        shape = (side, side, 3)
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(b, *shape)).astype("float32") for b in (1, batch)]
    model(inputs[0], training=False)
    with tempfile.TemporaryDirectory() as tmp:
        to_saved_model(model, shape, pathlib.Path(tmp) / "saved_model")
        to_onnx(model, shape, pathlib.Path(tmp) / "model.onnx")
        served = tf.saved_model.load(str(pathlib.Path(tmp) / "saved_model")).signatures["serving_default"]
        session = onnxruntime.InferenceSession(str(pathlib.Path(tmp) / "model.onnx"), providers=["CPUExecutionProvider"])
    runners = {
        "keras_predict": lambda x: model.predict(x, batch_size=len(x), verbose=0),
        "keras_call": lambda x: np.asarray(model(x, training=False)),
        "saved_model": lambda x: served(**{INPUT_NAME: tf.constant(x)})[OUTPUT_NAME].numpy(),
        "onnxruntime": lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0],
    }
    for fn in runners.values():  # warm-up: tracing, session set-up
        for x in inputs:
            fn(x)
    ready()

    def median_time(fn, x):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return {
        name: {"latency_ms": 1e3 * median_time(fn, inputs[0]), "throughput_ips": batch / median_time(fn, inputs[1])}
        for name, fn in runners.items()
    }


WORKERS = {"supernet": supernet_worker, "edge": edge_worker, "pipeline": pipeline_worker, "serving": serving_worker}


def worker_main(spec):
    """The worker side: runs one spec, waiting for the parent's go between warm-up and timing."""

    def ready():
        print("READY", flush=True)
        if sys.stdin.readline().strip() != "GO":
            sys.exit("benchmark worker: the parent went away")

    print("RESULT " + json.dumps(WORKERS[spec.pop("kind")](ready, **spec)), flush=True)


# --------------------------------------------------------------------------------------------------
# Orchestration


def run_workers(specs, parallel, log):
    """Runs every spec in its own process, up to `parallel` at a time; one at a time is timed while
    the others are paused. Returns the results in the order of `specs`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    events = queue.Queue()
    results, procs, logs = [None] * len(specs), {}, {}
    pending, ready, timing = list(range(len(specs))), [], None

    def start(i):
        logs[i] = tempfile.TemporaryFile("w+")
        procs[i] = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.run", "--worker", json.dumps(specs[i])], cwd=ROOT, env=env,
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


def plan(sizes, everything=False):
    """Every worker spec of a run, by part."""
    parts = {"supernet": [], "edge": [], "pipeline": [], "serving": []}
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
                                 "batch": serving["batch"], "sizes": serving["darts_cifar"],
                                 "side": serving["proxyless_side"]})
    return parts


def measure(sizes, parallel, everything, log):
    parts = plan(sizes, everything)
    specs = [spec for part in parts.values() for spec in part]
    results = iter(run_workers(specs, parallel, log))
    measured = {part: [{**spec, **next(results)} for spec in part_specs] for part, part_specs in parts.items()}
    edge = measured["edge"][0]
    measured["edge"] = [{**point, "side": edge["side"], "step_s": t} for point, t in zip(edge["points"], edge["step_s"])]
    return measured


def machine():
    import onnxruntime
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = f"{names[0]} x {len(names)} logical" if names else cpu
    gpus = tf.config.list_physical_devices("GPU")
    return (f"{cpu}; {os.cpu_count()} CPUs visible; {'GPUs: ' + str(len(gpus)) if gpus else 'no GPU'}; "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
            f"onnxruntime {onnxruntime.__version__}")


def report(results, sizes_name, seconds, command):
    sup = results["supernet"]

    def darts_row(row):
        return next(r for r in sup if r["space"] == row["space"] and r["strategy"] == "darts")

    lines = [
        "# Benchmarks", "",
        f"Made by `{command}` in {seconds / 60:.1f} min on: {machine()}.", "",
        "Medians over timed steps after warm-up steps. Peak memory: the process's peak resident set less its",
        "peak before the model was built (each row its own process). CPU figures: this machine has no GPU.", "",
        "## Supernet: IT against DARTS, same network", "",
        "| space | C | cells | batch | strategy | mix | train step (s) | selection forward / batch (s) | warm-up incl. tracing (s) "
        "| peak memory (MB) | step / DARTS step | memory / DARTS memory |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sup:
        darts = darts_row(row)
        cells = row["layers"] * 3 if row["space"] == "nb201" else row["layers"]
        lines.append(
            f"| {row['space']} | {row['init_channels']} | {cells} | {row['batch']} | {row['strategy']} | "
            f"{row['mix'] if row['strategy'] == 'it' else 'alphas'} | {row['step_s']:.3f} | {row['forward_s']:.3f} | "
            f"{row['warmup_s']:.0f} | {row['peak_mb']:.0f} | {row['step_s'] / darts['step_s']:.2f} | "
            f"{row['peak_mb'] / darts['peak_mb']:.2f} |"
        )
    measured = {(r["space"], r["strategy"], r["mix"]) for r in sup}
    skipped = [f"the {mix} mix on the {space} supernet" for space, strategy, mix in sorted(ONLY_WITH_ALL)
               if (space, "darts", "weighted") in measured and (space, strategy, mix) not in measured]
    if skipped:
        lines += ["", f"Not measured in this run (`--all` adds it): {', '.join(skipped)}."]
    lines += ["", "The DARTS step is first-order bilevel: an alpha step on a search-valid batch, then the weight step.",
              "The edge table below compares the IT with the DARTS weight step alone.", "",
              "## Selection cost", "",
              "One pass over search-valid against one training epoch over search-train (the 50/50 split gives both "
              "the same number of batches):", "",
              "| space | mix | selection pass / training epoch |", "|---|---|---|"]
    for row in sup:
        if row["strategy"] == "it":
            lines.append(f"| {row['space']} | {row['mix']} | {row['forward_s'] / row['step_s']:.2f} |")
    grid = [r for r in results["edge"] if r["table"] == "grid"]
    lines += ["", "## One mixed edge: the IT's share as the edge grows", "",
              f"Training step of one `MixedLayer` (the heaviest n DARTS ops, {grid[0]['side']}x{grid[0]['side']} input) "
              "plus a linear head: the IT "
              "(weighted mix) against the same edge weighted by softmaxed alphas (the DARTS weight step).", "",
              "| candidates | channels | batch | IT step (s) | alpha step (s) | IT / alphas |", "|---|---|---|---|---|---|"]
    for it in (r for r in grid if r["mix"] == "weighted"):
        alphas = next(r for r in grid if r["mix"] == "alphas" and all(r[k] == it[k] for k in ("n", "channels", "batch")))
        lines.append(f"| {it['n']} | {it['channels']} | {it['batch']} | {it['step_s']:.4f} | {alphas['step_s']:.4f} | "
                     f"{it['step_s'] / alphas['step_s']:.2f} |")
    fast = [r for r in results["edge"] if r["table"] == "fast"]
    lines += ["", "## Fast paths on one edge", "",
              f"The IT edge step (channels {fast[0]['channels']}, batch {fast[0]['batch']}, every op of the space) with "
              "XLA (`--jit_compile`) or mixed precision (`--mixed_precision`):", "",
              "| ops | dtype policy | XLA | step (s) | / float32 |", "|---|---|---|---|---|"]
    for r in fast:
        base = next(b for b in fast if b["ops"] == r["ops"] and (b["policy"], b["jit"]) == FAST_PATHS[0])
        lines.append(f"| {r['ops']} | {r['policy']} | {'yes' if r['jit'] else 'no'} | {r['step_s']:.4f} | "
                     f"{r['step_s'] / base['step_s']:.2f} |")
    pipe = results["pipeline"][0]
    lines += ["", "## Input pipeline", "",
              f"The real search pipeline (split, shuffle, crop and flip, normalise, prefetch) feeding an NB201 supernet "
              f"(C={pipe['init_channels']}, {pipe['layers']} cells per stage, batch {pipe['batch']}) over "
              f"{pipe['steps']} steps: {pipe['wait_share']:.2%} of the time waiting for the next batch "
              f"(median step {pipe['step_s']:.3f} s).", "",
              "## Serving the target networks", "",
              "| network | runtime | batch-1 latency (ms) | throughput at batch "
              f"{results['serving'][0]['batch']} (images/s) |", "|---|---|---|---|"]
    for row in results["serving"]:
        for name in ("keras_predict", "keras_call", "saved_model", "onnxruntime"):
            lines.append(f"| {row['network']} | {name} | {row[name]['latency_ms']:.2f} | {row[name]['throughput_ips']:.1f} |")
    if sizes_name == "quick":
        lines[1:1] = ["", "**Quick mode: toy sizes, for the smoke test; these figures mean nothing.**"]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Toy sizes: every code path in a few minutes.")
    parser.add_argument("--all", action="store_true",
                        help="Also the transformer mix on the DARTS supernet (about 7 more minutes).")
    parser.add_argument("--parallel", type=int, default=2, help="Workers warming up at once (timing is one at a time).")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"), help="The Markdown report.")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "benchmarks.json"), help="The figures.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(json.loads(args.worker))
        return
    if args.parallel < 1:
        parser.error("--parallel must be at least 1")
    from itnas_tf.results import write_json_atomic, write_text_atomic

    def log(spec, result):
        what = {k: v for k, v in spec.items() if k != "points"}
        print(f"{what}: {result}", flush=True)

    name = "quick" if args.quick else "full"
    start = time.perf_counter()
    results = measure(SIZES[name], args.parallel, args.all, log)
    seconds = time.perf_counter() - start
    command = "python -m benchmarks.run" + (" --quick" if args.quick else "") + (" --all" if args.all else "")
    write_json_atomic(pathlib.Path(args.json), {"sizes": name, "seconds": seconds, "machine": machine(), **results})
    write_text_atomic(pathlib.Path(args.out), report(results, name, seconds, command))
    print(f"wrote {args.out} and {args.json}")


if __name__ == "__main__":
    main()
