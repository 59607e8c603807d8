"""The proxyless chain search: path sampling, the MAdds budget and a tiny search end to end."""

import json
import random

import numpy as np
import pytest
import tensorflow as tf

from itnas_tf import spaces
from itnas_tf.chain_searcher import ChainSearcher
from itnas_tf.networks.proxyless import block_madds
from itnas_tf.searcher import search_config
from itnas_tf.spaces import proxyless

# A chain small enough to train on the CPU; reference.md's stage pattern, so `zero` stands where it does there.
TINY_WIDTHS = {"stem": 8, "first": 8, "stages": [8] * 4 + [16] * 4 + [16] * 4 + [24] * 4 + [24] * 4 + [32], "head": 32}


def _table(seed):
    rng = random.Random(seed)
    return {
        f"layer_{i}": {op: rng.random() for op in choices}
        for i, choices in enumerate(proxyless.layer_choices(TINY_WIDTHS))
    }


@pytest.fixture(scope="module")
def tiny_cost():
    return proxyless.ChainCost(TINY_WIDTHS, input_size=64, num_classes=10)


def test_chain_cost_is_the_counted_network(tiny_cost):
    ops = [random.Random(1).choice(choices) for choices in proxyless.layer_choices(TINY_WIDTHS)]
    _, cost = block_madds(tiny_cost.genotype_of(ops))
    assert tiny_cost(ops) == cost["madds"]


@pytest.mark.parametrize("seed", range(5))
def test_budget_repair_never_raises_madds_and_stops_as_soon_as_it_fits(tiny_cost, seed):
    table = _table(seed)
    argmax = proxyless.derive(table)
    least, _ = tiny_cost.minimum()
    budget = least + (tiny_cost(argmax) - least) * 0.4
    ops, steps = proxyless.fit_budget(argmax, table, tiny_cost, budget)
    assert steps and tiny_cost(ops) <= budget
    current, totals = list(argmax), [tiny_cost(argmax)]
    for step in steps:
        assert current[step["layer"]] == step["from"]
        current[step["layer"]] = step["to"]
        totals.append(tiny_cost(current))
        assert totals[-2] - totals[-1] == step["madds_saved"] > 0
    assert current == ops
    assert all(total > budget for total in totals[:-1])  # no step after the budget holds
    assert proxyless.fit_budget(argmax, table, tiny_cost, tiny_cost(argmax)) == (argmax, [])


def test_budget_below_the_smallest_network_names_the_minimum(tiny_cost):
    least, _ = tiny_cost.minimum()
    with pytest.raises(proxyless.BudgetError, match=f"smallest network of the space: {least / 1e6:.2f}M"):
        proxyless.fit_budget(proxyless.derive(_table(0)), _table(0), tiny_cost, least - 1)


def test_a_masked_candidate_is_not_run_gets_no_gradient_and_keeps_its_statistics():
    model = spaces.supernet("proxyless", 10, widths=TINY_WIDTHS, paths_per_step=2)
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    model(x)
    masks = model.sample_masks(5)
    assert all(int(np.sum(m)) == 2 for m in masks)
    layer, mask = model.chain[1], np.asarray(masks[1])
    stats = {id(v): v.numpy().copy() for v in layer.non_trainable_variables}
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True, masks=masks) ** 2)
    grads = dict(zip(map(id, model.trainable_variables), tape.gradient(loss, model.trainable_variables)))
    for name, candidate, on in zip(layer.names, layer.candidates, mask):
        moved = [not np.array_equal(stats[id(v)], v.numpy()) for v in candidate.non_trainable_variables]
        norms = [0.0 if grads[id(v)] is None else float(tf.norm(grads[id(v)])) for v in candidate.trainable_variables]
        if on and name != "zero":
            assert all(moved) and all(n > 0 for n in norms), name
        elif not on:
            assert not any(moved) and all(n == 0 for n in norms), name
    fresh = [np.asarray(m).tolist() for m in model.sample_masks(6)]
    assert fresh != [np.asarray(m).tolist() for m in masks]  # other paths at another step


@pytest.mark.slow
def test_tiny_proxyless_search_ends_within_the_budget(tmp_path):
    config = search_config(
        space="proxyless", dataset="digits", epochs=1, batch_size=64, learning_rate=0.05,
        widths=json.dumps(TINY_WIDTHS), max_madds=400e6,
    )
    result = ChainSearcher(config, tmp_path).run()
    genotype = json.loads(result["genotype"])
    assert genotype["widths"] == proxyless.REFERENCE_WIDTHS and genotype["input_size"] == 224
    assert result["target"]["madds"] == result["budget"]["madds"] <= 400e6
    assert result["budget"]["unconstrained_madds"] >= result["budget"]["madds"]
    unconstrained = json.loads(result["unconstrained_genotype"])["ops"]
    assert unconstrained == proxyless.derive(result["importance"])
    if unconstrained != genotype["ops"]:
        assert result["budget"]["replacements"] and result["budget"]["importance_given_up"] >= 0
    assert json.loads((tmp_path / "result.json").read_text())["genotype"] == result["genotype"]
    assert (tmp_path / "genotype.png").exists()


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"max_madds": 1e6}, "below the smallest network of the space"),
        ({"layers": 3}, "--layers size the cell spaces"),
        ({"widths": "[1, 2]"}, "--widths must be a JSON object"),
        ({"strategy": "darts"}, "searched with the IT strategy"),
    ],
)
def test_bad_chain_settings_are_refused(tmp_path, settings, message):
    config = search_config(space="proxyless", dataset="digits", epochs=1, **settings)
    with pytest.raises(ValueError, match=message):
        ChainSearcher(config, tmp_path).run()
    assert not (tmp_path / "result.json").exists()
