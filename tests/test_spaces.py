"""The DARTS-like supernets (darts, s1-s4), NB201's, and the DARTS strategy's bilevel step."""

import keras
import numpy as np
import pytest

from itnas_tf import spaces
from itnas_tf.engine import MixedLayer, collecting_importance
from itnas_tf.ops import PRIMITIVES, batch_norm, make_op
from itnas_tf.ops.base import Op
from itnas_tf.spaces import darts


def test_robustdarts_candidates_follow_the_reference():
    s1 = darts.SPACE_OPS["s1"]
    assert s1["normal"][0] == ("skip_connect", "dil_conv_3x3") and s1["normal"][13] == ("dil_conv_3x3", "dil_conv_5x5")
    assert s1["reduce"][4] == ("skip_connect", "dil_conv_5x5") and s1["reduce"][6] == ("max_pool_3x3", "sep_conv_3x3")
    assert all(len(darts.SPACE_OPS[s][c]) == 14 for s in darts.SPACE_OPS for c in ("normal", "reduce"))
    assert darts.SPACE_OPS["s4"]["normal"][0] == ("noise", "sep_conv_3x3")
    assert darts.SPACE_OPS["darts"]["reduce"][5] == PRIMITIVES


@pytest.mark.parametrize("space", ["darts", "s3"])
def test_darts_supernet_ranks_every_edge(space):
    model = spaces.supernet(space, 10, init_channels=4, layers=3)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    assert model(x).shape == (2, 10)
    assert [c.reduction for c in model.cells] == [False, True, True]
    with collecting_importance(model):
        model(x)
    table = model.importance_table()
    assert list(table) == darts.edge_names("normal") + darts.edge_names("reduce")
    for name, row in table.items():
        assert tuple(row) == darts.SPACE_OPS[space][name.split("_")[0]][0]
        assert 0 < sum(row.values()) <= 1 + 1e-6  # the IT's own column takes the rest (maybe ~0)
    darts.validate(darts.derive(table), steps=4)


