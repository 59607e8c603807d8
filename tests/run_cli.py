"""Runs a command line several times in one process: `python tests/run_cli.py MODULE RUNS`, RUNS a JSON
list of argument lists.

Each run executes MODULE as `python -m MODULE ARGS` would (`runpy`, as `__main__`: its flags, its
`cli.run`, its exit code), with its stdout and stderr captured. Before each run the module's flags are
deleted, so that the run defines them afresh as a new process would, the other flags go back to their
defaults, and Keras's state is cleared. TensorFlow loads once for all the runs, where a process per run
paid 5-7 s each to check a message and an exit code (tests/conftest.py, `cli_runs`). What C++ prints
to file descriptor 2 is not captured. After each run a line `RUN_ENDED {"code": exit code, "stdout":
..., "stderr": ...}`.
"""

import contextlib
import importlib.util
import io
import json
import pathlib
import runpy
import sys
import traceback

import keras
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the checkout's itnas_tf

if __name__ == "__main__":
    module, runs = sys.argv[1], json.loads(sys.argv[2])
    spec = importlib.util.find_spec(module)
    if spec.submodule_search_locations is not None:  # a package runs its __main__
        spec = importlib.util.find_spec(f"{module}.__main__")
    path = spec.origin  # absl files the flags of `__main__` under its path
    for argv in runs:
        for flag in flags.FLAGS.get_flags_for_module(path):  # defined afresh by the run, as in a new process
            delattr(flags.FLAGS, flag.name)
        flags.FLAGS.unparse_flags()
        keras.backend.clear_session()
        sys.argv = [module, *argv]
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            except SystemExit as e:  # `app.run` and `cli.fail` end every run this way
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # as Python reports an uncaught exception
                traceback.print_exc()
                code = 1
        print("RUN_ENDED " + json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}), flush=True)
