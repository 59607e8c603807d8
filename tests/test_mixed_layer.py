import keras
import numpy as np
import pytest

from itnas_tf.engine import MixedLayer, collecting_importance, mixed_layers
from itnas_tf.ops import PRIMITIVES, make_op

RNG = np.random.default_rng(2)


def _model(mix, stride=1):
    inp = keras.Input((8, 8, 4))
    x = MixedLayer.from_ops(PRIMITIVES, 4, stride, affine=False, mix=mix, name="edge_0")(inp)
    x = MixedLayer.from_ops(["skip_connect", "nor_conv_3x3"], 4, mix=mix, name="edge_1")(x)
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out)


@pytest.mark.parametrize("mix", ["weighted", "transformer"])
def test_mixed_layer_model_saves_and_loads_with_identical_outputs(mix, tmp_path):
    model = _model(mix, stride=2)
    x = RNG.standard_normal((5, 8, 8, 4)).astype("float32")
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.arange(5) % 3, epochs=1, verbose=0)  # move BN statistics off their defaults
    y = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), y)
    assert [l.names for l in mixed_layers(loaded)] == [list(PRIMITIVES), ["skip_connect", "nor_conv_3x3"]]


def test_importance_table_covers_every_edge_and_candidate():
    model = _model("weighted")
    x = RNG.standard_normal((6, 8, 8, 4)).astype("float32")
    model.predict(x, verbose=0)
    with collecting_importance(model) as layers:
        model.predict(x, batch_size=4, verbose=0)
    table = {layer.name: layer.importance() for layer in layers}
    assert list(table) == ["edge_0", "edge_1"]
    assert list(table["edge_0"]) == list(PRIMITIVES)
    assert sum(table["edge_1"].values()) < 1  # the IT keeps part of its attention on itself


def test_candidates_of_mismatched_shapes_are_refused_with_their_names():
    layer = MixedLayer([make_op("sep_conv_3x3", 8), make_op("max_pool_3x3", 8)], names=["sep", "pool"])
    with pytest.raises(ValueError, match=r"different shapes.*sep -> \(None, 8, 8, 8\).*pool -> \(None, 8, 8, 4\)"):
        layer.build((None, 8, 8, 4))


def test_bad_mix_and_unknown_op_are_refused():
    with pytest.raises(ValueError, match="mix must be one of"):
        MixedLayer.from_ops(["skip_connect"], 4, mix="softmax")
    with pytest.raises(ValueError, match="Unknown operation 'conv_9x9'"):
        MixedLayer.from_ops(["skip_connect", "conv_9x9"], 4)


def test_collecting_needs_a_mixed_layer():
    inp = keras.Input((4,))
    with pytest.raises(ValueError, match="no MixedLayer"):
        with collecting_importance(keras.Model(inp, keras.layers.Dense(2)(inp))):
            pass


def test_alphas_mix_is_the_darts_weighted_sum_without_an_it_block():
    from itnas_tf.ops import Identity

    layer = MixedLayer([Identity(), Identity()], names=["a", "b"], mix="alphas")
    x = np.ones((2, 4, 4, 3), "float32")
    assert layer.block is None
    np.testing.assert_allclose(layer(x, weights=np.array([0.25, 0.5], "float32")), 0.75 * x)
    with pytest.raises(ValueError, match="needs `weights`"):
        layer(x)


@pytest.mark.parametrize("mix", ["weighted", "transformer"])
@pytest.mark.parametrize("stride", [1, 2])
def test_zero_candidate_is_skipped_without_changing_output_importance_or_gradient(mix, stride):
    import tensorflow as tf

    layer = MixedLayer.from_ops(["none", "skip_connect", "nor_conv_3x3"], 4, stride, affine=False, mix=mix)
    x = tf.constant(RNG.standard_normal((3, 8, 8, 4)).astype("float32"))
    layer.build(x.shape)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        skipped = layer(x)
        # the textbook edge: every candidate run, the zero map included
        tokens = [candidate(x) for candidate in layer.candidates]
        importance, encoded = layer.block(tokens)
        if mix == "weighted":
            rows = importance / tf.reduce_sum(importance, axis=-1, keepdims=True)
            full = sum(tf.reduce_mean(rows[:, i]) * t for i, t in enumerate(tokens))
        else:
            full = encoded
        losses = [tf.reduce_sum(tf.sin(out)) for out in (skipped, full)]
    assert not np.any(tokens[0])  # the zero op really gives zeros
    np.testing.assert_allclose(skipped, full, rtol=1e-5, atol=1e-6)
    weights = [x, *layer.trainable_weights]
    for a, b in zip(tape.gradient(losses[0], weights), tape.gradient(losses[1], weights)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_an_edge_of_zeros_alone_still_runs():
    layer = MixedLayer.from_ops(["none", "none"], 4, 2, mix="weighted")
    out = layer(np.ones((2, 8, 8, 4), "float32"))
    assert out.shape == (2, 4, 4, 4) and not np.any(out)


def test_weighted_mix_stays_finite_when_the_it_takes_all_its_attention():
    """The IT's own column gets no gradient under the `weighted` mix, so nothing stops it from
    taking the whole row; `a / sum(a)` was then 0 / 0 and the search stopped on a NaN loss."""
    import tensorflow as tf

    layer = MixedLayer.from_ops(["skip_connect", "avg_pool_3x3", "nor_conv_1x1"], 4, 1, affine=False)
    x = tf.constant(RNG.standard_normal((2, 8, 8, 4)).astype("float32"))
    layer.build(x.shape)
    block = layer.block
    block.query.assign(np.eye(4, dtype="float32"))
    block.key.assign(np.eye(4, dtype="float32"))
    # the IT's key along its query, the candidates' against it, at the sharpest scale: 100 - (-100)
    block.position.assign(np.concatenate([np.full((1, 4), 1e3), np.full((3, 4), -1e3)]).astype("float32"))
    block.logit_scale.assign(np.log(100.0))
    importance, weights = block([c(x) for c in layer.candidates])
    assert not np.any(importance)  # every a_i underflowed
    np.testing.assert_allclose(np.sum(weights, axis=-1), 1.0, rtol=1e-6)
    assert np.all(np.isfinite(layer(x)))
