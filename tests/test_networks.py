"""Target networks from genotypes and the params/MAdds counter, against reference.md."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from itnas_tf import DARTS_V2, PROXYLESS_GPU, ChainGenotype, NB201Genotype
from itnas_tf.counting import count
from itnas_tf.genotypes import Genotype, GenotypeError
from itnas_tf.networks import ChainNetwork, NB201Network, NetworkCIFAR, NetworkImageNet, build_network
from itnas_tf.ops.base import Op


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


def _profiler_flops(model, input_shape, op_types=None):
    """TensorFlow's own float-op count of one inference on a frozen graph (2 per multiply-add)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(tf.TensorSpec((1, *input_shape)))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    if op_types:
        options["account_type_regexes"] = op_types
    graph = convert_variables_to_constants_v2(fn).graph
    return tf.compat.v1.profiler.profile(graph=graph, cmd="op", options=options).total_float_ops


@pytest.mark.parametrize("which", ["darts_all_primitives", "mobilenet_v2"])
def test_counter_agrees_with_tensorflows_profiler(which):
    """Every conv flavour (dilated, depthwise, strided, factorized, dense) against TF's own count."""
    if which == "mobilenet_v2":
        model, shape = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None), (96, 96, 3)
    else:
        genotype = Genotype(
            [("sep_conv_5x5", 0), ("dil_conv_5x5", 1), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
             ("avg_pool_3x3", 1), ("skip_connect", 0), ("max_pool_3x3", 0), ("none", 2)], [2, 3, 4, 5],
            [("skip_connect", 0), ("sep_conv_3x3", 1), ("dil_conv_5x5", 2), ("max_pool_3x3", 1),
             ("avg_pool_3x3", 0), ("skip_connect", 1), ("dil_conv_3x3", 2), ("sep_conv_5x5", 1)], [2, 3, 4, 5],
        )
        model, shape = NetworkCIFAR(genotype, 10, 8, 5, auxiliary=False), (32, 32, 3)
    madds = count(model, shape)["madds"]
    assert _profiler_flops(model, shape, ["Conv2D", "DepthwiseConv2dNative", "MatMul"]) == 2 * madds
    assert _profiler_flops(model, shape) > 2 * madds  # plus BatchNorm, bias and pooling arithmetic


@pytest.mark.parametrize(
    "network, side",
    [(lambda: NB201Network(NB201Genotype.from_ops(["nor_conv_3x3", "none", "skip_connect"] * 2), 10, 4, 1), 8),
     (lambda: NetworkCIFAR(DARTS_V2, 10, 4, 3), 8),
     (lambda: ChainNetwork(dataclasses.replace(PROXYLESS_GPU, input_size=32, num_classes=10)), 32)],
    ids=["nb201", "darts", "chain"],
)
def test_a_target_network_builds_without_tracing_a_layer_on_its_own(network, side, monkeypatch):
    """Keras traces a model without `build`, and a layer that does not give its output shape, in a
    graph of its own when it is first called: an NB201 network's count (C=16, N=5) took 1.5-2.2 s
    with its 15 cells traced, 1.1-1.4 s without (docs/performance.md)."""
    traced = []
    trace = keras.src.backend.compute_output_spec
    monkeypatch.setattr(keras.src.backend, "compute_output_spec",
                        lambda fn, *args, **kwargs: traced.append(fn.__qualname__) or trace(fn, *args, **kwargs))
    logits = network()(np.zeros((2, side, side, 3), "float32"))  # built by its first call, as `count` builds it
    assert traced == []
    assert logits.shape == (2, 10)  # the shapes the layers gave were the right ones


