"""itnas_tf: IT-NAS (neural architecture search with an Indicator Token) for TensorFlow/Keras."""

import sys as _sys

if _sys.argv[:1] == ["-m"]:  # a command line (`python -m itnas_tf.search`): before TensorFlow loads
    from itnas_tf.cli import start as _start

    _start()

from itnas_tf.engine import IndicatorTokenBlock, MixedLayer, collecting_importance, mixed_layers
from itnas_tf.genotypes import (
    DARTS_V1,
    DARTS_V2,
    PROXYLESS_GPU,
    ChainGenotype,
    Genotype,
    GenotypeError,
    NB201Genotype,
    format_genotype,
    parse_genotype,
)
from itnas_tf.ops import MBCONV_OPS, NB201_OPS, OPS, PRIMITIVES, make_op

__version__ = "0.1.0"
