"""Target networks built from genotypes: DARTS's CIFAR and ImageNet networks, the NB201 cell network, the proxyless chain."""

from itnas_tf.networks.darts import NetworkCIFAR, NetworkImageNet
from itnas_tf.networks.nb201 import NB201Network
from itnas_tf.networks.proxyless import ChainNetwork

# (init_channels, layers) of the paper's evaluation networks.
TARGET_SIZES = {"darts": (36, 20), "nb201": (16, 5)}


def target_network(space, genotype, num_classes, init_channels=None, layers=None):
    """The evaluation network of a searched genotype (auxiliary head off): DARTS's CIFAR network for
    `darts` and `s1`..`s4`, the NB201 cell network for `nb201`. Sizes default to the paper's."""
    kind = "nb201" if space == "nb201" else "darts"
    C, N = TARGET_SIZES[kind]
    C, N = init_channels or C, layers or N
    if kind == "nb201":
        return NB201Network(genotype, num_classes, C, N)
    return NetworkCIFAR(genotype, num_classes, C, N, auxiliary=False)
