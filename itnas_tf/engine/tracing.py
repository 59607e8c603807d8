"""What the supernets' Keras step functions are spared: Grappler where it does not pay, and a second
trace of the selection pass.

A supernet's training step is one graph of 50,000 nodes and more. Measured on 2 CPU cores
(docs/performance.md), Grappler's passes over it took 15 s of the NB201 supernet's first step and
52 s of the 8-cell DARTS supernet's, and made its steps 1-3% faster: it pays after about 500 steps.
Most runs on a CPU are shorter (tests, the quickstart, trials); on a GPU its layout and fusion passes
may pay more (not measured), so there it stays on, and so it does on distributed steps (see
`Supernet._spared`). `ITNAS_GRAPPLER=on` (or `off`) overrides the GPU rule.
"""

import functools
import os

import tensorflow as tf

OPTION = "disable_meta_optimizer"
SWITCH = "ITNAS_GRAPPLER"


def grappler_pays():
    """Whether Grappler runs on the supernets' steps: `$ITNAS_GRAPPLER` (`on`/`off`), else only where a
    GPU is visible."""
    choice = os.environ.get(SWITCH, "auto").lower()
    if choice not in ("on", "off", "auto"):
        raise ValueError(f"{SWITCH}={choice!r}: set it to on, off or auto (the default: on with a GPU).")
    if choice != "auto":
        return choice == "on"
    return bool(tf.config.list_physical_devices("GPU"))


def without_grappler(function):
    """`function` called with Grappler off (unless it pays), the process's setting restored after
    each call, so the user's other functions keep theirs. TensorFlow keeps one instantiation per
    setting, so switching at every call does not instantiate the graph again."""
    if function is None or grappler_pays():
        return function

    @functools.wraps(function)
    def call(*args, **kwargs):
        before = tf.config.optimizer.get_experimental_options().get(OPTION, False)
        tf.config.optimizer.set_experimental_options({OPTION: True})
        try:
            return function(*args, **kwargs)
        finally:
            tf.config.optimizer.set_experimental_options({OPTION: before})

    return call


def traced_once(function):
    """Keras's predict function, traced for batches of any size on its first call.

    Keras traces it for the first batch's size, then again for a smaller last batch: two forward
    passes of the supernet to trace and instantiate. Traced first with the batch dimension unknown, the
    one trace serves both. Distributed batches (per-replica values) are left to Keras.
    """
    if function is None or not hasattr(function, "get_concrete_function"):
        return function
    first = True

    @functools.wraps(function)
    def call(data):
        nonlocal first
        if first and all(isinstance(leaf, tf.Tensor) and leaf.shape.rank for leaf in tf.nest.flatten(data)):
            function.get_concrete_function(
                tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), data)
            )
        first = False
        return function(data)

    return call
