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


def test_weighted_mix_is_the_sum_weighted_by_the_batch_mean_of_the_renormalised_rows():
    layer = MixedLayer.from_ops(["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3"], 6)
    x = tf.constant(RNG.standard_normal(SHAPE).astype("float32"))
    layer.build(x.shape)
    layer.block.position.assign(0.5 * RNG.standard_normal(layer.block.position.shape).astype("float32"))
    y = _np(layer(x, candidate_mask=tf.constant([True, True, False, True])))
    outputs = [_np(c(x)) for c in layer.candidates]
    importance = _np(layer.block(outputs, candidate_mask=tf.constant([True, True, False, True]))[0])
    rows = importance / importance.sum(-1, keepdims=True)
    assert np.ptp(rows, axis=0).max() > 1e-6  # the samples' rows differ, their mix does not
    weights = rows.mean(0)
    expected = sum(weights[i] * outputs[i] for i in range(4))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert weights[2] == 0


def test_scores_stay_bounded_and_do_not_grow_with_the_map_size():
    """The same content on 8x8 and on 64x64 maps scores alike, and no input or weight takes a score
    past the cap: the dot product over whole maps grew like h*w and made every row one-hot."""
    rng = np.random.default_rng(3)  # its own draws: the module's RNG state depends on which tests ran first
    content = [rng.standard_normal((2, 8, 8, 6)).astype("float32") for _ in range(N)]
    blocks = {}
    for size in (8, 64):
        b = IndicatorTokenBlock(N)
        b.build((2, size, size, 6))
        blocks[size] = b
    blocks[64].set_weights(blocks[8].get_weights())
    scores = {}
    for size, b in blocks.items():
        tokens = [tf.constant(np.repeat(np.repeat(t, size // 8, 1), size // 8, 2)) for t in content]
        scores[size] = _np(b._scores(tokens, None))
    # float32 pixel means over 4,096 vs 64 pixels, times the scale 10: up to 4e-5 apart, measured
    np.testing.assert_allclose(scores[64], scores[8], rtol=1e-4, atol=2e-4)
    assert np.abs(scores[8]).max() <= 10.0 + 1e-4  # exp(s) starts at 10
    b = blocks[64]
    huge = [tf.constant(1e4 * rng.standard_normal((2, 64, 64, 6)).astype("float32")) for _ in range(N)]
    at_init = _np(b._scores(huge, None))
    b.logit_scale.assign(50.0)  # far past the cap: the sharpness is exp(min(s, log 100))
    capped = _np(b._scores(huge, None))
    assert np.abs(capped).max() <= 100.0 + 1e-3
    # The scale does reach the cap, 100 / 10 times the initial one, on any input (cosines <= 1 bound
    # the rest; how close a random input's cosines come to 1 depends on the draw, so it is not asserted).
    np.testing.assert_allclose(capped, 10.0 * at_init, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("mix", ["weighted", "transformer"])
def test_one_step_reaches_every_trainable_weight_of_the_block(mix):
    layer = MixedLayer.from_ops(["sep_conv_3x3", "max_pool_3x3", "skip_connect"], 6, mix=mix)
    x = tf.constant(RNG.standard_normal(SHAPE).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x, training=True)))
    block_vars = layer.block.trainable_variables
    grads = tape.gradient(loss, block_vars)
    names = {v.name for v in block_vars}
    expected = {"indicator_token", "position", "query", "key", "logit_scale"}
    if mix == "transformer":
        expected |= {"value", "kernel", "bias", "gamma", "beta"}  # FFN and LayerNorms
    assert expected <= names
    for v, g in zip(block_vars, grads):
        assert g is not None and np.abs(_np(g)).max() > 0, f"no gradient reaches {v.path}"


@pytest.mark.parametrize("mix", ["weighted", "transformer"])
def test_ranking_off_attends_uniformly_and_trains_no_ranking_weight_inside_a_compiled_step(mix):
    layer = MixedLayer.from_ops(["sep_conv_3x3", "max_pool_3x3", "skip_connect"], 6, mix=mix)
    x = tf.constant(RNG.standard_normal(SHAPE).astype("float32"))
    layer(x)
    layer.block.position.assign(0.5 * RNG.standard_normal(layer.block.position.shape).astype("float32"))
    ranking = [layer.block.indicator, layer.block.position, layer.block.query, layer.block.key, layer.block.logit_scale]

    @tf.function
    def step(mask):
        with tf.GradientTape() as tape:
            tokens = [c(x) for c in layer.candidates]
            importance, _ = layer.block(tokens, candidate_mask=mask)
            loss = tf.reduce_sum(tf.square(layer(x, candidate_mask=mask, training=True)))
        return importance, tape.gradient(loss, [v.value for v in ranking])

    mask = tf.constant([True, False, True])
    importance, grads = step(mask)
    active = _np(importance)[:, [0, 2]]
    assert np.ptp(active / active.sum(-1, keepdims=True)) > 1e-2  # ranked
    layer.block.set_ranking(False)
    importance, grads = step(mask)  # the same traced function
    np.testing.assert_allclose(_np(importance), [[1 / 3, 0, 1 / 3]] * SHAPE[0], rtol=1e-6)
    for v, g in zip(ranking, grads):
        if mix == "weighted" or any(v is w for w in (layer.block.query, layer.block.key, layer.block.logit_scale)):
            assert g is None or np.abs(_np(g)).max() == 0, f"{v.path} learns during the warm-up"


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


@pytest.mark.parametrize("mix", ["weighted", "transformer"])
def test_mixed_bfloat16_edge_ranks_as_float32_does(mix):
    """Under `--mixed_precision` the candidates compute in bfloat16; the IT's scores stay float32."""
    import keras

    x = RNG.standard_normal(SHAPE).astype("float32")
    rows = {}
    for policy in ("float32", "mixed_bfloat16"):
        keras.config.set_dtype_policy(policy)
        try:
            keras.utils.set_random_seed(3)
            layer = MixedLayer.from_ops(["sep_conv_3x3", "max_pool_3x3", "skip_connect"], 6, mix=mix)
            y = layer(x)
            rows[policy] = _np(layer.block(list(c(x) for c in layer.candidates))[0])
        finally:
            keras.config.set_dtype_policy("float32")
        assert y.dtype == ("float32" if policy == "float32" else "bfloat16")
    assert rows["mixed_bfloat16"].dtype == np.float32
    np.testing.assert_allclose(rows["mixed_bfloat16"], rows["float32"], atol=0.02)


def test_encoder_output_is_the_textbook_encoder_row_of_the_indicator_token():
    """y = LN2(z + FFN(z)), z = LN1(T_0 + sum_j A_0j T_j W_v), from the full attention matrix."""
    b = IndicatorTokenBlock(N, encode=True)
    b.build(SHAPE)
    rng = np.random.default_rng(5)
    for w in (b.indicator, b.position):
        w.assign(0.5 * rng.standard_normal(w.shape).astype("float32"))
    tokens = _tokens()
    _, y = b(tokens)

    def layer_norm(x, norm):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * _np(norm.gamma) + _np(norm.beta)

    t = np.stack([np.broadcast_to(_np(b.indicator), SHAPE)] + [_np(x) for x in tokens], axis=1)
    t = t + _np(b.position)[None, :, None, None, :]
    a = _np(b.attention_matrix(tokens))[:, 0]  # (batch, n + 1)
    z = layer_norm(t[:, 0] + np.einsum("bj,bjhwc,cd->bhwd", a, t, _np(b.value)), b.norm_1)
    hidden = np.maximum(z @ _np(b.ffn_1.kernel) + _np(b.ffn_1.bias), 0)
    expected = layer_norm(z + hidden @ _np(b.ffn_2.kernel) + _np(b.ffn_2.bias), b.norm_2)
    np.testing.assert_allclose(_np(y), expected, rtol=1e-4, atol=1e-4)
