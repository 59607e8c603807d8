"""A search killed with SIGKILL, or stopped by a non-finite loss, resumes to the uninterrupted result."""

import json
import subprocess
import sys

import numpy as np
import pytest

from itnas_tf import checkpoint

RUN = ["--space=nb201", "--dataset=digits", "--epochs=4", "--batch_size=32", "--init_channels=4",
       "--layers=1", "--target_layers=1", "--seed=5"]


def _search(*args):
    return subprocess.run(
        [sys.executable, "-m", "itnas_tf.search", *RUN, *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_killed_search_resumes_to_the_uninterrupted_result(tmp_path, kill_after_first_epoch):
    whole = _search(f"--output_dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr[-2000:]
    expected = json.loads((tmp_path / "whole" / "result.json").read_text())

    out = tmp_path / "killed"
    kill_after_first_epoch("itnas_tf.search", RUN, out)
    assert not (out / "result.json").exists()
    epoch = checkpoint.load_state(out / "checkpoint.npz")["epoch"]
    assert 1 <= epoch < 4

    again = _search(f"--output_dir={out}")  # neither --resume nor --overwrite
    assert again.returncode != 0 and "--resume" in again.stderr

    other = _search(f"--output_dir={out}", "--resume", "--seed=6")
    assert other.returncode != 0 and "--seed=5 (now 6)" in other.stderr

    # A diverging resumed epoch stops with a message and keeps the last good checkpoint.
    diverged = _search(f"--output_dir={out}", "--resume", "--learning_rate=1e30", "--grad_clip=0")
    assert diverged.returncode != 0, diverged.stdout[-2000:]
    assert "non-finite" in diverged.stderr and "last good checkpoint" in diverged.stderr
    assert checkpoint.load_state(out / "checkpoint.npz")["epoch"] == epoch
    assert not (out / "result.json").exists()

    resumed = _search(f"--output_dir={out}", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["genotype"] == expected["genotype"]
    for edge, row in expected["importance"].items():
        np.testing.assert_allclose(list(result["importance"][edge].values()), list(row.values()), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result["final_train_loss"], expected["final_train_loss"], rtol=1e-5)
    trajectory = json.loads((out / "trajectory.json").read_text())
    assert [t["epoch"] for t in trajectory] == [1, 2, 3, 4]


def test_checkpoint_round_trip_and_refusals(tmp_path):
    import keras
    import pytest

    def model_of(width):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(width)])
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
        optimizer.build(model.trainable_variables)
        return model, {"optimizer": optimizer}

    model, optimizers = model_of(2)
    path = tmp_path / "checkpoint.npz"
    checkpoint.save(path, model, optimizers, {"epoch": 3})
    copy, copy_optimizers = model_of(2)
    assert checkpoint.restore(path, copy, copy_optimizers) == {"epoch": 3}
    for a, b in zip(model.weights + optimizers["optimizer"].variables, copy.weights + copy_optimizers["optimizer"].variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(checkpoint.CheckpointError, match="does not match this network"):
        checkpoint.restore(path, *model_of(4))
    path.write_bytes(b"truncated")
    with pytest.raises(checkpoint.CheckpointError, match="Cannot read the checkpoint"):
        checkpoint.load_state(path)
