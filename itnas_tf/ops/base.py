"""What every candidate operation shares: building from the input shape, PyTorch-style padding, BN."""

import keras

PACKAGE = "itnas_tf"


def register(cls):
    """Registers a layer class for `.keras` saving under the project's package name."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


class Op(keras.layers.Layer):
    """Base of the candidate operations.

    Sub-layers are made in `__init__`; `build` creates their weights by running `call` on a symbolic
    input of the given shape, so every op is fully built (and loadable from `.keras`) from its input
    shape alone, without a hand-written shape walk per op.
    """

    def build(self, input_shape):
        self.call(keras.KerasTensor(tuple(input_shape), dtype=self.compute_dtype))
        self.built = True


def same_padding(kernel_size, stride, dilation=1):
    """Padding that reproduces PyTorch's symmetric `padding=k//2` (times dilation).

    TensorFlow's 'same' pads the bottom/right first, which at stride 2 shifts every window by one
    pixel against the PyTorch definitions that DARTS, NB201 and ProxylessNAS use. At stride 1 with an
    odd kernel both agree, so only strided layers get an explicit `ZeroPadding2D` (and 'valid').

    Returns:
        `(pad_layer_or_None, conv_padding_string)`.
    """
    if stride == 1:
        return None, "same"
    pad = dilation * (kernel_size - 1) // 2
    return keras.layers.ZeroPadding2D(pad), "valid"


def batch_norm(affine=True, **kwargs):
    """BatchNorm with PyTorch's defaults (momentum 0.1 there is 0.9 here, eps 1e-5).

    `affine=False` is the DARTS search supernet's BatchNorm: no gamma/beta.
    """
    return keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, center=affine, scale=affine, **kwargs
    )
