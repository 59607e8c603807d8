"""Runs a CLI's `main` with tensorflow-datasets mocked: `python tests/run_flagfile.py MODULE EXAMPLES ARG...`.

`tfds.testing.mock_data(num_examples=EXAMPLES)` stands in for every tfds dataset (ImageNet included), so a
flagfile runs with its own settings on tiny random data (tests/test_flagfiles.py). A process per run: a
device split (`--cpu_replicas`) is fixed at TensorFlow's start.
"""

import importlib
import pathlib
import sys

import tensorflow_datasets as tfds
from absl import app

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the checkout's itnas_tf

if __name__ == "__main__":
    module, examples, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    cli = importlib.import_module(module)
    with tfds.testing.mock_data(num_examples=examples):
        app.run(cli.main, argv=[module, *argv])
