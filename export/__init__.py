"""Export of retrained target networks: SavedModel, ONNX and TFLite files, checked against Keras.

`python -m export --checkpoint=runs/retrain --formats=saved_model,onnx` (see `__main__`).
"""

import itnas_tf  # noqa: F401 (first: a command line's quiet start, before TensorFlow loads)
from export.budget import MOBILE_MADDS, BudgetError, check_budget
from export.convert import FORMATS, to_onnx, to_saved_model, to_tflite
from export.exporter import ExportError, export, load_network
from export.parity import parity
