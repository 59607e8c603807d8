"""The benchmark suite's smoke test: `python -m benchmarks.run --quick` runs every part end to end.

It asserts what the run produced, never how long anything took.
"""

import json
import math
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


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


def test_bad_arguments_are_refused():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--parallel=0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "--parallel must be at least 1" in proc.stderr
