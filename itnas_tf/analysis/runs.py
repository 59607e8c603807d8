"""Search output folders as the analyses read them: settings, trajectory, result, trained supernet."""

import dataclasses
import json
import pathlib


class AnalysisError(ValueError):
    """Output folders that cannot be analysed together, or an analysis the space does not support."""


@dataclasses.dataclass
class Run:
    """One search output folder."""

    folder: pathlib.Path
    config: dict
    trajectory: list
    result: dict | None  # None while the search is unfinished

    @property
    def space(self):
        return self.config["space"]

    @property
    def label(self):
        """`it-weighted`, `it-transformer` or `darts`: what the comparisons group by."""
        return "darts" if self.config["strategy"] == "darts" else f"it-{self.config['mix']}"

    @property
    def genotype(self):
        """The selected genotype: the result's, or the last epoch's of an unfinished run."""
        return self.result["genotype"] if self.result else self.trajectory[-1]["genotype"]

    @property
    def importance(self):
        return self.result["importance"] if self.result else self.trajectory[-1]["importance"]

    def searcher(self, data_dir=None):
        """A `Searcher` of this run (for `restore_supernet`)."""
        from itnas_tf.searcher import searcher_class

        return searcher_class(self.space)(self.config, self.folder, resume=True, data_dir=data_dir)


def load_run(folder):
    folder = pathlib.Path(folder)
    path = folder / "trajectory.json"
    if not path.is_file():
        raise AnalysisError(f"{folder} holds no search (no trajectory.json): give the --output_dir of a search.")
    trajectory = json.loads(path.read_text())
    if not trajectory:
        raise AnalysisError(f"{path} is empty: the search has not finished an epoch yet.")
    result_path = folder / "result.json"
    result = json.loads(result_path.read_text()) if result_path.is_file() else None
    if result is not None:
        config = result["flags"]
    else:
        from itnas_tf import checkpoint

        config = checkpoint.load_state(folder / "checkpoint.npz")["config"]
    return Run(folder, config, trajectory, result)


def load_runs(folders):
    """The runs in `folders`, all of one space (one report compares like with like)."""
    runs = [load_run(f) for f in folders]
    if not runs:
        raise AnalysisError("No search folders given.")
    spaces = sorted({r.space for r in runs})
    if len(spaces) > 1:
        listing = "; ".join(f"{r.folder}: {r.space}" for r in runs)
        raise AnalysisError(f"These folders come from different spaces ({', '.join(spaces)}): {listing}. "
                            "Analyse each space in its own report.")
    return runs
