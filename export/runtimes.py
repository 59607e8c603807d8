"""Running an exported file without TensorFlow: onnxruntime for `.onnx`, LiteRT (`ai_edge_litert`) for
`.tflite`. Each `load_*` returns `run(batch float32 NHWC) -> logits`; `RUNTIMES` names the loader of each
exported file's format."""

import contextlib
import hashlib
import os
import sys

INPUT_NAME, OUTPUT_NAME = "images", "logits"


def load_onnx(path, threads=0):
    """An onnxruntime CPU session of `path`; `threads` 0 lets onnxruntime choose."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]


def load_tflite(path, threads=0):
    """A LiteRT interpreter of `path`, resized to each batch it is given; `threads` 0: its default."""
    with native_log_hidden():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path), num_threads=threads or None)
    index = interpreter.get_input_details()[0]["index"]
    output = interpreter.get_output_details()[0]["index"]
    shape = [None]

    def run(batch):
        with native_log_hidden():
            if shape[0] != batch.shape:
                interpreter.resize_tensor_input(index, batch.shape)
                interpreter.allocate_tensors()
                shape[0] = batch.shape
            interpreter.set_tensor(index, batch)
            interpreter.invoke()
        return interpreter.get_tensor(output)

    return run


RUNTIMES = {"onnx": load_onnx, "onnx_int8": load_onnx, "tflite": load_tflite, "tflite_int8": load_tflite}


def file_digest(path):
    """The SHA-256 of a file: `manifest.json` records each file's, so a model file from another export
    is told apart."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@contextlib.contextmanager
def native_log_hidden(fds=(2,)):
    """The file descriptors `fds` (stderr; 1 is stdout) point at /dev/null meanwhile: what native code
    prints there (a runtime's INFO lines, a converter's settings) ignores Python's logging."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
