"""`Searcher`: one cell-space search run, epoch by epoch, with a checkpoint after every epoch.

Each epoch trains the supernet (`Supernet.train_step`: mono-level for the IT strategy, first-order
bilevel for DARTS), runs the selection pass, records the genotype, and writes `checkpoint.npz` and
`trajectory.json` atomically. A run killed at any point resumes (`resume=True`) from the last completed epoch and ends
exactly as an uninterrupted run: the data order and augmentation are functions of (seed, epoch), and
the checkpoint holds every model and optimizer variable.
"""

import math
import pathlib
import time

import keras
import tensorflow as tf
from absl import logging

from itnas_tf import checkpoint, console, distribution, plots, precision, run_dir, spaces
from itnas_tf.counting import count
from itnas_tf.data import DataError, search_data, streaming_search_data
from itnas_tf.engine import collecting_importance, set_ranking
from itnas_tf.engine.variables import bare_variable_names
from itnas_tf.networks import target_network
from itnas_tf.optimizers import SGD, Adam
from itnas_tf.results import write_json_atomic, write_text_atomic

CHECKPOINT = "checkpoint.npz"
OUTPUTS = ("result.json", "genotype.txt", "genotype.png", "trajectory.json", CHECKPOINT, "tensorboard")
# Settings a resumed run must share with the checkpoint; the optimizer's may change (e.g. a lower
# learning rate after a non-finite loss).
IDENTITY = ("space", "dataset", "strategy", "mix", "init_channels", "layers", "seed", "epochs", "warmup_epochs", "batch_size", "augment",
            "search_train_split", "search_valid_split", "input_size")
# The settings of a search (the search CLI's flags, less where it runs) and their defaults.
DEFAULTS = {
    "space": "nb201", "dataset": "digits", "augment": "auto", "strategy": "it", "mix": "weighted",
    "epochs": 50, "warmup_epochs": None, "batch_size": 64, "learning_rate": 0.025, "final_learning_rate": 0.0, "momentum": 0.9, "weight_decay": 3e-4,
    "grad_clip": 5.0, "arch_learning_rate": 3e-4, "arch_weight_decay": 1e-3, "init_channels": None,
    "layers": None, "target_channels": None, "target_layers": None, "seed": 0, "deterministic": True,
    "mixed_precision": False, "jit_compile": False,
    # streamed search data (ImageNet)
    "search_train_split": None, "search_valid_split": None, "input_size": None,
    # chain spaces
    "paths_per_step": 2, "se": False, "widths": None, "max_madds": 600e6, "target_widths": None,
    "target_input_size": 224, "target_classes": 1000, "max_latency_ms": None, "latency_table": None,
    # where it trains
    "distribution": "none", "cpu_replicas": 0, "sync_batch_norm": True, "worker_timeout": 600.0,
    "intra_op_threads": 0,
}


def search_config(**settings):
    """`DEFAULTS` with `settings` in place: the config of a search run from Python, not from flags."""
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"Unknown search setting(s) {unknown}; known: {', '.join(DEFAULTS)}.")
    return with_warmup({**DEFAULTS, **settings})


