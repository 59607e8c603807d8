"""Runs a CLI's `main` once per argument list read from stdin, in one process, with tensorflow-datasets
mocked: `python tests/run_flagfile.py MODULE EXAMPLES`, then one JSON argument list per line.

`tfds.testing.mock_data(num_examples=EXAMPLES)` stands in for every tfds dataset (ImageNet included), so a
flagfile runs with its own settings on tiny random data (tests/test_flagfiles.py). TensorFlow loads once
for all the runs; between runs the flags go back to their defaults and Keras's state is cleared, as in a
new process. After each run a line `RUN_ENDED {"index": i, "error": traceback or null}`; the caller sends
the next run when it has read it, so that two processes can take runs from one list as each gets free.
A device split (`--cpu_replicas`) and a thread count (`--intra_op_threads`) are fixed at TensorFlow's
start: a run that sets either needs a process to itself.
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
    module, examples = sys.argv[1], int(sys.argv[2])
    cli = importlib.import_module(module)
    for index, line in enumerate(sys.stdin):
        argv = json.loads(line)
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
