"""Measuring a chain space's latency table on this CPU, and checking its additive model against whole
networks: every part is exported to ONNX on its own and timed with onnxruntime at batch 1.

The parts: `stem` (stem conv, BN, ReLU6 and the fixed first block), every candidate of every
searchable layer at its input shape (the shortcut add included where the layer has one; `zero` costs
nothing), and `head` (1x1 conv, BN, ReLU6, pooling, classifier). Layers of the same input shape, width
and stride share their measurements.
"""

import math
import pathlib
import random
import tempfile

import keras
import numpy as np
from keras import ops

from export.convert import to_onnx
from export.latency import RUNS, cpu_name, median_ms
from export.runtimes import load_onnx
from itnas_tf.genotypes import ChainGenotype
from itnas_tf.networks.proxyless import ChainNetwork, block_plan
from itnas_tf.ops import make_op
from itnas_tf.spaces.proxyless import CANDIDATES, LAYERS, REFERENCE_WIDTHS, layer_choices
from itnas_tf.spaces.proxyless_latency import FORMAT

MAX_ERROR = 0.15  # the largest mean |predicted - measured| / measured the model may have


def measure_onnx_ms(model, shape, threads, runs):
    """Batch-1 median milliseconds of `model` (called in inference mode) as an ONNX file."""
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "part.onnx"
        to_onnx(model, shape, path)
        return median_ms(load_onnx(path, threads), shape, runs)


def _model(fn, shape):
    inputs = keras.Input(shape)
    return keras.Model(inputs, fn(inputs))


def _block(op, width, stride, shortcut, se):
    block = make_op(op, width, stride, se=se)
    return lambda x: block(x) + x if shortcut else block(x)


def block_inputs(genotype):
    """The input shape `(h, w, c)` of each searchable block (after the stride-2 stem and the first block)."""
    plan, widths = block_plan(genotype)
    side, channels, shapes = math.ceil(genotype.input_size / 2), widths["first"], []
    for _, width, stride, _ in plan:
        shapes.append((side, side, channels))
        side, channels = math.ceil(side / stride), width
    return shapes, (side, side, channels)


def measure_table(widths=None, se=False, input_size=224, num_classes=1000, threads=1, runs=RUNS, log=print):
    """The latency table (the record `LatencyTable` reads) of the chain network at these sizes
    (`widths` None: the reference widths, as the search's budget)."""
    import onnxruntime

    base = ChainGenotype([CANDIDATES[0]] * LAYERS, widths=widths or REFERENCE_WIDTHS, se=se, input_size=input_size, num_classes=num_classes)
    plan, full_widths = block_plan(base)
    inputs, head_input = block_inputs(base)
    network = ChainNetwork(base)
    image = (input_size, input_size, 3)

    def stem(x):
        return network.first(ops.relu6(network.stem_bn(network.stem(network.stem_pad(x)))))

    def head(x):
        return network.classifier(ops.mean(ops.relu6(network.head_bn(network.head(x))), axis=(1, 2)))

    call_ms = measure_onnx_ms(_model(lambda x: x[:, :1, :1, :1], (1, 1, 1)), (1, 1, 1), threads, runs)
    fixed = {"stem": measure_onnx_ms(_model(stem, image), image, threads, runs) - call_ms,
             "head": measure_onnx_ms(_model(head, head_input), head_input, threads, runs) - call_ms}
    log(f"fixed parts: stem {fixed['stem']:.3f} ms, head {fixed['head']:.3f} ms (one call: {call_ms:.3f} ms)")
    measured, layers = {}, []
    for i, ((_, width, stride, shortcut), choices, shape) in enumerate(zip(plan, layer_choices(full_widths), inputs)):
        row = {}
        for op in choices:
            key = (op, shape, width, stride, shortcut)
            if op == "zero":
                measured[key] = 0.0
            elif key not in measured:
                ms = measure_onnx_ms(_model(_block(op, width, stride, shortcut, se), shape), shape, threads, runs)
                measured[key] = max(ms - call_ms, 0.0)
            row[op] = measured[key]
        layers.append(row)
        log(f"layer {i:2d} {shape} -> {width}, stride {stride}: "
            + ", ".join(f"{op} {ms:.3f}" for op, ms in row.items()))
    return {
        "format": FORMAT,
        "cpu": cpu_name(),
        "threads": threads,
        "runs": runs,
        "onnxruntime": onnxruntime.__version__,
        "widths": base.widths,
        "se": se,
        "input_size": input_size,
        "num_classes": num_classes,
        "call_ms": call_ms,
        "fixed_ms": fixed,
        "layers": layers,
    }


def check_networks(table, count=22, seed=0):
    """`[(name, ops)]`: `count` random chains, then ProxylessNAS-GPU's and MobileNetV2's ops (at the
    table's widths: the networks themselves when the table has their widths)."""
    from itnas_tf.genotypes import MOBILENET_V2, PROXYLESS_GPU

    rng = random.Random(seed)
    chosen = [(f"random_{k}", [rng.choice(sorted(row)) for row in table.terms]) for k in range(count)]
    for name, genotype in (("ProxylessNAS-GPU", PROXYLESS_GPU), ("MobileNetV2", MOBILENET_V2)):
        if all(op in row for op, row in zip(genotype.ops, table.terms)):  # its `zero`s allowed at these widths
            chosen.append((name, list(genotype.ops)))
    return chosen


def check_model(table, networks, threads=None, runs=RUNS, log=print):
    """Predicted against measured latency of whole networks.

    Returns:
        `{"networks": [{"name", "ops", "predicted_ms", "measured_ms", "error"}], "mean_abs_error"}`,
        the error relative to the measured latency.
    """
    threads = threads or table.record["threads"]
    shape = (table.record["input_size"],) * 2 + (3,)
    rows = []
    for name, ops_ in networks:
        genotype = table.genotype(ops_)
        network = ChainNetwork(genotype)
        network(np.zeros((1, *shape), "float32"), training=False)
        measured = measure_onnx_ms(network, shape, threads, runs)
        predicted = table(ops_)
        rows.append({"name": name, "ops": list(ops_), "predicted_ms": predicted, "measured_ms": measured,
                     "error": (predicted - measured) / measured})
        log(f"{name:<18} predicted {predicted:8.3f} ms, measured {measured:8.3f} ms ({rows[-1]['error']:+.1%})")
    return {"networks": rows, "mean_abs_error": float(np.mean([abs(r["error"]) for r in rows]))}