def with_warmup(config):
    """`config` with its `warmup_epochs` set: 3/10 of the search unless given, as PC-DARTS's 15 of 50
    epochs. The candidates train at equal weight first, so that the IT does not rank ops it has
    barely trained (docs/results.md, S4)."""
    if config.get("warmup_epochs") is None:
        config = {**config, "warmup_epochs": 3 * config.get("epochs", DEFAULTS["epochs"]) // 10}
    return config


class Searcher:
    """Runs a search described by `config` (the search CLI's flags as a dict) into `output_dir`.

    Override `select` to change how a genotype is read from the trained supernet, or `summary`
    to change what is printed at the end.

    Under `distribution="multi_worker"` every worker runs this; only the chief writes files (all
    workers must see `output_dir`, e.g. on a shared filesystem, to resume).
    """

    identity = IDENTITY

    def __init__(self, config, output_dir, resume=False, overwrite=False, data_dir=None):
        self.config = with_warmup(dict(config))
        self.out = pathlib.Path(output_dir)
        self.resume = resume
        self.overwrite = overwrite
        self.data_dir = data_dir
        self.module = spaces.space_module(self.config["space"])

    # ---------------------------------------------------------------------------------------------
    # The run

    def run(self):
        c = {**DEFAULTS, **self.config}
        self.strategy = distribution.make_strategy(
            c["distribution"], c["cpu_replicas"], c["worker_timeout"], c["intra_op_threads"]
        )
        self.chief = distribution.is_chief(self.strategy)
        with precision.dtype_policy(self.config.get("mixed_precision", False)) as policy:
            self.policy = policy
            return self._run()

    def _run(self):
        c = self.config
        if c["warmup_epochs"] >= c["epochs"]:
            raise ValueError(f"--warmup_epochs={c['warmup_epochs']} leaves no epoch to rank in: make it less "
                             f"than --epochs={c['epochs']}.")
        if self.chief:
            run_dir.prepare(self.out, ("result.json", CHECKPOINT), OUTPUTS, self.resume, self.overwrite, "search result")
        path = self.out / CHECKPOINT
        resuming = self.resume and path.exists()
        if resuming:
            run_dir.check_same_run(self.out, checkpoint.load_state(path)["config"], self.config, self.identity, "search")
        keras.utils.set_random_seed(c["seed"])
        if c.get("deterministic", True):
            tf.config.experimental.enable_op_determinism()
        self.data = self.sized_data()
        with self.strategy.scope():
            model, optimizers = self.build(self.data)
        state = {"epoch": 0, "trajectory": [], "seconds": 0.0, "config": c}
        if resuming:
            state = checkpoint.restore(path, model, optimizers)
            state["config"] = c
            print(f"resuming {path} after epoch {state['epoch']}")
        shown, self.verbose = console.progress_callbacks()
        callbacks = [keras.callbacks.TerminateOnNaN(), *shown]
        if self.chief:
            writer = tf.summary.create_file_writer(str(self.out / "tensorboard" / "selection"))
            callbacks.append(keras.callbacks.TensorBoard(str(self.out / "tensorboard"), write_graph=False))
        for epoch in range(state["epoch"], c["epochs"]):
            start = time.perf_counter()
            set_ranking(model, epoch >= c["warmup_epochs"])
            logs = self.train_epoch(model, epoch, callbacks)
            if not math.isfinite(logs.get("loss", math.nan)):
                raise run_dir.non_finite(epoch, path, state["epoch"])
            table, genotype, selection_seconds = self.select(model)
            state["seconds"] += time.perf_counter() - start
            state["epoch"] = epoch + 1
            state["trajectory"].append(
                {"epoch": epoch + 1, "warmup": epoch < c["warmup_epochs"], "genotype": str(genotype), **logs, "selection_seconds": selection_seconds, "importance": table}
            )
            checkpoint.save(path, model, optimizers, state, write=self.chief)  # reads on every worker
            if self.chief:
                with writer.as_default(step=epoch + 1):
                    for edge, row in table.items():
                        for op, value in row.items():
                            tf.summary.scalar(f"importance/{edge}/{op}", value)
                writer.flush()
                write_json_atomic(self.out / "trajectory.json", state["trajectory"])
            warmup = epoch < c["warmup_epochs"] and model.strategy == "it"
            note = "warm-up: not ranked yet" if warmup else str(genotype)
            print(console.epoch_line(epoch, c["epochs"], logs, time.perf_counter() - start, note), flush=True)
        result = self.result(model, state)
        print(self.summary(result))
        if self.chief:
            write_text_atomic(self.out / "genotype.txt", result["genotype"] + "\n")
            write_json_atomic(self.out / "result.json", result)
            self.draw(result)
            print(f"\nwrote {self.out / 'result.json'}")
        return result

    def restore_supernet(self):
        """The supernet as this run's checkpoint left it, on this device, with `self.data` loaded:
        what the analyses of a finished (or interrupted) search start from."""
        path = self.out / CHECKPOINT
        if not path.exists():
            raise checkpoint.CheckpointError(f"{self.out} has no {CHECKPOINT}: it holds no search to analyse.")
        model, optimizers = self.build(self.local_data())
        checkpoint.restore(path, model, optimizers)
        return model

    def local_data(self):
        """This run's search data, loaded as the run did (seeded), for work on this device alone."""
        self.strategy, self.policy = tf.distribute.get_strategy(), keras.config.dtype_policy().name
        keras.utils.set_random_seed(self.config["seed"])
        self.data = self.sized_data()
        return self.data

    def sized_data(self):
        """`load_data` with the divisor the supernet's reductions need."""
        layers = self.config["layers"] or spaces.DEFAULT_SIZES[self.config["space"]][1]
        return self.load_data(2 ** self.module.reductions(layers))

    # ---------------------------------------------------------------------------------------------
    # Hooks

    def build(self, data):
        """The compiled supernet and its built optimizers `{name: optimizer}` (checkpointed)."""
        c = self.config
        model = spaces.supernet(
            c["space"], data.num_classes, c["init_channels"], c["layers"], mix=c["mix"], strategy=c["strategy"],
            **self.supernet_settings(),
        )
        steps = -(-data.train_size // c["batch_size"])
        final = c.get("final_learning_rate", 0.0) / c["learning_rate"] if c["learning_rate"] else 0.0
        schedule = keras.optimizers.schedules.CosineDecay(c["learning_rate"], c["epochs"] * steps, alpha=final)
        optimizer = SGD(
            schedule, momentum=c["momentum"], weight_decay=c["weight_decay"] or None,
            global_clipnorm=c["grad_clip"] or None,
        )
        arch_optimizer = None
        if c["strategy"] == "darts":
            arch_optimizer = Adam(
                c["arch_learning_rate"], beta_1=0.5, weight_decay=c["arch_weight_decay"] or None
            )
        model.compile(
            optimizer=optimizer,
            arch_optimizer=arch_optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            jit_compile=c.get("jit_compile", False),
        )
        model.build_for_fit(next(iter(data.valid)))  # so a checkpoint can be assigned
        if self.strategy.num_replicas_in_sync > 1 and c.get("sync_batch_norm", True):
            if distribution.multi_worker(self.strategy):
                # its all-reduces inside the forward pass ran in a different order on each worker
                # and deadlocked them (collective timeout), so each worker keeps its own statistics
                logging.warning("--sync_batch_norm applies within one machine: across workers each "
                                "worker's BatchNorms use its own part of the batch.")
            else:
                distribution.synchronize_batch_norm(model)
        optimizers = {"optimizer": optimizer}
        if arch_optimizer is not None:
            optimizers["arch_optimizer"] = arch_optimizer
        return model, optimizers

    def load_data(self, divisor):
        """Search-train and search-valid: the training set split 50/50 in memory, or two streamed tfds
        splits (`search_train_split`, `search_valid_split`) at `input_size`."""
        c, replicas = {**DEFAULTS, **self.config}, self.strategy.num_replicas_in_sync
        if not (c["search_train_split"] or c["search_valid_split"] or c["input_size"]):
            return search_data(c["dataset"], c["batch_size"], c["seed"], divisor, c["augment"], self.data_dir, replicas)
        side = c["input_size"] or 224
        if side % divisor:
            raise DataError(f"--input_size={side}: the supernet halves it until it needs sides divisible by {divisor}.")
        return streaming_search_data(c["dataset"], c["search_train_split"], c["search_valid_split"], side,
                                     c["batch_size"], c["seed"], c["augment"], self.data_dir, replicas)

    def supernet_settings(self):
        """Keyword arguments of `spaces.supernet` beyond the cell sizes (none for the cell spaces)."""
        return {}

    def train_epoch(self, model, epoch, callbacks):
        """One epoch of `fit`; returns its logs (`loss`, `accuracy`)."""
        train = self.data.train(epoch)
        if model.strategy == "darts":
            train = tf.data.Dataset.zip((train, self.data.arch(epoch)))
        history = model.fit(
            train, initial_epoch=epoch, epochs=epoch + 1, callbacks=callbacks, shuffle=False,
            verbose=self.verbose,
        )
        return {k: float(v[-1]) for k, v in history.history.items()}

    def select(self, model):
        """`(importance table, genotype, seconds)`: one pass over search-valid (IT strategy) or the
        alphas (DARTS strategy), then the space's derivation rule."""
        start = time.perf_counter()
        if model.strategy == "it":
            with collecting_importance(model):
                model.predict(self.data.valid, verbose=0)
        table = model.importance_table()
        return table, self.module.derive(table), time.perf_counter() - start

    def target(self, genotype_text):
        """Params and MAdds of the derived genotype's evaluation network at the data's image size."""
        c = self.config
        genotype = self.module.parse(genotype_text)
        network = target_network(
            c["space"], genotype, self.data.num_classes, c.get("target_channels"), c.get("target_layers")
        )
        with bare_variable_names():  # counting builds it: 1,398 variables for DARTS's (`engine/variables.py`)
            cost = count(network, self.data.image_shape)
        return {
            "network": type(network).__name__,
            "init_channels": network.init_channels,
            "layers": network.num_layers,
            "input_shape": list(self.data.image_shape),
            "num_classes": self.data.num_classes,
            **cost,
        }

    def result(self, model, state):
        """The content of `result.json` (DESIGN.md 4)."""
        last = state["trajectory"][-1]
        return {
            "space": self.config["space"],
            "dataset": self.config["dataset"],
            "seed": self.config["seed"],
            "strategy": self.config["strategy"],
            "mix": self.config["mix"],
            "flags": self.config,
            "dtype_policy": self.policy,
            "genotype": last["genotype"],
            "importance": last["importance"],
            "target": self.target(last["genotype"]),
            "supernet_params": int(sum(math.prod(w.shape) for w in model.trainable_weights)),
            "final_train_loss": last["loss"],
            "final_train_accuracy": last.get("accuracy"),
            "wall_seconds": {
                "search_total": state["seconds"],
                "selection_per_epoch": [t["selection_seconds"] for t in state["trajectory"]],
            },
        }

    def draw(self, result):
        """`genotype.png` beside `result.json`: the cells, each edge with its op's importance and the
        runner-up's. A picture that cannot be drawn is reported; the result stands."""
        try:
            used = plots.write(self.figure(result), self.out / "genotype.png")
            print(f"drew {self.out / 'genotype.png'} with {used}")
        except (plots.PlotError, OSError) as e:
            logging.warning("genotype.png was not drawn: %s", e)

    def figure(self, result):
        """The matplotlib figure of `genotype.png`."""
        return plots.picture(self.module.parse(result["genotype"]), result["importance"])

    def headline(self, result):
        """The lines of `summary` above the importance table."""
        t = result["target"]
        return [
            f"genotype: {result['genotype']}",
            f"target {t['network']} (C={t['init_channels']}, {t['layers']} cells, input {t['input_shape']}): "
            f"{t['params'] / 1e6:.3f}M params, {t['madds'] / 1e6:.2f}M MAdds",
        ]

    def summary(self, result):
        """`headline` and a per-edge table of importances (each edge's argmax starred)."""
        table = result["importance"]
        ops = list(dict.fromkeys(op for row in table.values() for op in row))
        width = max(len(op) for op in ops) + 1
        lines = [*self.headline(result), "", " " * 12 + "".join(f"{op:>{width}}" for op in ops)]
        for edge, row in table.items():
            best = max(row, key=row.get)
            cells = [
                (f"{row[op]:.4f}" + ("*" if op == best else " ")).rjust(width + 1) if op in row else " " * (width + 1)
                for op in ops
            ]
            lines.append(f"{edge:<12}" + "".join(cells))
        return "\n".join(lines)


def searcher_class(space):
    """The `Searcher` (sub)class that runs a search of `space`."""
    from itnas_tf.chain_searcher import ChainSearcher
    from itnas_tf.nb101_searcher import NB101Searcher

    return ChainSearcher if space in spaces.CHAIN_SPACES else NB101Searcher if space in spaces.NB101_SPACES else Searcher
