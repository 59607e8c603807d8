"""`python -m itnas_tf.retrain --flagfile=configs/retrain_darts_cifar10.cfg --genotype=...`: retrains a
genotype's target network and writes its test accuracy to `retrain.json`.

Training settings left unset take the paper's for the network (`RETRAIN_DEFAULTS`). See `Retrainer`.
"""

import sys

from absl import app, flags

from itnas_tf import cli
from itnas_tf.checkpoint import CheckpointError
from itnas_tf.data import AUGMENTATIONS
from itnas_tf.genotypes import GenotypeError
from itnas_tf.networks import NETWORKS
from itnas_tf.retrainer import Retrainer

flags.DEFINE_string("genotype", None, "Genotype text, or a path to a search's result.json or a chain genotype JSON file.")
flags.DEFINE_enum("network", None, list(NETWORKS), "Target network (default: darts_cifar for DARTS cells, nb201, proxyless).")
flags.DEFINE_string("dataset", "cifar10", "Training data: a tensorflow-datasets name, 'digits', 'npz:PATH' or 'folder:PATH'.")
flags.DEFINE_string(
    "test_dataset", None,
    "Test data (default: the dataset's test split): another source (an npz: file is used whole), or "
    "holdout:F, a seeded fraction F of the training set left out of training.",
)
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data folder.")
flags.DEFINE_integer(
    "input_size", None,
    "Stream a tensorflow-datasets dataset with every image brought to this side (random resized crops "
    "for training, centre crops for testing), as ImageNet needs (224). Default: read the data into "
    "memory at its own size.", lower_bound=8,
)
flags.DEFINE_enum("augment", "auto", list(AUGMENTATIONS), "auto: none for digits, crop for SVHN, crop+flip otherwise.")
flags.DEFINE_integer("cutout", None, "Cutout square side, 0 for none (DARTS CIFAR: 16).", lower_bound=0)
flags.DEFINE_integer("init_channels", None, "C of a cell network (default: the paper's).", lower_bound=2)
flags.DEFINE_integer("layers", None, "Cells (DARTS) or cells per stage (NB201) (default: the paper's).", lower_bound=1)
flags.DEFINE_integer("epochs", None, "Epochs (DARTS CIFAR: 600).", lower_bound=1)
flags.DEFINE_integer("batch_size", None, "Batch size (DARTS CIFAR: 96).", lower_bound=1)
flags.DEFINE_float("learning_rate", None, "Initial SGD learning rate (DARTS CIFAR: 0.025).", lower_bound=0)
flags.DEFINE_enum("lr_decay", None, ["cosine", "exponential"], "cosine to 0, or x0.97 per epoch (DARTS ImageNet).")
flags.DEFINE_float("momentum", None, "SGD momentum.", lower_bound=0, upper_bound=1)
flags.DEFINE_bool("nesterov", None, "Nesterov momentum (NB201, ProxylessNAS).")
flags.DEFINE_float("weight_decay", None, "Decoupled weight decay.", lower_bound=0)
flags.DEFINE_float("grad_clip", None, "Global gradient-norm clip, 0 for none.", lower_bound=0)
flags.DEFINE_float("auxiliary_weight", None, "Weight of the DARTS auxiliary head's loss, 0 for no head.", lower_bound=0)
flags.DEFINE_float("drop_path_prob", None, "Final drop-path rate of DARTS cells (rises linearly from 0).", lower_bound=0, upper_bound=0.99)
flags.DEFINE_float("label_smoothing", None, "Label smoothing (DARTS ImageNet, ProxylessNAS: 0.1).", lower_bound=0, upper_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the initialisation, the shuffling, the augmentation and a holdout split.")
flags.DEFINE_bool("deterministic", True, "Deterministic TensorFlow ops (needed for exact resume).")
flags.DEFINE_bool(
    "mixed_precision", False,
    "Compute in mixed_float16 on a GPU, mixed_bfloat16 elsewhere; weights stay float32. See docs/benchmarks.md.",
)
flags.DEFINE_bool("jit_compile", False, "XLA-compile the training step (off by default: see docs/benchmarks.md).")
flags.DEFINE_string("output_dir", "runs/retrain", "Where checkpoint.npz, retrain.json and tensorboard/ go.")
flags.DEFINE_bool("resume", False, "Continue the retraining in --output_dir from its last checkpoint.")
flags.DEFINE_bool("overwrite", False, "Replace another run's files in --output_dir.")
flags.mark_flag_as_required("genotype")

FLAGS = flags.FLAGS
RUN_CONTROL = ("output_dir", "resume", "overwrite", "data_dir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    config = {
        f.name: f.value for f in FLAGS.get_flags_for_module(sys.modules[__name__]) if f.name not in RUN_CONTROL
    }
    if cli.genotype_help(config["genotype"]):
        return
    Retrainer(config, FLAGS.output_dir, FLAGS.resume, FLAGS.overwrite, FLAGS.data_dir).run()


if __name__ == "__main__":
    cli.run(main, (FileExistsError, CheckpointError, GenotypeError, ValueError))
