"""One training step of a small chain of sampled `MixedLayer`s (MBConv candidates and `zero`, as in the
proxyless space; the second layer's MBConvs with squeeze-and-excitation) on 1 device or on N logical CPUs with synchronised BatchNorm, for
`test_distribution.py`, with the gradient clipped. Prints `RESULT <json>`: the loss, the importances after the step, the moving
statistics and weights of every candidate.

    python tests/sampled_step.py REPLICAS
"""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from itnas_tf import distribution  # noqa: E402
from itnas_tf.engine import MixedLayer, collecting_importance, masked, mixed_layers  # noqa: E402
from itnas_tf.ops import batch_norm  # noqa: E402
from itnas_tf.optimizers import SGD  # noqa: E402

CHOICES = ["mb3_k3", "mb6_k5", "mb3_k7", "zero"]
MASKS = [[True, False, True, False], [False, True, False, True]]  # the second layer skips two convolutions


class Chain(keras.Model):
    def __init__(self):
        super().__init__()
        self.stem = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)
        self.stem_bn = batch_norm()
        self.chain = [MixedLayer.from_ops(CHOICES, 8, 1, se=i == 1, name=f"layer_{i}") for i in range(len(MASKS))]
        self.classifier = keras.layers.Dense(10)

    def call(self, x, training=None):
        x = keras.ops.relu6(self.stem_bn(self.stem(x), training=training))
        for layer in self.chain:
            x = x + layer(x)
        return self.classifier(keras.ops.mean(x, axis=(1, 2)))


def main():
    replicas = int(sys.argv[1])
    strategy = distribution.make_strategy("mirrored" if replicas > 1 else "none", cpu_replicas=replicas * (replicas > 1))
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.RandomState(0)
    x, y = rng.normal(size=(16, 8, 8, 3)).astype("float32"), rng.randint(0, 10, 16)
    with strategy.scope():
        model = Chain()
        model(x[:2])
        if replicas > 1:
            distribution.synchronize_batch_norm(model)
        # clipped hard, so the step is the one-device step only if the whole batch's gradient is clipped
        model.compile(SGD(0.1, global_clipnorm=0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        masks = {layer: tf.Variable(mask) for layer, mask in zip(model.chain, MASKS)}
    with masked(masks):
        loss = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history["loss"][0]
    with collecting_importance(model):
        model.predict(x, batch_size=16, verbose=0)
    result = {
        "loss": loss,
        "importance": {layer.name: layer.importance() for layer in mixed_layers(model)},
        "weights": {f"{layer.name}/{name}/{w.path.rsplit('/', 2)[-2]}/{w.name}": np.asarray(w).tolist()
                    for layer in model.chain for name, candidate in zip(layer.names, layer.candidates)
                    for w in candidate.weights},
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
