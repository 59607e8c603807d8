"""NAS-Bench-1Shot1 spaces 1-3: the supernet, IT selection, and cells as NAS-Bench-101 takes them."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from itnas_tf import spaces
from itnas_tf.genotypes import GenotypeError
from itnas_tf.ops import NB101_OPS
from itnas_tf.spaces.nb101 import PARENTS, NB101Cell, Space


def _table(search_space, rng):
    blocks = len(PARENTS[search_space]) - 1
    table = {f"op_{k}": dict(zip(NB101_OPS, rng.random(3))) for k in range(1, blocks + 1)}
    table.update({f"inputs_{k}": {f"node_{j}": rng.random() for j in range(k)} for k in range(2, blocks + 1)})
    table["output"] = {f"node_{j}": rng.random() for j in range(blocks + 1)}
    return table


def _check_cell(cell, search_space):
    m = np.array(cell.matrix)
    assert m.shape == (7, 7) and not np.tril(m).any() and m.sum() <= 9
    assert cell.ops[0] == "input" and cell.ops[-1] == "output" and set(cell.ops[1:-1]) <= set(NB101_OPS)
    limits = PARENTS[search_space]
    if len(limits) == 5:  # 4 choice blocks: the unconnected vertex 5 NAS-Bench-1Shot1 inserts
        assert not m[5].any() and not m[:, 5].any() and cell.ops[5] == "conv1x1-bn-relu"
        m = np.delete(np.delete(m, 5, axis=0), 5, axis=1)
    assert m[:, 1:].sum(axis=0).tolist() == list(limits)  # each node's in-degree is the space's limit


@pytest.mark.parametrize("search_space", [1, 2, 3])
def test_derived_cells_are_nb101_matrices_within_the_space_limits(search_space):
    rng = np.random.default_rng(search_space)
    for _ in range(20):
        table = _table(search_space, rng)
        cell = Space(search_space).derive(table)
        _check_cell(cell, search_space)
        assert NB101Cell.from_json(str(cell)) == cell
        for k in range(1, len(PARENTS[search_space])):  # each block's op is the argmax of its row
            assert cell.ops[k] == max(table[f"op_{k}"], key=table[f"op_{k}"].get)


def test_derive_keeps_the_parents_of_largest_importance():
    table = {f"op_{k}": {"conv3x3-bn-relu": 0.5, "conv1x1-bn-relu": 0.2, "maxpool3x3": 0.3} for k in range(1, 5)}
    table["inputs_2"] = {"node_0": 0.9, "node_1": 0.1}  # space 2: one parent
    table["inputs_3"] = {"node_0": 0.1, "node_1": 0.5, "node_2": 0.4}
    table["inputs_4"] = {"node_0": 0.5, "node_1": 0.1, "node_2": 0.2, "node_3": 0.3}
    table["output"] = {"node_0": 0.3, "node_1": 0.1, "node_2": 0.2, "node_3": 0.25, "node_4": 0.15}
    cell = Space(2).derive(table)
    m = np.array(cell.matrix)
    parents = {node: np.flatnonzero(m[:, node]).tolist() for node in (1, 2, 3, 4, 6)}
    assert parents == {1: [0], 2: [0], 3: [1, 2], 4: [0, 3], 6: [0, 2, 3]}
    assert list(cell.ops) == ["input", *["conv3x3-bn-relu"] * 4, "conv1x1-bn-relu", "output"]


def test_bad_cells_are_refused():
    ok = NB101Cell.from_choices(3, ["maxpool3x3"] * 5, {1: [0], 2: [1], 3: [2], 4: [0, 3], 5: [1, 4], 6: [2, 5]})
    lower = [list(r) for r in ok.matrix]
    lower[3][1] = 1
    with pytest.raises(GenotypeError, match="upper-triangular"):
        NB101Cell(3, tuple(map(tuple, lower)), ok.ops)
    full = tuple(tuple(int(j > i) for j in range(7)) for i in range(7))
    with pytest.raises(GenotypeError, match="at most 9 edges"):
        NB101Cell(3, full, ok.ops)
    with pytest.raises(GenotypeError, match="NB101 ops"):
        NB101Cell(3, ok.matrix, ("input", "conv5x5", *ok.ops[2:]))
    with pytest.raises(GenotypeError, match="JSON"):
        NB101Cell.from_json("[1, 2]")


@pytest.mark.parametrize("strategy", ["it", "darts"])
def test_supernet_runs_under_both_strategies_and_lists_its_choices(strategy):
    keras.utils.set_random_seed(0)
    model = spaces.supernet("nb101_1shot1_s3", 10, 4, 1, strategy=strategy)
    x = tf.random.normal((2, 8, 8, 3))
    assert model(x).shape == (2, 10)
    edges = model.search_edges()
    assert list(edges) == [*(f"op_{k}" for k in range(1, 6)), *(f"inputs_{k}" for k in range(2, 6)), "output"]
    assert edges["inputs_4"][2][0].names == ["node_0", "node_1", "node_2", "node_3"]


@pytest.mark.slow
def test_cli_search_writes_the_model_spec(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "itnas_tf.search", "--space=nb101_1shot1_s2", "--dataset=digits",
                           "--epochs=1", "--batch_size=128", "--init_channels=4", "--layers=1", f"--output_dir={out}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    cell = NB101Cell.from_json(result["genotype"])
    _check_cell(cell, 2)
    assert result["target"]["model_spec"] == {"matrix": [list(r) for r in cell.matrix], "ops": list(cell.ops)}
    assert "api.ModelSpec(matrix=" in proc.stdout
