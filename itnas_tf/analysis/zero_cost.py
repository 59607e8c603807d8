"""Zero-cost indicators per op and edge, the Zero-Cost-PT way: score the supernet on one minibatch
with the op removed from the edge; the op's importance is how much the score drops.

- NASWOT (Mellor et al. 2021): `log|det K|`, `K[i, j]` = the number of ReLU units on which samples
  i and j agree (both active or both inactive), over every ReLU of the network.
- SynFlow (Tanaka et al. 2020): every weight made positive, an all-ones input, `R` = the sum of the
  outputs; score `log sum |w * dR/dw|` over the trainable weights (the log keeps deep supernets'
  products readable; the ranking is the same).
"""

import contextlib
import math

import keras
import numpy as np
import tensorflow as tf

from itnas_tf.analysis.discretization import edge_masks, restored
from itnas_tf.engine import masked
from itnas_tf.engine.tracing import lean_grappler

PROXIES = ("naswot", "synflow")


@contextlib.contextmanager
def recording_relus(codes):
    """Appends each `keras.ops.relu`/`relu6` input's binary code `(batch, units)` to `codes`.

    Every op of the library applies its ReLUs through `keras.ops` (no ReLU layers to hook), so the
    functions are wrapped for the duration.
    """
    originals = {name: getattr(keras.ops, name) for name in ("relu", "relu6")}

    def recorder(function):
        def record(x):
            codes.append(tf.reshape(tf.cast(x > 0, tf.float64), (tf.shape(x)[0], -1)))
            return function(x)

        return record

    for name, function in originals.items():
        setattr(keras.ops, name, recorder(function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(keras.ops, name, function)


def naswot(model, x):
    codes = []
    with recording_relus(codes):
        model(x, training=True)
    if not codes:
        raise ValueError(f"NASWOT needs ReLUs; {model.name} ran none.")
    kernel = sum(tf.matmul(c, c, transpose_b=True) + tf.matmul(1 - c, 1 - c, transpose_b=True) for c in codes)
    return float(np.linalg.slogdet(kernel.numpy())[1])


def synflow(model, x):
    """On the weights as they are: call it inside `positive_weights`."""
    return math.log(_synaptic_flow(model, x).numpy())


def _synaptic_flow(model, x):
    """`sum |w * dR/dw|` over the trainable weights, in float64."""
    ones = tf.ones((1, *x.shape[1:]), x.dtype)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(model(ones, training=False))
    grads = tape.gradient(total, model.trainable_variables)
    return sum(tf.reduce_sum(tf.abs(tf.cast(g, tf.float64) * tf.cast(v, tf.float64)))
               for g, v in zip(grads, model.trainable_variables) if g is not None)


def _traced_synflow(model, x):
    """`synflow` as one traced graph that serves every mask (they are variables).

    Run eagerly, each of its passes (one per op and edge: 31 on NB201, 113 on DARTS) paid Python for
    every op and its gradient: on the NB201 supernet (C=16, N=5) 55 s against 12 s traced, the trace
    included. The graph's float32 gradients differ from eager's in their last bits: the log-scores by
    up to 2e-8 there.
    """
    flow = lean_grappler(tf.function(lambda: _synaptic_flow(model, x)))
    return lambda model, x: math.log(flow().numpy())


@contextlib.contextmanager
def positive_weights(model):
    with restored(model):
        for v in model.trainable_variables:
            v.assign(tf.abs(v))
        yield


def zero_cost_importance(model, x, proxies=PROXIES):
    """`{proxy: {edge: {op: score(full supernet) - score(op removed from the edge)}}}` on batch `x`.

    `model` is a built supernet, normally freshly initialised (the scores are zero-cost: no training).
    """
    unknown = sorted(set(proxies) - set(PROXIES))
    if unknown:
        raise ValueError(f"Unknown zero-cost proxies {unknown}; known: {', '.join(PROXIES)}.")
    edges, layers = edge_masks(model)
    tables = {}
    with masked(layers), restored(model):  # NASWOT's passes move BatchNorm statistics
        for proxy in proxies:
            # NASWOT stays eager: its ReLU codes are recorded as the ops run, and a traced candidate
            # runs inside a `cond` (or a shared edge's function), whose tensors cannot leave it
            score = naswot if proxy == "naswot" else _traced_synflow(model, x)
            with positive_weights(model) if proxy == "synflow" else contextlib.nullcontext():
                full = score(model, x)
                table = {}
                for edge, (names, mask) in edges.items():
                    table[edge] = {}
                    for i, op in enumerate(names):
                        mask.assign(1 - np.eye(len(names), dtype="float32")[i])
                        table[edge][op] = full - score(model, x)
                    mask.assign(tf.ones_like(mask))
            tables[proxy] = table
    return tables
