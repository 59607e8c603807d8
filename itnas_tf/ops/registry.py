"""`OPS`: every candidate operation by name, as in the DARTS repository's `operations.py`."""

from itnas_tf.ops.basic import ConvBNReLU, FactorizedReduce, Identity, Noise, Pool, ReLUConvBN, Zero
from itnas_tf.ops.darts import DilConv, SepConv
from itnas_tf.ops.mobile import MBConv

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB101_OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")  # NAS-Bench-101's labels
MBCONV_OPS = tuple(f"mb{e}_k{k}" for e in (3, 6) for k in (3, 5, 7))


def _skip(C, stride, affine, **_):
    return Identity() if stride == 1 else FactorizedReduce(C, affine=affine)


def _mbconv(expand, kernel):
    return lambda C, stride, affine, se=False: MBConv(C, kernel, expand, stride, se=se)


# Each factory takes (C, stride, affine, se=False): C is the output width; ops that keep the width
# (pools, identity) require the input to have it, which `MixedLayer` checks.
OPS = {
    "none": lambda C, stride, affine, **_: Zero(stride),
    "zero": lambda C, stride, affine, **_: Zero(stride, channels=C),
    "noise": lambda C, stride, affine, **_: Noise(stride, channels=C),
    "max_pool_3x3": lambda C, stride, affine, **_: Pool("max", stride),
    "avg_pool_3x3": lambda C, stride, affine, **_: Pool("avg", stride),
    "skip_connect": _skip,
    "sep_conv_3x3": lambda C, stride, affine, **_: SepConv(C, 3, stride, affine=affine),
    "sep_conv_5x5": lambda C, stride, affine, **_: SepConv(C, 5, stride, affine=affine),
    "dil_conv_3x3": lambda C, stride, affine, **_: DilConv(C, 3, stride, 2, affine=affine),
    "dil_conv_5x5": lambda C, stride, affine, **_: DilConv(C, 5, stride, 2, affine=affine),
    "nor_conv_1x1": lambda C, stride, affine, **_: ReLUConvBN(C, 1, stride, affine=affine),
    "nor_conv_3x3": lambda C, stride, affine, **_: ReLUConvBN(C, 3, stride, affine=affine),
    **{f"mb{e}_k{k}": _mbconv(e, k) for e in (3, 6) for k in (3, 5, 7)},
    "conv3x3-bn-relu": lambda C, stride, affine, **_: ConvBNReLU(C, 3, stride, affine=affine),
    "conv1x1-bn-relu": lambda C, stride, affine, **_: ConvBNReLU(C, 1, stride, affine=affine),
    "maxpool3x3": lambda C, stride, affine, **_: Pool("max", stride),
}


def make_op(name, channels, stride=1, affine=True, se=False):
    """Builds the candidate `name` with `channels` output channels.

    Raises:
        ValueError: `name` is not a known operation (the message lists the known ones).
    """
    if name not in OPS:
        raise ValueError(f"Unknown operation {name!r}. Known operations: {', '.join(sorted(OPS))}.")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}.")
    return OPS[name](channels, stride, affine, se=se)
