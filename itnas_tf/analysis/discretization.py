"""Discretisation accuracy (the ground truth of DARTS-PT): per edge and op, the supernet's accuracy
with that op alone on the edge (in every cell sharing it), after a short fine-tune."""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from itnas_tf.engine import masked


def edge_masks(model):
    """`({edge: (its op names, (n,) mask variable)}, {MixedLayer: its edge's variable})`, all ones
    (nothing masked)."""
    edges, layers = {}, {}
    for edge, (_, _, edge_layers) in model.search_edges().items():
        names = edge_layers[0].names
        edges[edge] = names, tf.Variable(tf.ones(len(names)), trainable=False, name=f"mask_{edge}")
        layers.update({layer: edges[edge][1] for layer in edge_layers})
    return edges, layers


@contextlib.contextmanager
def restored(model):
    """Puts every variable of `model` back on exit."""
    saved = [v.numpy() for v in model.variables]
    try:
        yield
    finally:
        for v, value in zip(model.variables, saved):
            v.assign(value)


def discretization_accuracy(model, data, steps=10, learning_rate=0.01):
    """`{edge: {op: search-valid accuracy}}` of `model` with each op alone on its edge.

    Each (edge, op) starts from the trained weights, fine-tunes every weight for `steps` SGD steps
    on search-train with the edge discretised, and is scored on search-valid; the weights are put
    back afterwards. One traced step serves every (edge, op): the masks are variables.
    """
    edges, layers = edge_masks(model)
    optimizer = keras.optimizers.SGD(learning_rate)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        pairs = [(g, v) for g, v in zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
                 if g is not None]
        optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])

    @tf.function
    def correct(x, y):
        hits = tf.argmax(model(x, training=False), axis=-1) == tf.cast(y, tf.int64)
        return tf.reduce_sum(tf.cast(hits, tf.int64)), tf.size(hits)

    table = {}
    with masked(layers):
        for edge, (names, mask) in edges.items():
            table[edge] = {}
            for i, op in enumerate(names):
                mask.assign(np.eye(len(names), dtype="float32")[i])
                with restored(model):
                    for x, y in data.train(0).take(steps):
                        train_step(x, y)
                    counts = np.sum([[int(c) for c in correct(x, y)] for x, y in data.valid], axis=0)
                table[edge][op] = counts[0] / counts[1]
                print(f"discretisation accuracy {edge} {op}: {table[edge][op]:.4f}", flush=True)
            mask.assign(tf.ones_like(mask))
    return table
