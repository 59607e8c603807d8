"""`python -m itnas_tf.search --flagfile=configs/quickstart.cfg`: a cell-space architecture search.

Flags on the command line override the flagfile. See `Searcher` for what a run does and writes.
"""

import sys

from absl import app, flags

from itnas_tf.checkpoint import CheckpointError
from itnas_tf.data import AUGMENTATIONS
from itnas_tf.engine import MIX_MODES, STRATEGIES
from itnas_tf.genotypes import GenotypeError
from itnas_tf.searcher import Searcher
from itnas_tf.spaces import SPACES

flags.DEFINE_enum("space", "nb201", list(SPACES), "Search space (DESIGN.md 3).")
flags.DEFINE_string(
    "dataset", "digits",
    "'digits' (bundled, offline), 'npz:PATH', 'folder:PATH', 'imagenet16_120' or a "
    "tensorflow-datasets name (cifar10, cifar100, svhn_cropped, ...).",
)
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data folder (where datasets are prepared).")
flags.DEFINE_enum("augment", "auto", list(AUGMENTATIONS), "Search-train augmentation; auto: none for digits, crop for SVHN, crop+flip otherwise.")
flags.DEFINE_enum("strategy", "it", list(STRATEGIES), "it: Indicator Tokens; darts: the DARTS baseline (alphas, first-order).")
flags.DEFINE_enum("mix", "weighted", list(MIX_MODES), "What a mixed edge returns under the IT strategy (see README).")
flags.DEFINE_integer("epochs", 50, "Search epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
flags.DEFINE_float("learning_rate", 0.025, "Initial SGD learning rate (cosine decay to 0).", lower_bound=0)
flags.DEFINE_float("momentum", 0.9, "SGD momentum.", lower_bound=0, upper_bound=1)
flags.DEFINE_float("weight_decay", 3e-4, "Decoupled weight decay of the network weights.", lower_bound=0)
flags.DEFINE_float("grad_clip", 5.0, "Global gradient-norm clip (0: none).", lower_bound=0)
flags.DEFINE_float("arch_learning_rate", 3e-4, "Adam learning rate of the alphas (darts strategy).", lower_bound=0)
flags.DEFINE_float("arch_weight_decay", 1e-3, "Decoupled weight decay of the alphas (darts strategy).", lower_bound=0)
flags.DEFINE_integer("init_channels", None, "Supernet channels C (default: the paper's, 16).", lower_bound=2)
flags.DEFINE_integer("layers", None, "Cells (darts, s1-s4; default 8) or cells per stage (nb201; default 5).", lower_bound=1)
flags.DEFINE_integer("target_channels", None, "C of the derived network whose cost result.json reports (default: the paper's, 36 darts / 16 nb201).", lower_bound=2)
flags.DEFINE_integer("target_layers", None, "Cells (darts: 20) or cells per stage (nb201: 5) of that network.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the split, the initialisation, the shuffling and the augmentation.")
flags.DEFINE_bool("deterministic", True, "Deterministic TensorFlow ops (needed for exact resume).")
flags.DEFINE_string("output_dir", "runs/search", "Where the result files go.")
flags.DEFINE_bool("resume", False, "Continue the search in --output_dir from its last checkpoint.")
flags.DEFINE_bool("overwrite", False, "Replace another run's result in --output_dir.")

FLAGS = flags.FLAGS
RUN_CONTROL = ("output_dir", "resume", "overwrite", "data_dir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    config = {
        f.name: f.value for f in FLAGS.get_flags_for_module(sys.modules[__name__]) if f.name not in RUN_CONTROL
    }
    searcher = Searcher(config, FLAGS.output_dir, FLAGS.resume, FLAGS.overwrite, FLAGS.data_dir)
    try:
        searcher.run()
    except (FileExistsError, FloatingPointError, CheckpointError, GenotypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
