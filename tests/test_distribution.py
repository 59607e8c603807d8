"""Mirrored and multi-worker training: the same step on any replica count, workers that agree, and
clear refusals (each run is its own process: a device split or a cluster is fixed at TensorFlow's start)."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from itnas_tf import distribution

ROOT = pathlib.Path(__file__).resolve().parents[1]
# One step per epoch (898 search-train digits), so the logged loss is the first step's.
ONE_STEP = ["--flagfile=configs/quickstart.cfg", "--epochs=1", "--batch_size=898"]


def _search(*args, env=None, cores=None):
    return subprocess.Popen(
        [sys.executable, "-m", "itnas_tf.search", *args], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
        preexec_fn=None if cores is None else lambda: os.sched_setaffinity(0, cores),
    )


def _finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.mark.slow
def test_two_cpu_replicas_take_the_step_of_one_device(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _finish(_search(*ONE_STEP, f"--output_dir={one}"))
    _finish(_search(*ONE_STEP, f"--output_dir={two}", "--distribution=mirrored", "--cpu_replicas=2"))
    a, b = (json.loads((d / "result.json").read_text()) for d in (one, two))
    assert b["flags"]["cpu_replicas"] == 2
    # the forward pass: the `weighted` mix is the whole batch's mean row (one replica's half batch
    # would move this loss by 2e-3), the BatchNorms the whole batch's moments
    assert b["final_train_loss"] == pytest.approx(a["final_train_loss"], rel=1e-5)
    # the step: gradients clipped as a whole (Keras clipped each replica's share: weights 5e-2
    # apart). Float32 rounding alone moves the IT's small vectors by 2.4e-3 and the importances by
    # 5.4e-3 in this one step at learning rate 0.1 (the same one-device run with oneDNN's kernels
    # off), so those are the tolerances' scale, not 1e-4.
    weights = [np.load(d / "checkpoint.npz") for d in (one, two)]
    for key in (k for k in weights[0].files if k.startswith("model/")):
        if weights[0][key].shape in ((), (5,)):  # scalars (flags, counts) and the importance sums, whose
            continue  # final one-image batch two replicas leave out (data/pipeline.py, `min_batch`)
        np.testing.assert_allclose(weights[1][key], weights[0][key], atol=5e-3, err_msg=key)
    for edge, row in a["importance"].items():
        assert b["importance"][edge] == pytest.approx(row, abs=1.5e-2)
    # the mirrored checkpoint restores into the mirrored model (a finished run resumes to its own result)
    _finish(_search(*ONE_STEP, f"--output_dir={two}", "--distribution=mirrored", "--cpu_replicas=2", "--resume"))
    again = json.loads((two / "result.json").read_text())
    assert again["genotype"] == b["genotype"] and again["importance"] == b["importance"]


@pytest.mark.slow
def test_one_intra_op_thread_computes_what_a_one_core_machine_does(tmp_path):
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip(f"this machine lets the tests use {len(cores)} core: nothing to compare one core with")
    # the quickstart's --intra_op_threads=1 on every core, against TensorFlow's default on one core
    # (one thread there too). With the flagfile's count at 0 (the default), the weights differ on 2 cores.
    step = ["--flagfile=configs/quickstart.cfg", "--epochs=1", "--warmup_epochs=0"]
    procs = [_search(*step, f"--output_dir={tmp_path / 'one_core'}", "--intra_op_threads=0", cores=cores[:1]),
             _search(*step, f"--output_dir={tmp_path / 'every_core'}")]
    for proc in procs:
        _finish(proc)
    one, every = (np.load(tmp_path / run / "checkpoint.npz") for run in ("one_core", "every_core"))
    weights = [k for k in one.files if k.startswith("model/")]
    assert weights and sorted(weights) == sorted(k for k in every.files if k.startswith("model/"))
    for key in weights:
        np.testing.assert_array_equal(every[key], one[key], err_msg=key)


def test_a_thread_count_after_tensorflow_started_is_refused():
    tf.constant(1.0) + 1.0  # TensorFlow is running, on its default count
    with pytest.raises(distribution.DistributionError, match="--intra_op_threads=1: this process already runs "
                       "TensorFlow with its default number of intra-op thread.*start a new process"):
        distribution.make_strategy(intra_op_threads=1)


def _sampled_step(replicas):
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "sampled_step.py"), str(replicas)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT "):])


# The whole chain supernet on two replicas against one device: tests/test_flagfiles.py, through the
# paper's ImageNet flagfile.
@pytest.mark.slow
def test_sampled_paths_on_two_cpu_replicas_take_the_step_of_one_device():
    # the chain space's layers (MBConvs and `zero`, two skipped per layer) with synchronised BatchNorm,
    # which MirroredStrategy cannot all-reduce inside the `cond` that skips a candidate (issue 27)
    one, two = _sampled_step(1), _sampled_step(2)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    for layer, row in one["importance"].items():
        assert two["importance"][layer] == pytest.approx(row, abs=1e-4)
    for name, value in one["weights"].items():  # skipped candidates included: no update, no statistics
        np.testing.assert_allclose(two["weights"][name], value, rtol=1e-4, atol=1e-6, err_msg=name)
    for name, value in two["weights"].items():
        skipped = name.startswith(("layer_0/mb6_k5/", "layer_1/mb3_k3/", "layer_1/mb3_k7/"))
        if name.endswith("/moving_mean"):
            assert (np.asarray(value) == 0).all() == skipped, name


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": index}})


@pytest.mark.slow
def test_two_workers_on_localhost_search_together_and_agree(tmp_path):
    ports = _free_ports(2)
    args = ["--flagfile=configs/quickstart.cfg", "--epochs=2", "--batch_size=128", f"--output_dir={tmp_path}",
            "--distribution=multi_worker", "--worker_timeout=300"]
    procs = [_search(*args, env={"TF_CONFIG": _tf_config(ports, i)}) for i in range(2)]
    outs = [_finish(p) for p in procs]
    genotypes = [next(line for line in out.splitlines() if line.startswith("genotype: ")) for out in outs]
    assert genotypes[0] == genotypes[1]
    result = json.loads((tmp_path / "result.json").read_text())
    assert genotypes[0] == f"genotype: {result['genotype']}"
    assert "wrote" in outs[0] and "wrote" not in outs[1]  # only the chief writes
    # both workers restore the chief's checkpoint (a finished run resumes to its own result)
    ports = _free_ports(2)
    procs = [_search(*args, "--resume", env={"TF_CONFIG": _tf_config(ports, i)}) for i in range(2)]
    again = [_finish(p) for p in procs]
    assert [line for out in again for line in out.splitlines() if line.startswith("genotype: ")] == genotypes


@pytest.mark.slow
def test_a_worker_missing_from_tf_config_times_out_with_a_message(tmp_path):
    proc = _search("--flagfile=configs/quickstart.cfg", f"--output_dir={tmp_path / 'run'}", "--distribution=multi_worker",
                   "--worker_timeout=5", env={"TF_CONFIG": _tf_config(_free_ports(2), 0)})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "not every worker of TF_CONFIG came up within 5 s" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--distribution=multi_worker"], {"TF_CONFIG": ""}, "TF_CONFIG environment variable, which is not set"),
        (["--distribution=multi_worker"], {"TF_CONFIG": '{"cluster": {"worker": ["localhost:1"]}, "task": {"index": 3}}'},
         "task.index=3 names no worker"),
        (["--cpu_replicas=2"], {}, "--cpu_replicas=2 splits this machine's CPU for --distribution=mirrored"),
    ],
)
def test_bad_distribution_settings_are_refused(tmp_path, args, env, message):
    proc = _search("--flagfile=configs/quickstart.cfg", f"--output_dir={tmp_path}", *args, env=env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and message in err


def test_cpu_replicas_are_refused_on_a_machine_with_gpus(monkeypatch):
    real = tf.config.list_physical_devices
    gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [gpu] if kind == "GPU" else real(kind))
    with pytest.raises(distribution.DistributionError, match="for machines without GPUs, and this one has 1"):
        distribution.make_strategy("mirrored", cpu_replicas=2)
