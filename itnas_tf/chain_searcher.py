"""`ChainSearcher`: a `Searcher` for the chain spaces, whose genotype must fit a MAdds budget, and a
latency budget on a measured table (`--max_latency_ms`, `--latency_table`) where one is given.

Selection is the IT pass with every candidate on, the argmax per layer, then `fit_budget` on the
target network (default: the reference widths at 224x224 and 1000 classes, the mobile setting).
`result.json` keeps both genotypes and what the budgets cost in importance.
"""

import json

from itnas_tf import plots
from itnas_tf.genotypes import ChainGenotype, GenotypeError
from itnas_tf.networks.proxyless import block_madds
from itnas_tf.searcher import IDENTITY, Searcher
from itnas_tf.spaces import proxyless
from itnas_tf.spaces.proxyless_latency import LatencyError, LatencyTable


def widths_setting(value, flag):
    """`--widths`/`--target_widths`: a JSON object (or a dict from Python), or None for the reference."""
    if value is None or isinstance(value, dict):
        return value
    try:
        widths = json.loads(value)
    except json.JSONDecodeError as e:
        raise GenotypeError(f"--{flag} must be a JSON object like {json.dumps(proxyless.REFERENCE_WIDTHS)}: {e}") from None
    if not isinstance(widths, dict):
        raise GenotypeError(f"--{flag} must be a JSON object with keys stem, first, stages, head; got {value!r}.")
    return widths


class ChainSearcher(Searcher):
    """A search of the `proxyless` space: SPOS-style path sampling, selection under `max_madds`."""

    identity = IDENTITY + ("paths_per_step", "se", "widths")

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        c = self.config
        cell_sizes = [f"--{k}" for k in ("init_channels", "layers", "target_channels", "target_layers") if c.get(k)]
        if cell_sizes:
            raise ValueError(f"{', '.join(cell_sizes)} size the cell spaces; a chain is sized by --widths and --target_widths.")
        self.widths = widths_setting(c.get("widths"), "widths")
        target_widths = widths_setting(c.get("target_widths"), "target_widths")
        if proxyless.layer_choices(self.widths) != proxyless.layer_choices(target_widths):
            raise GenotypeError(
                "--widths and --target_widths must keep stride and width at the same layers (where `zero` may "
                "stand); give both the same stage pattern."
            )
        self.target_widths = target_widths
        if c.get("max_latency_ms") is not None and not c.get("latency_table"):
            raise LatencyError("--max_latency_ms needs --latency_table: a table of this CPU measured by "
                               "`python -m itnas_tf.latency --output=latency.json` at the target network's sizes.")
        self.cost = self.latency = None

    def build(self, data):
        c = self.config
        self.cost = proxyless.ChainCost(self.target_widths, c.get("se", False), c.get("target_input_size", 224),
                                        c.get("target_classes", 1000))
        proxyless.check_budget(self.cost, c.get("max_madds", 600e6))  # before any training
        if c.get("latency_table"):
            self.latency = LatencyTable.load(c["latency_table"])
            self.latency.check(self.cost.genotype)
            if c.get("max_latency_ms") is not None:
                self.latency.check_budget(c["max_latency_ms"])
        return super().build(data)

    def supernet_settings(self):
        c = self.config
        return {"widths": self.widths, "se": c.get("se", False), "paths_per_step": c.get("paths_per_step", 2),
                "seed": c["seed"]}

    def budgeted(self, table):
        """`(unconstrained ops, budgeted ops, repair steps)` of an importance table."""
        unconstrained = proxyless.derive(table)
        ops, steps = proxyless.fit_budget(unconstrained, table, self.cost, self.config.get("max_madds", 600e6),
                                          self.latency, self.config.get("max_latency_ms"))
        return unconstrained, ops, steps

    def select(self, model):
        table, _, seconds = super().select(model)
        _, ops, _ = self.budgeted(table)
        return table, self.cost.genotype_of(ops), seconds

    def target(self, genotype_text):
        genotype = ChainGenotype.from_json(genotype_text)
        _, cost = block_madds(genotype)
        side = genotype.input_size
        return {"network": "ChainNetwork", "widths": genotype.widths, "input_shape": [side, side, 3],
                "num_classes": genotype.num_classes, "max_madds": self.config.get("max_madds", 600e6), **cost}

    def result(self, model, state):
        result = super().result(model, state)
        unconstrained, ops, steps = self.budgeted(result["importance"])
        result["unconstrained_genotype"] = str(self.cost.genotype_of(unconstrained))
        result["budget"] = {
            "max_madds": self.config.get("max_madds", 600e6),
            "unconstrained_madds": self.cost(unconstrained),
            "madds": self.cost(ops),
            "importance_given_up": sum(step["importance_given_up"] for step in steps),
            "replacements": steps,
        }
        if self.latency is not None:
            record = self.latency.record
            result["budget"].update({
                "max_latency_ms": self.config.get("max_latency_ms"),
                "unconstrained_latency_ms": self.latency(unconstrained),
                "latency_ms": self.latency(ops),
                "latency_table": {"path": str(self.latency.path), "cpu": record["cpu"], "threads": record["threads"],
                                  "onnxruntime": record["onnxruntime"]},
            })
        return result

    def figure(self, result):
        return plots.picture(ChainGenotype.from_json(result["genotype"]), max_madds=result["budget"]["max_madds"])

    def headline(self, result):
        t, b = result["target"], result["budget"]
        ops = json.loads(result["genotype"])["ops"]
        lines = [
            f"ops: {' '.join(ops)}",
            f"target ChainNetwork (input {t['input_shape']}, {t['num_classes']} classes): {t['params'] / 1e6:.3f}M params, "
            f"{t['madds'] / 1e6:.2f}M MAdds of {b['max_madds'] / 1e6:.0f}M",
        ]
        if "latency_ms" in b:
            limit = f" of {b['max_latency_ms']:g} ms" if b["max_latency_ms"] is not None else ""
            lines.append(f"predicted batch-1 latency {b['latency_ms']:.2f} ms{limit} ({b['latency_table']['cpu']}, "
                         f"{b['latency_table']['threads']} thread(s), onnxruntime)")
        if b["replacements"]:
            lines.append(
                f"the argmax network had {b['unconstrained_madds'] / 1e6:.2f}M MAdds; "
                f"{len(b['replacements'])} replacement(s) gave up {b['importance_given_up']:.4f} importance: "
                + ", ".join(f"layer {s['layer']} {s['from']}->{s['to']}" for s in b["replacements"])
            )
        return lines
