"""Writing pictures: cell graphs through Graphviz's `dot` (the `graphviz` package), or through
matplotlib where `dot` is absent; chain strips through matplotlib."""

import os
import pathlib
import shutil
import tempfile

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

from itnas_tf.results import readable_by_default  # noqa: E402

SUFFIXES = (".png", ".svg", ".pdf")
RENDERERS = ("auto", "graphviz", "matplotlib")
NODE_STYLE = {"input": "#d9ead3", "node": "#cfe2f3", "output": "#fce5cd"}


class PlotError(ValueError):
    """A picture that cannot be written as asked."""


def check_path(path):
    path = pathlib.Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise PlotError(f"--out={path}: unknown picture format {path.suffix!r}; use one of {', '.join(SUFFIXES)}.")
    return path


def to_dot(graphs):
    """One `graphviz.Digraph`, a cluster per cell, the first cell on top.

    Invisible edges keep the intermediate nodes in order, left to right, and the cell inputs top to
    bottom. Each label is tied to its edge by a short line (`decorate`), in the edge's colour.
    """
    import graphviz

    dot = graphviz.Digraph(graph_attr={"rankdir": "LR", "fontname": "Helvetica"},
                           node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica"},
                           edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    for i, graph in reversed(list(enumerate(graphs))):  # `dot` stacks the last-defined cluster on top
        with dot.subgraph(name=f"cluster_{i}") as sub:
            sub.attr(label=graph.title)
            for node, label, kind in graph.nodes:
                sub.node(node, label, fillcolor=NODE_STYLE[kind])
            for source, target, label, colour in graph.edges:
                attrs = {"color": colour, "fontcolor": colour, "penwidth": "2"} if colour else {}
                sub.edge(source, target, label=label, decorate="true" if label else "false", **attrs)
            inner = [node for node, _, kind in graph.nodes if kind == "node"]
            for a, b in zip(inner, inner[1:]):
                sub.edge(a, b, style="invis")
            inputs = [node for node, _, kind in graph.nodes if kind == "input"]
            for a, b in zip(inputs, inputs[1:]):  # the first input on top
                with sub.subgraph() as same:
                    same.attr(rank="same")
                    same.edge(b, a, style="invis")
    return dot


def _ranks(graph):
    """Longest-path depth of each node: the columns of the matplotlib layout."""
    rank = {node: 0 for node, _, _ in graph.nodes}
    for _ in graph.nodes:
        for source, target, _, _ in graph.edges:
            rank[target] = max(rank[target], rank[source] + 1)
    return rank


def _draw_matplotlib(graphs):
    fig, axes = plt.subplots(1, len(graphs), figsize=(7 * len(graphs), 5), squeeze=False, constrained_layout=True)
    for ax, graph in zip(axes[0], graphs):
        rank = _ranks(graph)
        columns = {}
        for node, _, _ in graph.nodes:
            columns.setdefault(rank[node], []).append(node)
        pos = {n: (r, (len(col) - 1) / 2 - i) for r, col in columns.items() for i, n in enumerate(col)}
        for source, target, label, colour in graph.edges:
            ax.annotate("", pos[target], pos[source], arrowprops={"arrowstyle": "->", "color": colour or "grey",
                                                                  "lw": 2 if colour else 1, "shrinkA": 14, "shrinkB": 14})
            if label:
                (x0, y0), (x1, y1) = pos[source], pos[target]
                ax.text((x0 + x1) / 2, (y0 + y1) / 2, label.replace("\\n", "\n"), fontsize=7, ha="center",
                        va="center", bbox={"boxstyle": "round", "fc": "white", "ec": colour or "none"})
        for node, label, kind in graph.nodes:
            ax.text(*pos[node], label, ha="center", va="center", bbox={"boxstyle": "round", "fc": NODE_STYLE[kind]})
        ax.set_title(graph.title.replace("\\n", "\n"), fontsize=9)
        ax.set_xlim(-0.5, max(rank.values()) + 0.5)
        ax.set_ylim(min(y for _, y in pos.values()) - 0.8, max(y for _, y in pos.values()) + 0.8)
        ax.axis("off")
    return fig


def _save_figure(fig, path):
    try:
        fig.savefig(path, dpi=150)
    finally:
        plt.close(fig)


def write(picture, path, renderer="auto"):
    """Writes `picture` (a list of `CellGraph`s, or a matplotlib figure) to `path` atomically.

    Returns:
        The renderer that drew it: "graphviz" or "matplotlib".
    """
    path = check_path(path)
    if renderer not in RENDERERS:
        raise PlotError(f"Unknown renderer {renderer!r}; use one of {', '.join(RENDERERS)}.")
    if not isinstance(picture, list):
        used = "matplotlib"
    elif renderer == "auto":
        used = "graphviz" if shutil.which("dot") else "matplotlib"
    else:
        used = renderer
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        if used == "graphviz":
            _render_dot(to_dot(picture), tmp, path.suffix[1:])
        else:
            _save_figure(_draw_matplotlib(picture) if isinstance(picture, list) else picture, tmp)
        readable_by_default(tmp)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return used


def _render_dot(dot, tmp, fmt):
    import graphviz

    try:
        data = dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise PlotError(
            "Graphviz's `dot` program is not installed (the `graphviz` Python package only writes DOT "
            "text). Install it (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz) "
            "or pass --renderer=matplotlib."
        ) from None
    pathlib.Path(tmp).write_bytes(data)
