"""What the command lines share: one exit code per kind of failure, and a quiet start.

Exit codes: 2 for usage and bad input (flags included), found before anything is written; 1 for a
run that failed on the way (a non-finite loss, a worker that stopped answering). `-v 1` (absl's
`--verbosity`) brings back the logs of TensorFlow, tfds and tf2onnx that a run hides by default.
"""

import contextlib
import gc
import logging
import os
import sys

from absl import app, flags
from absl import logging as absl_logging

from itnas_tf import malloc

USAGE, FAILED = 2, 1
_VERBOSE = ("-v", "--v", "--verbosity", "-verbosity")
_quiet = False  # set by quiet_start


def _verbose(argv):
    return any(arg.split("=")[0] in _VERBOSE for arg in argv[1:])


def quiet_start(argv=None):
    """Loads TensorFlow without its C++ start-up log (the CUDA probe's `Could not find cuda drivers`
    and `failed call to cuInit` on machines without GPUs), unless `-v`/`--verbosity` is given.

    TF_CPP_MIN_LOG_LEVEL=3 silences what TensorFlow logs once its logging is set up; the lines its
    libraries print while loading come before that, so they go to /dev/null (`native_log_hidden`).
    `run` quiets the Python loggers. The garbage collector pauses meanwhile (it spent 0.6 s walking
    the new modules' objects), and those objects are left out of its later passes (`gc.freeze`): they
    live as long as the process.
    """
    global _quiet
    if not _verbose(sys.argv if argv is None else argv):
        _quiet = True
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    gc.disable()
    try:
        with native_log_hidden():
            import tensorflow  # noqa: F401
    finally:
        gc.enable()
    gc.freeze()


def start():
    """What a command line does before TensorFlow loads: starts again with a faster allocator where
    the system has one (`malloc.py`; only for our own `python -m itnas_tf.X`), then `quiet_start`."""
    if malloc.ours(sys.orig_argv):
        try:
            malloc.restart_preloaded()
        except ValueError as e:
            fail(e)
    quiet_start()


@contextlib.contextmanager
def native_log_hidden():
    """In a quiet command line, stderr (file descriptor 2) points at /dev/null meanwhile: for the log
    lines that C++ libraries print themselves (TensorFlow loading, TFLite's XNNPACK delegate). An
    exception still raises, and its traceback prints after."""
    if not _quiet:
        yield
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def fail(message, code=USAGE):
    """Prints `error: message` to stderr and exits with `code`."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(f"{e}\nPass --helpfull to see the flags.")


def run(main, input_errors=(), run_errors=(FloatingPointError,)):
    """absl's `app.run(main)`, with bad flags, `app.UsageError` and `input_errors` exiting 2 and
    `run_errors` exiting 1, each with its message and no traceback."""

    def guarded(argv):
        if not flags.FLAGS["verbosity"].present:
            absl_logging.set_verbosity(absl_logging.WARNING)
            for name in ("tensorflow", "tf2onnx"):
                logging.getLogger(name).setLevel(logging.ERROR)
        try:
            return main(argv)
        except (app.UsageError, *input_errors) as e:
            fail(e, USAGE)
        except run_errors as e:
            fail(e, FAILED)

    app.run(guarded, flags_parser=_parse_flags)


def genotype_help(value):
    """Prints the published genotypes' names when `value` is `help`; whether it did."""
    if value.strip() != "help":
        return False
    from itnas_tf.genotypes import named_genotypes_help

    print(named_genotypes_help())
    return True
