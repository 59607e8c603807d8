"""Every Python file of the project is part of a Bazel target, so `bazel test //...` sees it all."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_module_is_listed_in_build():
    listed = set(re.findall(r'"([\w/]+\.py)"', (ROOT / "BUILD").read_text()))
    modules = {
        str(p.relative_to(ROOT))
        for folder in ("itnas_tf", "export", "examples", "benchmarks")
        for p in (ROOT / folder).rglob("*.py")
    }
    missing = sorted(modules - listed)
    assert not missing, f"add these to a py_library/py_binary in BUILD: {missing}"
    assert not sorted(f for f in listed if not (ROOT / f).exists()), "BUILD lists files that do not exist"


def test_every_test_file_has_a_bazel_target():
    build = (ROOT / "tests" / "BUILD").read_text()
    assert 'glob(["test_*.py"])' in build
    stray = [p.name for p in (ROOT / "tests").glob("*.py") if not p.name.startswith("test_")]
    helpers = ["conftest.py", "predict_without_tensorflow.py", "pytest_runner.py", "run_cli.py", "run_flagfile.py", "sampled_step.py"]
    assert sorted(stray) == helpers, f"unexpected helper files: {stray}"
