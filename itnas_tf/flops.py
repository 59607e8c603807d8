"""`python -m itnas_tf.flops --genotype=...`: params and MAdds of a genotype's target network.

`--genotype` is a genotype's text (DARTS `Genotype(...)` or NB201 `|op~j|+...`), or a path to a
search's `result.json` or to a chain genotype's JSON file. The network follows from the genotype
unless `--network` says otherwise (a DARTS genotype on `darts_imagenet`).
"""

import json

from absl import app, flags

from itnas_tf import cli
from itnas_tf.counting import count
from itnas_tf.genotypes import GenotypeError, read_genotype
from itnas_tf.networks import NETWORKS, build_network, default_network, input_side

flags.DEFINE_string("genotype", None, "Genotype text, or a path to result.json or a chain genotype JSON file.")
flags.DEFINE_enum("network", None, list(NETWORKS), "Target network (default: from the genotype).")
flags.DEFINE_integer("num_classes", None, "Classes (default: 10 CIFAR/NB201, 1000 ImageNet, the chain genotype's).", lower_bound=1)
flags.DEFINE_integer("input_size", None, "Input side (default: 32 CIFAR/NB201, 224 ImageNet, the chain genotype's).", lower_bound=1)
flags.DEFINE_integer("init_channels", None, "C of a cell network (default: the paper's).", lower_bound=2)
flags.DEFINE_integer("layers", None, "Cells (DARTS) or cells per stage (NB201) (default: the paper's).", lower_bound=1)
flags.DEFINE_bool("json", False, "Print JSON instead of a table.")
flags.mark_flag_as_required("genotype")
FLAGS = flags.FLAGS


def cost(genotype, network, num_classes=None, input_size=None, init_channels=None, layers=None):
    """`{"network", "input_shape", "num_classes", "params", "madds"}` of the genotype's target network."""
    model = build_network(network, genotype, num_classes, init_channels, layers, input_size)
    side = input_side(network, genotype, input_size)
    counted = count(model, (side, side, 3))
    return {"network": network, "input_shape": [side, side, 3], "num_classes": model.num_classes, **counted}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if cli.genotype_help(FLAGS.genotype):
        return
    genotype = read_genotype(FLAGS.genotype)
    network = FLAGS.network or default_network(genotype)
    result = cost(genotype, network, FLAGS.num_classes, FLAGS.input_size, FLAGS.init_channels, FLAGS.layers)
    if FLAGS.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"network  {result['network']}")
        print(f"input    {'x'.join(map(str, result['input_shape']))}, {result['num_classes']} classes")
        print(f"params   {result['params']:,}")
        print(f"MAdds    {result['madds']:,} ({result['madds'] / 1e6:.2f}M)")


if __name__ == "__main__":
    cli.run(main, (GenotypeError, ValueError))
