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
from itnas_tf.spaces.proxyless_latency import LatencyTable

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


def _latency_table(cost):
    """A latency table of made-up milliseconds in which large kernels are slow for their MAdds."""
    kernel = {"zero": 0.0, "mb3_k3": 1.0, "mb6_k3": 1.0, "mb3_k5": 2.0, "mb6_k5": 2.0, "mb3_k7": 4.0, "mb6_k7": 4.0}
    layers = [{op: madds / 1e6 * kernel[op] for op, madds in terms.items()} for terms in cost.terms]
    return LatencyTable({"call_ms": 0.01, "fixed_ms": {"stem": 0.2, "head": 0.1}, "layers": layers, "cpu": "none",
                         "threads": 1})


@pytest.mark.parametrize("seed", range(3))
def test_budget_repair_under_latency_and_madds_keeps_both_and_stops_when_both_hold(tiny_cost, seed):
    table, latency = _table(seed), _latency_table(tiny_cost)
    argmax = proxyless.derive(table)
    max_ms = latency.minimum()[0] + (latency(argmax) - latency.minimum()[0]) * 0.3
    max_madds = tiny_cost(argmax) * 0.9
    ops, steps = proxyless.fit_budget(argmax, table, tiny_cost, max_madds, latency, max_ms)
    assert latency(ops) <= max_ms and tiny_cost(ops) <= max_madds
    current = list(argmax)
    for step in steps:
        before = (latency(current), tiny_cost(current))
        current[step["layer"]] = step["to"]
        after = (latency(current), tiny_cost(current))
        assert before[0] > max_ms or before[1] > max_madds  # no step once both hold
        if before[0] > max_ms:  # latency first: each step saves time, and MAdds stay in or do not grow
            assert step["ms_saved"] == pytest.approx(before[0] - after[0]) and step["ms_saved"] > 0
            assert after[1] <= max(max_madds, before[1])
        assert step["madds_saved"] == before[1] - after[1]
    assert current == ops
    with pytest.raises(proxyless.BudgetError, match=f"fastest network of the space: {latency.minimum()[0]:.3f} ms"):
        proxyless.fit_budget(argmax, table, tiny_cost, max_madds, latency, latency.minimum()[0] * 0.99)


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
