import json
import subprocess
import sys

import numpy as np
import pytest

from itnas_tf.data import DataError, load_arrays, search_data, split_indices
from itnas_tf.genotypes import NB201Genotype
from itnas_tf.ops import NB201_OPS
from itnas_tf.spaces import nb201

TINY = ["--space=nb201", "--epochs=1", "--batch_size=128", "--init_channels=4", "--layers=1"]


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
    assert set(result["importance"]) == {"edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"}
    for row in result["importance"].values():
        assert list(row) == list(NB201_OPS) and 0 < sum(row.values()) < 1
    assert len(json.loads((out / "trajectory.json").read_text())) == 1
    assert "genotype: " + str(genotype) in proc.stdout

    again = _search(*TINY, "--dataset=digits", f"--output_dir={out}")
    assert again.returncode != 0 and "already holds a search result" in again.stderr
    assert json.loads((out / "result.json").read_text()) == result  # untouched


@pytest.mark.parametrize(
    "args,message",
    [
        (["--space=foo"], "space"),
        (["--dataset=imagenet"], "Unknown --dataset 'imagenet'"),
        (["--epochs=0"], "epochs"),
        (["--flagfile=/nonexistent.cfg"], "nonexistent.cfg"),
    ],
)
def test_cli_bad_input_is_a_clear_error(args, message, tmp_path):
    proc = _search(*TINY, f"--output_dir={tmp_path}", *args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "result.json").exists()


def test_split_is_disjoint_covering_and_seeded():
    train, valid = split_indices(1797, seed=3)
    assert not set(train) & set(valid)
    assert len(train) + len(valid) == 1797 and abs(len(train) - len(valid)) <= 1
    np.testing.assert_array_equal(split_indices(1797, seed=3)[0], train)
    assert not np.array_equal(split_indices(1797, seed=4)[0], train)


def test_npz_source_and_too_small_images(tmp_path, shared_data):
    path = shared_data("cifar10/cifar10_train_1000.npz")
    x, y = load_arrays(f"npz:{path}")
    assert x.shape == (1000, 32, 32, 3) and y.shape == (1000,)
    data = search_data(f"npz:{path}", 100, seed=0)
    assert data.num_classes == 10 and data.train_size == 500 and data.valid_size == 500
    small = tmp_path / "small.npz"
    np.savez(small, x=np.zeros((4, 2, 2, 1), "uint8"), y=np.arange(4))
    with pytest.raises(DataError, match="2x2 images"):
        search_data(f"npz:{small}", 2, seed=0, min_size=nb201.MIN_INPUT_SIZE)


def test_nb201_derivation_takes_the_argmax_of_each_edge():
    picks = ["nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3"]
    table = {
        f"e{i}": {op: (0.5 if op == pick else 0.1) for op in NB201_OPS} for i, pick in enumerate(picks)
    }
    assert nb201.derive(table) == NB201Genotype.from_ops(picks)
