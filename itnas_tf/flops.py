"""`python -m itnas_tf.flops --genotype=...`: params and MAdds of a genotype's target network.

`--genotype` is a genotype's text (DARTS `Genotype(...)` or NB201 `|op~j|+...`), or a path to a
search's `result.json` or to a chain genotype's JSON file. The network follows from the genotype
unless `--network` says otherwise (a DARTS genotype on `darts_imagenet`).
"""

import json
import pathlib
import sys

from absl import app, flags

from itnas_tf.counting import count
from itnas_tf.genotypes import ChainGenotype, Genotype, GenotypeError, NB201Genotype, parse_genotype
from itnas_tf.networks import ChainNetwork, NB201Network, NetworkCIFAR, NetworkImageNet

# network -> (builder(genotype, num_classes, init_channels, layers), default classes, input size)
NETWORKS = {
    "darts_cifar": (lambda g, n, c, l: NetworkCIFAR(g, n, c or 36, l or 20, auxiliary=False), 10, 32),
    "darts_imagenet": (lambda g, n, c, l: NetworkImageNet(g, n, c or 48, l or 14, auxiliary=False), 1000, 224),
    "nb201": (lambda g, n, c, l: NB201Network(g, n, c or 16, l or 5), 10, 32),
    "proxyless": (lambda g, n, c, l: ChainNetwork(g), None, None),
}

GENOTYPE_KIND = {"darts_cifar": Genotype, "darts_imagenet": Genotype, "nb201": NB201Genotype, "proxyless": ChainGenotype}

flags.DEFINE_string("genotype", None, "Genotype text, or a path to result.json or a chain genotype JSON file.")
flags.DEFINE_enum("network", None, list(NETWORKS), "Target network (default: from the genotype).")
flags.DEFINE_integer("num_classes", None, "Classes (default: 10 CIFAR/NB201, 1000 ImageNet, the chain genotype's).", lower_bound=1)
flags.DEFINE_integer("input_size", None, "Input side (default: 32 CIFAR/NB201, 224 ImageNet, the chain genotype's).", lower_bound=1)
flags.DEFINE_integer("init_channels", None, "C of a cell network (default: the paper's).", lower_bound=2)
flags.DEFINE_integer("layers", None, "Cells (DARTS) or cells per stage (NB201) (default: the paper's).", lower_bound=1)
flags.DEFINE_bool("json", False, "Print JSON instead of a table.")
flags.mark_flag_as_required("genotype")
FLAGS = flags.FLAGS


def read_genotype(text):
    """`(genotype, default network)` from genotype text or a result.json / chain JSON path."""
    text = text.strip()
    if not text.startswith(("|", "Genotype", "genotypes.")) and "=" not in text:
        path = pathlib.Path(text)
        if not path.is_file():
            raise GenotypeError(f"--genotype: no such file {path}.")
        content = path.read_text()
        try:
            data = json.loads(content)
        except json.JSONDecodeError as e:
            raise GenotypeError(f"--genotype: {path} is not JSON ({e}).") from None
        if isinstance(data, dict) and "ops" in data:
            return ChainGenotype.from_json(content), "proxyless"
        if isinstance(data, dict) and "genotype" in data:
            text = data["genotype"]
        else:
            raise GenotypeError(f"--genotype: {path} is neither a result.json nor a chain genotype.")
    if text.startswith("|"):
        return NB201Genotype.from_string(text), "nb201"
    return parse_genotype(text), "darts_cifar"


def cost(genotype, network, num_classes=None, input_size=None, init_channels=None, layers=None):
    """`{"network", "input_shape", "num_classes", "params", "madds"}` of the genotype's target network."""
    build, default_classes, default_size = NETWORKS[network]
    if network == "proxyless":
        num_classes = num_classes or genotype.num_classes
        input_size = input_size or genotype.input_size
        genotype = ChainGenotype(**{**json.loads(genotype.to_json()), "num_classes": num_classes, "input_size": input_size})
    num_classes, input_size = num_classes or default_classes, input_size or default_size
    model = build(genotype, num_classes, init_channels, layers)
    exclude = [model.aux_head] if getattr(model, "aux_head", None) is not None else []
    counted = count(model, (input_size, input_size, 3), exclude=exclude)
    return {"network": network, "input_shape": [input_size, input_size, 3], "num_classes": num_classes, **counted}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        genotype, network = read_genotype(FLAGS.genotype)
        network = FLAGS.network or network
        if not isinstance(genotype, GENOTYPE_KIND[network]):
            raise GenotypeError(
                f"--network={network} needs a {GENOTYPE_KIND[network].__name__}; got a {type(genotype).__name__}."
            )
        result = cost(genotype, network, FLAGS.num_classes, FLAGS.input_size, FLAGS.init_channels, FLAGS.layers)
    except (GenotypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if FLAGS.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"network  {result['network']}")
        print(f"input    {'x'.join(map(str, result['input_shape']))}, {result['num_classes']} classes")
        print(f"params   {result['params']:,}")
        print(f"MAdds    {result['madds']:,} ({result['madds'] / 1e6:.2f}M)")


if __name__ == "__main__":
    app.run(main)
