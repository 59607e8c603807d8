"""Target networks built from genotypes: DARTS's CIFAR and ImageNet networks, the NB201 cell network, the proxyless chain."""

import dataclasses

from itnas_tf.genotypes import ChainGenotype, Genotype, GenotypeError, NB201Genotype
from itnas_tf.networks.darts import NetworkCIFAR, NetworkImageNet
from itnas_tf.networks.nb201 import NB201Network
from itnas_tf.networks.proxyless import ChainNetwork, block_plan

# network -> (genotype kind, default init_channels, layers, classes, input side); a chain
# genotype carries its own widths, classes and input side.
NETWORKS = {
    "darts_cifar": (Genotype, 36, 20, 10, 32),
    "darts_imagenet": (Genotype, 48, 14, 1000, 224),
    "nb201": (NB201Genotype, 16, 5, 10, 32),
    "proxyless": (ChainGenotype, None, None, None, None),
}


def default_network(genotype):
    """The network a genotype is usually evaluated on (`darts_cifar` for DARTS cells)."""
    return {Genotype: "darts_cifar", NB201Genotype: "nb201", ChainGenotype: "proxyless"}[type(genotype)]


def check_fits(network, genotype):
    """Raises `GenotypeError` when `genotype` is of another kind than `network` takes, or is a chain
    with a `zero` where a block changes stride or width; cheap, so callers can check before loading data."""
    kind = NETWORKS[network][0]
    if not isinstance(genotype, kind):
        raise GenotypeError(f"--network={network} needs a {kind.__name__}; got a {type(genotype).__name__}.")
    if network == "proxyless":
        block_plan(genotype)


def build_network(network, genotype, num_classes=None, init_channels=None, layers=None, input_size=None,
                  auxiliary=False, drop_path_prob=0.0):
    """The Keras model of `network` (a key of `NETWORKS`) for `genotype`; sizes default to the paper's.

    Raises:
        GenotypeError: the genotype is of another kind, or does not fit the network.
    """
    check_fits(network, genotype)
    _, C, N, classes, _ = NETWORKS[network]
    num_classes = num_classes or classes
    if network == "proxyless":
        genotype = dataclasses.replace(
            genotype, num_classes=num_classes or genotype.num_classes, input_size=input_size or genotype.input_size
        )
        return ChainNetwork(genotype)
    C, N = init_channels or C, layers or N
    if network == "nb201":
        return NB201Network(genotype, num_classes, C, N)
    cls = NetworkCIFAR if network == "darts_cifar" else NetworkImageNet
    return cls(genotype, num_classes, C, N, auxiliary=auxiliary, drop_path_prob=drop_path_prob)


def input_side(network, genotype, input_size=None):
    """The input side `network` expects by default."""
    return input_size or (genotype.input_size if network == "proxyless" else NETWORKS[network][4])


def space_network(space):
    """The network a cell space's genotypes are evaluated on: `nb201` for `nb201`, else `darts_cifar`."""
    return "nb201" if space == "nb201" else "darts_cifar"


def target_network(space, genotype, num_classes, init_channels=None, layers=None):
    """The evaluation network of a searched genotype (auxiliary head off): DARTS's CIFAR network for
    `darts` and `s1`..`s4`, the NB201 cell network for `nb201`. Sizes default to the paper's."""
    return build_network(space_network(space), genotype, num_classes, init_channels, layers)
