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
from export.parity import parity
from itnas_tf import checkpoint
from itnas_tf.checkpoint import CheckpointError
from itnas_tf.counting import count
from itnas_tf.genotypes import read_genotype
from itnas_tf.networks import build_network
from itnas_tf.results import readable_by_default

FILES = {"saved_model": "saved_model", "onnx": "model.onnx", "tflite": "model.tflite"}


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
           allow_over_budget=False, overwrite=False, opset=17, tolerance=1e-4, batch_size=8, seed=0):
    """Exports the network of `checkpoint` into `output_dir` (default: `<checkpoint folder>/export`).

    Returns:
        `(output folder, manifest)`; the manifest (also written as `manifest.json`): input, classes, preprocessing, genotype,
        params, MAdds, files and the parity figures.

    Raises:
        ExportError: unknown format, existing output, or a file that differs from Keras by more than
            `tolerance`. BudgetError: over `max_madds`. CheckpointError: missing or unreadable checkpoint.
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

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    readable_by_default(staging)
    try:
        files = _write(network, shape, staging, formats, opset)
        batch = np.random.default_rng(seed).standard_normal((batch_size, *shape)).astype("float32")
        diffs = parity(network, {fmt: staging / FILES[fmt] for fmt in formats}, batch)
        bad = {fmt: d for fmt, d in diffs.items() if not d <= tolerance}
        if bad:
            raise ExportError(
                "The exported files disagree with the Keras model: "
                + ", ".join(f"{fmt} max |diff| {d:.3g}" for fmt, d in bad.items())
                + f" (tolerance {tolerance:g}). Nothing was written."
            )
        manifest = {
            "input": {"name": INPUT_NAME, "shape": [None, *shape], "dtype": "float32", "layout": "NHWC"},
            "output": {"name": OUTPUT_NAME, "shape": [None, record["num_classes"]], "meaning": "logits"},
            "num_classes": record["num_classes"],
            "preprocessing": record["preprocessing"],
            "network": record["network"],
            "genotype": record["genotype"],
            "init_channels": record["init_channels"],
            "layers": record["layers"],
            "params": cost["params"],
            "madds": cost["madds"],
            "max_madds": max_madds,
            "over_budget": cost["madds"] > max_madds,
            "files": files,
            "onnx_opset": opset if "onnx" in formats else None,
            "parity": {"batch": batch_size, "seed": seed, "tolerance": tolerance, "max_abs_diff": diffs},
            "checkpoint": str(path),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out, manifest


def _write(network, shape, folder, formats, opset):
    saved_model = folder / FILES["saved_model"]
    if "saved_model" in formats or "tflite" in formats:
        to_saved_model(network, shape, saved_model)
    if "onnx" in formats:
        to_onnx(network, shape, folder / FILES["onnx"], opset)
    if "tflite" in formats:
        to_tflite(saved_model, folder / FILES["tflite"])
        if "saved_model" not in formats:
            shutil.rmtree(saved_model)
    return {fmt: FILES[fmt] for fmt in formats}


def _replace(staging, out):
    """Puts the staged folder where `out` is, keeping the old one until the new one is in place."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
