"""Writing a Keras model (called in inference mode) as a SavedModel, an ONNX file or a TFLite file.

Every format has one float32 NHWC input `images` of any batch size and one output `logits`.
"""

import tensorflow as tf

from export.runtimes import INPUT_NAME, OUTPUT_NAME

FORMATS = ("saved_model", "onnx", "tflite", "onnx_int8", "tflite_int8")
BATCH = "batch"  # the name of the ONNX file's batch dimension


def serving_function(model, input_shape):
    """`images -> {"logits": ...}` as a `tf.function` with a batch-free signature."""
    spec = tf.TensorSpec((None, *input_shape), tf.float32, name=INPUT_NAME)
    return tf.function(lambda images: {OUTPUT_NAME: model(images, training=False)}, input_signature=[spec])


def to_saved_model(model, input_shape, path):
    """A SavedModel whose `serve` (and `serving_default`) signature maps `images` to `logits`.

    Through Keras's `ExportArchive`, which tracks the variables explicitly: a bare `tf.Module`
    holding a Keras 3 model saves, but the TFLite converter then reads uninitialised weights.
    """
    import keras

    spec = tf.TensorSpec((None, *input_shape), tf.float32, name=INPUT_NAME)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda images: {OUTPUT_NAME: model(images, training=False)}, input_signature=[spec])
    archive.write_out(str(path), verbose=False)


def to_onnx(model, input_shape, path, opset=17):
    """An ONNX file through tf2onnx at `opset`, its input's and output's batch dimension named `batch`."""
    import tf2onnx

    fn = serving_function(model, input_shape)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=opset)
    for value in (*proto.graph.input, *proto.graph.output):  # tf2onnx names the free dimension unk__N
        value.type.tensor_type.shape.dim[0].dim_param = BATCH
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def to_tflite(saved_model_path, path):
    """A float32 TFLite flatbuffer of a SavedModel written by `to_saved_model`."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_path))
    with open(path, "wb") as f:
        f.write(converter.convert())
