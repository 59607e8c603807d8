"""Measuring a chain space's latency table on this CPU, and checking its additive model against whole
networks: every part is exported to ONNX on its own, and all are timed in turn with onnxruntime at
batch 1.

The parts: `stem` (stem conv, BN, ReLU6 and the fixed first block), every candidate of every
searchable layer at its input shape (the shortcut add included where the layer has one; `zero` costs
nothing), and `head` (1x1 conv, BN, ReLU6, pooling, classifier). Layers of the same input shape, width
and stride share their measurements.
"""

import dataclasses
import math
import pathlib
import random
import tempfile

import keras
import numpy as np
from keras import ops

from export.convert import to_onnx
from export.latency import RUNS, cpu_name, interleaved_median_ms
from export.runtimes import load_onnx
from itnas_tf.genotypes import ChainGenotype
from itnas_tf.networks.proxyless import ChainNetwork, block_plan
from itnas_tf.ops import make_op
from itnas_tf.spaces.proxyless import CANDIDATES, LAYERS, REFERENCE_WIDTHS, layer_choices
from itnas_tf.spaces.proxyless_latency import FORMAT, LatencyTable

MAX_ERROR = 0.15  # the largest mean |predicted - measured| / measured the model may have


def _sessions(models, threads, folder):
    """`{name: (run, shape)}`: onnxruntime sessions of `models = {name: (model, shape)}`, each exported
    to ONNX in `folder`."""
    runs = {}
    for k, (name, (model, shape)) in enumerate(models.items()):
        path = pathlib.Path(folder) / f"{k}.onnx"
        to_onnx(model, shape, path)
        runs[name] = (load_onnx(path, threads), shape)
    return runs


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


def measure_table(widths=None, se=False, input_size=224, num_classes=1000, threads=1, runs=RUNS, check=22,
                  seed=0, log=print):
    """The latency table (the record `LatencyTable` reads) of the chain network at these sizes
    (`widths` None: the reference widths, as the search's budget), checked on whole networks
    (`check_networks(..., check, seed)`; their figures in `record["check"]`).

    Every part and every whole network is timed in turn with all the others (`interleaved_median_ms`),
    so the sum of the parts and the networks it is checked against are measured over the same moments.
    """
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

    models = {"call": (_model(lambda x: x[:, :1, :1, :1], (1, 1, 1)), (1, 1, 1)),
              "stem": (_model(stem, image), image), "head": (_model(head, head_input), head_input)}
    choices = layer_choices(full_widths)
    keys = []  # per layer, {op: the key of its measurement}: layers of one shape, width and stride share it
    for (_, width, stride, shortcut), row, shape in zip(plan, choices, inputs):
        keys.append({op: (op, shape, width, stride, shortcut) for op in row})
        for op, key in keys[-1].items():
            if op != "zero" and key not in models:
                models[key] = (_model(_block(op, width, stride, shortcut, se), shape), shape)
    networks = check_networks(choices, check, seed)
    for name, ops_ in networks:
        whole = ChainNetwork(dataclasses.replace(base, ops=list(ops_)))
        whole(np.zeros((1, *image), "float32"), training=False)
        models[name] = (whole, image)
    log(f"timing {len(models) - len(networks)} parts and {len(networks)} whole networks in turn, {runs} runs each")
    with tempfile.TemporaryDirectory() as folder:
        ms = interleaved_median_ms(_sessions(models, threads, folder), runs)

    call_ms = ms["call"]
    fixed = {"stem": ms["stem"] - call_ms, "head": ms["head"] - call_ms}
    log(f"fixed parts: stem {fixed['stem']:.3f} ms, head {fixed['head']:.3f} ms (one call: {call_ms:.3f} ms)")
    layers = [{op: 0.0 if op == "zero" else max(ms[key] - call_ms, 0.0) for op, key in row.items()} for row in keys]
    for i, ((_, width, stride, _), row, shape) in enumerate(zip(plan, layers, inputs)):
        log(f"layer {i:2d} {shape} -> {width}, stride {stride}: "
            + ", ".join(f"{op} {t:.3f}" for op, t in row.items()))
    record = {
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
    if networks:
        record["check"] = _check(LatencyTable(record), networks, ms, log)
    return record


def check_networks(choices, count=22, seed=0):
    """`[(name, ops)]`: `count` random chains over `choices` (each layer's ops), then ProxylessNAS-GPU's
    and MobileNetV2's ops (at the table's widths: the networks themselves when the table has their
    widths)."""
    from itnas_tf.genotypes import MOBILENET_V2, PROXYLESS_GPU

    rng = random.Random(seed)
    chosen = [(f"random_{k}", [rng.choice(sorted(row)) for row in choices]) for k in range(count)]
    for name, genotype in (("ProxylessNAS-GPU", PROXYLESS_GPU), ("MobileNetV2", MOBILENET_V2)):
        if all(op in row for op, row in zip(genotype.ops, choices)):  # its `zero`s allowed at these widths
            chosen.append((name, list(genotype.ops)))
    return chosen


def _check(table, networks, ms, log):
    """Predicted against measured latency of whole networks.

    Returns:
        `{"networks": [{"name", "ops", "predicted_ms", "measured_ms", "error"}], "mean_abs_error"}`,
        the error relative to the measured latency.
    """
    rows = []
    for name, ops_ in networks:
        predicted, measured = table(ops_), ms[name]
        rows.append({"name": name, "ops": list(ops_), "predicted_ms": predicted, "measured_ms": measured,
                     "error": (predicted - measured) / measured})
        log(f"{name:<18} predicted {predicted:8.3f} ms, measured {measured:8.3f} ms ({rows[-1]['error']:+.1%})")
    return {"networks": rows, "mean_abs_error": float(np.mean([abs(r["error"]) for r in rows]))}
