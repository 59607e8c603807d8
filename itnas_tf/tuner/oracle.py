"""`ITNASOracle`: keras-tuner trials in the order an IT-NAS search ranks architectures.

Trial 1 is the IT-selected genotype; then come the next-best distinct architectures by total
log-importance (`ranking.ranked`, exact), skipping any over `max_madds`. Only `populate_space` and
the state hooks are overridden; keras-tuner keeps its own trial bookkeeping, retries and stop rules.
"""

import itertools
import json
import pathlib

import keras_tuner

from itnas_tf import spaces
from itnas_tf.genotypes import GenotypeError, genotype_text
from itnas_tf.tuner import ranking
from itnas_tf.tuner import space as space_lib
from itnas_tf.tuner.cost import CellCost


def read_result(result):
    """A search's `result.json` as a dict, from a path or the dict itself."""
    if isinstance(result, dict):
        data, where = result, "the result"
    else:
        where = str(result)
        try:
            data = json.loads(pathlib.Path(result).read_text())
        except FileNotFoundError:
            raise ValueError(f"No such search result: {result}. Run `python -m itnas_tf.search` first.") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{result} is not JSON ({e}).") from None
    missing = [k for k in ("space", "genotype", "importance") if k not in (data if isinstance(data, dict) else {})]
    if missing:
        raise ValueError(f"{where} is not a search's result.json: it lacks {missing}.")
    return data


class ITNASOracle(keras_tuner.Oracle):
    """Proposes the architectures of a cell space best first by IT importance.

    Args:
        result: a search's `result.json` (path or dict); see `from_search` to run the search.
        space: the space expected; a result from another space is refused.
        max_madds: skip architectures whose target network has more MAdds.
        target: sizes of that network, `{num_classes, init_channels, layers, input_shape}`;
            default: the `target` the search recorded (the paper's evaluation network).
        objective, max_trials, seed, **kwargs: as `keras_tuner.Oracle`.
    """

    def __init__(self, result, space=None, max_madds=None, target=None, objective="val_accuracy",
                 max_trials=None, seed=None, **kwargs):
        result = read_result(result)
        self.space = space_lib.check_space(result["space"])
        if space is not None and space != self.space:
            raise ValueError(f"The search result is from the {self.space} space, not {space}.")
        self.table = result["importance"]
        ranking.check_table(self.space, self.table)
        try:
            selected = spaces.space_module(self.space).parse(result["genotype"])
            self.selected = space_lib.from_genotype(self.space, selected)
        except GenotypeError as e:
            raise ValueError(f"The search result's genotype does not fit the {self.space} space: {e}") from None
        self.max_madds = max_madds
        self.parts = ranking.factors(self.space, self.table)
        self.cost = None
        if max_madds is not None:
            recorded = result.get("target", {})
            sizes = {k: recorded.get(k) for k in ("num_classes", "init_channels", "layers", "input_shape")}
            sizes.update(target or {})
            if None in sizes.values():
                raise ValueError(f"max_madds needs the target network's sizes; give target={{...}} with {sorted(sizes)}.")
            self.cost = CellCost(self.space, **sizes)
            least = self.cost.base + ranking.cheapest(self.parts, self.cost.part)
            if least > max_madds:
                raise ValueError(
                    f"No architecture of the {self.space} space fits max_madds={max_madds:,}: the cheapest "
                    f"target network ({sizes}) has {least:,} MAdds."
                )
        hp = keras_tuner.HyperParameters()
        space_lib.declare(hp, self.space)
        super().__init__(objective=objective, max_trials=max_trials, hyperparameters=hp, seed=seed, **kwargs)
        self._proposals, self._ranked, self._keys = [], None, {}

    @classmethod
    def from_search(cls, output_dir, search=None, data_dir=None, **kwargs):
        """Runs an IT-NAS search (`search`: settings of `itnas_tf.search`, e.g. `{"space": "nb201",
        "epochs": 50}`) into `output_dir`, or reuses the result there of the same search, and ranks it."""
        from itnas_tf.searcher import Searcher, search_config

        config = search_config(**(search or {}))
        path = pathlib.Path(output_dir) / "result.json"
        if path.exists() and read_result(path).get("flags") == config:
            return cls(path, **kwargs)
        return cls(Searcher(config, output_dir, resume=True, data_dir=data_dir).run(), **kwargs)

    # ---------------------------------------------------------------------------------------------
    # What keras-tuner calls

    def populate_space(self, trial_id):
        for known, trial in self.trials.items():
            if known not in self._keys:
                self._keys[known] = self.key(trial.hyperparameters.values)
        tried = set(self._keys.values())
        for values in self._candidates():
            if self.key(values) not in tried:
                return {"status": keras_tuner.engine.trial.TrialStatus.RUNNING, "values": dict(values)}
        return {"status": keras_tuner.engine.trial.TrialStatus.STOPPED, "values": None}

    def update_space(self, hyperparameters):
        """Refuses a HyperModel whose hyperparameters are not this space's, when the tuner is made."""
        ours = {hp.name: hp.get_config() for hp in self.hyperparameters.space}
        foreign = sorted({hp.name for hp in hyperparameters.space if hp.name not in ours})
        differ = sorted({hp.name for hp in hyperparameters.space if hp.name in ours and hp.get_config() != ours[hp.name]})
        if foreign or differ:
            raise ValueError(
                f"The HyperModel's hyperparameters do not match the oracle's {self.space} space: "
                + (f"unknown to it {foreign[:6]}" if foreign else "")
                + ("; " if foreign and differ else "")
                + (f"declared with other values {differ[:6]}" if differ else "")
                + f". Use ITNASHyperModel({self.space!r}, ...) or declare the space with "
                "itnas_tf.tuner.declare; the oracle ranks architectures only."
            )
        super().update_space(hyperparameters)

    def get_state(self):
        return {**super().get_state(), "itnas": self._identity()}

    def set_state(self, state):
        saved = state.get("itnas")
        if saved != self._identity():
            raise ValueError(
                f"The tuner project in {self._project_dir} was made by an oracle with another search result "
                "or budget. Pass overwrite=True to the tuner, or use another project_name."
            )
        super().set_state(state)

    # ---------------------------------------------------------------------------------------------
    # The ranking

    def log_importance(self, values):
        """Total log-importance of an architecture given as hyperparameter values."""
        return ranking.log_importance(self.table, values if isinstance(values, dict) else values.values)

    def genotype(self, values):
        return space_lib.to_genotype(self.space, values)

    def key(self, values):
        """One text per architecture, whatever the order of its values."""
        return genotype_text(self.genotype(values))

    def _identity(self):
        return {"space": self.space, "selected": self.key(self.selected), "max_madds": self.max_madds,
                "importance": self.table}

    def _candidates(self):
        """The proposals so far, then new ones."""
        yield from self._proposals
        if self._ranked is None:
            self._ranked = self._ranking()
        for values in self._ranked:
            self._proposals.append(values)
            yield values

    def _ranking(self):
        """The IT selection, then every other architecture best first; those over budget left out."""
        selected = self.key(self.selected)
        rest = (values for _, values in ranking.ranked(self.parts) if self.key(values) != selected)
        for values in itertools.chain([self.selected], rest):
            if self.cost is None or self.cost(values) <= self.max_madds:
                yield values
