"""Runs a CLI's `main` once per argument list, in one process, with tensorflow-datasets mocked:
`python tests/run_flagfile.py MODULE EXAMPLES RUNS`, RUNS a JSON list of argument lists.

`tfds.testing.mock_data(num_examples=EXAMPLES)` stands in for every tfds dataset (ImageNet included), so a
flagfile runs with its own settings on tiny random data (tests/test_flagfiles.py). TensorFlow loads once
for all the runs; between runs the flags go back to their defaults and Keras's state is cleared, as in a
new process. After each run a line `RUN_ENDED {"index": i, "error": traceback or null}`. A device split
(`--cpu_replicas`) and a thread count (`--intra_op_threads`) are fixed at TensorFlow's start: a run that
sets the first needs a process to itself, one that sets the second comes first in its process.
"""

import gc
import importlib
import json
import pathlib
import sys
import traceback

import keras
import tensorflow_datasets as tfds
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the checkout's itnas_tf

if __name__ == "__main__":
    module, examples, runs = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    cli = importlib.import_module(module)
    for index, argv in enumerate(runs):
        flags.FLAGS.unparse_flags()
        keras.backend.clear_session()
        gc.collect()
        error = None
        try:
            with tfds.testing.mock_data(num_examples=examples):
                cli.main(flags.FLAGS([module, *argv]))
        except BaseException as e:  # SystemExit included: `cli.fail` ends a run that way
            error = "".join(traceback.format_exception(e))[-3000:]
        print("RUN_ENDED " + json.dumps({"index": index, "error": error}), flush=True)
