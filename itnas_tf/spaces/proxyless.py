"""The ProxylessNAS chain space: 21 searchable MBConv layers (DESIGN.md 3), trained SPOS-style with
the IT (DESIGN.md 1.9), selected by argmax per layer and fitted to a MAdds budget (DESIGN.md 1.8).

The supernet is the chain network (`networks.proxyless.ChainNetwork`) with a `MixedLayer` in each
searchable block: the six MBConvs, plus `zero` where the block keeps stride and width (the
shortcut around the layer then carries the input alone). Each training step samples
`paths_per_step` candidates per layer; the others are not computed (`MixedLayer`'s `(n,)` mask).
"""

import keras
import tensorflow as tf
from absl import logging
from keras import ops

from itnas_tf.engine import MixedLayer, Supernet
from itnas_tf.genotypes import PROXYLESS_GPU, ChainGenotype
from itnas_tf.networks.proxyless import STRIDES, block_madds, block_plan
from itnas_tf.ops import MBCONV_OPS, MBConv, batch_norm
from itnas_tf.ops.base import register, same_padding

CANDIDATES = MBCONV_OPS
LAYERS = len(STRIDES)
REFERENCE_WIDTHS = PROXYLESS_GPU.widths  # reference.md: ProxylessNAS-GPU's


class BudgetError(ValueError):
    """No architecture of the space fits the MAdds budget."""


def layer_choices(widths=None):
    """The candidate op names of each searchable layer: `zero` joins where the block can be left out."""
    plan, _ = block_plan(ChainGenotype([CANDIDATES[0]] * LAYERS, widths=widths))
    return [CANDIDATES + (("zero",) if shortcut else ()) for *_, shortcut in plan]


