import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from itnas_tf.counting import count
from itnas_tf.data import DataError, load_arrays, search_data, split_indices
from itnas_tf.genotypes import NB201Genotype, parse_genotype
from itnas_tf.networks import NB201Network
from itnas_tf.ops import NB201_OPS
from itnas_tf.spaces import darts, nb201

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--space=nb201", "--epochs=1", "--batch_size=128", "--init_channels=4", "--layers=1", "--target_layers=1"]


def _search(*args):
    return subprocess.run(
        [sys.executable, "-m", "itnas_tf.search", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_searches_end_to_end_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "run"
    proc = _search(*TINY, "--dataset=digits", f"--output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    genotype = NB201Genotype.from_string(result["genotype"])
    assert (out / "genotype.txt").read_text().strip() == str(genotype)
    assert (out / "genotype.png").stat().st_size > 5000
    assert set(result["importance"]) == {"edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"}
    for row in result["importance"].values():
        assert list(row) == list(NB201_OPS) and 0 < sum(row.values()) < 1
    assert len(json.loads((out / "trajectory.json").read_text())) == 1
    assert "genotype: " + str(genotype) in proc.stdout
    target = result["target"]
    assert target["network"] == "NB201Network" and target["input_shape"] == [8, 8, 1]
    assert {k: target[k] for k in ("params", "madds")} == count(NB201Network(genotype, 10, 16, 1), (8, 8, 1))

    again = _search(*TINY, "--dataset=digits", f"--output_dir={out}")
    assert again.returncode != 0 and "already holds a search result" in again.stderr
    assert json.loads((out / "result.json").read_text()) == result  # untouched


@pytest.mark.slow
def test_warm_up_epochs_train_every_candidate_at_equal_weight_then_the_it_ranks(tmp_path):
    proc = _search(*TINY, "--epochs=2", "--warmup_epochs=1", "--dataset=digits", f"--output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    warm, ranked = json.loads((tmp_path / "trajectory.json").read_text())
    assert warm["warmup"] and not ranked["warmup"]
    for row in warm["importance"].values():  # the IT and the 5 candidates at 1/6 each
        np.testing.assert_allclose(list(row.values()), 1 / 6, rtol=1e-5)
    assert max(np.ptp(list(row.values())) for row in ranked["importance"].values()) > 1e-3


BAD_INPUT = [
    (["--space=foo"], "space"),
    (["--dataset=imagenet"], "Unknown --dataset 'imagenet'"),
    (["--epochs=0"], "epochs"),
    (["--learning_rate=-1"], "learning_rate"),
    (["--flagfile=/nonexistent.cfg"], "nonexistent.cfg"),
    (["--space=darts", "--layers=2"], "at least 3 cells"),
    (["--epochs=2", "--warmup_epochs=2"], "--warmup_epochs=2 leaves no epoch to rank in"),
]


@pytest.fixture(scope="module")
def bad_input_runs(cli_runs, tmp_path_factory):
    """Every case of `BAD_INPUT`, run in one process: `[(output folder, completed run)]`."""
    folders = [tmp_path_factory.mktemp("bad_input") for _ in BAD_INPUT]
    runs = cli_runs("itnas_tf.search", [[*TINY, f"--output_dir={f}", *args] for f, (args, _) in zip(folders, BAD_INPUT)])
    return list(zip(folders, runs))


@pytest.mark.parametrize("case", range(len(BAD_INPUT)), ids=[message for _, message in BAD_INPUT])
def test_cli_bad_input_is_a_clear_error(case, bad_input_runs):
    folder, proc = bad_input_runs[case]
    assert proc.returncode != 0
    assert BAD_INPUT[case][1] in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (folder / "result.json").exists()


def test_split_is_disjoint_covering_and_seeded():
    train, valid = split_indices(1797, seed=3)
    assert not set(train) & set(valid)
    assert len(train) + len(valid) == 1797 and abs(len(train) - len(valid)) <= 1
    np.testing.assert_array_equal(split_indices(1797, seed=3)[0], train)
    assert not np.array_equal(split_indices(1797, seed=4)[0], train)


@pytest.mark.slow
def test_darts_strategy_on_s1_searches_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = _search(
        "--space=s1", "--strategy=darts", "--epochs=1", "--batch_size=256", "--init_channels=4", "--layers=3",
        "--target_channels=4", "--target_layers=3", f"--output_dir={out}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    genotype = parse_genotype(result["genotype"])
    for cell in ("normal", "reduce"):
        allowed = darts.SPACE_OPS["s1"][cell]
        for name, candidates in zip(darts.edge_names(cell), allowed):
            row = result["importance"][name]
            assert tuple(row) == candidates and abs(sum(row.values()) - 1) < 1e-5  # softmaxed alphas
        for i, (op, j) in enumerate(getattr(genotype, cell)):
            assert op in allowed[darts.edge_names(cell).index(f"{cell}_{i // 2 + 2}_{j}")]
    assert result["target"]["network"] == "NetworkCIFAR"


def test_too_small_images_are_refused_by_the_cli(tmp_path):
    small = tmp_path / "small.npz"
    np.savez(small, x=np.zeros((8, 6, 6, 1), "uint8"), y=np.arange(8) % 2)
    proc = _search(*TINY, f"--dataset=npz:{small}", f"--output_dir={tmp_path / 'out'}")
    assert proc.returncode != 0 and "6x6 images" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "result.json").exists()


def test_npz_source_and_too_small_images(tmp_path, shared_data):
    path = shared_data("cifar10/cifar10_train_1000.npz")
    x, y = load_arrays(f"npz:{path}")
    assert x.shape == (1000, 32, 32, 3) and y.shape == (1000,)
    data = search_data(f"npz:{path}", 100, seed=0)
    assert data.num_classes == 10 and data.train_size == 500 and data.valid_size == 500
    small = tmp_path / "small.npz"
    np.savez(small, x=np.zeros((4, 2, 2, 1), "uint8"), y=np.arange(4))
    with pytest.raises(DataError, match="2x2 images"):
        search_data(f"npz:{small}", 2, seed=0, divisor=2 ** nb201.reductions(1))


def test_nb201_derivation_takes_the_argmax_of_each_edge():
    picks = ["nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3"]
    table = {
        f"e{i}": {op: (0.5 if op == pick else 0.1) for op in NB201_OPS} for i, pick in enumerate(picks)
    }
    assert nb201.derive(table) == NB201Genotype.from_ops(picks)


def _table(cell, picks):
    """A hand-made DARTS table: edge (k, j) -> importances, with `picks[(k, j)] = (op, value)`."""
    table = {}
    for name in darts.edge_names(cell):
        k, j = map(int, name.split("_")[1:])
        row = {op: 0.01 for op in darts.PRIMITIVES}
        row["none"] = 0.9  # `none` never counts, however strong
        if (k, j) in picks:
            op, value = picks[(k, j)]
            row[op] = value
        table[name] = row
    return table


def test_darts_derivation_keeps_the_two_strongest_non_none_edges_per_node():
    picks = {(2, 1): ("sep_conv_3x3", 0.5), (2, 0): ("dil_conv_5x5", 0.4), (3, 2): ("skip_connect", 0.3),
             (3, 0): ("max_pool_3x3", 0.6), (4, 3): ("sep_conv_5x5", 0.2), (4, 1): ("avg_pool_3x3", 0.25),
             (5, 4): ("dil_conv_3x3", 0.7), (5, 2): ("sep_conv_3x3", 0.1), (5, 0): ("skip_connect", 0.05)}
    table = {**_table("normal", picks), **_table("reduce", picks)}
    genotype = darts.derive(table)
    want = [("sep_conv_3x3", 1), ("dil_conv_5x5", 0), ("max_pool_3x3", 0), ("skip_connect", 2),
            ("avg_pool_3x3", 1), ("sep_conv_5x5", 3), ("dil_conv_3x3", 4), ("sep_conv_3x3", 2)]
    assert genotype.normal == want and genotype.reduce == want
    assert list(genotype.normal_concat) == [2, 3, 4, 5]


def test_darts_derivation_compares_edges_by_their_best_ops_share_of_the_row():
    # Node 3 by `a`: edges 0 (0.3) and 2 (0.25); by share: edges 1 (1.0) and 2 (0.83). The IT's own
    # column took 0.8 of edge 1's attention, which the `weighted` mix never trains.
    table = _table("normal", {}) | _table("reduce", {})
    rows = {0: {"none": 0.3, "sep_conv_3x3": 0.3}, 1: {"skip_connect": 0.2},
            2: {"max_pool_3x3": 0.25, "avg_pool_3x3": 0.05}}
    for cell in ("normal", "reduce"):
        for j, row in rows.items():
            table[f"{cell}_3_{j}"] = {op: 0.0 for op in darts.PRIMITIVES} | row
    genotype = darts.derive(table)
    assert genotype.normal[2:4] == genotype.reduce[2:4] == [("skip_connect", 1), ("max_pool_3x3", 2)]


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "configs").glob("*.cfg") if not p.name.startswith("retrain_")))
def test_every_search_flagfile_sets_known_flags_to_valid_values(config):
    from absl import flags

    import itnas_tf.search  # noqa: F401  (defines the flags)

    args = flags.FLAGS.read_flags_from_files([f"--flagfile={ROOT / 'configs' / config}"])
    assert args, f"{config} sets no flag"
    for arg in args:
        name, _, value = arg[2:].partition("=")
        assert name in flags.FLAGS, f"{config}: unknown flag --{name}"
        flags.FLAGS[name].parser.parse(value)  # raises on a bad value


@pytest.mark.slow
def test_mixed_precision_search_computes_in_half_precision_and_restores_the_policy(tmp_path):
    import keras

    from itnas_tf import precision
    from itnas_tf.searcher import Searcher, search_config

    class Kept(Searcher):
        def build(self, data):
            self.model, optimizers = super().build(data)
            self.alphas = self.model.arch_weights[0].numpy().copy()
            return self.model, optimizers

    config = search_config(space="nb201", strategy="darts", epochs=1, batch_size=128, init_channels=4, layers=1,
                           target_layers=1, mixed_precision=True)
    searcher = Kept(config, tmp_path / "run")
    result = searcher.run()
    half = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}[precision.policy_name(True)]
    assert result["dtype_policy"] == precision.policy_name(True)
    model = searcher.model
    assert model.compute_dtype == half and model.layers[-1].compute_dtype == half
    assert {w.dtype for w in model.weights} == {"float32"}
    assert np.isfinite(result["final_train_loss"])
    assert not np.allclose(model.arch_weights[0].numpy(), searcher.alphas)  # the arch step ran
    NB201Genotype.from_string(result["genotype"])
    assert keras.config.dtype_policy().name == "float32"  # the run's policy does not leak
