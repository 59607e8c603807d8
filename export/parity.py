"""Runs exported files on the batch the Keras model saw and measures how far their outputs are."""

import numpy as np
import tensorflow as tf

from export.convert import INPUT_NAME, OUTPUT_NAME
from export.runtimes import load_onnx, load_tflite


def load_saved_model(path):
    """`run(batch) -> logits` of a SavedModel's serving signature, loaded once."""
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda batch: serve(**{INPUT_NAME: tf.constant(batch)})[OUTPUT_NAME].numpy()


def run_saved_model(path, batch):
    return load_saved_model(path)(batch)


def run_onnx(path, batch):
    return load_onnx(path)(batch)


def run_tflite(path, batch):
    return load_tflite(path)(batch)


RUNNERS = {"saved_model": run_saved_model, "onnx": run_onnx, "tflite": run_tflite}


def parity(model, files, batch):
    """`{format: max |output - keras output|}` for `files` (`{format: path}`) on `batch`."""
    expected = np.asarray(model(batch, training=False))
    return {fmt: float(np.max(np.abs(RUNNERS[fmt](path, batch) - expected))) for fmt, path in files.items()}
