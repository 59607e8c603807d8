"""The benchmark suite's smoke test: `python -m benchmarks.run --quick` runs every part end to end.

It asserts what the run produced, never how long anything took.
"""

import importlib.util
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys

import pytest

from benchmarks.sizes import STARTUP_RUNS

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_benchmark_measures_every_part_and_writes_the_report(tmp_path):
    out, figures = tmp_path / "benchmarks.md", tmp_path / "benchmarks.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", f"--out={out}", f"--json={figures}"],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(figures.read_text())
    assert results["sizes"] == "quick"
    strategies = {(r["space"], r["strategy"], r["mix"]) for r in results["supernet"]}
    assert strategies == {("nb201", "it", "weighted"), ("nb201", "it", "transformer"), ("nb201", "darts", "weighted")}
    for row in results["supernet"]:
        assert all(row[k] > 0 and math.isfinite(row[k]) for k in ("step_s", "forward_s", "peak_mb"))
    edges = results["edge"]
    assert {r["mix"] for r in edges} == {"weighted", "alphas"}
    assert {(r["policy"], r["jit"]) for r in edges} == {("float32", False), ("float32", True), ("mixed_bfloat16", False)}
    assert 0 <= results["pipeline"][0]["wait_share"] < 1
    for row in results["serving"]:
        for runtime in ("keras_predict", "keras_call", "saved_model", "onnxruntime"):
            assert row[runtime]["latency_ms"] > 0 and row[runtime]["throughput_ips"] > 0
    report = out.read_text()
    assert "Quick mode" in report and "python -m benchmarks.run --quick" in report
    for section in ("## Supernet", "## Selection cost", "## One mixed edge", "## Fast paths", "## Input pipeline",
                    "## Serving"):
        assert section in report
    assert report.count("| proxyless |") == 4 and report.count("| darts_cifar |") == 4
    (startup,) = results["startup"]
    parts = startup["parts"]
    assert set(parts) == {"imports", "build", "trace", "graph_optimisation", "step"}
    assert all(v >= 0 for v in parts.values()) and parts["imports"] > 0 and parts["trace"] > 0
    # the parts add up to the wall time from the process's start to the end of its first step
    assert abs(sum(parts.values()) - startup["startup_s"]) < 1e-6
    # the row is the median of its runs
    assert len(startup["runs_s"]) == STARTUP_RUNS and startup["startup_s"] == statistics.median(startup["runs_s"])
    assert "## Start-up" in report

    # --only remeasures one part and keeps the others' figures (the pipeline: one worker, where the
    # start-up's are three)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--only", "pipeline", f"--out={out}", f"--json={figures}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads(figures.read_text())
    assert all(again[part] == results[part] for part in ("startup", "supernet", "edge", "serving"))
    assert again["pipeline"] != results["pipeline"]
    assert again["parts_made_by"]["pipeline"]["command"] == "python -m benchmarks.run --quick --only pipeline"
    assert set(again["parts_made_by"]) == {"pipeline"}  # the others: the default run's command


