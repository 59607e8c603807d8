"""keras-tuner integration: ITNASOracle's ranking, real tuner runs, restarts, and the HyperModel."""

import itertools
import json
import math
import pathlib
import subprocess
import sys

import keras_tuner
import numpy as np
import pytest

from itnas_tf.counting import count
from itnas_tf.data.sources import load_arrays
from itnas_tf.genotypes import DARTS_V2, NB201Genotype, genotype_text
from itnas_tf.networks import build_network
from itnas_tf.spaces import darts, nb201
from itnas_tf.tuner import CellCost, ITNASHyperModel, ITNASOracle, from_genotype, to_genotype, to_text
from itnas_tf.tuner import ranking
from itnas_tf.tuner import space as space_lib

ROOT = pathlib.Path(__file__).parents[1]
TINY = {"space": "nb201", "dataset": "digits", "epochs": 1, "init_channels": 4, "layers": 1}
STOPPED = keras_tuner.engine.trial.TrialStatus.STOPPED


def random_table(space, seed):
    rng = np.random.default_rng(seed)
    table = {}
    for edge in space_lib.edge_ops(space):
        ops = list(nb201.NB201_OPS) if space == "nb201" else list(darts.SPACE_OPS[space][edge.split("_")[0]][
            darts.edge_names(edge.split("_")[0]).index(edge)])
        weights = rng.dirichlet(np.ones(len(ops)))
        table[edge] = dict(zip(ops, map(float, weights)))
    return table


def fake_result(space, seed=0, target=None):
    """A result.json as a search writes it, with a random importance table."""
    table = random_table(space, seed)
    derive = nb201.derive if space == "nb201" else darts.derive
    return {"space": space, "genotype": genotype_text(derive(table)), "importance": table,
            "target": target or {"num_classes": 10, "init_channels": 4, "layers": 1 if space == "nb201" else 3,
                                 "input_shape": [8, 8, 1]}}


@pytest.fixture(scope="module")
def search_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    ITNASOracle.from_search(out, TINY)
    return out / "result.json"


@pytest.fixture(scope="module")
def digits():
    x, y = load_arrays("digits")
    x = (x / 255.0).astype("float32")
    return dict(x=x[:600], y=y[:600], validation_data=(x[1500:], y[1500:]), epochs=1, batch_size=64, verbose=0)


def tuner_for(oracle, hypermodel, directory, overwrite=True):
    return keras_tuner.Tuner(oracle=oracle, hypermodel=hypermodel, directory=directory, project_name="p",
                             overwrite=overwrite)


def trial_list(oracle):
    return [oracle.trials[t] for t in sorted(oracle.trials)]


def hypermodel():
    return ITNASHyperModel("nb201", num_classes=10, init_channels=4, layers=1)


# --------------------------------------------------------------------------------------------------
# The ranking, exactly


def test_ranking_lists_every_nb201_cell_once_in_non_increasing_order_and_starts_with_the_selection():
    table = random_table("nb201", 1)
    ranked = list(ranking.ranked(ranking.factors("nb201", table)))
    assert len(ranked) == 5 ** 6
    keys = [to_text("nb201", values) for _, values in ranked]
    assert len(set(keys)) == len(keys)
    scores = [s for s, _ in ranked]
    assert all(a >= b for a, b in zip(scores, scores[1:]))
    brute = sorted(
        (sum(math.log(table[e][op]) for e, op in zip(table, ops)) for ops in itertools.product(nb201.NB201_OPS, repeat=6)),
        reverse=True,
    )
    np.testing.assert_allclose(scores, brute, rtol=1e-12)
    assert keys[0] == str(nb201.derive(table))


@pytest.mark.parametrize("space", ["darts", "s1", "s3"])
def test_best_darts_architecture_is_the_derivation_rule(space):
    for seed in range(5):
        table = random_table(space, seed)
        parts = ranking.factors(space, table)
        ops = space_lib.edge_ops(space)
        assert [len(p) for p in parts[:4]] == [
            sum(len(ops[f"normal_{k}_{a}"]) * len(ops[f"normal_{k}_{b}"]) for a, b in itertools.combinations(range(k), 2))
            for k in range(2, 6)
        ]
        score, best = next(ranking.ranked(parts))
        assert to_genotype(space, best) == to_genotype(space, from_genotype(space, darts.derive(table)))
        second, _ = next(itertools.islice(ranking.ranked(parts), 1, None))
        assert second <= score


