"""The command lines as a newcomer meets them: what they print, and one exit code per kind of failure."""

import concurrent.futures
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from itnas_tf import malloc
from itnas_tf.genotypes import NAMED, GenotypeError, read_genotype

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _cli(module, *args):
    """`python -m module args` as a newcomer runs it (no TF_CPP_MIN_LOG_LEVEL, which conftest sets)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=600)


def test_the_quickstart_tells_the_story_of_its_run(tmp_path):
    proc = _cli("itnas_tf.search", "--flagfile=configs/quickstart.cfg", f"--output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out, lines = proc.stdout, proc.stdout.splitlines()
    assert re.search(r"^traced; the first step took \d+\.\d s$", out, re.M), out
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == [f"{k}/10" for k in range(1, 11)]
    assert all(line.endswith("warm-up: not ranked yet") for line in epochs[:3])  # 3/10 of the epochs
    assert not any("warm-up" in line for line in epochs[3:]) and all("|" in line for line in epochs[3:])
    assert "Epoch " not in out and "genotype: |" in out
    assert "cuInit" not in proc.stderr and "cuda" not in proc.stderr.lower(), proc.stderr[-2000:]


# one bad value per command line; each is refused before it starts any work
BAD_FLAGS = {
    "itnas_tf.search": ["--epochs=0"],
    "itnas_tf.retrain": ["--genotype=DARTS_V2", "--epochs=0"],
    "itnas_tf.flops": ["--genotype=DARTS_V2", "--layers=0"],
    "itnas_tf.visualize": ["DARTS_V2", "--out=x.png", "--max_madds=0"],
    "itnas_tf.analyze": ["runs/x", "--output_dir=y", "--finetune_steps=-1"],
    "export": ["--checkpoint=runs/x", "--max_madds=0"],
    "itnas_tf.latency": ["--output=x.json", "--threads=0"],
    # argparse's (exit 2 of its own)
    "benchmarks.run": ["--parallel=x"],
    "benchmarks.selection_quality": ["--data=10M"],
    "benchmarks.memory_split": ["--layers=x"],
    "examples.tuner_digits": ["--trials=x"],
}


def test_every_command_line_exits_2_on_a_bad_flag_value():
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        procs = {module: pool.submit(_cli, module, *args) for module, args in BAD_FLAGS.items()}
    for module, proc in procs.items():
        proc = proc.result()
        flag = BAD_FLAGS[module][-1].split("=")[0]
        assert proc.returncode == 2 and "error: " in proc.stderr and flag in proc.stderr, (module, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr and "cuInit" not in proc.stderr


# DARTS_V2 with two more edges: a fifth node that nothing reads (the concat list still names 2..5)
TEN_EDGES = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), "
    "('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


@pytest.mark.parametrize("text,message", [
    (TEN_EDGES, "The normal cell's node(s) [6] feed nothing"),
    ("", "--genotype is empty"),
    ("  ", "--genotype is empty"),
    ("DARTS_V3", "no such published genotype 'DARTS_V3'"),
    ("no/such/file.json", "no such file 'no/such/file.json'"),
])
def test_bad_genotypes_are_refused_with_what_to_give(text, message):
    with pytest.raises(GenotypeError, match=re.escape(message)):
        read_genotype(text)


def test_published_genotypes_by_name_on_the_command_line(cli_runs):
    # a bad genotype on the command line (the other messages: test_bad_genotypes_are_refused_with_what_to_give)
    proc, listing, refused = cli_runs(
        "itnas_tf.flops", [["--genotype=DARTS_V2", "--json"], ["--genotype=help"], [f"--genotype={TEN_EDGES}"]]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"params": 3349342' in proc.stdout  # reference.md: DARTS V2 on darts_cifar
    assert listing.returncode == 0 and all(name in listing.stdout for name in NAMED)
    assert refused.returncode == 2 and "feed nothing" in refused.stderr and "Traceback" not in refused.stderr


# The allocator a command line runs with (itnas_tf/malloc.py), read off the process's own memory map.
# malloc.py is loaded by path, so that the probe starts without TensorFlow.
MALLOC_PROBE = """
import importlib.util, json, os
spec = importlib.util.spec_from_file_location("malloc", "itnas_tf/malloc.py")
malloc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(malloc)
malloc.restart_preloaded()
maps = {os.path.basename(line.split()[-1]) for line in open("/proc/self/maps") if ".so" in line}
print(json.dumps({"loaded": sorted(maps), "preload": os.environ.get("LD_PRELOAD")}))
"""


def _malloc_probe(**env):
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ITNAS_MALLOC")}
    proc = subprocess.run([sys.executable, "-c", MALLOC_PROBE], capture_output=True, text=True, cwd=ROOT,
                          env={**base, **env}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _allocators(loaded):
    return [name for name in loaded if any(a in name for a in malloc.CANDIDATES)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD and /proc/self/maps are Linux's")
def test_a_command_line_starts_again_with_a_faster_allocator_and_gives_the_environment_back():
    if malloc.library() is None:
        pytest.skip("neither jemalloc nor tcmalloc is installed (apt-get install libjemalloc2; .ci/run does)")
    probe = _malloc_probe()
    assert _allocators(probe["loaded"]) and probe["preload"] is None, probe
    probe = _malloc_probe(LD_PRELOAD="libm.so.6")  # the user's own preload stays, and comes back
    assert _allocators(probe["loaded"]) and probe["preload"] == "libm.so.6", probe
    probe = _malloc_probe(ITNAS_MALLOC="system")
    assert not _allocators(probe["loaded"]) and probe["preload"] is None, probe


def test_only_our_own_modules_start_again():
    assert malloc.ours(["python", "-m", "itnas_tf.search", "--epochs=1"])
    assert malloc.ours(["python", "-u", "-m", "itnas_tf.retrain"])
    # they time models for deployment, with the system's allocator
    assert not malloc.ours(["python", "-m", "itnas_tf.latency", "--output=x.json"])
    assert not malloc.ours(["python", "-m", "export", "--checkpoint=runs/retrain"])
    assert not malloc.ours(["python", "-m", "pytest", "itnas_tf.search"])
    assert not malloc.ours(["python", "-c", "import itnas_tf.search"])


def test_an_allocator_that_is_not_there_is_refused_before_anything_starts(tmp_path):
    env = {**os.environ, "ITNAS_MALLOC": str(tmp_path / "libnothing.so")}
    proc = subprocess.run([sys.executable, "-m", "itnas_tf.visualize", "DARTS_V2", f"--out={tmp_path / 'x.png'}"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 2 and "ITNAS_MALLOC=" in proc.stderr and "is not a file" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.png").exists()


def test_the_export_command_line_starts_quiet_too():
    # runpy sets argv[0] to export/__main__.py's path before running it; the package starts itnas_tf
    proc = _cli("export", "--helpshort")  # absl's help exits 1
    assert "--checkpoint" in proc.stdout + proc.stderr and "cuda" not in proc.stderr.lower(), proc.stderr[-2000:]
