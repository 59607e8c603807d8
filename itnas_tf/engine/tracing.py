"""What the supernets' Keras step functions are spared: Grappler's optimising passes where they do
not pay, and a second trace of the selection pass.

A supernet's training step is one graph of 50,000 nodes and more. Measured on 2 CPU cores
(docs/performance.md), Grappler's passes over it took 15 s of the NB201 supernet's first step and
52 s of the 8-cell DARTS supernet's, and made its steps 1-3% faster: it pays after about 500 steps.
Most runs on a CPU are shorter (tests, the quickstart, trials), so there Grappler keeps only its
model pruner, which drops the nodes no output needs before TensorFlow's own passes walk the graph:
the same step, bit for bit, as with Grappler off, and its first call 1-4 s sooner (DARTS, NB201).
A distributed step also keeps Grappler's common-subgraph elimination: its replicas trace the same
ops once each, and TensorFlow's classic CSE was still merging them 7 minutes into the mirrored
chain's first step. On a GPU the layout and fusion passes may pay more (not measured), so there
Grappler runs whole. `ITNAS_GRAPPLER=on` (or `off`) overrides the GPU rule.
"""

import functools
import os

import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2

# The per-call options are the only way to choose Grappler's passes for one function, or to reach its
# TFG pipeline and its second iteration at all: `tf.config.optimizer` switches whole passes off, for
# every function of the process.
from tensorflow.python.eager import context

SWITCH = "ITNAS_GRAPPLER"
PASSES = ("pruning",)
DISTRIBUTED_PASSES = ("pruning", "common_subgraph_elimination")


def grappler_pays():
    """Whether Grappler runs whole on the supernets' steps: `$ITNAS_GRAPPLER` (`on`/`off`), else only
    where a GPU is visible."""
    choice = os.environ.get(SWITCH, "auto").lower()
    if choice not in ("on", "off", "auto"):
        raise ValueError(f"{SWITCH}={choice!r}: set it to on, off or auto (the default: on with a GPU).")
    if choice != "auto":
        return choice == "on"
    return bool(tf.config.list_physical_devices("GPU"))


def lean_grappler(function, distributed=False):
    """`function` called with Grappler reduced to `PASSES` (`DISTRIBUTED_PASSES` for a step of several
    replicas), unless it pays. Set per call on the calling thread and restored after it, so the user's
    other functions keep theirs; a process that switched Grappler off keeps it off. TensorFlow keeps
    one instantiation per setting, so switching at every call does not instantiate the graph again."""
    if function is None or grappler_pays():
        return function
    passes = DISTRIBUTED_PASSES if distributed else PASSES

    @functools.wraps(function)
    def call(*args, **kwargs):
        ctx = context.context()
        before = ctx.function_call_options
        ctx.function_call_options = _lean_options(before.executor_type, before.config_proto_serialized, passes)
        try:
            return function(*args, **kwargs)
        finally:
            ctx.function_call_options = before

    return call


@functools.lru_cache(maxsize=8)
def _lean_options(executor_type, serialized_config, passes):
    """The caller's call options with Grappler reduced to `passes`, made once per distinct caller."""
    config = config_pb2.ConfigProto.FromString(serialized_config)
    rewrite = config.graph_options.rewrite_options
    if not rewrite.disable_meta_optimizer:
        del rewrite.optimizers[:]
        rewrite.optimizers.extend(passes)  # a list of passes runs those alone, in that order
        rewrite.disable_tfg_optimizer = True
        rewrite.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    return context.FunctionCallOptions(executor_type=executor_type, config_proto=config)


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