def test_hyperparameters_round_trip_to_genotypes():
    cell = NB201Genotype.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")
    assert to_genotype("nb201", from_genotype("nb201", cell)) == cell
    values = from_genotype("darts", DARTS_V2)
    assert to_text("darts", values) == to_text("darts", from_genotype("darts", to_genotype("darts", values)))
    # same architecture: each node's edges, whatever their order
    for cell_name in ("normal", "reduce"):
        got = getattr(to_genotype("darts", values), cell_name)
        want = getattr(DARTS_V2, cell_name)
        assert [sorted(got[i:i + 2]) for i in range(0, 8, 2)] == [sorted(want[i:i + 2]) for i in range(0, 8, 2)]
    hp = keras_tuner.HyperParameters()
    declared = space_lib.declare(hp, "darts")
    assert declared["normal_2_inputs"] == "0,1" and "normal_3_2" not in declared  # inactive until chosen
    assert len(hp.space) == 8 + 2 * darts.NUM_EDGES


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_cell_cost_equals_the_counter_on_the_built_network(space):
    sizes = dict(num_classes=10, init_channels=4, layers=1 if space == "nb201" else 3, input_shape=(8, 8, 1))
    cost = CellCost(space, **sizes)
    parts = ranking.factors(space, random_table(space, 3))
    rng = np.random.default_rng(0)
    network = "nb201" if space == "nb201" else "darts_cifar"
    for _ in range(3):
        values = {}
        for part in parts:
            values.update(part[rng.integers(len(part))][1])
        net = build_network(network, to_genotype(space, values), 10, 4, sizes["layers"])
        assert cost(values) == count(net, sizes["input_shape"])["madds"]


# --------------------------------------------------------------------------------------------------
# Real tuner runs


@pytest.mark.slow
def test_itnas_oracle_trials_best_first_restart_and_best_model(search_result, digits, tmp_path):
    result = json.loads(search_result.read_text())
    oracle = ITNASOracle(search_result, max_trials=3)
    tuner = tuner_for(oracle, hypermodel(), tmp_path)
    tuner.search(**digits)
    trials = trial_list(oracle)
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    assert to_text("nb201", trials[0].hyperparameters) == result["genotype"]
    assert oracle.create_trial("another").status == STOPPED  # max_trials reached

    # restart the same project with a larger budget: it continues, no trial repeated
    oracle = ITNASOracle(search_result, max_trials=5)
    tuner = tuner_for(oracle, hypermodel(), tmp_path, overwrite=False)
    assert len(oracle.trials) == 3
    tuner.search(**digits)
    trials = trial_list(oracle)
    keys = [to_text("nb201", t.hyperparameters) for t in trials]
    assert len(trials) == 5 and len(set(keys)) == 5
    scores = [oracle.log_importance(t.hyperparameters) for t in trials]
    assert all(a >= b - 1e-9 for a, b in zip(scores, scores[1:]))
    expected = [to_text("nb201", v) for _, v in itertools.islice(ranking.ranked(oracle.parts), 5)]
    assert keys == expected

    best_hp = tuner.get_best_hyperparameters()[0]
    best_model = tuner.get_best_models()[0]
    genotype = to_genotype("nb201", best_hp)
    rebuilt = build_network("nb201", genotype, 10, 4, 1)
    assert count(rebuilt, (8, 8, 1))["params"] == count(best_model, (8, 8, 1))["params"]
    assert best_model.genotype == genotype


def test_oracle_stops_when_the_budget_leaves_no_more_architectures(tmp_path):
    result = fake_result("nb201", seed=2)
    sizes = {k: result["target"][k] for k in ("num_classes", "init_channels", "layers", "input_shape")}
    cost = CellCost("nb201", **sizes)
    cheapest = cost(from_genotype("nb201", NB201Genotype.from_ops(["skip_connect"] * 6)))
    # only cells of none, skip_connect and avg_pool_3x3 (no MAdds of their own) fit: 3**6 of them
    oracle = ITNASOracle(result, max_madds=cheapest)
    oracle._set_project_dir(str(tmp_path), "budget")  # as a Tuner does
    proposed = []
    for i in itertools.count():
        trial = oracle.create_trial(f"tuner{i}")  # a tuner each, so no trial needs ending first
        if trial.status == STOPPED:
            break
        proposed.append(to_genotype("nb201", trial.hyperparameters))
    assert len(proposed) == 3 ** 6 == len(set(map(str, proposed)))
    assert all({op for op, _, _ in g.edges()} <= {"none", "skip_connect", "avg_pool_3x3"} for g in proposed)
    for genotype in proposed[:2]:
        net = build_network("nb201", genotype, 10, 4, 1)
        assert count(net, (8, 8, 1))["madds"] <= cheapest


@pytest.mark.slow
def test_budgeted_darts_trials_fit_and_keep_the_order(tmp_path):
    result = fake_result("darts", seed=4)
    free = ITNASOracle(result)
    unconstrained = [v for v in itertools.islice(free._ranking(), 30)]
    cost = CellCost("darts", 10, 4, 3, (8, 8, 1))
    budget = sorted(cost(v) for v in unconstrained)[15]
    oracle = ITNASOracle(result, max_madds=budget)
    fitting = [to_text("darts", v) for v in unconstrained if cost(v) <= budget]
    got = [to_text("darts", v) for v in itertools.islice(oracle._ranking(), len(fitting))]
    assert got == fitting


