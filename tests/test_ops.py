import pathlib

import keras
import numpy as np
import pytest
from keras import ops

from itnas_tf.ops.base import batch_norm, synchronized_batch_norms
from itnas_tf.ops import OPS, PRIMITIVES, DilConv, FactorizedReduce, MBConv, Noise, Pool, Zero, make_op

RNG = np.random.default_rng(0)


def _x(shape=(2, 8, 8, 8)):
    return RNG.standard_normal(shape).astype("float32")


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_has_the_output_shape_and_round_trips_through_keras_file(name, stride, tmp_path):
    x = _x()
    inp = keras.Input(x.shape[1:])
    model = keras.Model(inp, make_op(name, 8, stride, affine=True)(inp))
    y = model.predict(x, verbose=0)
    assert y.shape == (2, 8 // stride, 8 // stride, 8)
    path = tmp_path / "op.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert [w.shape for w in loaded.weights] == [w.shape for w in model.weights]
    if name != "noise":
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), y)


def test_darts_primitives_are_in_darts_order():
    assert PRIMITIVES == (
        "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
        "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
    )


@pytest.mark.parametrize(
    "name,params",
    [
        # DARTS definitions at C=16, affine BN (gamma, beta per BN).
        ("sep_conv_3x3", 2 * (9 * 16 + 16 * 16 + 2 * 16)),
        ("sep_conv_5x5", 2 * (25 * 16 + 16 * 16 + 2 * 16)),
        ("dil_conv_3x3", 9 * 16 + 16 * 16 + 2 * 16),
        ("dil_conv_5x5", 25 * 16 + 16 * 16 + 2 * 16),
        ("nor_conv_3x3", 9 * 16 * 16 + 2 * 16),
        ("nor_conv_1x1", 16 * 16 + 2 * 16),
        ("max_pool_3x3", 0),
    ],
)
def test_trainable_parameter_counts_match_the_definitions(name, params):
    op = make_op(name, 16, 1, affine=True)
    op.build((None, 8, 8, 16))
    assert sum(int(np.prod(w.shape)) for w in op.trainable_weights) == params


def test_factorized_reduce_counts_two_half_convs_and_affine_bn():
    op = make_op("skip_connect", 16, 2, affine=True)
    assert isinstance(op, FactorizedReduce)
    op.build((None, 8, 8, 16))
    assert sum(int(np.prod(w.shape)) for w in op.trainable_weights) == 2 * 16 * 8 + 2 * 16


def test_search_batchnorm_without_affine_has_no_trainable_bn_weights():
    op = make_op("sep_conv_3x3", 16, 1, affine=False)
    op.build((None, 8, 8, 16))
    assert all("bn" not in w.path for w in op.trainable_weights)


@pytest.mark.parametrize("affine", [True, False])
def test_fused_batchnorm_matches_keras_and_keeps_pytorch_running_variance(affine):
    x = _x((4, 5, 5, 3)) * 3.0 + 1.0
    ours, theirs = batch_norm(affine), keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, center=affine, scale=affine
    )
    for layer in (ours, theirs):
        layer.build(x.shape)
        if affine:
            layer.gamma.assign(np.array([0.5, 2.0, -1.0], "float32"))
            layer.beta.assign(np.array([0.1, 0.0, 3.0], "float32"))
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), rtol=1e-4, atol=1e-4)
    n = x.size // x.shape[-1]
    np.testing.assert_allclose(ours.moving_mean, 0.1 * x.mean(axis=(0, 1, 2)), rtol=1e-5)
    unbiased = x.reshape(-1, 3).var(axis=0, ddof=1)
    np.testing.assert_allclose(ours.moving_variance, 0.9 + 0.1 * unbiased, rtol=1e-5)
    np.testing.assert_allclose(theirs.moving_variance, 0.9 + 0.1 * unbiased * (n - 1) / n, rtol=1e-5)
    ours.moving_variance.assign(theirs.moving_variance)
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), rtol=1e-4, atol=1e-4)


