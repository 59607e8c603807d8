"""keras-tuner integration: `ITNASOracle` ranks a cell space's architectures by IT importance,
`ITNASHyperModel` builds their target networks for any oracle."""

from itnas_tf.tuner.cost import CellCost
from itnas_tf.tuner.hypermodel import ITNASHyperModel
from itnas_tf.tuner.oracle import ITNASOracle, read_result
from itnas_tf.tuner.space import declare, from_genotype, to_genotype, to_text
