"""`python -m itnas_tf.search --flagfile=configs/quickstart.cfg`: an architecture search.

Flags on the command line override the flagfile. See `Searcher` for what a run does and writes
(`ChainSearcher` for the chain spaces).
"""

import sys

import tensorflow as tf
from absl import app, flags

from itnas_tf import cli
from itnas_tf.checkpoint import CheckpointError
from itnas_tf.data import AUGMENTATIONS
from itnas_tf.distribution import DISTRIBUTIONS
from itnas_tf.engine import MIX_MODES, STRATEGIES
from itnas_tf.genotypes import GenotypeError
from itnas_tf.searcher import DEFAULTS, searcher_class
from itnas_tf.spaces import SPACES

flags.DEFINE_enum("space", DEFAULTS["space"], list(SPACES), "Search space (DESIGN.md 3).")
flags.DEFINE_string(
    "dataset", DEFAULTS["dataset"],
    "'digits' (bundled, offline), 'npz:PATH', 'folder:PATH', 'imagenet16_120' or a "
    "tensorflow-datasets name (cifar10, cifar100, svhn_cropped, ...).",
)
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data folder (where datasets are prepared).")
flags.DEFINE_string("search_train_split", None, "Stream search-train from this tfds split of --dataset (e.g. train[:10%]) instead of splitting the training set 50/50 in memory.")
flags.DEFINE_string("search_valid_split", None, "Stream search-valid from this tfds split (e.g. train[10%:12.5%]); with --search_train_split.")
flags.DEFINE_integer("input_size", None, "Streamed search data: the side images are brought to (default 224).", lower_bound=8)
flags.DEFINE_enum("augment", DEFAULTS["augment"], list(AUGMENTATIONS), "Search-train augmentation; auto: none for digits, crop for SVHN, crop+flip otherwise.")
flags.DEFINE_enum("strategy", DEFAULTS["strategy"], list(STRATEGIES), "it: Indicator Tokens; darts: the DARTS baseline (alphas, first-order).")
flags.DEFINE_enum("mix", DEFAULTS["mix"], list(MIX_MODES), "What a mixed edge returns under the IT strategy (see docs/layout.md).")
flags.DEFINE_integer("epochs", DEFAULTS["epochs"], "Search epochs.", lower_bound=1)
flags.DEFINE_integer("warmup_epochs", DEFAULTS["warmup_epochs"], "IT strategy: first epochs in which every IT attends uniformly, so all candidates train at the same weight before any is ranked (default: 3/10 of --epochs; the DARTS strategy's alphas train from the start).", lower_bound=0)
flags.DEFINE_integer("batch_size", DEFAULTS["batch_size"], "Batch size.", lower_bound=1)
flags.DEFINE_float("learning_rate", DEFAULTS["learning_rate"], "Initial SGD learning rate (cosine decay to --final_learning_rate).", lower_bound=0)
flags.DEFINE_float("final_learning_rate", DEFAULTS["final_learning_rate"], "Where the cosine schedule ends (DARTS: 0; ProxylessNAS/SPOS ImageNet: 5e-4).", lower_bound=0)
flags.DEFINE_float("momentum", DEFAULTS["momentum"], "SGD momentum.", lower_bound=0, upper_bound=1)
flags.DEFINE_float("weight_decay", DEFAULTS["weight_decay"], "Decoupled weight decay of the network weights.", lower_bound=0)
flags.DEFINE_float("grad_clip", DEFAULTS["grad_clip"], "Global gradient-norm clip (0: none).", lower_bound=0)
flags.DEFINE_float("arch_learning_rate", DEFAULTS["arch_learning_rate"], "Adam learning rate of the alphas (darts strategy).", lower_bound=0)
flags.DEFINE_float("arch_weight_decay", DEFAULTS["arch_weight_decay"], "Decoupled weight decay of the alphas (darts strategy).", lower_bound=0)
flags.DEFINE_integer("init_channels", DEFAULTS["init_channels"], "Supernet channels C (default: the paper's, 16).", lower_bound=2)
flags.DEFINE_integer("layers", DEFAULTS["layers"], "Cells (darts, s1-s4; default 8) or cells per stage (nb201: default 5; nb101_1shot1_s*: 3).", lower_bound=1)
flags.DEFINE_integer("target_channels", DEFAULTS["target_channels"], "C of the derived network whose cost result.json reports (default: the paper's, 36 darts / 16 nb201).", lower_bound=2)
flags.DEFINE_integer("target_layers", DEFAULTS["target_layers"], "Cells (darts: 20) or cells per stage (nb201: 5) of that network.", lower_bound=1)
flags.DEFINE_integer("seed", DEFAULTS["seed"], "Seed of the split, the initialisation, the shuffling and the augmentation.")
flags.DEFINE_bool("deterministic", DEFAULTS["deterministic"], "Deterministic TensorFlow ops (needed for exact resume).")
flags.DEFINE_bool(
    "mixed_precision", DEFAULTS["mixed_precision"],
    "Compute in mixed_float16 on a GPU, mixed_bfloat16 elsewhere; weights stay float32. See docs/benchmarks.md.",
)
flags.DEFINE_bool(
    "jit_compile", DEFAULTS["jit_compile"],
    "XLA-compile the training and selection steps. Off by default: see docs/benchmarks.md for when it pays.",
)
flags.DEFINE_integer(
    "paths_per_step", DEFAULTS["paths_per_step"],
    "Chain spaces: candidates sampled per layer and step, the IT attending over them (1: plain SPOS).", lower_bound=1,
)
flags.DEFINE_bool("se", DEFAULTS["se"], "Chain spaces: MBConv candidates with squeeze-and-excitation.")
flags.DEFINE_string("widths", DEFAULTS["widths"], "Chain spaces: the supernet's widths as JSON {stem, first, stages, head} (default: reference.md's ProxylessNAS-GPU widths).")
flags.DEFINE_float("max_madds", DEFAULTS["max_madds"], "Chain spaces: the MAdds budget of the target network (mobile setting: 600M).", lower_bound=1)
flags.DEFINE_string("target_widths", DEFAULTS["target_widths"], "Chain spaces: the widths the budget is counted at (JSON; default: the reference widths).")
flags.DEFINE_integer("target_input_size", DEFAULTS["target_input_size"], "Chain spaces: the input side the budget is counted at.", lower_bound=1)
flags.DEFINE_integer("target_classes", DEFAULTS["target_classes"], "Chain spaces: the classes of the network the budget is counted on.", lower_bound=1)
flags.DEFINE_float("max_latency_ms", DEFAULTS["max_latency_ms"], "Chain spaces: the batch-1 latency budget of the target network, predicted by --latency_table (with --max_madds: both must hold).", lower_bound=0)
flags.DEFINE_string("latency_table", DEFAULTS["latency_table"], "Chain spaces: a latency table of the target network on the deployment CPU (`python -m itnas_tf.latency`).")
flags.DEFINE_enum(
    "distribution", DEFAULTS["distribution"], list(DISTRIBUTIONS),
    "mirrored: every local GPU (MirroredStrategy); multi_worker: the machines of TF_CONFIG (MultiWorkerMirroredStrategy). "
    "--batch_size is the global batch either way.",
)
flags.DEFINE_integer("cpu_replicas", DEFAULTS["cpu_replicas"], "With --distribution=mirrored on a machine without GPUs: split the CPU into N logical devices.", lower_bound=0)
flags.DEFINE_bool("sync_batch_norm", DEFAULTS["sync_batch_norm"], "With several replicas: BatchNorm statistics of the global batch, so a step does not depend on the replica count.")
flags.DEFINE_float("worker_timeout", DEFAULTS["worker_timeout"], "multi_worker: seconds to wait for the workers of TF_CONFIG, and for any collective.", lower_bound=1)
flags.DEFINE_integer(
    "intra_op_threads", DEFAULTS["intra_op_threads"],
    "Threads each op may use (0: TensorFlow's default, one per core). 1 is faster on small tensors (the "
    "quickstart's 8x8 digits) and gives the same numbers on machines of any core count.", lower_bound=0,
)
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
    try:
        searcher_class(config["space"])(config, FLAGS.output_dir, FLAGS.resume, FLAGS.overwrite, FLAGS.data_dir).run()
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
        first = str(e.message).strip().splitlines()[0]
        cli.fail(f"another worker stopped answering ({type(e).__name__}: {first}). The last checkpoint in "
                 f"{FLAGS.output_dir} is kept: start every worker again with --resume.", cli.FAILED)


if __name__ == "__main__":
    cli.run(main, (FileExistsError, CheckpointError, GenotypeError, ValueError))
