"""Candidate operations of every search space."""

from itnas_tf.ops.base import Op, batch_norm, same_padding
from itnas_tf.ops.basic import ConvBNReLU, FactorizedReduce, Identity, Noise, Pool, ReLUConvBN, Zero
from itnas_tf.ops.darts import PRIMITIVES, DilConv, SepConv
from itnas_tf.ops.mobile import MBConv, SqueezeExcite, make_divisible
from itnas_tf.ops.registry import MBCONV_OPS, NB101_OPS, NB201_OPS, OPS, make_op
