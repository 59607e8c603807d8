"""Running an exported file without TensorFlow: onnxruntime for `.onnx`, LiteRT (`ai_edge_litert`) for
`.tflite`. Each `load_*` returns `run(batch float32 NHWC) -> logits`."""

import contextlib
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


@contextlib.contextmanager
def native_log_hidden():
    """File descriptor 2 points at /dev/null: what native code prints there (a runtime's INFO lines,
    which ignore Python's logging) is dropped. Python's own `sys.stderr` is flushed first."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