@pytest.mark.parametrize(
    "network",
    [lambda: NB201Network(NB201Genotype.from_ops(["nor_conv_3x3", "none", "skip_connect"] * 2), 10, 4, 1),
     lambda: NetworkCIFAR(DARTS_V2, 10, 4, 3, auxiliary=False),
     lambda: NetworkCIFAR(DARTS_V2, 10, 4, 3),  # its `build` also makes the auxiliary head
     lambda: ChainNetwork(dataclasses.replace(PROXYLESS_GPU, input_size=32, num_classes=10, se=True))],
    ids=["nb201", "darts", "darts_auxiliary", "chain_se"],
)
def test_a_network_built_by_its_first_eager_call_is_the_one_its_build_makes(network, monkeypatch):
    """An op first called on real tensors builds in that call instead of a symbolic walk of `call`
    (`ops/base.py`, `build_in_call`): the same variables, values and build configs."""
    def made(build):
        keras.backend.clear_session()  # the same layer names
        keras.utils.set_random_seed(1)
        net = network()
        build(net)
        return net, {layer.path: layer.get_build_config() for layer in net._flatten_layers()}

    x = np.zeros((1, 32, 32, 3), "float32")
    built, configs = made(lambda net: net.build(x.shape))
    walks = []
    shape_of = Op.compute_output_shape
    monkeypatch.setattr(Op, "compute_output_shape", lambda op, shape: walks.append(op.path) or shape_of(op, shape))
    called, called_configs = made(lambda net: net(x))
    assert [w.path for w in called.weights] == [w.path for w in built.weights]
    for a, b in zip(called.weights, built.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert called_configs == configs
    if not getattr(called, "aux_head", None):
        assert walks == []


def test_genotype_that_does_not_fit_is_refused():
    bad = Genotype(DARTS_V2.normal[:6], [2, 3, 4], DARTS_V2.reduce, [2, 3, 4, 5])
    model = NetworkCIFAR(bad, layers=5, init_channels=8)  # a 3-node cell is a valid genotype
    assert model(np.zeros((1, 8, 8, 3), "float32")).shape == (1, 10)
    with pytest.raises(GenotypeError, match="reads input 7"):
        NetworkCIFAR(Genotype([("sep_conv_3x3", 7)] + DARTS_V2.normal[1:], [2, 3, 4, 5], DARTS_V2.reduce, [2, 3, 4, 5]))


def test_proxyless_gpu_chain_reproduces_the_reference():
    cost = count(ChainNetwork(PROXYLESS_GPU), (224, 224, 3))
    assert cost["params"] == 7_119_848
    assert abs(cost["madds"] - 465.26e6) / 465.26e6 < 1e-3


def test_zero_where_a_block_changes_stride_or_width_is_refused():
    ops = list(PROXYLESS_GPU.ops)
    ops[4] = "zero"  # the first block of a stage: stride 2
    with pytest.raises(GenotypeError, match="Block 4 is 'zero' but changes the stride"):
        ChainNetwork(ChainGenotype(ops=ops, widths=PROXYLESS_GPU.widths))
    with pytest.raises(GenotypeError, match="21 searchable blocks"):
        ChainNetwork(ChainGenotype(ops=ops[:20]))


def test_flops_cli_reads_text_result_json_and_chain_json(tmp_path, cli_runs):
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    (tmp_path / "result.json").write_text(json.dumps({"genotype": cell}))
    chain = tmp_path / "chain.json"
    chain.write_text(PROXYLESS_GPU.to_json())
    text, result, chain_json, wrong = cli_runs("itnas_tf.flops", [
        [f"--genotype={cell}", "--json"],
        [f"--genotype={tmp_path / 'result.json'}", "--input_size=16", "--num_classes=100"],
        [f"--genotype={chain}", "--json", "--input_size=64"],
        [f"--genotype={chain}", "--network=nb201"],
    ])
    assert text.returncode == 0, text.stderr[-2000:]
    assert json.loads(text.stdout)["params"] == 1_531_546
    assert result.returncode == 0 and "16x16x3, 100 classes" in result.stdout
    assert chain_json.returncode == 0, chain_json.stderr[-2000:]
    assert json.loads(chain_json.stdout)["params"] == 7_119_848  # params do not depend on the input size
    assert wrong.returncode != 0 and "needs a NB201Genotype" in wrong.stderr and "Traceback" not in wrong.stderr


def test_published_chain_and_cell_genotypes_count_as_their_papers_report():
    # MobileNetV2 as a chain is keras.applications' network (reference.md); PC-DARTS 3.6M and P-DARTS
    # 3.4M params on CIFAR-10, as their papers report
    from itnas_tf.genotypes import MOBILENET_V2, PC_DARTS_CIFAR, PDARTS

    mobilenet = count(build_network("proxyless", MOBILENET_V2), (224, 224, 3))
    assert mobilenet["params"] == 3_504_872 and mobilenet["madds"] == 300_774_272
    assert round(count(build_network("darts_cifar", PC_DARTS_CIFAR), (32, 32, 3))["params"] / 1e5) == 36
    assert round(count(build_network("darts_cifar", PDARTS), (32, 32, 3))["params"] / 1e5) == 34
