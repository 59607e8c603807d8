"""Where a search trains: one device, `MirroredStrategy` (all local GPUs, or `cpu_replicas` logical
CPUs) or `MultiWorkerMirroredStrategy` (workers named by `TF_CONFIG`).

`--batch_size` is the global batch in every mode: each step splits it over the replicas and
all-reduces the gradients, so a step is the same step on 1 or 8 devices and `--learning_rate`
needs no change. The strategy must be made before TensorFlow touches a device (`make_strategy`
first thing in a run).
"""

import contextlib
import json
import os
import subprocess
import sys

import keras
import tensorflow as tf

DISTRIBUTIONS = ("none", "mirrored", "multi_worker")


class DistributionError(ValueError):
    """A distribution setting that cannot work on this machine or cluster."""


def make_strategy(distribution="none", cpu_replicas=0, worker_timeout=600.0, intra_op_threads=0):
    """The `tf.distribute.Strategy` of a run.

    Args:
        distribution: one of `DISTRIBUTIONS`.
        cpu_replicas: with `mirrored` on a machine without GPUs, split the CPU into this many logical
            devices (tests, and the mirrored path on a laptop).
        worker_timeout: `multi_worker`: seconds to wait for every worker of `TF_CONFIG` to come up,
            and the time limit of each collective after that; a missing or dead worker ends the run
            with a message instead of a hang.
        intra_op_threads: the threads each op's kernel may split its work over (0: TensorFlow's
            default, one per core). On small tensors splitting costs more than it saves: one thread
            took the quickstart's steps (8x8 digits) from 42-45 to 25-35 ms on 2 cores. And a kernel's
            float32 result can depend on how its work was split, so with one thread a run computes
            the same numbers on a machine of any core count (with the default, a 1-core and a
            2-core machine differ after one epoch of the quickstart).

    Raises:
        DistributionError: `cpu_replicas` without `mirrored` or on a machine with GPUs, a bad
            `TF_CONFIG`, a worker that did not come up in time, or a thread count or device split
            that this process's TensorFlow has already started without.
    """
    if distribution not in DISTRIBUTIONS:
        raise DistributionError(f"--distribution must be one of {DISTRIBUTIONS}, got {distribution!r}.")
    if intra_op_threads:
        _intra_op_threads(intra_op_threads)
    if cpu_replicas:
        _split_cpu(distribution, cpu_replicas)
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    _cluster()
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=worker_timeout)
    with _watchdog(worker_timeout):
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


@contextlib.contextmanager
def _watchdog(seconds):
    """Ends this process with a message if the block has not finished in `seconds`.

    `MultiWorkerMirroredStrategy()` waits, in C++, holding the interpreter and without limit, until
    every worker of TF_CONFIG has registered: a missing one would hang the others forever, deaf
    to SIGTERM and to any Python timer. So a separate process keeps the time and kills this one.
    Nothing is written before the strategy exists, so nothing is lost.
    """
    message = (
        f"error: not every worker of TF_CONFIG came up within {seconds:.0f} s (TF_CONFIG={os.environ.get('TF_CONFIG')}). "
        "Start each worker it lists, with its own task.index, or fix the list; --worker_timeout sets the wait."
    )
    watch = "import os, sys, time; time.sleep(float(sys.argv[1])); print(sys.argv[3], file=sys.stderr); os.kill(int(sys.argv[2]), 9)"
    child = subprocess.Popen([sys.executable, "-c", watch, str(seconds), str(os.getpid()), message])
    try:
        yield
    finally:
        child.kill()
        child.wait()


def _split_cpu(distribution, n):
    if distribution != "mirrored":
        raise DistributionError(f"--cpu_replicas={n} splits this machine's CPU for --distribution=mirrored; "
                                f"drop it or pass --distribution=mirrored (now {distribution}).")
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        raise DistributionError(
            f"--cpu_replicas={n} is for machines without GPUs, and this one has {len(gpus)}: drop "
            "--cpu_replicas and --distribution=mirrored trains on the GPUs."
        )
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:  # TensorFlow is already initialised: keep a split that fits
        have = len(tf.config.list_logical_devices("CPU"))
        if have != n:
            raise DistributionError(
                f"--cpu_replicas={n}: this process already runs TensorFlow on {have} logical CPU(s); "
                "the split must be made before anything else (start a new process)."
            ) from None


def _intra_op_threads(n):
    if tf.config.threading.get_intra_op_parallelism_threads() == n:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
    except RuntimeError:  # TensorFlow is already initialised, with another count or its default
        raise DistributionError(
            f"--intra_op_threads={n}: this process already runs TensorFlow with "
            f"{tf.config.threading.get_intra_op_parallelism_threads() or 'its default number of'} intra-op "
            "thread(s); the count must be set before anything else (start a new process, or drop the flag)."
        ) from None


def _cluster():
    """`(worker addresses, this task's index)` from `TF_CONFIG`, checked."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise DistributionError(
            "--distribution=multi_worker reads the cluster from the TF_CONFIG environment variable, which is "
            'not set; e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\' on the first machine.'
        )
    try:
        config = json.loads(text)
        workers = list(config["cluster"]["worker"])
        task = config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise DistributionError(f"TF_CONFIG is not a cluster spec with cluster.worker and task.index: {e!r}.") from None
    kind = task.get("type", "worker")
    if kind not in ("worker", "chief"):
        raise DistributionError(f"TF_CONFIG task.type {kind!r}: this search runs workers (and a chief) only.")
    addresses = list(config["cluster"].get("chief", [])) + workers
    if any(":" not in a for a in addresses):
        raise DistributionError(f"TF_CONFIG addresses must be host:port, got {addresses}.")
    if not 0 <= index < len(config["cluster"].get(kind, [])):
        raise DistributionError(f"TF_CONFIG task.index={index} names no {kind} of {config['cluster'].get(kind, [])}.")
    return addresses, task


def is_chief(strategy):
    """Whether this process writes the run's files: always, except on the non-chief workers of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                              and "chief" not in resolver.cluster_spec().as_dict())


def multi_worker(strategy):
    """Whether `strategy` spans processes (Keras's logs and symbolic build need help there)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def synchronize_batch_norm(model):
    """Makes every BatchNormalization of `model` use the global batch's statistics across replicas,
    so that a step on N replicas is the step on one (Keras's `synchronized=True`)."""
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
