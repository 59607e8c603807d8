"""Target networks from genotypes and the params/MAdds counter, against reference.md."""

import keras
import numpy as np
import pytest

from itnas_tf import DARTS_V2, NB201Genotype
from itnas_tf.counting import count
from itnas_tf.genotypes import GenotypeError, Genotype
from itnas_tf.networks import NB201Network, NetworkCIFAR, NetworkImageNet


def test_darts_v2_cifar_network_reproduces_the_reference():
    model = NetworkCIFAR(DARTS_V2)
    cost = count(model, (32, 32, 3), exclude=[model.aux_head])
    assert cost["params"] == 3_349_342
    assert abs(cost["madds"] - 528.4e6) / 528.4e6 < 1e-3
    logits, aux = model(np.zeros((2, 32, 32, 3), "float32"), training=True)
    assert logits.shape == aux.shape == (2, 10)


def test_darts_v2_imagenet_network_reproduces_the_reference():
    model = NetworkImageNet(DARTS_V2)
    cost = count(model, (224, 224, 3), exclude=[model.aux_head])
    assert cost["params"] == 4_718_752
    assert abs(cost["madds"] - 529.9e6) / 529.9e6 < 1e-3


@pytest.mark.parametrize(
    "ops",
    [["none"] * 6, ["nor_conv_3x3"] * 6, ["nor_conv_1x1", "skip_connect", "nor_conv_3x3", "avg_pool_3x3", "none", "nor_conv_1x1"]],
)
def test_nb201_network_follows_the_benchmark_formula(ops):
    cost = count(NB201Network(NB201Genotype.from_ops(ops)), (32, 32, 3))
    n3, n1 = ops.count("nor_conv_3x3"), ops.count("nor_conv_1x1")
    assert cost["params"] == 73_306 + 243_040 * n3 + 28_000 * n1
    published = 7.78305e6 + 35.38944e6 * n3 + 3.93216e6 * n1  # NB201's counter adds the 10 classifier biases
    assert cost["madds"] == published - 10


def test_counter_matches_mobilenet_v2():
    cost = count(keras.applications.MobileNetV2(weights=None), (224, 224, 3))
    assert cost["params"] == 3_504_872 and abs(cost["madds"] - 300.77e6) / 300.77e6 < 1e-3


def test_genotype_that_does_not_fit_is_refused():
    bad = Genotype(DARTS_V2.normal[:6], [2, 3, 4], DARTS_V2.reduce, [2, 3, 4, 5])
    model = NetworkCIFAR(bad, layers=5, init_channels=8)  # a 3-node cell is a valid genotype
    assert model(np.zeros((1, 8, 8, 3), "float32")).shape == (1, 10)
    with pytest.raises(GenotypeError, match="reads input 7"):
        NetworkCIFAR(Genotype([("sep_conv_3x3", 7)] + DARTS_V2.normal[1:], [2, 3, 4, 5], DARTS_V2.reduce, [2, 3, 4, 5]))
