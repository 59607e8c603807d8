"""Export to SavedModel, ONNX and TFLite: every op converts exactly, the budget, bad input."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import onnx
import pytest

from export import BudgetError, ExportError, export, to_onnx, to_saved_model, to_tflite
from export.parity import run_onnx, run_saved_model, run_tflite
from itnas_tf import PROXYLESS_GPU, ChainGenotype, NB201Genotype, checkpoint
from itnas_tf.checkpoint import CheckpointError
from itnas_tf.networks import build_network
from itnas_tf.ops import MBCONV_OPS, NB201_OPS, PRIMITIVES, make_op
from itnas_tf.retrainer import model_record

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _randomize(layer, rng, statistics_only=False):
    """Random BatchNorm statistics (and, unless `statistics_only`, random weights) so that folding
    mistakes show; a deep network keeps its initial weights, or its logits grow to 1e4 and more."""
    for w in layer.weights:
        if "variance" in w.path:
            value = rng.uniform(0.5, 1.5, w.shape)
        elif "moving_mean" in w.path or not statistics_only:
            value = rng.standard_normal(w.shape) * (0.1 if statistics_only else 0.5)
        else:
            continue
        w.assign(value.astype("float32"))


OP_CASES = (
    [(name, stride, False) for name in PRIMITIVES for stride in (1, 2)]
    + [(name, 1, False) for name in NB201_OPS]
    + [(name, stride, se) for name in MBCONV_OPS for stride in (1, 2) for se in (False, True)]
)


@pytest.mark.parametrize("name, stride, se", OP_CASES)
def test_every_op_exports_to_onnx_and_tflite_exactly(tmp_path, name, stride, se):
    rng = np.random.default_rng(0)
    width = 8 * stride if name.startswith("mb") else 8
    op = make_op(name, width, stride, se=se)
    x = rng.standard_normal((3, 16, 16, 8)).astype("float32")
    op(x)
    _randomize(op, rng)
    expected = np.asarray(op(x, training=False))
    to_onnx(op, (16, 16, 8), tmp_path / "op.onnx")
    model = onnx.load(tmp_path / "op.onnx")
    onnx.checker.check_model(model)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    for value in (*model.graph.input, *model.graph.output):  # issue 25: not tf2onnx's unk__N
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    np.testing.assert_allclose(run_onnx(tmp_path / "op.onnx", x), expected, rtol=0, atol=1e-5)
    to_saved_model(op, (16, 16, 8), tmp_path / "saved_model")
    to_tflite(tmp_path / "saved_model", tmp_path / "op.tflite")
    np.testing.assert_allclose(run_tflite(tmp_path / "op.tflite", x), expected, rtol=0, atol=1e-5)


def _checkpoint(path, network_name, genotype, input_shape, num_classes=10):
    """A checkpoint as `python -m itnas_tf.retrain` writes it, of a network with random weights."""
    network = build_network(network_name, genotype, num_classes, 4, 1, input_shape[0])
    network(np.zeros((1, *input_shape), "float32"), training=False)
    _randomize(network, np.random.default_rng(1), statistics_only=True)
    record = model_record(network_name, genotype, network, input_shape, [0.5] * input_shape[-1], [0.25] * input_shape[-1])
    checkpoint.save(path, network, {}, {"epoch": 1, "model": record})
    return network


@pytest.mark.slow
@pytest.mark.parametrize("network_name", ["nb201", "proxyless"])
def test_tiny_target_networks_export_and_agree_with_keras(tmp_path, network_name):
    if network_name == "nb201":
        genotype = NB201Genotype.from_string("|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    else:
        genotype = ChainGenotype(ops=["mb3_k3", "zero"] + ["mb6_k5"] * 19, se=True, input_size=32, num_classes=10)
    network = _checkpoint(tmp_path / "checkpoint.npz", network_name, genotype, (32, 32, 3))
    out, manifest = export(tmp_path, formats=("saved_model", "onnx", "tflite"))
    assert out == tmp_path / "export"
    diffs = manifest["parity"]["max_abs_diff"]
    assert set(diffs) == {"saved_model", "onnx", "tflite"} and max(diffs.values()) <= 1e-4
    # The written files, run again here, give the Keras model's logits on another batch.
    x = np.random.default_rng(9).standard_normal((5, 32, 32, 3)).astype("float32")
    expected = np.asarray(network(x, training=False))
    for run, name in [(run_saved_model, "saved_model"), (run_onnx, "model.onnx"), (run_tflite, "model.tflite")]:
        np.testing.assert_allclose(run(out / name, x), expected, rtol=0, atol=1e-4)
    written = json.loads((out / "manifest.json").read_text())
    assert written["num_classes"] == 10 and written["input"]["shape"] == [None, 32, 32, 3]
    assert written["preprocessing"]["std"] == [0.25] * 3 and written["network"] == network_name
    assert written["over_budget"] is False and written["onnx_opset"] == 17


def test_over_budget_chain_network_is_refused_and_nothing_is_written(tmp_path):
    genotype = ChainGenotype(ops=["mb6_k7"] * 21, widths=PROXYLESS_GPU.widths)  # 1036.67M MAdds at 224
    _checkpoint(tmp_path / "checkpoint.npz", "proxyless", genotype, (224, 224, 3), num_classes=1000)
    with pytest.raises(BudgetError, match="1036.67M MAdds, over the budget of 600.00M"):
        export(tmp_path / "checkpoint.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]

    proc = subprocess.run(
        [sys.executable, "-m", "export", f"--checkpoint={tmp_path}"], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 2 and "--allow_over_budget" in proc.stderr and "8,382,408 params" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]


def test_allow_over_budget_exports_and_records_it(tmp_path):
    _checkpoint(tmp_path / "checkpoint.npz", "nb201", NB201Genotype.from_ops(["nor_conv_3x3"] * 6), (16, 16, 3))
    with pytest.raises(BudgetError):
        export(tmp_path, max_madds=1000)
    out, manifest = export(tmp_path, formats=("onnx",), max_madds=1000, allow_over_budget=True)
    assert manifest["over_budget"] is True and sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]


def test_bad_input_leaves_nothing_behind(tmp_path, cli_runs):
    with pytest.raises(CheckpointError, match="No checkpoint at"):
        export(tmp_path / "missing.npz")
    corrupt = tmp_path / "corrupt" / "checkpoint.npz"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="Cannot read the checkpoint"):
        export(corrupt)
    search = tmp_path / "search" / "checkpoint.npz"
    search.parent.mkdir()
    checkpoint.save(search, build_network("nb201", NB201Genotype.from_ops(["none"] * 6), 10, 4, 1), {}, {"epoch": 1})
    with pytest.raises(CheckpointError, match="holds no target network"):
        export(search)
    good = tmp_path / "good"
    _checkpoint(good / "checkpoint.npz", "nb201", NB201Genotype.from_ops(["skip_connect"] * 6), (16, 16, 3))
    with pytest.raises(ExportError, match=r"Unknown export format\(s\) \['torchscript'\]"):
        export(good, formats=("onnx", "torchscript"))
    with pytest.raises(ExportError, match="opset 17 or newer"):
        export(good, opset=13)
    for folder in ("corrupt", "search", "good"):
        assert [p.name for p in (tmp_path / folder).iterdir()] == ["checkpoint.npz"]

    export(good, formats=("onnx",))
    with pytest.raises(ExportError, match="not empty; pass --overwrite"):
        export(good, formats=("onnx",))
    export(good, formats=("onnx", "tflite"), overwrite=True)
    assert sorted(p.name for p in (good / "export").iterdir()) == ["manifest.json", "model.onnx", "model.tflite"]
    assert set(json.loads((good / "export" / "manifest.json").read_text())["files"]) == {"onnx", "tflite"}
    assert sorted(p.name for p in good.iterdir()) == ["checkpoint.npz", "export"]  # no staging left

    coreml, *refused = cli_runs("export", [
        [f"--checkpoint={good}", "--formats=onnx,coreml", f"--output_dir={tmp_path / 'x'}"],
        [f"--checkpoint={corrupt}"],
        [f"--checkpoint={tmp_path / 'missing'}"],
    ])
    assert coreml.returncode == 2 and "Unknown export format(s) ['coreml']" in coreml.stderr
    assert not (tmp_path / "x").exists()
    for proc, message in zip(refused, ["Cannot read the checkpoint", "No checkpoint at"]):
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    assert [p.name for p in corrupt.parent.iterdir()] == ["checkpoint.npz"]