@pytest.mark.slow
@pytest.mark.parametrize("baseline,space", [("random", "darts"), ("bayesian", "nb201"), ("hyperband", "nb201")])
def test_keras_tuner_oracles_drive_the_hypermodel(baseline, space, digits, tmp_path):
    hm = ITNASHyperModel(space, num_classes=10, init_channels=4, layers=3 if space == "darts" else 1)
    common = dict(objective="val_accuracy", seed=1, directory=tmp_path, project_name=baseline)
    tuner = {
        "random": lambda: keras_tuner.RandomSearch(hm, max_trials=2, **common),
        "bayesian": lambda: keras_tuner.BayesianOptimization(hm, max_trials=2, num_initial_points=1, **common),
        "hyperband": lambda: keras_tuner.Hyperband(hm, max_epochs=2, hyperband_iterations=1, factor=2, **common),
    }[baseline]()
    tuner.search(**{**digits, "x": digits["x"][:200], "y": digits["y"][:200]})
    trials = list(tuner.oracle.trials.values())
    assert trials and all(t.status == "COMPLETED" for t in trials)
    for trial in trials:
        genotype = to_genotype(space, trial.hyperparameters)
        assert set(from_genotype(space, genotype).items()) <= set(trial.hyperparameters.values.items())


@pytest.mark.slow
def test_example_script_compares_itnas_with_random_search(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "examples.tuner_digits", f"--out={tmp_path}", "--trials=2", "--epochs=1",
         "--search_epochs=1", "--channels=4"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "search" / "result.json").read_text())
    itnas, random_search = proc.stdout.split("IT-NAS: ")[1].split("random: ")
    assert itnas.startswith("2 trials") and random_search.startswith("2 trials")
    first = itnas.splitlines()[2].split()
    assert first[0] == "0" and first[2] == result["genotype"]


# --------------------------------------------------------------------------------------------------
# Bad input, refused at construction


def test_result_from_another_space_is_refused(tmp_path):
    with pytest.raises(ValueError, match="from the nb201 space, not darts"):
        ITNASOracle(fake_result("nb201"), space="darts")
    broken = fake_result("nb201")
    broken["space"] = "darts"
    with pytest.raises(ValueError, match="not one of the darts space.*another space"):
        ITNASOracle(broken)
    path = tmp_path / "notes.json"
    path.write_text(json.dumps({"loss": 1.0}))
    with pytest.raises(ValueError, match="not a search's result.json"):
        ITNASOracle(path)
    with pytest.raises(ValueError, match="No such search result"):
        ITNASOracle(tmp_path / "missing.json")


@pytest.mark.parametrize("space,model_space,message", [
    ("nb201", "darts", "do not match the oracle's nb201 space: unknown to it"),
    ("s2", "s4", r"declared with choices \['skip_connect', 'sep_conv_3x3'\], but the s4 space has \['noise', 'sep_conv_3x3'\]"),
])
def test_hypermodel_of_another_space_is_refused_when_the_tuner_is_made(space, model_space, message, tmp_path):
    oracle = ITNASOracle(fake_result(space))
    hm = ITNASHyperModel(model_space, num_classes=10, init_channels=4, layers=3)
    with pytest.raises(ValueError, match=message):
        tuner_for(oracle, hm, tmp_path)


def test_budget_below_the_cheapest_network_names_the_minimum():
    with pytest.raises(ValueError, match=r"No architecture of the nb201 space fits max_madds=1,000: the cheapest .* has [\d,]+ MAdds"):
        ITNASOracle(fake_result("nb201"), max_madds=1000)


def test_restarting_a_project_with_another_result_is_refused(tmp_path, digits):
    oracle = ITNASOracle(fake_result("nb201", seed=0), max_trials=1)
    tuner_for(oracle, hypermodel(), tmp_path).search(**{**digits, "x": digits["x"][:100], "y": digits["y"][:100]})
    with pytest.raises(ValueError, match="another search result or budget.*overwrite=True"):
        tuner_for(ITNASOracle(fake_result("nb201", seed=1)), hypermodel(), tmp_path, overwrite=False)


def test_search_settings_are_checked():
    from itnas_tf.searcher import search_config

    with pytest.raises(ValueError, match=r"Unknown search setting\(s\) \['epoch'\]"):
        search_config(epoch=3)


def test_search_defaults_are_the_cli_flags():
    from itnas_tf import search
    from itnas_tf.searcher import DEFAULTS

    flags = search.FLAGS.get_flags_for_module(search)
    assert {f.name: f.default for f in flags if f.name not in search.RUN_CONTROL} == DEFAULTS
