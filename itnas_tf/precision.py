"""`--mixed_precision`: the Keras dtype policy it means on this machine, set for one run only."""

import contextlib

import keras
import tensorflow as tf


def policy_name(mixed):
    """`mixed_float16` on a GPU, `mixed_bfloat16` elsewhere (TPUs and CPUs with bfloat16 units:
    AVX512-BF16/AMX), `float32` when `mixed` is false. Variables stay float32 in every case."""
    if not mixed:
        return "float32"
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


@contextlib.contextmanager
def dtype_policy(mixed):
    """Builds everything inside under `policy_name(mixed)`, then restores the global policy, so a
    run from Python leaves the process as it found it. Yields the policy's name."""
    previous = keras.config.dtype_policy()
    name = policy_name(mixed)
    keras.config.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(previous)
