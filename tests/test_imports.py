"""Every module imports with only what its targets provide.

Under pytest this catches a missing requirement; under Bazel (where it runs, with test_build_file, as
CI's Bazel check) it catches a module whose target lacks a dependency or data file.
"""

import importlib
import os
import pathlib
import subprocess
import sys

import pytest

# Not resolved: under Bazel this is the runfiles tree, so only the modules the targets provide are seen.
ROOT = pathlib.Path(os.path.abspath(__file__)).parents[1]
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for folder in ("itnas_tf", "export", "examples", "benchmarks")
    for p in (ROOT / folder).rglob("*.py")
)
# Command-line modules define absl flags at import, some under the same names: one process each.
CLIS = [m for m in MODULES if (ROOT / (m.replace(".", "/") + ".py")).is_file()
        and "flags.DEFINE" in (ROOT / (m.replace(".", "/") + ".py")).read_text()]


def test_modules_are_found():
    assert "itnas_tf.engine.indicator_token" in MODULES and "itnas_tf.search" in CLIS


@pytest.mark.parametrize("module", [m for m in MODULES if m not in CLIS])
def test_library_module_imports(module):
    importlib.import_module(module)


def test_command_line_modules_import():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    failed = {}
    for module in CLIS:
        proc = subprocess.run([sys.executable, "-c", f"import {module}"], env=env, capture_output=True, text=True)
        if proc.returncode:
            failed[module] = proc.stderr[-1500:]
    assert not failed, failed
