"""`export()`: a retraining's checkpoint -> checked SavedModel / ONNX / TFLite files and `manifest.json`.

Everything is written into a temporary folder beside the output folder and renamed into place only
after the parity check passed, so a refused or failed export leaves the output folder as it was.
"""

import json
import os
import pathlib
import shutil
import tempfile

import numpy as np

from export.budget import MOBILE_MADDS, check_budget
from export.convert import FORMATS, INPUT_NAME, OUTPUT_NAME, to_onnx, to_saved_model, to_tflite
from export.latency import RUNS, cpu_name, median_ms
from export.parity import load_saved_model, parity
from export.quantize import accuracy_check, failures, float_reference, scheme, to_onnx_int8, to_tflite_int8
from export.runtimes import RUNTIMES, file_digest
from itnas_tf import checkpoint
from itnas_tf.checkpoint import CheckpointError, load_state
from itnas_tf.counting import count
from itnas_tf.data.pipeline import normalize
from itnas_tf.data.sources import load_arrays, preprocessing_rule
from itnas_tf.data.streaming import CENTRE_CROP
from itnas_tf.genotypes import read_genotype
from itnas_tf.networks import build_network
from itnas_tf.retrainer import retrain_data
from itnas_tf.results import readable_by_default
from itnas_tf.spaces.proxyless_latency import LatencyTable

FILES = {"saved_model": "saved_model", "onnx": "model.onnx", "tflite": "model.tflite",
         "onnx_int8": "model_int8.onnx", "tflite_int8": "model_int8.tflite"}
INT8 = ("onnx_int8", "tflite_int8")
CALIBRATION_IMAGES = 256


class ExportError(ValueError):
    """An export that was refused or whose files disagree with the Keras model."""


def checkpoint_path(path):
    """The `checkpoint.npz` at `path` or inside the folder `path`."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "checkpoint.npz"
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}: pass --checkpoint=the checkpoint.npz (or the folder) that "
            "`python -m itnas_tf.retrain` wrote."
        )
    return path


def load_network(path):
    """`(network with the retrained weights, its record)` from a retraining's checkpoint."""
    path = checkpoint_path(path)
    record = checkpoint.load_state(path).get("model")
    if record is None:
        raise CheckpointError(
            f"{path} holds no target network (a search checkpoint?); export the checkpoint of "
            "`python -m itnas_tf.retrain`."
        )
    network = build_network(
        record["network"], read_genotype(record["genotype"]), record["num_classes"], record["init_channels"],
        record["layers"], record["input_shape"][0], auxiliary=record.get("auxiliary", False),
    )
    network(np.zeros((1, *record["input_shape"]), "float32"), training=False)  # builds every layer
    checkpoint.restore(path, network, {})
    return network, record


