"""Runs exported files on the batch the Keras model saw and measures how far their outputs are."""

import warnings

import numpy as np
import tensorflow as tf

from export.convert import INPUT_NAME, OUTPUT_NAME
from itnas_tf.cli import native_log_hidden


def run_saved_model(path, batch):
    loaded = tf.saved_model.load(str(path))
    return loaded.signatures["serving_default"](**{INPUT_NAME: tf.constant(batch)})[OUTPUT_NAME].numpy()


def run_onnx(path, batch):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]


def run_tflite(path, batch):
    with warnings.catch_warnings(), native_log_hidden():  # the move to ai_edge_litert; the XNNPACK delegate
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path))
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, batch.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, batch)
        interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


RUNNERS = {"saved_model": run_saved_model, "onnx": run_onnx, "tflite": run_tflite}


def parity(model, files, batch):
    """`{format: max |output - keras output|}` for `files` (`{format: path}`) on `batch`."""
    expected = np.asarray(model(batch, training=False))
    return {fmt: float(np.max(np.abs(RUNNERS[fmt](path, batch) - expected))) for fmt, path in files.items()}
