"""Export of retrained target networks (SavedModel, ONNX and TFLite files, checked against Keras), and
a predictor for the exported files that runs without TensorFlow.

`python -m export --checkpoint=runs/retrain --formats=saved_model,onnx` (see `__main__`), then
`python -m export.predict --model=runs/retrain/export image.png` (see `predict`). The names below load
on first use, so that `export.predict` never imports TensorFlow.
"""

import importlib
import sys as _sys

if _sys.argv[:1] == ["-m"] and any(a == "-m" and b == "export" for a, b in zip(_sys.orig_argv, _sys.orig_argv[1:])):
    # `python -m export`: runpy imports this package while `argv[0]` is still "-m", and sets it to the
    # path of `__main__.py` before running it, too late for itnas_tf's quiet start there
    import itnas_tf  # noqa: F401

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
