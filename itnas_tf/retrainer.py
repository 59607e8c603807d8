"""`Retrainer`: trains a genotype's target network from scratch and reports its test accuracy.

Each epoch writes `checkpoint.npz` (network and optimizer variables plus the run's state) atomically,
so a killed run resumes (`resume=True`) at the last completed epoch: the data order, augmentation and
drop-path rate are functions of (seed, epoch), and the schedule follows the optimizer's step count.
The checkpoint also records everything `python -m export` needs to rebuild the network.
"""

import math
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from itnas_tf import checkpoint, console, precision, run_dir
from itnas_tf.counting import count
from itnas_tf.data import streaming_data, train_test_data
from itnas_tf.data.sources import preprocessing_rule
from itnas_tf.genotypes import genotype_text, read_genotype
from itnas_tf.networks import build_network, check_fits, default_network
from itnas_tf.optimizers import SGD
from itnas_tf.results import write_json_atomic

CHECKPOINT = "checkpoint.npz"
OUTPUTS = ("retrain.json", CHECKPOINT, "tensorboard")
IDENTITY = ("genotype", "network", "dataset", "test_dataset", "input_size", "init_channels", "layers", "seed",
            "epochs", "batch_size", "augment", "cutout")

# The paper's retraining settings per network (DARTS for the cell networks, NAS-Bench-201's for its
# cells, ProxylessNAS's for the chain). `lr_decay`: cosine to 0, or exponential per epoch.
RETRAIN_DEFAULTS = {
    "darts_cifar": dict(
        epochs=600, batch_size=96, learning_rate=0.025, lr_decay="cosine", momentum=0.9, nesterov=False,
        weight_decay=3e-4, grad_clip=5.0, auxiliary_weight=0.4, drop_path_prob=0.2, cutout=16,
        label_smoothing=0.0, init_channels=36, layers=20,
    ),
    "darts_imagenet": dict(
        epochs=250, batch_size=128, learning_rate=0.1, lr_decay="exponential", momentum=0.9, nesterov=False,
        weight_decay=3e-5, grad_clip=5.0, auxiliary_weight=0.4, drop_path_prob=0.0, cutout=0,
        label_smoothing=0.1, init_channels=48, layers=14,
    ),
    "nb201": dict(
        epochs=200, batch_size=256, learning_rate=0.1, lr_decay="cosine", momentum=0.9, nesterov=True,
        weight_decay=5e-4, grad_clip=0.0, auxiliary_weight=0.0, drop_path_prob=0.0, cutout=0,
        label_smoothing=0.0, init_channels=16, layers=5,
    ),
    "proxyless": dict(
        epochs=300, batch_size=256, learning_rate=0.05, lr_decay="cosine", momentum=0.9, nesterov=True,
        weight_decay=4e-5, grad_clip=0.0, auxiliary_weight=0.0, drop_path_prob=0.0, cutout=0,
        label_smoothing=0.1, init_channels=None, layers=None,
    ),
}
# network -> (how much a DARTS network has shrunk its input where the auxiliary head reads it, the
# head's pooling stride)
AUX_HEAD = {"darts_cifar": (4, 3), "darts_imagenet": (32, 2)}
LR_DECAY_RATE = 0.97  # DARTS ImageNet: StepLR(1 epoch, gamma 0.97)


def model_record(network_name, genotype, network, image_shape, mean, std, preprocessing=None, classes=None):
    """What rebuilds a target network without its data, and what turns an image into its input
    (`python -m export` reads it from the checkpoint into `manifest.json`)."""
    return {
        "network": network_name,
        "genotype": genotype_text(genotype) if not isinstance(genotype, str) else genotype,
        "num_classes": network.num_classes,
        "init_channels": getattr(network, "init_channels", None),
        "layers": getattr(network, "num_layers", None),
        "auxiliary": getattr(network, "aux_head", None) is not None,
        "input_shape": list(image_shape),
        "preprocessing": {
            **(preprocessing or preprocessing_rule("", image_shape)),
            "mean": [float(v) for v in np.ravel(mean)],
            "std": [float(v) for v in np.ravel(std)],
        },
        "classes": classes,
    }


