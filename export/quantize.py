"""int8 files, calibrated on training images, and the accuracy rule they must pass.

ONNX: onnxruntime's static quantisation in QDQ form (int8 weights and activations), its tensors
renamed short (tf2onnx's names were two thirds of the file). TFLite: full-integer quantisation
(every op int8; the input and output stay float32, so a caller feeds the float files' input), its
tensors renamed short too; the signature keeps its names.

Weights get one scale per tensor unless `per_channel`. Per channel, ONNX agreed with float on 95.3%
of the tiny digits network's test images (99.4% per tensor); TFLite, whose DARTS depthwise channels
(9-25 weights each) then carry a float32 scale and an int64 zero point apiece, stayed at 0.39x of
the float file, where one scale per tensor gave 0.28x with the same 99.7% agreement (528k params).

An int8 file is judged by what it predicts, not by max |diff|: its top-1 agreement with the float
Keras model and its accuracy on the run's test data.
"""

import numpy as np

from export.runtimes import INPUT_NAME, OUTPUT_NAME, native_log_hidden

MIN_AGREEMENT = 0.99  # top-1 agreement with float
MAX_ACCURACY_DROP = 0.01  # test accuracy below float's
CALIBRATION_BATCH = 16


def scheme(fmt, per_channel):
    """How `fmt` was quantised, in words, for manifest.json."""
    kind = {"onnx_int8": "QDQ", "tflite_int8": "full integer, float32 input and output"}[fmt]
    return f"{kind}, int8 weights and activations, weight scales per {'channel' if per_channel else 'tensor'}"


def to_onnx_int8(float_path, path, calibration, per_channel=False):
    """`path`: the float ONNX file at `float_path` quantised, activation ranges from `calibration`
    (float32 network inputs, NHWC)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(range(0, len(calibration), CALIBRATION_BATCH))

        def get_next(self):
            start = next(self.batches, None)
            return None if start is None else {INPUT_NAME: calibration[start:start + CALIBRATION_BATCH]}

    prepared = path.with_name(f".{path.name}.prepared")
    try:
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    finally:
        prepared.unlink(missing_ok=True)
    _shorten_names(path)


def _shorten_names(path):
    """Renames every tensor but the input and output `t<k>` and drops node names, in place."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    kept = {value.name for value in (*graph.input, *graph.output)}
    names = {}

    def short(name):
        return name if not name or name in kept else names.setdefault(name, f"t{len(names)}")

    for node in graph.node:
        node.name = node.doc_string = ""
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    for tensor in graph.initializer:
        tensor.name = short(tensor.name)
    del graph.value_info[:]
    onnx.save(model, str(path))


def to_tflite_int8(saved_model_path, path, calibration, per_channel=False):
    """`path`: a full-integer TFLite file of the SavedModel, calibrated on `calibration`."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_path))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not hasattr(converter, "_experimental_disable_per_channel"):  # private: fail loudly if TF drops it
        raise RuntimeError("this TensorFlow's TFLite converter cannot quantise weights per tensor; "
                           "install the version in requirements.txt")
    converter._experimental_disable_per_channel = not per_channel
    with native_log_hidden((1, 2)):  # the converter prints its settings from C++
        flatbuffer = converter.convert()
    with open(path, "wb") as f:
        f.write(_short_tflite_names(flatbuffer))


def _short_tflite_names(flatbuffer):
    """The model with the main graph's input and output named as in ONNX, every other tensor `t<k>`."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(flatbuffer)
    main = model.subgraphs[0]  # the converter's entry graph; others are control-flow bodies
    for name, indices in ((INPUT_NAME, main.inputs), (OUTPUT_NAME, main.outputs)):
        if len(indices) != 1:
            raise RuntimeError(f"expected one {name} tensor in the TFLite file, found {len(indices)}")
    ends = {main.inputs[0]: INPUT_NAME, main.outputs[0]: OUTPUT_NAME}
    for graph in model.subgraphs:
        for k, tensor in enumerate(graph.tensors):
            tensor.name = ends[k] if graph is main and k in ends else f"t{k}"
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def float_reference(model, test):
    """`(top-1 of the float Keras model, labels)` on `test` (batches of inputs and one-hot labels),
    computed once for every int8 file checked against it."""
    top1, labels = [], []
    for x, y in test:
        top1.append(np.argmax(np.asarray(model(x, training=False)), axis=1))
        labels.append(np.argmax(np.asarray(y), axis=1))
    return np.concatenate(top1), np.concatenate(labels)


def accuracy_check(run, test, reference):
    """`{"top1_agreement", "test_accuracy", "float_test_accuracy", "test_images"}` of an int8 file's
    `run` on `test`, against the float model's `float_reference` on the same batches."""
    ours = np.concatenate([np.argmax(run(np.asarray(x, "float32")), axis=1) for x, _ in test])
    theirs, labels = reference
    return {"top1_agreement": float(np.mean(ours == theirs)), "test_accuracy": float(np.mean(ours == labels)),
            "float_test_accuracy": float(np.mean(theirs == labels)), "test_images": len(labels)}


def failures(check):
    """Why an int8 file fails the rule (empty when it passes)."""
    reasons = []
    if check["top1_agreement"] < MIN_AGREEMENT:
        reasons.append(f"top-1 agreement with float {check['top1_agreement']:.2%} (under {MIN_AGREEMENT:.0%})")
    drop = check["float_test_accuracy"] - check["test_accuracy"]
    if drop > MAX_ACCURACY_DROP:
        reasons.append(f"test accuracy {check['test_accuracy']:.2%} against float's "
                       f"{check['float_test_accuracy']:.2%} (more than {MAX_ACCURACY_DROP:.0%} below)")
    return reasons
