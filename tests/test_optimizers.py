import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from itnas_tf.optimizers import SGD, Adam

KERAS = {SGD: keras.optimizers.SGD, Adam: keras.optimizers.Adam}


def _train(cls, n, steps=3, eager=False, strategy=None, shapes=((4,),), **kwargs):
    """`n` variables (of `shapes` in turn), `steps` updates under a cosine schedule (compiled unless
    `eager`, inside `strategy` if given); the variables and the step's graph.

    (Two replicas against one device: tests/test_distribution.py, whose searches decay their weights.)
    """
    rng = np.random.default_rng(0)
    with strategy.scope() if strategy else contextlib.nullcontext():
        shape_of = [shapes[i % len(shapes)] for i in range(n)]
        variables = [keras.Variable(rng.standard_normal(shape_of[i]).astype("float32"), name=f"v{i}") for i in range(n)]
        optimizer = cls(keras.optimizers.schedules.CosineDecay(0.1, 10), weight_decay=3e-4, **kwargs)
        optimizer.build(variables)

    def apply(grads):
        optimizer.apply(grads, variables)

    step = tf.function(lambda grads: strategy.run(apply, (grads,)) if strategy else apply(grads))
    grads = [[tf.constant(rng.standard_normal(s).astype("float32")) for s in shape_of] for _ in range(steps)]
    for g in grads:
        (apply if eager else step)(g)
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


@pytest.mark.parametrize("eager", [False, True])
def test_sgd_updates_each_variable_in_one_kernel_bit_for_bit_as_keras(eager):
    # every rank a supernet has (a scale, biases, dense and convolution kernels), each clipped by the
    # global norm with one axes constant per rank
    settings = {"momentum": 0.9, "global_clipnorm": 5.0, "shapes": [(), (4,), (3, 4), (3, 3, 2, 4)]}
    ours, graph = _train(SGD, 12, eager=eager, **settings)
    theirs, keras_graph = _train(keras.optimizers.SGD, 12, eager=eager, **settings)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    kernels = [op.type for op in graph.get_operations() if op.type.startswith("ResourceApply")]
    assert sorted(set(kernels)) == ["ResourceApplyGradientDescent", "ResourceApplyKerasMomentum"]
    assert len(kernels) == 24  # a decay and an update per variable
    assert len(graph.get_operations()) < 0.6 * len(keras_graph.get_operations())
    if not eager:
        sums = [op for op in graph.get_operations() if op.type == "Sum"]
        assert len({op.inputs[1].name for op in sums}) <= 5  # the clip's four ranks and its total


def test_sgd_keeps_keras_updates_under_a_distribution_strategy():
    # the fused kernels write a variable's own handle, which a distributed variable's replicas do not share
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    settings = {"momentum": 0.9}
    ours, graph = _train(SGD, 3, strategy=strategy, **settings)
    theirs, _ = _train(keras.optimizers.SGD, 3, **settings)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    types = {op.type for op in graph.get_operations()}
    assert "AssignAddVariableOp" in types and not any(t.startswith("ResourceApply") for t in types)