@register
class ProxylessSupernet(Supernet):
    """The chain supernet; `widths` as in a chain genotype (default: the reference widths).

    Args:
        paths_per_step: `m`, the candidates sampled per layer and training step (SPOS: 1). All are on
            when not training (the selection pass) and when `m` is at least the layer's count.
        seed: the sampling seed; step `t` samples from `(seed, t)`, the same on every replica.
    """

    def __init__(self, num_classes=1000, widths=None, se=False, paths_per_step=2, seed=0, mix="weighted",
                 strategy="it", **kwargs):
        if strategy != "it":
            raise ValueError(
                f"The proxyless space is searched with the IT strategy; the {strategy!r} baseline runs on the cell spaces."
            )
        if paths_per_step < 1:
            raise ValueError(f"paths_per_step must be at least 1, got {paths_per_step}.")
        super().__init__(mix=mix, strategy=strategy, **kwargs)
        self.num_classes = num_classes
        self.se = se
        self.paths_per_step = paths_per_step
        self.seed = seed
        plan, self.widths = block_plan(ChainGenotype([CANDIDATES[0]] * LAYERS, widths=widths or REFERENCE_WIDTHS))
        self.stem_pad, padding = same_padding(3, 2)
        self.stem = keras.layers.Conv2D(self.widths["stem"], 3, 2, padding=padding, use_bias=False, name="stem")
        self.stem_bn = batch_norm(name="stem_bn")
        self.first = MBConv(self.widths["first"], 3, 1, 1, se=se, name="first")
        self.chain = [
            MixedLayer.from_ops(choices, width, stride, se=se, mix=mix, name=f"layer_{i}")
            for i, ((_, width, stride, _), choices) in enumerate(zip(plan, layer_choices(self.widths)))
        ]
        self.shortcuts = [shortcut for *_, shortcut in plan]
        self.head = keras.layers.Conv2D(self.widths["head"], 1, use_bias=False, name="head")
        self.head_bn = batch_norm(name="head_bn")
        self.classifier = keras.layers.Dense(num_classes, name="classifier")
        if paths_per_step == 1:
            logging.warning("paths_per_step=1 trains a plain SPOS supernet: the IT never sees two candidates "
                            "together, so its ranking learns nothing.")

    def sample_masks(self, step):
        """One `(n,)` boolean mask per layer with `paths_per_step` candidates on, drawn from `(seed, step)`;
        `None` for a layer whose candidates are all on."""
        masks = []
        step = ops.cast(step, "int64")
        for i, layer in enumerate(self.chain):
            n = len(layer.candidates)
            if self.paths_per_step >= n:
                masks.append(None)
                continue
            key = ops.stack([ops.cast(self.seed, "int64"), step * LAYERS + i])
            chosen = ops.top_k(tf.random.stateless_uniform((n,), seed=key), self.paths_per_step)[1]
            masks.append(ops.any(ops.one_hot(chosen, n) > 0, axis=0))
        return masks

    def call(self, x, training=None, masks=None):
        """`masks`: one `(n,)` mask (or `None`) per layer; by default sampled when training."""
        if masks is None and training:
            step = self.optimizer.iterations if self.optimizer is not None else 0
            masks = self.sample_masks(step)
        masks = masks or [None] * LAYERS
        x = ops.relu6(self.stem_bn(self.stem(self.stem_pad(x))))
        x = self.first(x)
        for layer, shortcut, mask in zip(self.chain, self.shortcuts, masks):
            y = layer(x, candidate_mask=mask)
            x = y + x if shortcut else y
        x = ops.relu6(self.head_bn(self.head(x)))
        return self.classifier(ops.mean(x, axis=(1, 2)))

    def search_edges(self):
        return {layer.name: ("chain", i, [layer]) for i, layer in enumerate(self.chain)}

    def get_config(self):
        config = {
            "num_classes": self.num_classes,
            "widths": self.widths,
            "se": self.se,
            "paths_per_step": self.paths_per_step,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


def reductions(layers):
    """Strided layers pad, so any image side works: no divisor to ask of the data."""
    return 0


def derive(table):
    """The argmax op of each layer (DESIGN.md 1.8), before any budget."""
    if len(table) != LAYERS:
        raise ValueError(f"A proxyless importance table has {LAYERS} layers, got {len(table)}.")
    return [max(row, key=row.get) for row in table.values()]


class AdditiveCost:
    """A cost of the chain network that is a fixed part plus one term per layer (`terms`: one
    `{op: cost}` per layer): what `fit_budget` repairs against, MAdds or milliseconds."""

    def __call__(self, ops_):
        return self.fixed + sum(terms[op] for terms, op in zip(self.terms, ops_))

    def minimum(self):
        """The cost of the cheapest network, and its ops."""
        ops_ = [min(terms, key=terms.get) for terms in self.terms]
        return self(ops_), ops_


class ChainCost(AdditiveCost):
    """MAdds of the chain network for any choice of ops: a fixed part plus one term per layer.

    A block's MAdds depend on its own op only (its input and output sizes are fixed by the widths
    and strides), so six counts (`block_madds`, one network per op) tabulate every term, exact to
    what the counter gives the whole network.
    """

    def __init__(self, widths=None, se=False, input_size=224, num_classes=1000):
        self.genotype = ChainGenotype([CANDIDATES[0]] * LAYERS, widths=widths or REFERENCE_WIDTHS, se=se,
                                      input_size=input_size, num_classes=num_classes)
        self.terms = [{"zero": 0} if "zero" in choices else {} for choices in layer_choices(self.genotype.widths)]
        fixed = set()
        for op in CANDIDATES:
            per_block, cost = block_madds(ChainGenotype([op] * LAYERS, **self._sizes()))
            fixed.add(cost["madds"] - sum(per_block))
            for terms, madds in zip(self.terms, per_block):
                terms[op] = madds
        if len(fixed) != 1:
            raise AssertionError(f"Chain MAdds are not additive over blocks here: fixed parts {sorted(fixed)}")
        self.fixed = fixed.pop()

    def _sizes(self):
        g = self.genotype
        return {"widths": g.widths, "se": g.se, "input_size": g.input_size, "num_classes": g.num_classes}

    def genotype_of(self, ops_):
        """The chain genotype of `ops_` at this counter's widths, input size and classes."""
        return ChainGenotype(list(ops_), **self._sizes())


def check_budget(cost, max_madds):
    """Raises `BudgetError` when even the cheapest network of the space is over `max_madds`."""
    least, cheapest = cost.minimum()
    if least > max_madds:
        raise BudgetError(
            f"--max_madds={max_madds / 1e6:.2f}M is below the smallest network of the space: {least / 1e6:.2f}M "
            f"MAdds (every layer at its cheapest op, {', '.join(sorted(set(cheapest)))}, at "
            f"{cost.genotype.input_size}x{cost.genotype.input_size}). Raise --max_madds to at least that, or "
            "count on smaller --target_widths / --target_input_size."
        )


def fit_budget(ops_, table, cost, max_madds, latency=None, max_latency_ms=None):
    """DESIGN.md 1.8's greedy repair: while over a budget, make the replacement that gives up the
    least importance per MAdd (or millisecond) saved, among all cheaper ops of all layers.

    With a latency budget as well (`latency`: a `LatencyTable`), the budget repaired first is the first
    one exceeded, latency before MAdds; a replacement may not push the other over its limit, nor raise
    it while it is over, so every step lowers the total excess and the loop ends.

    Returns:
        `(ops, steps)`; each step `{"layer", "from", "to", "madds_saved", "importance_given_up"}`, and
        `"ms_saved"` with a latency budget.

    Raises:
        BudgetError: even the cheapest network of the space is over a budget, or no single replacement
            helps one budget without breaking the other.
    """
    check_budget(cost, max_madds)
    budgets = [(cost, max_madds)]
    if max_latency_ms is not None:
        latency.check_budget(max_latency_ms)
        budgets.insert(0, (latency, max_latency_ms))
    current, steps, rows = list(ops_), [], list(table.values())
    while True:
        over = [(meter, limit) for meter, limit in budgets if meter(current) > limit]
        if not over:
            return current, steps
        meter = over[0][0]
        best = None
        for i, (op, row, terms) in enumerate(zip(current, rows, meter.terms)):
            for other, value in terms.items():
                saved = terms[op] - value
                trial = current[:i] + [other] + current[i + 1:]
                if saved <= 0 or any(m(trial) > max(limit, m(current)) for m, limit in budgets if m is not meter):
                    continue
                lost = row[op] - row[other]
                if best is None or lost / saved < best[0]:
                    best = (lost / saved, i, other, lost)
        if best is None:
            raise BudgetError(
                f"No replacement in {cost.genotype_of(current)} lowers one budget without breaking the other "
                f"(--max_madds={max_madds / 1e6:.2f}M, --max_latency_ms={max_latency_ms}); raise one of them."
            )
        _, i, other, lost = best
        step = {"layer": i, "from": current[i], "to": other,
                "madds_saved": int(cost.terms[i][current[i]] - cost.terms[i][other]), "importance_given_up": float(lost)}
        if max_latency_ms is not None:
            step["ms_saved"] = float(latency.terms[i][current[i]] - latency.terms[i][other])
        steps.append(step)
        current[i] = other


parse = ChainGenotype.from_json