def test_fused_batchnorm_gradient_matches_keras():
    import tensorflow as tf

    x = tf.constant(_x((4, 5, 5, 3)))
    grads = []
    for layer in (batch_norm(), keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)):
        layer.build(x.shape)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * tf.reshape(tf.range(300.0), x.shape))
        grads.append(tape.gradient(loss, [x, *layer.trainable_weights]))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def _batchnorm_step(x, weights, synchronized):
    """`[output, d loss / d x, gamma and beta gradients, moving mean, moving variance]` of one training step."""
    import tensorflow as tf

    layer = batch_norm()
    layer.build(x.shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = synchronized_batch_norms([(layer, x)], None)[0] if synchronized else layer(x, training=True)
        loss = tf.reduce_sum(y * weights)
    return layer, [y, *tape.gradient(loss, [x, *layer.trainable_weights]), layer.moving_mean, layer.moving_variance]


@pytest.mark.parametrize("offset", [1.0, 300.0])
def test_synchronized_batchnorm_is_the_fused_training_step(offset):
    # the synchronised path (moments all-reduced over replicas) on one replica: the fused path's output,
    # gradients and statistics; an empty batch changes no statistic and gives no NaN
    import tensorflow as tf

    x64 = np.random.default_rng(5).standard_normal((4, 5, 5, 3)).astype("float32").astype("float64") * 3.0 + offset
    x, weights = tf.constant(x64, "float32"), tf.reshape(tf.range(300.0), x64.shape)
    _, fused = _batchnorm_step(x, weights, False)
    layer, synchronized = _batchnorm_step(x, weights, True)
    if offset == 1.0:
        for a, b in zip(fused, synchronized):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
    else:
        # a mean 100x the spread: float32 inputs of 300 hold 5 digits, so both paths are as far from
        # float64 as the inputs' rounding puts them (1e-5 to 2e-5 in the output), the two-pass variance
        # within a few times the fused kernel's (E[x^2] - mean^2, as this path once computed it, was off
        # by 6e-3)
        mean, var = x64.mean((0, 1, 2)), x64.var((0, 1, 2))
        y = (x64 - mean) / np.sqrt(var + 1e-5)
        w = np.asarray(weights, "float64")
        dx = (w - w.mean((0, 1, 2)) - y * (w * y).mean((0, 1, 2))) / np.sqrt(var + 1e-5)
        for k, exact in ((0, y), (1, dx)):
            errors = [np.abs(np.asarray(path[k], "float64") - exact).max() for path in (fused, synchronized)]
            assert errors[1] <= 3 * errors[0] + 1e-6, (k, errors)
    empty = x[:0]
    before = [v.numpy().copy() for v in (layer.moving_mean, layer.moving_variance)]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(synchronized_batch_norms([(layer, empty)], None)[0])
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    for v, b in zip((layer.moving_mean, layer.moving_variance), before):
        np.testing.assert_array_equal(v, b)


def test_mbconv_segments_are_its_call():
    op = MBConv(8, 5, 3, stride=2, se=True)
    x = _x((2, 9, 9, 4))
    op.build(x.shape)
    y = x
    for layer, bn in op.segments():
        y = bn(layer(y), training=False)
    np.testing.assert_array_equal(y, op(x, training=False))
    assert len(op.segments()) == 3 and len(MBConv(8, 3, 1).segments()) == 2


def test_noise_ignores_its_input():
    a, b = Noise(seed=3), Noise(seed=3)
    y1 = ops.convert_to_numpy(a(np.zeros((4, 8, 8, 8), "float32")))
    y2 = ops.convert_to_numpy(b(_x((4, 8, 8, 8)) * 100))
    np.testing.assert_array_equal(y1, y2)
    assert abs(y1.mean()) < 0.1 and abs(y1.std() - 1) < 0.1


@pytest.mark.parametrize("stride", [1, 2])
def test_noise_has_the_output_shape(stride):
    assert Noise(stride, channels=4)(_x()).shape == (2, 8 // stride, 8 // stride, 4)


@pytest.mark.parametrize("stride", [1, 2])
def test_zero_returns_zeros_of_the_right_shape(stride):
    y = ops.convert_to_numpy(Zero(stride)(_x()))
    assert y.shape == (2, 8 // stride, 8 // stride, 8) and not y.any()
    y = ops.convert_to_numpy(Zero(stride, channels=12)(_x()))
    assert y.shape == (2, 8 // stride, 8 // stride, 12) and not y.any()


def _torch_pool(x, kind, stride):
    """Reference: PyTorch's 3x3 pool, padding 1, avg with count_include_pad=False."""
    b, h, w, c = x.shape
    oh, ow = (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
    out = np.zeros((b, oh, ow, c), x.dtype)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * stride - 1, j * stride - 1
            win = x[:, max(r0, 0): r0 + 3, max(c0, 0): c0 + 3, :]
            out[:, i, j, :] = win.max(axis=(1, 2)) if kind == "max" else win.mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 7])
def test_pools_match_pytorch_padding_and_exclude_padding_from_the_average(kind, stride, size):
    x = _x((2, size, size, 3))
    np.testing.assert_allclose(
        ops.convert_to_numpy(Pool(kind, stride)(x)), _torch_pool(x, kind, stride), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("kernel", [3, 5])
def test_strided_dilated_conv_equals_the_dilated_conv_subsampled(kernel):
    """PyTorch computes stride 2, dilation 2, padding d*(k-1)/2; we compute it on even pixels."""
    x = _x((2, 8, 8, 4))
    strided = DilConv(4, kernel, stride=2)
    strided.build(x.shape)
    kernel_w = ops.convert_to_numpy(strided.depthwise.kernel)
    reference = keras.layers.DepthwiseConv2D(kernel, padding="same", dilation_rate=2, use_bias=False)
    reference.build(x.shape)
    reference.set_weights([kernel_w])
    expected = ops.convert_to_numpy(reference(ops.relu(x)))[:, ::2, ::2, :]
    got = ops.convert_to_numpy(strided.depthwise(ops.relu(x)[:, ::2, ::2, :]))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_stride_two_convolutions_pad_symmetrically_like_pytorch():
    """A 3x3 stride-2 conv centred at (0, 0), (0, 2), ...: the output at (0, 0) sees x[-1:2, -1:2]."""
    op = make_op("nor_conv_3x3", 1, 2)
    x = np.zeros((1, 8, 8, 1), "float32")
    x[0, 7, 7, 0] = 1.0  # only a window centred at (6, 6) reaches pixel 7 under PyTorch's padding
    op.build(x.shape)
    op.conv.kernel.assign(np.ones((3, 3, 1, 1), "float32"))
    y = ops.convert_to_numpy(op.conv(op.pad(x)))
    assert y[0, 3, 3, 0] == 1.0 and y.sum() == 1.0


def test_factorized_reduce_is_two_stride_2_convs_and_trains_where_onednn_crashed():
    # DARTS's definition, stride-2 1x1 convs (the second on the input shifted by a pixel), with the op's
    # kernels; then a training step at the shape whose stride-2 filter gradient corrupted the heap on
    # an AVX-512 CPU (in a process of its own: a crash there fails this test instead of the suite)
    import subprocess
    import sys

    import tensorflow as tf

    op, x = FactorizedReduce(8), _x((2, 8, 8, 8))
    y = op(x, training=False)
    relu = tf.nn.relu(x)
    halves = [tf.nn.conv2d(inp, conv.kernel, 2, "VALID") for inp, conv in ((relu, op.conv_1), (relu[:, 1:, 1:], op.conv_2))]
    np.testing.assert_array_equal(y, op.bn(tf.concat(halves, -1), training=False))
    step = (
        "import tensorflow as tf; from itnas_tf.ops import FactorizedReduce\n"
        "op, x = FactorizedReduce(8), tf.random.normal((8, 56, 56, 8))\n"
        "@tf.function\n"
        "def step(x):\n"
        "    with tf.GradientTape() as tape:\n"
        "        loss = tf.reduce_sum(op(x, training=True) ** 2)\n"
        "    return tape.gradient(loss, op.trainable_variables)\n"
        "op(x); step(x); step(x)\n"
    )
    proc = subprocess.run([sys.executable, "-c", step], cwd=pathlib.Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_factorized_reduce_refuses_an_odd_input():
    with pytest.raises(ValueError, match="even height and width"):
        FactorizedReduce(8)(np.zeros((1, 7, 7, 8), "float32"))


def test_unknown_op_is_named_in_the_error():
    with pytest.raises(ValueError, match="Unknown operation 'sep_conv_7x7'.*sep_conv_3x3"):
        make_op("sep_conv_7x7", 16)


@pytest.mark.parametrize("se", [False, True])
def test_mbconv_widths_follow_proxylessnas(se):
    op = MBConv(24, 5, 6, stride=2, se=se)
    y = op(_x((2, 8, 8, 16)))
    assert y.shape == (2, 4, 4, 24)
    assert op.expand.kernel.shape == (1, 1, 16, 96)
    assert op.depthwise.kernel.shape == (5, 5, 96, 1)
    assert (op.squeeze_excite is not None) == se
    if se:
        assert op.squeeze_excite.squeeze.kernel.shape == (1, 1, 96, 24)


def test_se_convs_are_keras_1x1_convs_and_keep_an_empty_batch_in_shape():
    import tensorflow as tf

    from itnas_tf.ops.mobile import PooledConv2D

    pooled = PooledConv2D(24, 1)
    x = _x((3, 1, 1, 96))
    y = pooled(x)
    conv = keras.layers.Conv2D(24, 1)
    conv.build(x.shape)
    conv.set_weights(pooled.get_weights())
    np.testing.assert_allclose(y, conv(x), rtol=1e-5, atol=1e-6)
    empty = tf.zeros((0, 1, 1, 96))
    with tf.GradientTape() as tape:
        out = pooled(empty)
    assert tuple(out.shape) == (0, 1, 1, 24)
    kernel_gradient, bias_gradient = tape.gradient(ops.sum(out), pooled.trainable_weights)
    assert not np.any(kernel_gradient) and not np.any(bias_gradient)


def test_mbconv_with_expansion_one_has_no_expand_conv():
    op = MBConv(16, 3, 1)
    op.build((None, 8, 8, 32))
    assert op.expand is None and op.depthwise.kernel.shape == (3, 3, 32, 1)
