"""`python -m export.predict`: exported files run without TensorFlow, preprocessed as the manifest says."""

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from export import export
from export.preprocess import prepare, resize_bilinear
from itnas_tf import NB201Genotype, checkpoint
from itnas_tf.data.sources import preprocessing_rule
from itnas_tf.networks import build_network
from itnas_tf.retrainer import model_record

ROOT = pathlib.Path(__file__).resolve().parents[1]
CELL = "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


def tiny_export(folder, shape, seed=0, classes=None, name=""):
    """An NB201 network (random weights, random BatchNorm statistics) checkpointed as the retrainer does
    and exported to ONNX and TFLite; returns the export folder."""
    import keras

    keras.utils.set_random_seed(seed)
    network = build_network("nb201", NB201Genotype.from_string(CELL), 10, 4, 1, shape[0])
    network(np.zeros((1, *shape), "float32"), training=False)
    rng = np.random.default_rng(seed)
    for w in network.weights:
        if "moving" in w.path:
            w.assign((rng.uniform(0.5, 1.5, w.shape) if "variance" in w.path else rng.normal(0, 0.1, w.shape)).astype("float32"))
    mean, std = [0.4] * shape[-1], [0.3] * shape[-1]
    record = model_record("nb201", CELL, network, shape, mean, std, preprocessing_rule(name, shape), classes)
    checkpoint.save(folder / "checkpoint.npz", network, {}, {"epoch": 1, "model": record})
    out, _ = export(folder, formats=("onnx", "tflite"))
    return out


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Two exports of 8x8 greyscale networks (the digits' shape) with different weights."""
    root = tmp_path_factory.mktemp("exports")
    return [tiny_export(root / f"net{seed}", (8, 8, 1), seed, [str(i) for i in range(10)], "digits") for seed in (0, 1)]


def digits(n):
    from sklearn.datasets import load_digits

    return np.round(load_digits().images[:n] * (255.0 / 16.0)).astype("uint8")[..., None]


def test_predictions_without_tensorflow_are_the_keras_models(exports, tmp_path, predict, keras_top1):
    x = digits(15)
    for i, image in enumerate(x):
        Image.fromarray(image[..., 0]).save(tmp_path / f"digit_{i:02d}.png")
    np.save(tmp_path / "batch.npy", x)
    expected = keras_top1(exports[0], x)
    for runtime in ("onnx", "tflite"):
        proc = predict(f"--model={exports[0]}", f"--runtime={runtime}", "--json", "--top_k=3", tmp_path, tmp_path / "batch.npy")
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = json.loads(proc.stdout)
        assert [r["file"] for r in results[:15]] == [str(tmp_path / f"digit_{i:02d}.png") for i in range(15)]
        assert results[15]["file"] == f"{tmp_path / 'batch.npy'}[0]" and len(results) == 30
        for r in results:
            assert len(r["top"]) == 3 and r["top"][0]["prob"] >= r["top"][1]["prob"] >= r["top"][2]["prob"]
            assert r["top"][0]["label"] == str(r["top"][0]["index"])  # the digits' class names
        top1 = [r["top"][0]["index"] for r in results]
        assert top1[:15] == top1[15:] == expected.tolist(), runtime
    proc = subprocess.run([sys.executable, "-m", "export.predict", f"--model={exports[0]}", "--top_k=2",
                           tmp_path / "digit_00.png"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == str(tmp_path / "digit_00.png") and len(lines) == 3
    assert lines[1].split()[1:] == [str(expected[0]), f"({expected[0]})"]


def test_png_and_jpeg_files_give_the_network_the_pixels_they_hold(exports, tmp_path, predict, keras_top1):
    from export.preprocess import read_inputs

    x = digits(12)
    for i, image in enumerate(x):
        Image.fromarray(image[..., 0]).save(tmp_path / f"{i:02d}.png")
        Image.fromarray(image[..., 0]).save(tmp_path / f"{i:02d}.jpg", quality=95)
    read = dict(read_inputs([tmp_path]))
    pngs = np.stack([read[str(tmp_path / f"{i:02d}.png")] for i in range(12)])
    jpegs = np.stack([read[str(tmp_path / f"{i:02d}.jpg")] for i in range(12)])
    np.testing.assert_array_equal(pngs, x)  # lossless: exactly the arrays
    np.testing.assert_array_equal(jpegs, np.stack([np.asarray(Image.open(tmp_path / f"{i:02d}.jpg"))[..., None]
                                                   for i in range(12)]))
    proc = predict(f"--model={exports[0]}", "--json", "--top_k=1", *sorted(tmp_path.glob("*.jpg")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["top"][0]["index"] for r in json.loads(proc.stdout)] == keras_top1(exports[0], jpegs).tolist()


def test_manifest_says_how_to_preprocess(exports):
    manifest = json.loads((exports[0] / "manifest.json").read_text())
    rule = manifest["preprocessing"]
    assert manifest["classes"] == [str(i) for i in range(10)]
    assert rule["formula"] == "(x / 255 - mean) / std" and rule["mean"] == [0.4] and rule["std"] == [0.3]
    assert "scaled by round(x * 255 / 16)" in rule["pixels"] and rule["grayscale_to_rgb"] is False
    assert rule["resize"] == {"method": "bilinear", "half_pixel_centers": True, "antialias": False,
                              "shorter_side": None, "then": None, "size": [8, 8]}
    assert set(manifest["sha256"]) == {"onnx", "tflite"}


def test_resize_and_crop_are_the_training_pipelines():
    import tensorflow as tf

    from itnas_tf.data.streaming import CENTRE_CROP, centre_crop

    rng = np.random.default_rng(0)
    for shape, size in [((13, 17, 3), (8, 8)), ((5, 7, 3), (16, 12)), ((32, 32, 1), (32, 32))]:
        x = rng.integers(0, 256, shape).astype("float32")
        np.testing.assert_allclose(resize_bilinear(x, size), tf.image.resize(x, size).numpy(), rtol=0, atol=1e-4)
    # the streamed (ImageNet) rule: shorter side to size / 0.875, the central crop, then normalised
    rule = {**preprocessing_rule("cifar10", (24, 24, 3), 24 / CENTRE_CROP), "mean": [0.5] * 3, "std": [0.25] * 3}
    for shape in [(40, 57, 3), (31, 24, 3), (24, 24, 3)]:
        image = rng.integers(0, 256, shape).astype("uint8")
        expected = (centre_crop(tf.constant(image, tf.float32), 24).numpy() / 255.0 - 0.5) / 0.25
        np.testing.assert_allclose(prepare("x", image, rule, (24, 24, 3)), expected, rtol=0, atol=1e-4)
    grey = rng.integers(0, 256, (30, 30, 1)).astype("uint8")  # streamed data turns greyscale into RGB
    assert prepare("grey", grey, rule, (24, 24, 3)).shape == (24, 24, 3)


def test_bad_input_exits_2_with_a_message(exports, tmp_path, predict):
    good = tmp_path / "good.png"
    Image.fromarray(digits(1)[0, ..., 0]).save(good)
    Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(tmp_path / "colour.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    np.save(tmp_path / "floats.npy", np.zeros((2, 8, 8, 1), "float32"))
    old = tmp_path / "old"  # an export written before the predictor
    shutil.copytree(exports[0], old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["sha256"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    foreign = tmp_path / "foreign"
    shutil.copytree(exports[0], foreign)
    shutil.copy(exports[1] / "model.onnx", foreign / "model.onnx")
    cases = [
        ([f"--model={tmp_path}", good], "No manifest.json in"),
        ([f"--model={foreign}", good], "not the file this manifest.json was written with"),
        ([f"--model={old}", good], "written before `export.predict` existed"),
        ([f"--model={exports[0]}", "--runtime=onnx_int8", good], "has no onnx_int8 file"),
        ([f"--model={exports[0]}", tmp_path / "colour.png"], "has 3 channel(s); the network takes 1"),
        ([f"--model={exports[0]}", tmp_path / "corrupt.png"], "is not a readable PNG or JPEG image"),
        ([f"--model={exports[0]}", tmp_path / "missing.png"], "No such image file"),
        ([f"--model={exports[0]}", tmp_path / "floats.npy"], "expected uint8 pixels 0-255"),
        ([f"--model={exports[0]}", "--top_k=0", good], "--top_k must be at least 1"),
    ]
    for args, message in cases:
        proc = predict(*args)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr
