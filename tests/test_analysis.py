"""The analyses of issue 7: benchmark lookup, Kendall tau, zero-cost scores, Grad-CAM, the analyze CLI."""

import csv
import json
import math
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops
from scipy import stats

from itnas_tf import spaces
from itnas_tf.analysis import (AnalysisError, BenchmarkError, NB201Table, analyze, candidate_cams,
                               discretization_accuracy, kendall_per_edge, load_runs, zero_cost_importance)
from itnas_tf.analysis.runs import Run
from itnas_tf.analysis.trajectory import accuracy_trajectories
from itnas_tf.analysis.zero_cost import naswot, positive_weights, synflow
from itnas_tf.data import search_data
from itnas_tf.engine import MixedLayer, masked
from itnas_tf.ops import NB201_OPS

CELL = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|"


def _write_table(path, rows, columns=("arch_str", "cifar10_test_acc_200ep", "cifar100_test_acc_200ep")):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def test_kendall_tau_matches_scipy_on_hand_made_tables():
    indicator = {"a": {"x": 0.1, "y": 0.5, "z": 0.4}, "b": {"x": 0.3, "y": 0.3, "z": 0.1}}
    truth = {0: {"x": 90.0, "y": 93.0, "z": 91.0}, 1: {"x": 80.0, "y": 85.0, "z": 70.0}}
    taus = kendall_per_edge(indicator, truth)
    assert taus["a"] == pytest.approx(1.0)  # same order
    assert taus["b"] == pytest.approx(stats.kendalltau([0.3, 0.3, 0.1], [80.0, 85.0, 70.0]).statistic)
    assert -1 < taus["b"] < 1  # the tie counts (tau-b)
    assert math.isnan(kendall_per_edge({"a": {"x": 1, "y": 1}}, {0: {"x": 1, "y": 2}})["a"])
    with pytest.raises(ValueError, match="not the same space"):
        kendall_per_edge(indicator, {0: truth[0]})


def test_benchmark_lookup_and_best_accuracy_ground_truth(tmp_path):
    conv, skip, none = "nor_conv_3x3", "skip_connect", "none"
    rows = [
        (CELL.format(conv, conv, conv, conv, conv, conv), 94.0, 73.0),
        (CELL.format(skip, conv, conv, conv, conv, conv), 92.0, 74.0),
        (CELL.format(none, skip, skip, skip, skip, skip), 10.0, 1.0),
    ]
    table = NB201Table.from_csv(_write_table(tmp_path / "t.csv", rows))
    assert table.datasets == ("cifar10", "cifar100")
    assert table.accuracy(rows[1][0], "cifar100") == 74.0
    # the same cell written with its edges in another order is the same cell
    assert table.accuracy(f"|{skip}~0|+|{conv}~1|{conv}~0|+|{conv}~2|{conv}~0|{conv}~1|") == 92.0
    assert table.optimum("cifar100") == (rows[1][0], 74.0)
    best = table.best_with_op("cifar10")
    assert best[0] == {conv: 94.0, skip: 92.0, none: 10.0}
    assert best[1] == {conv: 94.0, skip: 10.0} and best[5] == {conv: 94.0, skip: 10.0}
    with pytest.raises(BenchmarkError, match="is not in"):
        table.accuracy(CELL.format(*[none] * 6))
    with pytest.raises(BenchmarkError, match="not an NB201 cell"):
        table.accuracy("|conv~0|")
    with pytest.raises(BenchmarkError, match="no accuracies on 'imagenet16_120'"):
        table.accuracy(rows[0][0], "imagenet16_120")
    bad = _write_table(tmp_path / "bad.csv", [(rows[0][0], 1.0)], ("arch_str", "accuracy"))
    with pytest.raises(BenchmarkError, match="lacks the columns"):
        NB201Table.from_csv(bad)


def test_shared_benchmark_table_reproduces_the_published_optima(shared_data):
    table = NB201Table.from_csv(shared_data("nb201/nb201_table.csv"))
    assert len(table.accuracies) == 15625
    assert [table.optimum(d)[1] for d in table.datasets] == [94.3733, 73.5133, 47.3111]  # reference.md


def test_warm_up_epochs_are_left_out_of_the_trajectory(shared_data):
    table = NB201Table.from_csv(shared_data("nb201/nb201_table.csv"))
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    ties = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"  # what uniform attention derives
    run = Run(None, {"space": "nb201", "strategy": "it", "mix": "weighted"},
              [{"warmup": True, "genotype": ties}, {"warmup": False, "genotype": cell}], None)
    (row,) = accuracy_trajectories([run], table)["it-weighted"]
    assert math.isnan(row[0]) and row[1] == table.accuracy(cell)


def _tiny_supernet(strategy="it", seed=0):
    keras.utils.set_random_seed(seed)
    model = spaces.supernet("nb201", 10, 4, 1, strategy=strategy)
    x = tf.random.normal((4, 16, 16, 3), seed=seed)
    model(x)
    return model, x


@pytest.mark.parametrize("mix", ["weighted", "transformer", "alphas"])
def test_masked_layer_with_one_op_returns_exactly_that_op(mix):
    keras.utils.set_random_seed(1)
    layer = MixedLayer.from_ops(NB201_OPS, 4, mix=mix)
    x = tf.random.normal((2, 6, 6, 4))
    weights = ops.softmax(tf.random.normal((5,))) if mix == "alphas" else None
    layer(x, weights=weights)
    mask = tf.Variable(np.eye(5, dtype="float32")[3])
    with masked({layer: mask}):
        alone = layer(x, weights=weights)
        if mix != "transformer":
            np.testing.assert_allclose(alone, layer.candidates[3](x), rtol=1e-5, atol=1e-6)
        mask.assign(np.eye(5, dtype="float32")[0])  # `none` alone: the edge outputs zeros (weighted mixes)
        if mix != "transformer":
            np.testing.assert_array_equal(layer(x, weights=weights), np.zeros(x.shape))
    assert layer.fixed_mask is None
    assert not np.allclose(layer(x, weights=weights), alone)  # unmasked again


def test_naswot_and_synflow_equal_their_definitions_on_a_small_network():
    keras.utils.set_random_seed(0)

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense1, self.dense2 = keras.layers.Dense(6, use_bias=False), keras.layers.Dense(3, use_bias=False)

        def call(self, x):
            return self.dense2(ops.relu(self.dense1(x)))

    net = Net()
    x = tf.random.normal((5, 4))
    net(x)
    dense1, dense2 = net.dense1, net.dense2
    codes = (dense1(x).numpy() > 0).astype("float64")
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    assert naswot(net, x) == pytest.approx(np.linalg.slogdet(kernel)[1])
    w1, w2 = np.abs(dense1.kernel.numpy()), np.abs(dense2.kernel.numpy())
    with positive_weights(net):
        score = synflow(net, x)
    # R = 1' |W1| |W2| 1 is linear in each layer's weights, so each layer's sum |w dR/dw| is R.
    assert score == pytest.approx(math.log(2 * np.ones(4) @ w1 @ w2 @ np.ones(3)), rel=1e-5)
    assert (dense1.kernel.numpy() < 0).any()  # the signs are back


def test_zero_cost_importance_covers_every_op_and_restores_the_supernet():
    model, x = _tiny_supernet("darts")
    before = [v.numpy() for v in model.variables]
    tables = zero_cost_importance(model, x)
    assert set(tables) == {"naswot", "synflow"}
    for table in tables.values():
        assert list(table) == list(model.search_edges())
        for row in table.values():
            assert list(row) == list(NB201_OPS) and all(map(math.isfinite, row.values()))
    # removing a convolution loses ReLU units: the NASWOT score drops on every edge
    assert all(row["nor_conv_3x3"] > 0 for row in tables["naswot"].values())
    for v, value in zip(model.variables, before):
        np.testing.assert_array_equal(v.numpy(), value)


def test_gradcam_maps_have_the_image_size_and_are_finite():
    model, x = _tiny_supernet()
    layer = model.search_edges()["edge_3_2"][2][-1]
    maps = candidate_cams(model, layer, x, [0, 1, 2, 3])
    assert maps.shape == (4, 5, 16, 16) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert not maps[:, 0].any()  # `none` has no output
    assert maps[:, 3].max() == pytest.approx(1.0)  # nor_conv_3x3's map is normalised to its peak
    assert "call" not in vars(layer.candidates[3])  # the hooks are gone


