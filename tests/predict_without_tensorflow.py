"""`python -m export.predict ARG...` in a process where TensorFlow, Keras and itnas_tf cannot be imported:
`python tests/predict_without_tensorflow.py ARG...`. Any import of them, direct or through a dependency,
fails, so a run that succeeds here needs none of them (issue 25)."""

import pathlib
import runpy
import sys

for name in ("tensorflow", "keras", "tf_keras", "itnas_tf"):
    sys.modules[name] = None  # `import name` now raises ImportError
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the checkout's export package
sys.argv[0] = "export.predict"
runpy.run_module("export.predict", run_name="__main__", alter_sys=True)
