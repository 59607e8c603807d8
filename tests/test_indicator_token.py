import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from itnas_tf.engine import IndicatorTokenBlock, MixedLayer

RNG = np.random.default_rng(1)
N, SHAPE = 4, (3, 4, 4, 6)


def _tokens(n=N, shape=SHAPE):
    return [tf.constant(RNG.standard_normal(shape).astype("float32")) for _ in range(n)]


def _np(x):
    return ops.convert_to_numpy(x)


@pytest.fixture(params=[False, True], ids=["weighted", "transformer"])
def block(request):
    b = IndicatorTokenBlock(N, encode=request.param)
    b.build(SHAPE)
    # Larger than the 0.02 initialisation so that the attention is far from uniform.
    rng = np.random.default_rng(7)
    b.indicator.assign(0.5 * rng.standard_normal(b.indicator.shape).astype("float32"))
    b.position.assign(0.5 * rng.standard_normal(b.position.shape).astype("float32"))
    return b


def test_attention_rows_sum_to_one(block):
    a = _np(block.attention_matrix(_tokens()))
    assert a.shape == (SHAPE[0], N + 1, N + 1)
    np.testing.assert_allclose(a.sum(-1), 1.0, rtol=1e-6)


def test_fast_indicator_row_equals_row_zero_of_the_full_matrix(block):
    tokens = _tokens()
    importance, _ = block(tokens)
    full = _np(block.attention_matrix(tokens))
    assert importance.shape == (SHAPE[0], N)
    np.testing.assert_allclose(_np(importance), full[:, 0, 1:], rtol=1e-5, atol=1e-7)
    ops_row = full[:, 0, 1:] / full[:, 0, 1:].sum(-1, keepdims=True)
    assert np.ptp(ops_row) > 1e-2  # not trivially uniform over the candidates


@pytest.mark.parametrize("mask", [[True, False, True, False], [[1, 0, 0, 1], [0, 1, 1, 1], [1, 1, 1, 1]]])
def test_masked_candidates_get_exactly_zero(block, mask):
    tokens = _tokens()
    importance = _np(block(tokens, candidate_mask=tf.constant(mask))[0])
    full = _np(block.attention_matrix(tokens, candidate_mask=tf.constant(mask)))
    m = np.broadcast_to(np.asarray(mask, bool), importance.shape)
    assert (importance[~m] == 0).all() and (importance[m] > 0).all()
    assert (full[:, :, 1:][np.broadcast_to(~m[:, None, :], full[:, :, 1:].shape)] == 0).all()
    np.testing.assert_allclose(full.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(importance, full[:, 0, 1:], rtol=1e-5, atol=1e-7)


def test_weighted_mix_is_the_importance_weighted_sum():
    layer = MixedLayer.from_ops(["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3"], 6)
    x = tf.constant(RNG.standard_normal(SHAPE).astype("float32"))
    y = _np(layer(x, candidate_mask=tf.constant([True, True, False, True])))
    outputs = [_np(c(x)) for c in layer.candidates]
    importance = _np(layer.block(outputs, candidate_mask=tf.constant([True, True, False, True]))[0])
    weights = importance / importance.sum(-1, keepdims=True)
    expected = sum(weights[:, i, None, None, None] * outputs[i] for i in range(4))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert weights[:, 2].max() == 0


@pytest.mark.parametrize("mix", ["weighted", "transformer"])
def test_one_step_reaches_every_trainable_weight_of_the_block(mix):
    layer = MixedLayer.from_ops(["sep_conv_3x3", "max_pool_3x3", "skip_connect"], 6, mix=mix)
    x = tf.constant(RNG.standard_normal(SHAPE).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x, training=True)))
    block_vars = layer.block.trainable_variables
    grads = tape.gradient(loss, block_vars)
    names = {v.name for v in block_vars}
    expected = {"indicator_token", "position", "query", "key"}
    if mix == "transformer":
        expected |= {"value", "kernel", "bias", "gamma", "beta"}  # FFN and LayerNorms
    assert expected <= names
    for v, g in zip(block_vars, grads):
        assert g is not None and np.abs(_np(g)).max() > 0, f"no gradient reaches {v.path}"


def test_importance_is_accumulated_only_while_collecting(block):
    batches = [_tokens() for _ in range(3)]
    block(batches[0])  # not collecting: nothing recorded
    with pytest.raises(RuntimeError, match="no importance was collected"):
        block.mean_importance()
    block.start_collecting()
    rows = [_np(block(t)[0]) for t in batches]
    block.stop_collecting()
    block(_tokens())  # after stopping: nothing recorded
    np.testing.assert_allclose(block.mean_importance(), np.concatenate(rows).mean(0), rtol=1e-5)


def test_collection_flag_switches_inside_a_compiled_function(block):
    tokens = _tokens()
    step = tf.function(lambda t: block(t)[0])
    step(tokens)
    block.start_collecting()
    expected = _np(step(tokens)).mean(0)
    block.stop_collecting()
    step(tokens)
    np.testing.assert_allclose(block.mean_importance(), expected, rtol=1e-5)
