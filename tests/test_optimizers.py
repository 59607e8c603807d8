import keras
import numpy as np
import pytest
import tensorflow as tf

from itnas_tf.optimizers import SGD, Adam

KERAS = {SGD: keras.optimizers.SGD, Adam: keras.optimizers.Adam}


def _train(cls, n, steps=3):
    """`n` variables, `steps` compiled updates under a cosine schedule; the variables and the step's graph.

    (Two replicas against one device: tests/test_distribution.py, whose searches decay their weights.)
    """
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.standard_normal(4).astype("float32"), name=f"v{i}") for i in range(n)]
    optimizer = cls(keras.optimizers.schedules.CosineDecay(0.1, 10), weight_decay=3e-4)
    optimizer.build(variables)

    @tf.function
    def step(grads):
        optimizer.apply(grads, variables)

    grads = [[tf.constant(rng.standard_normal(4).astype("float32")) for _ in variables] for _ in range(steps)]
    for g in grads:
        step(g)
    return [v.numpy() for v in variables], step.get_concrete_function(grads[0]).graph


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_weight_decay_reads_the_schedule_once_and_updates_as_keras_does(cls):
    ours, graph = _train(cls, 12)
    theirs, keras_graph = _train(KERAS[cls], 12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)

    def cosines(g):  # the cosine schedule's own op
        return sum(op.type == "Cos" for op in g.get_operations())

    assert cosines(graph) == cosines(_train(cls, 2)[1]) <= 2  # not one per variable
    assert cosines(keras_graph) > 12  # what this replaces