@pytest.mark.slow
def test_quick_peer_run_measures_both_implementations_and_keeps_the_default_run(tmp_path):
    missing = [m for m in ("torch", "xautodl") if importlib.util.find_spec(m) is None]
    if missing:
        message = f"{missing} not installed (pip install --no-deps -r benchmarks/requirements-peer.txt)"
        if os.environ.get("ITNAS_REQUIRE_PEER") == "1":
            pytest.fail(message + "; ITNAS_REQUIRE_PEER=1 requires it.")
        pytest.skip(message)
    out, figures = tmp_path / "benchmarks.md", tmp_path / "benchmarks.json"
    figures.write_text((ROOT / "benchmarks" / "results" / "benchmarks.json").read_text())  # a default run's figures
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--peer", f"--out={out}", f"--json={figures}"],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    peer = json.loads((tmp_path / "peer.json").read_text())
    rows = {(r["space"], r["implementation"], r.get("layout")) for r in peer["rows"]}
    assert rows == {(space, impl, layout) for space in ("nb201", "darts") for impl, layout in
                    (("itnas_tf", None), ("xautodl", "nchw"), ("xautodl", "channels_last"))}
    for row in peer["rows"]:
        assert all(row[k] > 0 and math.isfinite(row[k]) for k in ("step_s", "forward_s", "startup_s"))
        assert row["peak_mb"] >= 0  # a toy model may stay under the peak that importing set
        shares = dict(row["profile"])
        assert abs(sum(shares.values()) - 1) < 1e-6 and len(shares) > 2
        assert any("onv" in op for op in shares), shares  # convolutions show up on both sides
    # same network shape on both sides: xautodl's weights (no alphas) vs ours (supernet + IT weights)
    ours, theirs = ({r["space"]: r["params"] for r in peer["rows"] if r.get("layout") in kinds} for kinds in
                    ((None,), ("nchw",)))
    assert all(ours[s] > theirs[s] for s in ours)
    report = out.read_text()
    assert "## Against the PyTorch reference (xautodl)" in report and "### Where the time goes" in report
    assert "## Supernet: IT against DARTS" in report  # the default run's sections stay
    assert report.count("xautodl DARTS, channels_last") == 2


def test_a_start_up_row_is_its_median_run_with_the_range_beside_it():
    from benchmarks.report import spread
    from benchmarks.run import median_runs

    darts, nb201 = {"kind": "startup", "space": "darts"}, {"kind": "startup", "space": "nb201"}
    rows = [{**net, "startup_s": total, "parts": {"build": total}}  # the rows in turn, as `plan` runs them
            for totals in ((61.0, 15.5), (50.0, 18.0), (48.0, 17.0)) for net, total in zip((darts, nb201), totals)]
    merged = median_runs(rows)
    assert [row["space"] for row in merged] == ["darts", "nb201"]
    assert [(row["startup_s"], row["parts"]["build"]) for row in merged] == [(50.0, 50.0), (17.0, 17.0)]
    assert merged[0]["runs_s"] == [61.0, 50.0, 48.0] and spread(merged[0]) == "48.0-61.0 of 3"
    assert spread({"startup_s": 50.0}) == "1 run"  # figures from before the rows were repeated


def test_bad_arguments_are_refused():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--parallel=0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "--parallel must be at least 1" in proc.stderr


def test_top2_rule_counts_the_edges_that_ranking_by_a_would_change(tmp_path):
    from itnas_tf.spaces import darts

    table = {name: {op: 0.2 if op == "sep_conv_3x3" else 0.0 for op in darts.PRIMITIVES}
             for cell in ("normal", "reduce") for name in darts.edge_names(cell)}
    # Node 2 (two edges) keeps both either way; node 3 keeps edges 0 and 2 by `a`, 1 and 2 by share.
    for cell in ("normal", "reduce"):
        table[f"{cell}_3_0"] = {**table[f"{cell}_3_0"], "sep_conv_3x3": 0.3, "none": 0.3}
        table[f"{cell}_3_1"] = {**table[f"{cell}_3_1"], "sep_conv_3x3": 0.1}
        table[f"{cell}_3_2"] = {**table[f"{cell}_3_2"], "sep_conv_3x3": 0.25, "avg_pool_3x3": 0.05}
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"importance": table}))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.top2_rule", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"| {path} | 0.400-0.900 | " in proc.stdout and " | 2 of 16 |" in proc.stdout, proc.stdout


def test_grappler_paired_times_each_instantiation_of_one_traced_step():
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.grappler_paired", "--channels=4", "--layers=1", "--batch=8", "--side=16",
         "--steps=2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout)
    for way in ("grappler off", "grappler lean", "grappler on"):
        assert len(figures[way]["steps_s"]) == 2 and figures[way]["first_call_s"] > figures[way]["step_median_s"] > 0
