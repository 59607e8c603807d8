"""A chain network as one strip of blocks: op, width and stride per block, skipped (`zero`) blocks
greyed, and each block's MAdds as a bar, with the network's total against the budget."""

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
from matplotlib import pyplot as plt  # noqa: E402

from itnas_tf.networks.proxyless import block_madds, block_plan  # noqa: E402

MOBILE_MADDS = 600e6


def chain_blocks(genotype):
    """`(rows, total)`: per searchable block `{op, width, stride, madds}` (0 for a skipped block) at
    the genotype's input size, and the whole network's params and MAdds."""
    plan, _ = block_plan(genotype)
    per_block, cost = block_madds(genotype)
    rows = [
        {"op": op, "width": width, "stride": stride, "madds": madds}
        for (op, width, stride, _), madds in zip(plan, per_block)
    ]
    return rows, cost


def chain_figure(genotype, max_madds=MOBILE_MADDS):
    """The strip as a matplotlib figure."""
    rows, cost = chain_blocks(genotype)
    fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(rows)), 4.5), constrained_layout=True)
    xs = range(len(rows))
    skipped = [r["op"] == "zero" for r in rows]
    bars = ax.bar(xs, [r["madds"] / 1e6 for r in rows], color=["#cccccc" if s else "#4c72b0" for s in skipped])
    for bar, row, skip in zip(bars, rows, skipped):
        label = "skipped" if skip else f"{row['op']}\n{row['width']}" + (f", s{row['stride']}" if row["stride"] > 1 else "")
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(list(xs), [str(i) for i in xs], fontsize=7)
    ax.set_xlabel("searchable block")
    ax.set_ylabel("MAdds (M)")
    ax.margins(y=0.35)
    over = " (over)" if cost["madds"] > max_madds else ""
    se = ", SE" if genotype.se else ""
    ax.set_title(
        f"{genotype.space} chain, {genotype.input_size}x{genotype.input_size}{se}: {cost['madds'] / 1e6:.1f}M "
        f"MAdds of a {max_madds / 1e6:.0f}M budget{over}, {cost['params'] / 1e6:.2f}M params"
    )
    return fig
