"""`ITNASHyperModel`: the target network of a cell space, built from a trial's hyperparameters.

Any keras-tuner oracle can drive it (`ITNASOracle`, `RandomSearch`, `BayesianOptimization`,
`Hyperband`): the space's hyperparameters are declared by `space.declare`. Override `compile` to
train the trials another way.
"""

import keras
import keras_tuner

from itnas_tf.networks import build_network, space_network
from itnas_tf.tuner import space as space_lib
from itnas_tf.tuner.oracle import read_result


class ITNASHyperModel(keras_tuner.HyperModel):
    """Builds `darts_cifar` (DARTS-like spaces; no auxiliary head) or `nb201` networks.

    Args:
        space: the cell space, as the search's `--space`.
        num_classes: classifier width.
        init_channels, layers: network sizes; default the paper's (36/20 DARTS, 16/5 NB201).
        learning_rate: of the SGD (momentum 0.9) that `compile` sets up.
    """

    def __init__(self, space, num_classes=10, init_channels=None, layers=None, learning_rate=0.025, **kwargs):
        super().__init__(**kwargs)
        self.space = space_lib.check_space(space)
        self.network = space_network(space)
        self.num_classes = num_classes
        self.init_channels = init_channels
        self.layers = layers
        self.learning_rate = learning_rate

    @classmethod
    def from_result(cls, result, **kwargs):
        """The HyperModel of a search's space at the sizes of the target network it recorded."""
        result = read_result(result)
        target = result.get("target", {})
        sizes = {k: target.get(k) for k in ("num_classes", "init_channels", "layers") if target.get(k)}
        return cls(result["space"], **{**sizes, **kwargs})

    def declare_hyperparameters(self, hp):
        space_lib.declare(hp, self.space)

    def build(self, hp):
        genotype = space_lib.to_genotype(self.space, space_lib.declare(hp, self.space))
        model = build_network(self.network, genotype, self.num_classes, self.init_channels, self.layers)
        self.compile(model, hp)
        return model

    def compile(self, model, hp):
        """Compiles a trial's model: SGD with momentum, cross-entropy on logits, accuracy."""
        model.compile(
            optimizer=keras.optimizers.SGD(self.learning_rate, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
