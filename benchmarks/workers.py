"""The suite's measurements. Each runs in a process of its own (`benchmarks.run` starts it), calls
`ready()` between its warm-up and its timed part, and returns its figures as a dict."""

import collections
import contextlib
import pathlib
import re
import statistics
import tempfile
import time

import keras

from benchmarks.measures import op_shares, peak_mb, timed
from benchmarks.sizes import EDGE_OPS


def run_steps(fn, args, count):
    """Seconds of each of `count` calls of `fn(*args)`, each waited for (its output fetched)."""
    import tensorflow as tf

    def call():
        for leaf in tf.nest.flatten(fn(*args)):
            leaf.numpy()

    return timed(call, count)


def op_profile(fn, args, count=1):
    """Op time per TensorFlow op type over `count` calls of `fn(*args)`, from the TF profiler's trace.

    Counts the ops' spans on the executor threads (oneDNN's `_MklNative` prefixes dropped), so ops that
    ran side by side both count: shares, not wall time."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as tmp:
        tf.profiler.experimental.start(tmp)
        run_steps(fn, args, count)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(next(pathlib.Path(tmp).rglob("*.xplane.pb")).read_bytes())
    seconds = collections.Counter()
    for plane in space.planes:
        for line in (line for line in plane.lines if line.name.startswith("tf_Compute")):
            for event in line.events:
                scope, _, op = plane.event_metadata[event.metadata_id].name.rpartition(":")
                if scope and op != "Process" and re.fullmatch(r"_?[A-Z]\w*", op):  # "Process": executor spans
                    seconds[re.sub(r"^_Mkl(Native)?", "", op)] += event.duration_ps * 1e-12
    return op_shares(seconds)


def train_function(model, jit=False):
    """The model's `train_step`, what `fit` runs per batch, as one `tf.function`. (`fit`'s own wrapper
    traces ~1.6x slower; at the DARTS supernet's size that is minutes per process.) Grappler as in
    `fit`: its pruner alone where the rest does not pay."""
    import tensorflow as tf

    from itnas_tf.engine.tracing import lean_grappler

    return lean_grappler(tf.function(model.train_step, jit_compile=jit))


def compile_search(model):
    """The searcher's optimisers (`itnas_tf.optimizers`, a cosine schedule over 50 CIFAR-10 epochs)."""
    from itnas_tf.optimizers import SGD, Adam

    schedule = keras.optimizers.schedules.CosineDecay(0.025, 50 * 391)
    model.compile(
        optimizer=SGD(schedule, momentum=0.9, weight_decay=3e-4, global_clipnorm=5.0),
        arch_optimizer=Adam(3e-4, beta_1=0.5, weight_decay=1e-3) if model.strategy == "darts" else None,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )


def supernet_data(space, strategy, batch, side):
    """A seeded random batch `(x, y)` and the step's data: `((x, y), (x, y))` for the DARTS strategy
    (an alpha step on a search-valid batch, then the weight step)."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, side, side, 3)).astype("float32")
    y = rng.integers(0, 10, batch)
    return x, y, ((x, y), (x, y)) if strategy == "darts" else (x, y)


def built_supernet(space, strategy, mix, init_channels, layers, x, y):
    """The supernet compiled and built as the searcher does it: optimizers built outside the traced step."""
    from itnas_tf import spaces

    model = spaces.supernet(space, 10, init_channels, layers, mix=mix, strategy=strategy)
    compile_search(model)
    model.build_for_fit((x, y))
    return model


def startup_worker(ready, space, strategy, mix, init_channels, layers, batch, side, launched):
    """Start-up: wall time from the process's start (`launched`, the parent's clock at `Popen`) to the end
    of the first training step, by part, the supernet built as the searcher builds it."""
    import tensorflow as tf

    from itnas_tf import spaces  # noqa: F401 (counted in the imports)
    from itnas_tf.engine.tracing import lean_grappler

    marks = {"imports": time.time()}
    keras.utils.set_random_seed(0)
    x, y, data = supernet_data(space, strategy, batch, side)
    model = built_supernet(space, strategy, mix, init_channels, layers, x, y)
    marks["build"] = time.time()
    traced = tf.function(model.train_step)
    traced.get_concrete_function(data)
    step = lean_grappler(traced)  # as `train_function`, traced apart so that the parts can be timed
    marks["trace"] = time.time()
    run_steps(step, (data,), 1)
    marks["first_step"] = time.time()
    later = run_steps(step, (data,), 2)
    ready()
    seconds, last = {}, launched
    for part, mark in marks.items():
        seconds[part], last = mark - last, mark
    # the first call optimises and instantiates the graph, then steps
    seconds["graph_optimisation"] = seconds.pop("first_step") - min(later)
    seconds["step"] = min(later)
    return {"startup_s": marks["first_step"] - launched, "parts": seconds}


def supernet_worker(ready, space, strategy, mix, init_channels, layers, batch, side, warmup, steps, launched,
                    profile=False):
    import numpy as np
    import tensorflow as tf

    from itnas_tf.engine import collecting_importance

    keras.utils.set_random_seed(0)
    x, y, data = supernet_data(space, strategy, batch, side)
    data = (data,)
    base = peak_mb()
    model = built_supernet(space, strategy, mix, init_channels, layers, x, y)
    step = train_function(model)
    forward = tf.function(lambda images: model(images, training=False))  # `predict`'s step
    def selection():
        return collecting_importance(model) if strategy == "it" else contextlib.nullcontext()

    warmup_s = sum(run_steps(step, data, 1))
    startup_s = time.time() - launched  # from the process's start to the end of its first training step
    warmup_s += sum(run_steps(step, data, warmup - 1))
    with selection():
        run_steps(forward, (x,), warmup)
    ready()
    train = run_steps(step, data, steps)
    with selection():
        selection_forward = run_steps(forward, (x,), steps)
    figures = {
        "step_s": statistics.median(train), "forward_s": statistics.median(selection_forward), "warmup_s": warmup_s,
        "startup_s": startup_s, "peak_mb": peak_mb() - base, "params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
    }
    if profile:
        figures["profile"] = op_profile(step, data)
    return figures


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


def serving_worker(ready, network, repeats, batch_repeats, batch, sizes, side):
    """Latency: median of `repeats` batch-1 calls; throughput: median of `batch_repeats` full batches."""
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

    def median_time(fn, x, count):
        return statistics.median(timed(lambda: fn(x), count))

    return {
        name: {"latency_ms": 1e3 * median_time(fn, inputs[0], repeats),
               "throughput_ips": batch / median_time(fn, inputs[1], batch_repeats)}
        for name, fn in runners.items()
    }