@pytest.mark.parametrize("space, layers", [("nb201", 1), ("darts", 3)])
def test_every_supernet_weight_is_made_once_and_learns(space, layers):
    """Keras first tries to build a model in a symbolic trial call; a layer whose build fails there
    is built again for real, leaving orphan weights that are counted, saved and never trained."""
    import tensorflow as tf

    model = spaces.supernet(space, 10, init_channels=4, layers=layers)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    model(x)
    paths = [v.path for v in model.weights]
    assert len(paths) == len(set(paths))
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(model(x, training=True) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    assert [v.path for v, g in zip(model.trainable_variables, grads) if g is None] == []


@pytest.mark.parametrize("space", ["s4", "nb201", "nb101_1shot1_s1"])
def test_fit_trains_batch_norm_on_batch_statistics(space):
    """`fit` passes `training=True` only to a model whose `call` takes it; without it every BatchNorm
    ran in inference mode, so the supernet trained on moving statistics that never moved."""
    model = spaces.supernet(space, 10, init_channels=4, layers=3 if space == "s4" else 1)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(1.0, 2.0, size=(4, 8, 8, 3)).astype("float32")
    model(x[:2])  # built eagerly, as the searcher does: else `fit` makes every variable in its trace, a `cond` each
    model.fit(x, np.arange(4), batch_size=4, epochs=1, verbose=0)
    means = [v.numpy() for v in model.non_trainable_variables if v.path.endswith("moving_mean")]
    assert means and all(np.abs(m).sum() > 0 for m in means)


def test_supernet_without_a_training_argument_is_refused():
    class Bare(spaces.nb201.NB201Supernet):
        def call(self, x):
            return super().call(x)

    with pytest.raises(TypeError, match="training"):
        Bare(10, 4, 1)


def test_darts_strategy_updates_alphas_on_valid_and_weights_on_train():
    keras.utils.set_random_seed(0)
    model = spaces.supernet("nb201", 3, init_channels=4, layers=1, strategy="darts")
    assert not any(layer.block for layer in model._flatten_layers() if hasattr(layer, "block"))
    model.compile(optimizer=keras.optimizers.SGD(0.1, weight_decay=0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 8, 8, 3)).astype("float32"), rng.integers(0, 3, 16)
    model(x[:2])
    alphas = model.arch_weights[0].numpy().copy()
    assert alphas.shape == (6, 5) and np.abs(alphas).max() < 0.01
    assert all(w is not model.arch_weights[0] for w in model.trainable_weights)
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model.fit(tf.data.Dataset.zip((data, data)), epochs=1, verbose=0)
    assert not np.allclose(model.arch_weights[0].numpy(), alphas)
    table = model.importance_table()
    np.testing.assert_allclose([sum(row.values()) for row in table.values()], 1, rtol=1e-5)


def test_unknown_space_is_refused():
    with pytest.raises(ValueError, match="Unknown space 'foo'"):
        spaces.supernet("foo", 10)


def test_an_edge_whose_importances_all_underflowed_is_reported(caplog):
    model = spaces.supernet("nb201", 10, init_channels=4, layers=1)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    model(x)
    with collecting_importance(model):
        model(x)
    edge, (_, _, layers) = next(iter(model.search_edges().items()))
    for layer in layers:
        layer.block.importance_sum.assign(np.zeros(len(layer.names), "float32"))
    with caplog.at_level("WARNING"):
        model.importance_table()
    assert f"attends only to itself on {edge}:" in caplog.text


@pytest.mark.parametrize("space, layers", [("nb201", 1), ("s4", 3), ("proxyless", None)])
def test_first_eager_call_builds_what_keras_symbolic_build_does(space, layers, monkeypatch):
    """A supernet's first eager call builds each layer as the call reaches it instead of tracing `call`
    symbolically first, its edges' candidates included (`MixedLayer`, `build_in_call`): the same
    variables in the same order with the same initial values, and the same build configs."""
    chain = {"widths": {"stem": 4, "first": 4, "stages": [4] * 8 + [8] * 12 + [8], "head": 8}} if layers is None else {}
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    walks = []
    shape_of = Op.compute_output_shape
    monkeypatch.setattr(Op, "compute_output_shape", lambda op, shape: walks.append(op.path) or shape_of(op, shape))
    built, configs = [], []
    for first_call in ("eager", "symbolic"):
        keras.backend.clear_session()  # the same layer names
        keras.utils.set_random_seed(0)
        model = spaces.supernet(space, 10, init_channels=4, layers=layers, **chain)
        if first_call == "symbolic":  # Keras's own build: `call` traced on a symbolic input
            model(keras.KerasTensor(x.shape))
        model(x)  # (S4's noise op draws in it)
        built.append({v.path: v.numpy() for v in model.variables})
        configs.append({layer.path: (layer.get_build_config(), getattr(layer, "output_shape_", None))
                        for layer in model._flatten_layers(include_self=False)})
        if first_call == "eager":
            edges = [layer.path for layer in model._flatten_layers() if isinstance(layer, MixedLayer)]
            assert edges and not [path for path in walks if any(path.startswith(f"{e}/") for e in edges)]
    assert list(built[0]) == list(built[1])
    for path in built[0]:
        np.testing.assert_array_equal(built[0][path], built[1][path], err_msg=path)
    assert configs[0] == configs[1]


def test_a_darts_supernet_builds_its_edges_in_its_first_eager_call(monkeypatch):
    """No candidate of the DARTS space, its pools with their BatchNorms included (`darts.PoolBN`), runs
    its `call` on symbolic inputs to build (Keras cannot call this supernet symbolically, so the
    test above cannot compare it with Keras's own build)."""
    walks = []
    shape_of = Op.compute_output_shape
    monkeypatch.setattr(Op, "compute_output_shape", lambda op, shape: walks.append(op.path) or shape_of(op, shape))
    model = spaces.supernet("darts", 10, init_channels=4, layers=3)
    model(np.zeros((2, 8, 8, 3), "float32"))
    edges = [layer.path for layer in model._flatten_layers() if isinstance(layer, MixedLayer)]
    assert len(edges) == 42 and not [path for path in walks if any(path.startswith(f"{e}/") for e in edges)]


@pytest.mark.parametrize("op, stride", [("max_pool_3x3", 1), ("avg_pool_3x3", 2)])
def test_a_search_pool_is_the_sequential_of_its_pool_and_batchnorm(op, stride):
    """`darts.PoolBN` computes, names and keeps what `keras.Sequential([pool, BatchNorm])` did."""
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 6)).astype("float32")
    results = []
    for make in (lambda: darts.PoolBN(op, 6, stride, name=op),
                 lambda: keras.Sequential([make_op(op, 6, stride, affine=False), batch_norm(affine=False)], name=op)):
        keras.backend.clear_session()  # the same layer names
        layer = make()
        results.append((layer(x, training=True).numpy(), [(v.path, v.numpy()) for v in layer.variables]))
    (ours, ours_vars), (theirs, their_vars) = results
    np.testing.assert_array_equal(ours, theirs)
    assert [p for p, _ in ours_vars] == [p for p, _ in their_vars]
    for (path, a), (_, b) in zip(ours_vars, their_vars):
        np.testing.assert_array_equal(a, b, err_msg=path)  # the moving statistics after the step


@pytest.mark.parametrize("strategy", ["it", "darts"])
def test_built_for_fit_the_variables_have_bare_tensorflow_names_and_the_same_paths_and_values(strategy, monkeypatch):
    """`build_for_fit` makes the variables under their bare TensorFlow names, which eager TensorFlow
    makes with one cached kernel (`engine/variables.py`); Keras's paths and every initial value, the
    optimizers' included, are those of a build under the layers' scopes."""
    import contextlib

    from itnas_tf.engine import supernet

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 8, 8, 3)).astype("float32"), rng.integers(0, 3, 4)
    built, names = [], []
    for bare in (False, True):
        if not bare:
            monkeypatch.setattr(supernet, "bare_variable_names", contextlib.nullcontext)
        keras.backend.clear_session()  # the same layer names
        keras.utils.set_random_seed(0)
        model = spaces.supernet("nb201", 3, init_channels=4, layers=1, strategy=strategy)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        optimizers = [model.optimizer] + ([model.arch_optimizer] if strategy == "darts" else [])

        def variables():
            return [*model.variables, *(v for o in optimizers for v in o.variables)]

        made_before = {id(v) for v in variables()}  # alphas, the optimizers' step counts
        model.build_for_fit((x, y))
        monkeypatch.undo()
        built.append({v.path: v.numpy() for v in variables()})
        names.append([v.value.name for v in variables() if id(v) not in made_before])
    assert len(built[1]) > 100 and list(built[0]) == list(built[1])  # paths unique, in the same order
    for path in built[0]:
        np.testing.assert_array_equal(built[0][path], built[1][path], err_msg=path)
    assert all("/" in name for name in names[0]) and not any("/" in name for name in names[1])
