"""Shared test set-up: quiet TensorFlow, seeded tests, and access to ../shared data."""

import os
import pathlib
import signal
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

SHARED = pathlib.Path(os.environ.get("ITNAS_SHARED_DIR", pathlib.Path(__file__).parents[2] / "shared"))
# CI sets this so that a missing ../shared fails the run instead of skipping tests.
REQUIRE_SHARED = os.environ.get("ITNAS_REQUIRE_SHARED_DATA") == "1"


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from seed 0 (Python, numpy, TensorFlow): unseeded initialisers made a test's
    outcome depend on the draw, so a rare draw failed on CI and could not be replayed here."""
    import keras

    keras.utils.set_random_seed(0)


@pytest.fixture
def shared_data():
    """Returns a function mapping a path under shared/data to a Path, skipping when it is absent."""

    def get(relative):
        path = SHARED / "data" / relative
        if not path.exists():
            message = f"{path} is absent (the ../shared folder exists only in this project's workspace)"
            if REQUIRE_SHARED:
                pytest.fail(message + "; ITNAS_REQUIRE_SHARED_DATA=1 requires it.")
            pytest.skip(message)
        return path

    return get


@pytest.fixture
def predict():
    """Returns a function that runs `python -m export.predict ARGS` in a subprocess where TensorFlow
    cannot be imported (tests/predict_without_tensorflow.py)."""
    root = pathlib.Path(__file__).parents[1]

    def run(*args):
        return subprocess.run([sys.executable, str(root / "tests" / "predict_without_tensorflow.py"), *map(str, args)],
                              capture_output=True, text=True, cwd=root, timeout=300)

    return run


@pytest.fixture
def keras_top1():
    """Returns a function `(export folder, uint8 images) -> top-1 classes` of the exported checkpoint's
    Keras network, the images normalised by the training pipeline's own code."""
    import numpy as np

    from export import load_network
    from itnas_tf.data.pipeline import normalize

    def top1(export_dir, x):
        network, record = load_network(pathlib.Path(export_dir).parent / "checkpoint.npz")
        rule = record["preprocessing"]
        inputs = normalize(x, np.asarray(rule["mean"], "float32"), np.asarray(rule["std"], "float32"))
        return np.argmax(np.asarray(network(inputs, training=False)), axis=1)

    return top1


@pytest.fixture(scope="session")
def cli_runs():
    """Returns a function `(module, runs, env=None) -> [CompletedProcess]` that runs `python -m module
    ARGS` for each argument list of `runs`, in order, in one process (tests/run_cli.py): one TensorFlow
    start for all of them, where a process per run paid it each time."""
    import json

    root = pathlib.Path(__file__).parents[1]

    def run(module, runs, env=None):
        runs = [[str(arg) for arg in argv] for argv in runs]
        proc = subprocess.run([sys.executable, str(root / "tests" / "run_cli.py"), module, json.dumps(runs)],
                              capture_output=True, text=True, cwd=root, env=env, timeout=300 + 60 * len(runs))
        ended = [json.loads(line.removeprefix("RUN_ENDED ")) for line in proc.stdout.splitlines()
                 if line.startswith("RUN_ENDED ")]
        assert proc.returncode == 0 and len(ended) == len(runs), proc.stderr[-3000:]
        return [subprocess.CompletedProcess([module, *argv], r["code"], r["stdout"], r["stderr"])
                for argv, r in zip(runs, ended)]

    return run


@pytest.fixture
def kill_after_first_epoch():
    """Returns a function that starts `python -m module *args` and SIGKILLs it once its checkpoint
    (`checkpoint.npz` in `out`) records a finished epoch."""
    from itnas_tf import checkpoint

    def run(module, args, out):
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args, f"--output_dir={out}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=pathlib.Path(__file__).parents[1],
        )
        path = out / "checkpoint.npz"
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if path.exists() and checkpoint.load_state(path)["epoch"] >= 1:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        assert proc.wait() == -signal.SIGKILL, f"{module} ended before it could be killed"

    return run