def export(checkpoint, output_dir=None, formats=("saved_model", "onnx"), max_madds=MOBILE_MADDS,
           allow_over_budget=False, overwrite=False, opset=17, tolerance=1e-4, batch_size=8, seed=0,
           data_dir=None, calibration=None, calibration_images=CALIBRATION_IMAGES, allow_accuracy_drop=False,
           per_channel=False, latency_threads=1, latency_table=None):
    """Exports the network of `checkpoint` into `output_dir` (default: `<checkpoint folder>/export`).

    int8 formats are calibrated on `calibration_images` training images of the retraining's data
    (`data_dir`: where its tfds data is prepared), or on the training images of the dataset named by
    `calibration` (a `--dataset` source), and checked on its test data; their weights get one scale
    per tensor unless `per_channel` (larger files, see export.quantize). A chain network's latency
    predicted by `latency_table` (`python -m itnas_tf.latency`) is recorded beside the measured ones.

    Returns:
        `(output folder, manifest)`; the manifest (also written as `manifest.json`): input, classes,
        preprocessing, genotype, params, MAdds, files, sizes, the parity figures, the int8 files'
        accuracy and every file's batch-1 latency.

    Raises:
        ExportError: unknown format, existing output, a float file that differs from Keras by more than
            `tolerance`, or an int8 file that fails the accuracy rule (unless `allow_accuracy_drop`).
            BudgetError: over `max_madds`. CheckpointError: missing or unreadable checkpoint.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"Unknown export format(s) {unknown}; --formats takes a list of {', '.join(FORMATS)}.")
    if opset < 17:
        raise ExportError(f"--opset={opset}: ONNX export needs opset 17 or newer.")
    path = checkpoint_path(checkpoint)
    out = pathlib.Path(output_dir) if output_dir else path.parent / "export"
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} is not empty; pass --overwrite to replace it, or choose another --output_dir.")
    network, record = load_network(path)
    shape = tuple(record["input_shape"])
    exclude = [network.aux_head] if getattr(network, "aux_head", None) is not None else []
    cost = count(network, shape, exclude=exclude)
    check_budget(cost, max_madds, allow_over_budget)
    predicted = predicted_latency(latency_table, record) if latency_table else None
    data = images = None
    if any(fmt in INT8 for fmt in formats):  # before anything is written: the data may be missing
        data = retrain_data(load_state(path)["config"], data_dir)
        images = (calibration_inputs(calibration, data_dir, record, calibration_images) if calibration
                  else data.calibration(calibration_images))

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    readable_by_default(staging)
    try:
        files = _write(network, shape, staging, formats, opset, images, per_channel)
        batch = np.random.default_rng(seed).standard_normal((batch_size, *shape)).astype("float32")
        floats = [fmt for fmt in formats if fmt not in INT8]
        diffs = parity(network, {fmt: staging / FILES[fmt] for fmt in floats}, batch)
        bad = {fmt: d for fmt, d in diffs.items() if not d <= tolerance}
        if bad:
            raise ExportError(
                "The exported files disagree with the Keras model: "
                + ", ".join(f"{fmt} max |diff| {d:.3g}" for fmt, d in bad.items())
                + f" (tolerance {tolerance:g}). Nothing was written."
            )
        int8 = {}
        reference = float_reference(network, data.test) if data is not None else None
        refused = []  # every int8 file is checked before refusing, so one run names each that fails
        for fmt in (f for f in formats if f in INT8):
            int8[fmt] = accuracy_check(RUNTIMES[fmt](staging / FILES[fmt]), data.test, reference)
            reasons = failures(int8[fmt])
            if reasons:
                refused.append(f"{fmt}: {'; '.join(reasons)}, on {int8[fmt]['test_images']} test images")
            int8[fmt]["passed"] = not reasons
            int8[fmt]["scheme"] = scheme(fmt, per_channel)
        if refused and not allow_accuracy_drop:
            raise ExportError(". ".join(refused) + ". Nothing was written; calibrate on more or other images "
                              "(--calibration_images, --calibration), try --int8_per_channel, or pass "
                              "--allow_accuracy_drop to keep it.")
        sizes = {fmt: _size(staging / FILES[fmt]) for fmt in formats}
        latency = {fmt: median_ms(load_saved_model(staging / FILES[fmt]) if fmt == "saved_model"  # TF's own threads
                                  else RUNTIMES[fmt](staging / FILES[fmt], latency_threads), shape)
                   for fmt in formats}
        manifest = {
            "input": {"name": INPUT_NAME, "shape": [None, *shape], "dtype": "float32", "layout": "NHWC"},
            "output": {"name": OUTPUT_NAME, "shape": [None, record["num_classes"]], "meaning": "logits"},
            "num_classes": record["num_classes"],
            "classes": record.get("classes"),
            "preprocessing": preprocessing(record),
            "network": record["network"],
            "genotype": record["genotype"],
            "init_channels": record["init_channels"],
            "layers": record["layers"],
            "params": cost["params"],
            "madds": cost["madds"],
            "max_madds": max_madds,
            "over_budget": cost["madds"] > max_madds,
            "files": files,
            "bytes": sizes,
            "sha256": {fmt: file_digest(staging / name) for fmt, name in files.items() if fmt != "saved_model"},
            "onnx_opset": opset if any(fmt.startswith("onnx") for fmt in formats) else None,
            "parity": {"batch": batch_size, "seed": seed, "tolerance": tolerance, "max_abs_diff": diffs},
            "int8": int8,
            "latency": {"batch": 1, "runs": RUNS, "threads": latency_threads, "cpu": cpu_name(),
                        "median_ms": latency, "predicted": predicted},
            "checkpoint": str(path),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out, manifest


def predicted_latency(path, record):
    """`{"ms", "table", "cpu", "threads"}`: the latency a chain network's table predicts for it."""
    if record["network"] != "proxyless":
        raise ExportError(f"--latency_table predicts chain networks; this checkpoint holds a {record['network']} network.")
    genotype = read_genotype(record["genotype"])
    table = LatencyTable.load(path)
    table.check(genotype)
    return {"ms": table(genotype.ops), "table": str(path), "cpu": table.record["cpu"],
            "threads": table.record["threads"]}


def calibration_inputs(name, data_dir, record, n):
    """Network inputs from the first `n` training images of the `--dataset` source `name`, normalised
    as the record says (int8 calibration on images of the deployment's own domain)."""
    x, _ = load_arrays(name, data_dir)
    shape = tuple(record["input_shape"])
    if x.shape[1:] != shape:
        raise ExportError(f"--calibration={name}: its images are {x.shape[1:]}, the network takes {shape}.")
    rule = record["preprocessing"]
    return normalize(x[:n], np.asarray(rule["mean"], "float32"), np.asarray(rule["std"], "float32")).numpy()


def preprocessing(record):
    """The record's preprocessing rule; a checkpoint written before the rule was recorded in full
    (December 2026) named its pipeline in `formula` only."""
    rule = record["preprocessing"]
    if "resize" in rule:
        return rule
    shape = record["input_shape"]
    streamed = "shorter side" in rule["formula"]
    return {**preprocessing_rule("", shape, shape[0] / CENTRE_CROP if streamed else None), "mean": rule["mean"], "std": rule["std"]}


def _write(network, shape, folder, formats, opset, calibration, per_channel):
    """Writes `formats` into `folder` (with the float files an int8 one is made from, removed after)."""
    saved_model, onnx = folder / FILES["saved_model"], folder / FILES["onnx"]
    if {"saved_model", "tflite", "tflite_int8"} & set(formats):
        to_saved_model(network, shape, saved_model)
    if {"onnx", "onnx_int8"} & set(formats):
        to_onnx(network, shape, onnx, opset)
    if "tflite" in formats:
        to_tflite(saved_model, folder / FILES["tflite"])
    if "onnx_int8" in formats:
        to_onnx_int8(onnx, folder / FILES["onnx_int8"], calibration, per_channel)
    if "tflite_int8" in formats:
        to_tflite_int8(saved_model, folder / FILES["tflite_int8"], calibration, per_channel)
    if saved_model.exists() and "saved_model" not in formats:
        shutil.rmtree(saved_model)
    if onnx.exists() and "onnx" not in formats:
        onnx.unlink()
    return {fmt: FILES[fmt] for fmt in formats}


def _size(path):
    """Bytes of a file, or of every file under a folder (a SavedModel)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _replace(staging, out):
    """Puts the staged folder where `out` is, keeping the old one until the new one is in place."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
