import keras
import numpy as np
import pytest
import tensorflow as tf

from itnas_tf.engine import MixedLayer, collecting_importance, mixed_layers
from itnas_tf.engine.shared_edges import SWITCH, sharing_on
from itnas_tf.ops.basic import _max_pool

RNG = np.random.default_rng(5)
OPS = ["none", "max_pool_3x3", "sep_conv_3x3", "skip_connect"]
X = RNG.standard_normal((4, 6, 6, 5)).astype("float32")  # 5 channels: no other test's kind of edge
Y = np.arange(4) % 3


def _model():
    """Three edges of one kind, then a strided edge (a second kind)."""
    keras.utils.set_random_seed(1)
    edges = [MixedLayer.from_ops(OPS, 5, affine=False) for _ in range(3)]
    edges.append(MixedLayer.from_ops([o for o in OPS if o != "skip_connect"], 5, stride=2, affine=False))
    return keras.Sequential([keras.Input(X.shape[1:]), *edges, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])


def _step(model, mask=None):
    """A traced training pass: the output, the gradients and the graph's size."""

    def step(x, y):
        with tf.GradientTape() as tape:
            if mask is None:
                out = model(x, training=True)
            else:
                h = x
                for layer in model.layers:
                    h = layer(h, candidate_mask=mask[: len(layer.candidates)], training=True) if isinstance(layer, MixedLayer) else layer(h)
                out = h
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, out, from_logits=True))
        return out, tape.gradient(loss, model.trainable_variables)

    function = tf.function(step)
    nodes = len(function.get_concrete_function(X, Y).graph.get_operations())
    out, grads = function(X, Y)
    return out.numpy(), [None if g is None else g.numpy() for g in grads], nodes


def _both(monkeypatch, **kwargs):
    """The step of a model traced with sharing, and of the same model (same seed) traced without."""
    shared = _model()
    results = [(shared, _step(shared, **kwargs))]
    monkeypatch.setenv(SWITCH, "off")
    alone = _model()
    results.append((alone, _step(alone, **kwargs)))
    monkeypatch.delenv(SWITCH)
    return results


def test_edges_of_a_kind_trace_once_and_compute_the_unshared_values(monkeypatch):
    (shared, (out, grads, nodes)), (alone, (out_alone, grads_alone, nodes_alone)) = _both(monkeypatch)
    edges = mixed_layers(shared)
    kinds = {id(k): k for e in edges for k in e.__dict__.get("_shared_kinds", {}).values()}
    # the second and third edge call the first's kind; the strided edge, a kind of its own, traces alone
    assert len(kinds) == 1 and [bool(e.__dict__.get("_shared_kinds")) for e in edges] == [False, True, True, False]
    assert all(kind.function.experimental_get_tracing_count() == 1 for kind in kinds.values())
    assert not any("_shared_kinds" in e.__dict__ for e in mixed_layers(alone))
    assert nodes < 0.7 * nodes_alone
    # forward: bit for bit, BatchNorm statistics included
    np.testing.assert_array_equal(out, out_alone)
    for a, b in zip(shared.non_trainable_variables, alone.non_trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # backward: the same terms summed in another order
    for v, g, h in zip(shared.trainable_variables, grads, grads_alone):
        assert (g is None) == (h is None), v.path
        if g is not None:
            np.testing.assert_allclose(g, h, rtol=1e-4, atol=1e-6, err_msg=v.path)


def test_a_sampled_path_runs_only_its_candidates_in_a_shared_edge(monkeypatch):
    mask = tf.constant([True, True, False, True])  # sep_conv left out
    (shared, (out, grads, _)), (alone, (out_alone, grads_alone, _)) = _both(monkeypatch, mask=mask)
    assert sum("_shared_kinds" in e.__dict__ for e in mixed_layers(shared)) >= 2  # 3 if an earlier test's edge came first
    np.testing.assert_array_equal(out, out_alone)
    for a, b in zip(shared.non_trainable_variables, alone.non_trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    skipped = {v.path for e in mixed_layers(shared) for v in e.candidates[2].variables}
    for v in shared.variables:
        if v.path in skipped and "moving_mean" in v.path:
            assert np.all(v.numpy() == 0), f"{v.path} moved though its candidate was left out"
    for v, g, h in zip(shared.trainable_variables, grads, grads_alone):
        if v.path in skipped:
            assert g is None or not np.any(g), v.path
        elif g is not None:
            np.testing.assert_allclose(g, h, rtol=1e-4, atol=1e-6, err_msg=v.path)


def test_importance_collected_through_shared_edges_is_the_unshared_one(monkeypatch):
    tables = []
    for switch in ("on", "off"):
        monkeypatch.setenv(SWITCH, switch)
        model = _model()
        with collecting_importance(model) as layers:
            model.predict(X, batch_size=2, verbose=0)
        tables.append([layer.block.mean_importance() for layer in layers])
        assert ("_shared_kinds" in layers[1].__dict__) == (switch == "on")
    for a, b in zip(*tables):
        np.testing.assert_array_equal(a, b)


class Doubling(keras.layers.Layer):
    """A user's candidate: its state might live outside its config, so its edges trace alone."""

    def call(self, x):
        return 2.0 * x


def test_edges_trace_alone_where_sharing_could_be_wrong(monkeypatch):
    own = keras.Sequential([keras.Input(X.shape[1:])] + [MixedLayer([Doubling(), Doubling()], names=["a", "b"]) for _ in range(2)])
    tf.function(lambda x: own(x, training=True))(X)
    assert not any("_shared_kinds" in e.__dict__ for e in own.layers)

    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        mirrored = _model()
    mirrored.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    mirrored.fit(X, Y, epochs=1, verbose=0)
    assert not any("_shared_kinds" in e.__dict__ for e in mixed_layers(mirrored))

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = _model()
        tf.function(lambda x: half(x, training=True))(X)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert not any("_shared_kinds" in e.__dict__ for e in mixed_layers(half))

    monkeypatch.setenv(SWITCH, "sometimes")
    with pytest.raises(ValueError, match="ITNAS_SHARED_EDGES='sometimes': set it to on"):
        sharing_on()


@pytest.mark.parametrize("stride, padding", [(1, "same"), (2, "valid")])
def test_max_pool_gradient_pools_again_with_tensorflows_values(stride, padding):
    x = tf.constant(RNG.standard_normal((2, 7, 7, 3)).astype("float32"))
    upstream = tf.constant(RNG.standard_normal(tf.nn.max_pool2d(x, 3, stride, padding.upper()).shape).astype("float32"))

    @tf.function
    def pooled(ours):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = _max_pool(x, 3, stride, padding) if ours else tf.nn.max_pool2d(x, 3, stride, padding.upper())
        return y, tape.gradient(y, x, output_gradients=upstream)

    for a, b in zip(pooled(True), pooled(False)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("space, layers, kinds", [("darts", 5, 5), ("nb201", 5, 3)])
def test_a_supernets_edges_share_one_function_per_kind(space, layers, kinds):
    from itnas_tf import spaces

    model = spaces.supernet(space, 10, 4, layers)
    x = np.zeros((2, 8, 8, 3), "float32")
    model(x)
    tf.function(lambda x: model(x, training=True)).get_concrete_function(x)
    edges = mixed_layers(model)
    assert len({id(k) for e in edges for k in e.__dict__.get("_shared_kinds", {}).values()}) == kinds  # of 70, 90
