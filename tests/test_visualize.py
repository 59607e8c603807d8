"""Pictures of genotypes: DARTS and NB201 cells (Graphviz or matplotlib), ProxylessNAS chains."""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest
from matplotlib import image

from itnas_tf import DARTS_V2, PROXYLESS_GPU, NB201Genotype, format_genotype
from itnas_tf.plots import PlotError, chain_blocks, darts_cells, nb201_cell, picture, to_dot, write
from itnas_tf.plots.cells import LEGEND, margin_colour

ROOT = pathlib.Path(__file__).resolve().parents[1]
NB201 = NB201Genotype.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")


def _visualize(*args, env=None):
    return subprocess.run([sys.executable, "-m", "itnas_tf.visualize", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=env)


def _assert_picture(path, min_side=150):
    pixels = image.imread(path)
    assert min(pixels.shape[:2]) >= min_side and pixels.std() > 0.05, f"{path} is blank or tiny: {pixels.shape}"


def _texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts + [ax.title])


def test_dot_source_holds_every_edge_and_op_of_darts_v2_and_an_nb201_cell():
    source = to_dot(darts_cells(DARTS_V2)).source.replace('"', "")  # graphviz quotes some names
    for cell in ("normal", "reduce"):
        names = [f"{cell}_c_k-2", f"{cell}_c_k-1"] + [f"{cell}_{k}" for k in range(2, 6)]
        for i, (op, j) in enumerate(getattr(DARTS_V2, cell)):
            assert f"{names[j]} -> {names[i // 2 + 2]} [label={op} decorate=true]" in source
        for k in DARTS_V2.normal_concat:
            assert f"{names[k]} -> {cell}_c_k" in source
        inner = [f"{cell}_{k}" for k in range(2, 6)]  # the intermediate nodes in order, left to right
        assert all(f"{a} -> {b} [style=invis]" in source for a, b in zip(inner, inner[1:]))
    assert source.index("label=reduce cell") < source.index("label=normal cell")  # dot stacks the last on top
    source = to_dot(nb201_cell(NB201)).source
    for op, k, j in NB201.edges():
        assert f"{j} -> {k} [label={op} decorate=true]" in source
    assert source.count("->") - source.count("style=invis") == 6


@needs_dot
@pytest.mark.parametrize("genotype", [format_genotype(DARTS_V2), str(NB201)])
def test_cells_render_to_png_svg_and_pdf_through_graphviz(tmp_path, genotype, cli_runs):
    runs = [[genotype, f"--out={tmp_path / ('cell.' + suffix)}", "--renderer=graphviz"] for suffix in ("png", "svg", "pdf")]
    for proc in cli_runs("itnas_tf.visualize", runs):
        assert proc.returncode == 0 and "drawn with graphviz" in proc.stdout, proc.stderr[-2000:]
    _assert_picture(tmp_path / "cell.png")
    assert (tmp_path / "cell.pdf").read_bytes().startswith(b"%PDF")
    svg = (tmp_path / "cell.svg").read_text()
    ops = [op for op, _ in DARTS_V2.normal + DARTS_V2.reduce] if genotype.startswith("G") else [e[0] for e in NB201.edges()]
    assert all(op in svg for op in ops)


@pytest.mark.parametrize("genotype", [DARTS_V2, NB201])
def test_cells_render_through_matplotlib_without_graphviz(tmp_path, genotype):
    graphs = picture(genotype)
    assert write(graphs, tmp_path / "cell.png", renderer="matplotlib") == "matplotlib"
    _assert_picture(tmp_path / "cell.png")
    edges = sum(len([e for e in g.edges if e[2]]) for g in graphs)
    assert edges == (16 if genotype is DARTS_V2 else 6)


