"""Export of retrained target networks (SavedModel, ONNX and TFLite files, checked against Keras), and
a predictor for the exported files that runs without TensorFlow.

`python -m export --checkpoint=runs/retrain --formats=saved_model,onnx` (see `__main__`), then
`python -m export.predict --model=runs/retrain/export image.png` (see `predict`). The names below load
on first use, so that `export.predict` never imports TensorFlow.
"""

import importlib

_HOMES = {
    "export.budget": ("MOBILE_MADDS", "BudgetError", "check_budget"),
    "export.convert": ("FORMATS", "to_onnx", "to_saved_model", "to_tflite"),
    "export.exporter": ("ExportError", "export", "load_network"),
    "export.parity": ("parity",),
    "export.predict": ("Predictor",),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name):
    if name not in _HOME:
        raise AttributeError(f"module 'export' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
