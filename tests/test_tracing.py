import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
from tensorflow.python.eager import context

from itnas_tf import spaces
from itnas_tf.engine.tracing import DISTRIBUTED_PASSES, PASSES, SWITCH, grappler_pays, lean_grappler, traced_once

needs_cpu_only = pytest.mark.skipif(grappler_pays(), reason="Grappler stays whole where a GPU is visible")


def _rewrite_options():
    """The Grappler settings a function called now on this thread is instantiated with."""
    serialized = context.context().function_call_options.config_proto_serialized
    return config_pb2.ConfigProto.FromString(serialized).graph_options.rewrite_options


def _passes():
    rewrite = _rewrite_options()
    return "off" if rewrite.disable_meta_optimizer else tuple(rewrite.optimizers) or "all"


@needs_cpu_only
@pytest.mark.parametrize("distributed, passes", [(False, PASSES), (True, DISTRIBUTED_PASSES)])
def test_grappler_is_lean_inside_the_call_and_the_setting_restored_after_it_even_on_error(distributed, passes):
    seen = []

    def step(fail):
        rewrite = _rewrite_options()
        seen.append((_passes(), rewrite.disable_tfg_optimizer, rewrite.meta_optimizer_iterations))
        if fail:
            raise RuntimeError("boom")
        return 1

    wrapped = lean_grappler(step, distributed)
    assert _passes() == "all" and wrapped(False) == 1
    with pytest.raises(RuntimeError):
        wrapped(True)
    assert seen == [(passes, True, rewriter_config_pb2.RewriterConfig.ONE)] * 2 and _passes() == "all"


@needs_cpu_only
def test_a_users_own_setting_is_kept():
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        assert lean_grappler(_passes)() == "off"
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})
    assert lean_grappler(_passes)() == PASSES


@needs_cpu_only
def test_the_lean_step_is_the_step_without_grappler_bit_for_bit():
    # what makes it a start-up cut and not a change of results: the pruner drops nodes, it does not
    # rewrite the arithmetic (Grappler's CSE alone moved the NB201 supernet's second loss in its 7th digit)
    model = spaces.supernet("nb201", 10, 4, 1)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 8, 8, 3)).astype("float32"), rng.integers(0, 10, 8)
    model(x[:2])

    @tf.function
    def gradients(x, y):
        with tf.GradientTape() as tape:
            loss = keras.losses.sparse_categorical_crossentropy(y, model(x, training=True), from_logits=True)
        return [loss, *tape.gradient(loss, model.trainable_variables)]

    lean = [t.numpy() for t in lean_grappler(gradients)(x, y)]
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        off = [t.numpy() for t in gradients(x, y)]
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})
    assert len(lean) == len(off) > 10
    for a, b in zip(lean, off):
        np.testing.assert_array_equal(a, b)


def test_the_environment_switch_overrides_the_default_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.setenv(SWITCH, "on")
    assert lean_grappler(_passes) is _passes
    monkeypatch.setenv(SWITCH, "off")
    assert lean_grappler(_passes)() == PASSES
    monkeypatch.setenv(SWITCH, "sometimes")
    with pytest.raises(ValueError, match="ITNAS_GRAPPLER='sometimes': set it to on, off or auto"):
        lean_grappler(_passes)


def test_an_uneven_last_batch_reuses_the_first_trace():
    def forward(data):
        return [d * 2.0 for d in data]

    batches = [[tf.ones((4, 3))], [tf.ones((2, 3))]]
    keras_like = tf.function(forward, reduce_retracing=True)  # as Keras makes `predict_function`
    for batch in batches:
        keras_like(batch)
    assert keras_like.experimental_get_tracing_count() == 2  # what traced_once is for

    function = tf.function(forward, reduce_retracing=True)
    once = traced_once(function)
    outputs = [once(batch)[0].numpy() for batch in batches]
    assert function.experimental_get_tracing_count() == 1
    assert [o.shape for o in outputs] == [(4, 3), (2, 3)] and all((o == 2).all() for o in outputs)


def test_supernet_predict_traces_its_forward_pass_once_and_matches_the_direct_call():
    model = spaces.supernet("nb201", 10, 4, 1)
    x = np.random.default_rng(0).normal(size=(10, 8, 8, 3)).astype("float32")
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model(x[:2])  # built eagerly, as `build_for_fit` does, so that only `predict` traces
    traces = []
    call = model.call

    def counted(inputs, training=None):
        if not tf.executing_eagerly():
            traces.append(inputs.shape[0])
        return call(inputs, training=training)

    model.call = counted
    predicted = model.predict(x, batch_size=4, verbose=0)  # batches of 4, 4 and 2
    assert traces == [None]
    direct = [model(x[i : i + 4], training=False) for i in (0, 4, 8)]  # the mix is the batch's mean IT row
    np.testing.assert_allclose(predicted, np.concatenate(direct), atol=1e-5)
