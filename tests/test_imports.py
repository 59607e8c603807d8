"""Every module imports with only what its targets provide.

Under pytest this catches a missing requirement; under Bazel (where it runs, with test_build_file, as
CI's Bazel check) it catches a module whose target lacks a dependency or data file.
"""

import importlib
import json
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
# Command-line modules define absl flags at import, some under the same names (`IMPORT_CLIS`).
CLIS = [m for m in MODULES if (ROOT / (m.replace(".", "/") + ".py")).is_file()
        and "flags.DEFINE" in (ROOT / (m.replace(".", "/") + ".py")).read_text()]


def test_modules_are_found():
    assert "itnas_tf.engine.indicator_token" in MODULES and "itnas_tf.search" in CLIS


@pytest.mark.parametrize("module", [m for m in MODULES if m not in CLIS])
def test_library_module_imports(module):
    importlib.import_module(module)


# In one process (TensorFlow imported once, not once per module): each command line's flags are
# removed before the next one defines flags of the same names. Prints what failed, as JSON.
IMPORT_CLIS = """
import importlib, json, sys, traceback
from absl import flags
failed = {}
for module in sys.argv[1:]:
    before = set(flags.FLAGS)
    try:
        importlib.import_module(module)
    except BaseException:
        failed[module] = traceback.format_exc()[-1500:]
    for name in set(flags.FLAGS) - before:
        delattr(flags.FLAGS, name)
print(json.dumps(failed))
"""


def test_command_line_modules_import():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, "-c", IMPORT_CLIS, *CLIS], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed = json.loads(proc.stdout.splitlines()[-1])
    assert not failed, failed
