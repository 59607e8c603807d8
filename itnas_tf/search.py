"""`python -m itnas_tf.search --flagfile=configs/quickstart.cfg`: an IT-NAS supernet search.

Trains the supernet and its Indicator Token blocks together on search-train (mono-level), runs the
selection pass over search-valid after every epoch, and writes to `--output_dir`: `result.json`,
`genotype.txt`, `trajectory.json` and TensorBoard logs.
"""

import math
import pathlib
import sys
import time

import keras
import numpy as np
from absl import app, flags, logging

from itnas_tf.data import search_data
from itnas_tf.engine import MIX_MODES, collecting_importance
from itnas_tf.results import write_json_atomic, write_text_atomic
from itnas_tf.spaces import nb201

SPACES = {"nb201": nb201}

flags.DEFINE_enum("space", "nb201", list(SPACES), "Search space.")
flags.DEFINE_string("dataset", "digits", "'digits' (bundled, offline) or 'npz:PATH'.")
flags.DEFINE_enum("strategy", "it", ["it"], "Selection strategy.")
flags.DEFINE_enum("mix", "weighted", list(MIX_MODES), "What a mixed edge returns (see README).")
flags.DEFINE_integer("epochs", 50, "Search epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
flags.DEFINE_float("learning_rate", 0.025, "Initial SGD learning rate (cosine decay to 0).", lower_bound=0)
flags.DEFINE_float("momentum", 0.9, "SGD momentum.", lower_bound=0, upper_bound=1)
flags.DEFINE_float("weight_decay", 3e-4, "Decoupled weight decay.", lower_bound=0)
flags.DEFINE_float("grad_clip", 5.0, "Global gradient-norm clip.", lower_bound=0)
flags.DEFINE_integer("init_channels", 16, "Channels of the first stage (C).", lower_bound=2)
flags.DEFINE_integer("layers", 5, "Cells per stage (N).", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the split, the initialisation and the shuffling.")
flags.DEFINE_string("output_dir", "runs/search", "Where the result files go.")
flags.DEFINE_bool("overwrite", False, "Replace another run's result in --output_dir.")

FLAGS = flags.FLAGS


class SelectionCallback(keras.callbacks.Callback):
    """Runs the selection pass after each epoch and records the genotype trajectory."""

    def __init__(self, space, valid):
        super().__init__()
        self.space, self.valid = space, valid
        self.trajectory, self.selection_seconds = [], []

    def select(self):
        start = time.perf_counter()
        with collecting_importance(self.model):
            self.model.predict(self.valid, verbose=0)
        table = self.space.importance_table(self.model)
        self.selection_seconds.append(time.perf_counter() - start)
        return table, self.space.derive(table)

    def on_epoch_end(self, epoch, logs=None):
        table, genotype = self.select()
        entry = {"epoch": epoch + 1, "genotype": str(genotype), "importance": table}
        self.trajectory.append({**entry, **(logs or {})})
        logging.info("epoch %d: %s", epoch + 1, genotype)


def _summary(genotype, table):
    ops = list(next(iter(table.values())))
    width = max(len(op) for op in ops)
    lines = [f"genotype: {genotype}", "", "edge      " + " ".join(f"{op:>{width}}" for op in ops)]
    for edge, row in table.items():
        best = max(row, key=row.get)
        cells = [f"{v:{width}.4f}" + ("*" if op == best else " ") for op, v in row.items()]
        lines.append(f"{edge:<10}" + "".join(cells))
    return "\n".join(lines)


def run(f):
    out = pathlib.Path(f.output_dir)
    if (out / "result.json").exists() and not f.overwrite:
        raise FileExistsError(
            f"{out} already holds a search result; choose another --output_dir or pass --overwrite."
        )
    space = SPACES[f.space]
    keras.utils.set_random_seed(f.seed)
    data = search_data(f.dataset, f.batch_size, f.seed, space.MIN_INPUT_SIZE)
    model = space.NB201Supernet(
        data.num_classes, f.init_channels, f.layers, mix=f.mix
    )
    steps = -(-data.train_size // f.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(f.learning_rate, f.epochs * steps)
    model.compile(
        optimizer=keras.optimizers.SGD(
            schedule, momentum=f.momentum, weight_decay=f.weight_decay,
            global_clipnorm=f.grad_clip or None,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,
    )
    selection = SelectionCallback(space, data.valid)
    start = time.perf_counter()
    history = model.fit(
        data.train,
        epochs=f.epochs,
        callbacks=[
            keras.callbacks.TerminateOnNaN(),
            selection,
            keras.callbacks.TensorBoard(str(out / "tensorboard")),
        ],
        verbose=1 if sys.stdout.isatty() else 2,
    )
    train_seconds = time.perf_counter() - start
    losses = history.history.get("loss", [])
    if len(losses) < f.epochs or not all(map(math.isfinite, losses)):
        raise FloatingPointError(
            "The training loss became non-finite; lower --learning_rate or check the data. "
            "No result was written."
        )
    final = selection.trajectory[-1]
    result = {
        "space": f.space,
        "dataset": f.dataset,
        "seed": f.seed,
        "strategy": f.strategy,
        "flags": {flag.name: flag.value for flag in f.get_flags_for_module(sys.modules[__name__])},
        "genotype": final["genotype"],
        "importance": final["importance"],
        "supernet_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "final_train_loss": losses[-1],
        "final_train_accuracy": history.history["accuracy"][-1],
        "wall_seconds": {
            "search_total": train_seconds,
            "selection_per_epoch": selection.selection_seconds,
        },
    }
    write_json_atomic(out / "trajectory.json", selection.trajectory)
    write_text_atomic(out / "genotype.txt", final["genotype"] + "\n")
    write_json_atomic(out / "result.json", result)
    print(_summary(final["genotype"], final["importance"]))
    print(f"\nwrote {out / 'result.json'}")
    return result


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        run(FLAGS)
    except (FileExistsError, FloatingPointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