def test_proxyless_gpu_chain_strip_shows_every_block_and_the_budget(tmp_path):
    rows, cost = chain_blocks(PROXYLESS_GPU)
    assert cost["madds"] == 465_260_160 and len(rows) == 21
    assert sum(r["madds"] for r in rows) < cost["madds"]  # stem, first block and head are outside the strip
    assert [r["madds"] == 0 for r in rows] == [op == "zero" for op in PROXYLESS_GPU.ops]
    fig = picture(PROXYLESS_GPU)
    texts = _texts(fig)
    for op, row in zip(PROXYLESS_GPU.ops, rows):
        assert (op in texts) if op != "zero" else ("skipped" in texts)
    assert "465.3M MAdds of a 600M budget" in texts
    chain = tmp_path / "chain.json"
    chain.write_text(PROXYLESS_GPU.to_json())
    proc = _visualize(str(chain), f"--out={tmp_path / 'chain.png'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_picture(tmp_path / "chain.png")


def test_result_json_labels_edges_with_importance_margin_and_runner_up(tmp_path):
    ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    importance = {f"edge_{k}_{j}": dict(zip(ops, [0.05, 0.1, 0.15, 0.6, 0.1])) for k in range(1, 4) for j in range(k)}
    importance["edge_3_2"] = dict(zip(ops, [0.1, 0.31, 0.29, 0.2, 0.1]))  # a close call
    (tmp_path / "result.json").write_text(json.dumps({
        "genotype": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|skip_connect~2|",
        "importance": importance,
    }))
    graph = nb201_cell(NB201Genotype.from_string(json.loads((tmp_path / "result.json").read_text())["genotype"]), importance)[0]
    labels = {(s, t): (label, colour) for s, t, label, colour in graph.edges}
    assert labels[("2", "3")][0] == "skip_connect 0.3100\\nnext: nor_conv_1x1 0.2900 (lead +0.02)"
    assert labels[("0", "1")][0] == "nor_conv_3x3 0.6000\\nnext: nor_conv_1x1 0.1500 (lead +0.45)"
    # the colour scale's ends: a lead of half the pick or more is its green end, a tie its red end
    assert labels[("0", "1")][1] == margin_colour(0.5, 1.0) != labels[("2", "3")][1] != margin_colour(0.0, 1.0)
    assert margin_colour(1e-4, 0.17) == margin_colour(0.0, 0.17) == "#b03a2e"
    assert graph.title.endswith(LEGEND)
    proc = _visualize(str(tmp_path / "result.json"), f"--out={tmp_path / 'cell.png'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_picture(tmp_path / "cell.png")


def test_bad_input_gives_a_clear_message(tmp_path, cli_runs):
    no_out, listing, bad, jpg = cli_runs("itnas_tf.visualize", [
        [str(NB201)],
        ["help"],  # the published names, no picture
        ["Genotype(normal=[('sep_conv_3x3', 0)])", f"--out={tmp_path / 'a.png'}"],
        [str(NB201), f"--out={tmp_path / 'a.jpg'}"],
    ])
    assert no_out.returncode == 2 and "--out=FILE is required" in no_out.stderr
    assert listing.returncode == 0 and "DARTS_V2" in listing.stdout, listing.stderr[-2000:]
    assert bad.returncode == 2 and "error:" in bad.stderr
    assert jpg.returncode == 2 and "unknown picture format '.jpg'" in jpg.stderr
    with pytest.raises(PlotError, match="unknown picture format"):
        write(picture(NB201), tmp_path / "a.gif")
    # No `dot` on PATH: asked for Graphviz, a message naming the fix; on auto, matplotlib draws it.
    (tmp_path / "bin").mkdir()
    env = {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path / "home")}
    out = tmp_path / "out"
    refused, drawn = cli_runs(
        "itnas_tf.visualize", [[str(NB201), f"--out={out / 'a.svg'}", "--renderer=graphviz"], [str(NB201), f"--out={out / 'b.svg'}"]],
        env=env,
    )
    assert refused.returncode == 2 and "apt-get install graphviz" in refused.stderr and "--renderer=matplotlib" in refused.stderr
    assert drawn.returncode == 0 and "drawn with matplotlib" in drawn.stdout, drawn.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["b.svg"]  # nothing half-written
