"""`NB101Searcher`: a `Searcher` for NAS-Bench-1Shot1's spaces, whose result is a NAS-Bench-101 cell."""

import numpy as np

from itnas_tf.searcher import Searcher


class NB101Searcher(Searcher):
    """Trains and selects as for the other cells; `result.json`'s `target` is the selected cell as
    NAS-Bench-101's `api.ModelSpec(matrix, ops)` takes it (the benchmark trains it; no network here)."""

    def target(self, genotype_text):
        cell = self.module.parse(genotype_text)
        return {"network": None, "model_spec": {"matrix": [list(r) for r in cell.matrix], "ops": list(cell.ops)},
                "edges": int(np.sum(cell.matrix))}

    def headline(self, result):
        spec = result["target"]["model_spec"]
        return [f"genotype: {result['genotype']}",
                f"NAS-Bench-101: api.ModelSpec(matrix={spec['matrix']}, ops={spec['ops']}) ({result['target']['edges']} edges)"]

    def draw(self, result):
        """No picture of NB101 cells (`genotype.png` is not written)."""