@pytest.mark.slow
def test_discretization_accuracy_scores_every_op_and_puts_the_weights_back():
    data = search_data("digits", 64, 0, divisor=4)
    keras.utils.set_random_seed(0)
    model = spaces.supernet("nb201", data.num_classes, 4, 1)
    model(next(iter(data.valid))[0])
    before = [v.numpy() for v in model.variables]
    table = discretization_accuracy(model, data, steps=2)
    assert list(table) == list(model.search_edges())
    assert all(list(row) == list(NB201_OPS) and all(0 <= a <= 1 for a in row.values()) for row in table.values())
    for v, value in zip(model.variables, before):
        np.testing.assert_array_equal(v.numpy(), value)


# --------------------------------------------------------------------------------------------------
# The CLI end to end

TINY = ["--space=nb201", "--dataset=digits", "--epochs=2", "--batch_size=128", "--init_channels=4", "--layers=1",
        "--target_layers=1"]


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    root = tmp_path_factory.mktemp("searches")
    for name, strategy in (("it", "it"), ("darts", "darts")):
        proc = subprocess.run([sys.executable, "-m", "itnas_tf.search", *TINY, f"--strategy={strategy}",
                               f"--output_dir={root / name}"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
    return root


def _analyze(*args):
    return subprocess.run([sys.executable, "-m", "itnas_tf.analyze", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_analyze_cli_refuses_a_folder_without_a_search(tmp_path):
    proc = _analyze(tmp_path, f"--output_dir={tmp_path / 'report'}")
    assert proc.returncode == 2 and "holds no search (no trajectory.json)" in proc.stderr
    assert not (tmp_path / "report").exists()


@pytest.mark.slow
def test_analyze_cli_writes_the_report(searches, shared_data, tmp_path):
    table = shared_data("nb201/nb201_table.csv")
    proc = _analyze(searches / "it", searches / "darts", f"--benchmark={table}", "--finetune_steps=1",
                    f"--output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "analysis.json").read_text())
    lookup = NB201Table.from_csv(table)
    for row in report["selected"]:
        result = json.loads((searches / row["label"].split("-")[0] / "result.json").read_text())
        assert row["genotype"] == result["genotype"] and row["cifar10"] == lookup.accuracy(result["genotype"])
    assert report["trajectory"]["it-weighted"][0][-1] == report["selected"][0]["cifar10"]
    assert set(report["kendall"]) == {"benchmark", "discretization"}
    assert set(report["kendall"]["benchmark"]) == {"it", "darts", "naswot", "synflow"}
    for name in ("trajectory.png", "kendall.png", "gradcam.png"):
        assert (tmp_path / name).stat().st_size > 5000
    text = (tmp_path / "report.md").read_text()
    assert "| it-weighted | 1 |" in text and "Kendall tau per edge vs the benchmark" in text


@pytest.mark.slow
def test_analyze_cli_bad_input(searches, shared_data, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(searches / "it", other)
    result = json.loads((other / "result.json").read_text())
    result["flags"]["space"] = "s2"
    (other / "result.json").write_text(json.dumps(result))
    with pytest.raises(AnalysisError, match="different spaces"):
        load_runs([searches / "it", other])
    proc = _analyze(searches / "it", other, f"--output_dir={tmp_path / 'a'}")
    assert proc.returncode == 2 and "different spaces" in proc.stderr

    # a benchmark table without the selected cell: the BenchmarkErrors' messages are checked in
    # process above, a folder without a search by the CLI test of the fast tier
    small = _write_table(tmp_path / "small.csv", [(CELL.format(*["nor_conv_3x3"] * 6), 94.0, 73.0)])
    proc = _analyze(searches / "it", f"--benchmark={small}", f"--output_dir={tmp_path / 'b'}")
    assert proc.returncode == 2 and "is not in" in proc.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # an unknown Grad-CAM edge fails after the trajectory and Kendall plots are made: none is left
    table = NB201Table.from_csv(shared_data("nb201/nb201_table.csv"))
    with pytest.raises(AnalysisError, match="No edge 'edge_9_9'"):
        analyze([searches / "it"], tmp_path / "e", table, discretize=False, zero_cost=False, gradcam_edge="edge_9_9")
    assert not (tmp_path / "e").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".e.tmp-")]
