"""Predicted batch-1 latency of a chain network from a table measured on the target CPU (ProxylessNAS's
latency lookup table): the fixed parts plus one term per searchable block, as `ChainCost` does for
MAdds, so `fit_budget` repairs against either. `python -m itnas_tf.latency` measures the table.

Each part was measured as its own ONNX graph (`export.latency_table`); `call_ms`, one onnxruntime
call's cost beyond the work, is counted once for the whole network instead of once per part.
"""

import json
import pathlib

from itnas_tf.genotypes import ChainGenotype
from itnas_tf.spaces.proxyless import AdditiveCost, BudgetError

FORMAT = "itnas_tf.latency_table/1"


class LatencyError(ValueError):
    """A latency table that is missing, unreadable or measured for another network."""


class LatencyTable(AdditiveCost):
    """A measured table: `terms` (one `{op: ms}` per searchable layer) and `fixed` (ms)."""

    def __init__(self, record, path=None):
        self.record = record
        self.path = path
        self.terms = [dict(row) for row in record["layers"]]
        self.fixed = record["call_ms"] + sum(record["fixed_ms"].values())

    @classmethod
    def load(cls, path):
        path = pathlib.Path(path)
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise LatencyError(f"--latency_table={path}: cannot read it ({e}). Measure one with "
                               "`python -m itnas_tf.latency --output=latency.json`.") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise LatencyError(f"--latency_table={path} is not a latency table of `python -m itnas_tf.latency` "
                               f"(format {FORMAT!r}).")
        return cls(record, path)

    def check(self, genotype):
        """Refuses a table measured for other widths, SE, input size or classes than `genotype`'s."""
        r = self.record
        wanted = {"widths": genotype.widths, "se": genotype.se, "input_size": genotype.input_size,
                  "num_classes": genotype.num_classes}
        differ = [k for k, v in wanted.items() if r[k] != v]
        if differ:
            got = ", ".join(f"{k} {json.dumps(r[k])} (needed {json.dumps(wanted[k])})" for k in differ)
            raise LatencyError(
                f"The latency table {self.path or ''} was measured for another network: {got}. Measure one for "
                "these sizes: `python -m itnas_tf.latency --widths=... --input_size=... --num_classes=...`."
            )

    def check_budget(self, max_ms):
        """Raises `BudgetError` when even the fastest network of the table is over `max_ms`."""
        least, fastest = self.minimum()
        if least > max_ms:
            r = self.record
            raise BudgetError(
                f"--max_latency_ms={max_ms:g} is below the fastest network of the space: {least:.3f} ms (every "
                f"layer at its fastest op, {', '.join(sorted(set(fastest)))}; measured on {r['cpu']}, "
                f"{r['threads']} thread(s), by {self.path or 'the latency table'}). Raise --max_latency_ms to at "
                "least that."
            )

    def genotype(self, ops_):
        r = self.record
        return ChainGenotype(list(ops_), widths=r["widths"], se=r["se"], input_size=r["input_size"],
                             num_classes=r["num_classes"])