def retrain_data(config, data_dir=None):
    """A retraining's training and test data, from its settings (also `export`'s calibration and test
    images): streamed at `input_size` where given, else in memory."""
    c = config
    if c.get("input_size"):
        return streaming_data(c["dataset"], c.get("test_dataset"), c["input_size"], c["batch_size"], c["seed"],
                              c.get("augment", "auto"), c["cutout"], data_dir)
    return train_test_data(c["dataset"], c.get("test_dataset"), c["batch_size"], c["seed"], c.get("augment", "auto"),
                           c["cutout"], data_dir)


@keras.saving.register_keras_serializable("itnas_tf")
class TargetTrainer(keras.Model):
    """Trains a target network whose training call returns `(logits, aux_logits)` (DARTS's auxiliary
    head): the loss is `loss(logits) + auxiliary_weight * loss(aux_logits)`, metrics see the logits."""

    def __init__(self, network, auxiliary_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.auxiliary_weight = auxiliary_weight

    def call(self, x, training=None):
        return self.network(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, (tuple, list)):
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        logits, aux = y_pred
        loss = super().compute_loss(x, y, logits, sample_weight, training)
        return loss + self.auxiliary_weight * self._compile_loss(y, aux, sample_weight)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        logits = y_pred[0] if isinstance(y_pred, (tuple, list)) else y_pred
        return super().compute_metrics(x, y, logits, sample_weight)

    def get_config(self):
        return {**super().get_config(), "auxiliary_weight": self.auxiliary_weight}


class Retrainer:
    """Retrains the network described by `config` (the retrain CLI's flags as a dict) into `output_dir`.

    Flags left `None` take the network's `RETRAIN_DEFAULTS`. Override `build` to change the model or
    optimizer, `evaluate` to change what is measured at the end.
    """

    def __init__(self, config, output_dir, resume=False, overwrite=False, data_dir=None):
        self.out = pathlib.Path(output_dir)
        self.resume = resume
        self.overwrite = overwrite
        self.data_dir = data_dir
        self.genotype = read_genotype(config["genotype"])
        network = config.get("network") or default_network(self.genotype)
        check_fits(network, self.genotype)  # before any data is loaded
        given = {k: v for k, v in config.items() if v is not None}
        self.config = {**RETRAIN_DEFAULTS[network], **given, "network": network, "genotype": genotype_text(self.genotype)}

    def run(self):
        with precision.dtype_policy(self.config.get("mixed_precision", False)) as policy:
            self.policy = policy
            return self._run()

    def _run(self):
        run_dir.prepare(self.out, ("retrain.json", CHECKPOINT), OUTPUTS, self.resume, self.overwrite, "retraining")
        c = self.config
        path = self.out / CHECKPOINT
        resuming = self.resume and path.exists()
        if resuming:
            run_dir.check_same_run(self.out, checkpoint.load_state(path)["config"], self.config, IDENTITY, "retraining")
        keras.utils.set_random_seed(c["seed"])
        if c.get("deterministic", True):
            tf.config.experimental.enable_op_determinism()
        self.data = retrain_data(c, self.data_dir)
        trainer, optimizer = self.build(self.data)
        network = trainer.network
        record = model_record(
            c["network"], c["genotype"], network, self.data.image_shape, self.data.mean, self.data.std,
            self.data.preprocessing, self.data.class_names,
        )
        state = {"epoch": 0, "history": [], "seconds": 0.0, "config": c, "model": record}
        if resuming:
            state = checkpoint.restore(path, network, {"optimizer": optimizer})
            state["config"] = c
            print(f"resuming {path} after epoch {state['epoch']}")
        shown, verbose = console.progress_callbacks()
        callbacks = [
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.TensorBoard(str(self.out / "tensorboard"), write_graph=False),
            *shown,
        ]
        for epoch in range(state["epoch"], c["epochs"]):
            start = time.perf_counter()
            if hasattr(network, "drop_path_prob"):  # DARTS: rises linearly to its final value
                network.drop_path_prob.assign(c["drop_path_prob"] * epoch / c["epochs"])
            history = trainer.fit(
                self.data.train(epoch), initial_epoch=epoch, epochs=epoch + 1, callbacks=callbacks, shuffle=False,
                verbose=verbose,
            )
            logs = {k: float(v[-1]) for k, v in history.history.items()}
            if not math.isfinite(logs.get("loss", math.nan)):
                raise run_dir.non_finite(epoch, path, state["epoch"])
            state["seconds"] += time.perf_counter() - start
            state["epoch"] = epoch + 1
            state["history"].append({"epoch": epoch + 1, **logs})
            checkpoint.save(path, network, {"optimizer": optimizer}, state)
            print(console.epoch_line(epoch, c["epochs"], logs, time.perf_counter() - start), flush=True)
        result = {**self.evaluate(trainer, state), "checkpoint": str(path)}
        write_json_atomic(self.out / "retrain.json", result)
        print(
            f"{c['network']} on {c['dataset']}: test accuracy {result['test_accuracy']:.4f} "
            f"({result['params'] / 1e6:.3f}M params, {result['madds'] / 1e6:.2f}M MAdds)"
        )
        print(f"\nwrote {self.out / 'retrain.json'}")
        return result

    # ---------------------------------------------------------------------------------------------
    # Hooks

    def build(self, data):
        """`(compiled TargetTrainer, built optimizer)`."""
        c = self.config
        if c["auxiliary_weight"]:
            if c["network"] not in AUX_HEAD:
                raise ValueError(f"--auxiliary_weight: {c['network']} has no auxiliary head; set it to 0.")
            divisor, stride = AUX_HEAD[c["network"]]
            side, least = data.image_shape[0] // divisor, 5 + stride  # a 2x2 map for its 2x2 convolution
            if side < least:
                raise ValueError(
                    f"--auxiliary_weight: the auxiliary head pools 5x5 windows with stride {stride}, then "
                    f"convolves 2x2, so it needs {least}x{least} features where it sits, and "
                    f"{data.image_shape[0]}x{data.image_shape[0]} images leave {side}x{side}; set "
                    f"--auxiliary_weight=0 or use images of at least {least * divisor}x{least * divisor}."
                )
        network = build_network(
            c["network"], self.genotype, data.num_classes, c["init_channels"], c["layers"], data.image_shape[0],
            auxiliary=c["auxiliary_weight"] > 0, drop_path_prob=0.0,
        )
        steps = -(-data.train_size // c["batch_size"])
        if c["lr_decay"] == "cosine":
            schedule = keras.optimizers.schedules.CosineDecay(c["learning_rate"], c["epochs"] * steps)
        else:
            schedule = keras.optimizers.schedules.ExponentialDecay(c["learning_rate"], steps, LR_DECAY_RATE, staircase=True)
        optimizer = SGD(
            schedule, momentum=c["momentum"], nesterov=c["nesterov"], weight_decay=c["weight_decay"] or None,
            global_clipnorm=c["grad_clip"] or None,
        )
        trainer = TargetTrainer(network, c["auxiliary_weight"])
        trainer.compile(
            optimizer=optimizer,
            loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=c["label_smoothing"]),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
            jit_compile=self.config.get("jit_compile", False),
        )
        trainer(np.zeros((1, *data.image_shape), "float32"))  # build, so a checkpoint can be assigned
        optimizer.build(trainer.trainable_variables)
        return trainer, optimizer

    def evaluate(self, trainer, state):
        """The content of `retrain.json`: test loss and accuracy, cost of the network, history."""
        test = trainer.evaluate(self.data.test, verbose=0, return_dict=True)
        network = trainer.network
        exclude = [network.aux_head] if getattr(network, "aux_head", None) is not None else []
        cost = count(network, self.data.image_shape, exclude=exclude)
        return {
            **state["model"],
            "dataset": self.config["dataset"],
            "test_dataset": self.config.get("test_dataset") or self.config["dataset"],
            "test_images": int(self.data.test_size),
            "test_accuracy": float(test["accuracy"]),
            "test_loss": float(test["loss"]),
            **cost,
            "settings": self.config,
            "dtype_policy": self.policy,
            "epochs": state["epoch"],
            "history": state["history"],
            "wall_seconds": state["seconds"],
        }
