"""IT-NAS's ranking against a keras-tuner baseline on `digits`, over the same NB201 space, in one script.

    python -m examples.tuner_digits --trials=5 --epochs=5 --baseline=random

Runs (or reuses, in `--out`/search) a small IT-NAS search of the NB201 space, then trains the first
`--trials` architectures that `ITNASOracle` proposes and as many from the baseline oracle
(`random`, `bayesian` or `hyperband`), each for `--epochs`, and prints both tables. The search
splits the digits it trains on 50/50; the trials here train on 80% of digits and score on the
other 20%, so the two oracles are compared on the same footing, not against the search.
"""

import argparse
import pathlib

import keras_tuner
import numpy as np

from itnas_tf.data.sources import load_arrays
from itnas_tf.tuner import ITNASHyperModel, ITNASOracle, to_text

BASELINES = {
    "random": lambda hm, trials, out: keras_tuner.RandomSearch(
        hm, objective="val_accuracy", max_trials=trials, seed=0, directory=out, project_name="random", overwrite=True),
    "bayesian": lambda hm, trials, out: keras_tuner.BayesianOptimization(
        hm, objective="val_accuracy", max_trials=trials, seed=0, directory=out, project_name="bayesian", overwrite=True),
    "hyperband": lambda hm, trials, out: keras_tuner.Hyperband(
        hm, objective="val_accuracy", max_epochs=max(2, trials), seed=0, directory=out, project_name="hyperband",
        overwrite=True),
}


def table(name, tuner):
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    lines = [f"{name}: {len(trials)} trials", f"  {'trial':<6}{'val_accuracy':>13}  genotype"]
    for trial in trials:
        score = "-" if trial.score is None else f"{trial.score:.4f}"
        lines.append(f"  {trial.trial_id:<6}{score:>13}  {to_text('nb201', trial.hyperparameters)}")
    best = tuner.get_best_hyperparameters()[0]
    lines.append(f"  best: {to_text('nb201', best)}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/tuner_digits", help="Folder for the search and the tuner projects.")
    parser.add_argument("--trials", type=int, default=5, help="Architectures each oracle may train.")
    parser.add_argument("--epochs", type=int, default=5, help="Training epochs per trial.")
    parser.add_argument("--search_epochs", type=int, default=10, help="Epochs of the IT-NAS supernet search.")
    parser.add_argument("--channels", type=int, default=8, help="C of the supernet and of the trial networks.")
    parser.add_argument("--layers", type=int, default=1, help="NB201 cells per stage, supernet and trials.")
    parser.add_argument("--baseline", choices=sorted(BASELINES), default="random", help="keras-tuner's oracle to compare.")
    args = parser.parse_args()
    out = pathlib.Path(args.out)

    x, y = load_arrays("digits")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = (x[order] / 255.0).astype("float32"), y[order]
    cut = int(0.8 * len(x))
    data = dict(x=x[:cut], y=y[:cut], validation_data=(x[cut:], y[cut:]), epochs=args.epochs, verbose=0)

    search = {"space": "nb201", "dataset": "digits", "epochs": args.search_epochs,
              "init_channels": args.channels, "layers": args.layers}
    oracle = ITNASOracle.from_search(out / "search", search, max_trials=args.trials)
    hypermodel = ITNASHyperModel("nb201", num_classes=10, init_channels=args.channels, layers=args.layers)
    tuners = {
        "IT-NAS": keras_tuner.Tuner(oracle=oracle, hypermodel=hypermodel, directory=out, project_name="itnas",
                                    overwrite=True),
        args.baseline: BASELINES[args.baseline](hypermodel, args.trials, out),
    }
    for name, tuner in tuners.items():
        tuner.search(**data)
    for name, tuner in tuners.items():
        print(table(name, tuner))


if __name__ == "__main__":
    main()
