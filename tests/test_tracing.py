import keras
import numpy as np
import pytest
import tensorflow as tf

from itnas_tf import spaces
from itnas_tf.engine.tracing import OPTION, SWITCH, grappler_pays, traced_once, without_grappler

needs_cpu_only = pytest.mark.skipif(grappler_pays(), reason="Grappler stays on where a GPU is visible")


def _grappler_disabled():
    return tf.config.optimizer.get_experimental_options().get(OPTION, False)


@needs_cpu_only
def test_grappler_is_off_inside_the_call_and_the_setting_restored_after_it_even_on_error():
    seen = []

    def step(fail):
        seen.append(_grappler_disabled())
        if fail:
            raise RuntimeError("boom")
        return 1

    wrapped = without_grappler(step)
    assert not _grappler_disabled() and wrapped(False) == 1
    with pytest.raises(RuntimeError):
        wrapped(True)
    assert seen == [True, True] and not _grappler_disabled()


@needs_cpu_only
def test_a_users_own_setting_is_kept():
    tf.config.optimizer.set_experimental_options({OPTION: True})
    try:
        without_grappler(lambda: None)()
        assert _grappler_disabled()
    finally:
        tf.config.optimizer.set_experimental_options({OPTION: False})


def test_the_environment_switch_overrides_the_default_and_a_bad_value_is_named(monkeypatch):
    def step():
        return _grappler_disabled()

    monkeypatch.setenv(SWITCH, "on")
    assert without_grappler(step) is step
    monkeypatch.setenv(SWITCH, "off")
    assert without_grappler(step)() is True
    monkeypatch.setenv(SWITCH, "sometimes")
    with pytest.raises(ValueError, match="ITNAS_GRAPPLER='sometimes': set it to on, off or auto"):
        without_grappler(step)


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
