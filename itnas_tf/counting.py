"""Parameters and MAdds of any built Keras model (DESIGN.md 5).

MAdds are the multiply-accumulates of convolution and dense weights, `k*k*cin/groups*cout*hout*wout`
and `in*out` per position; BatchNorm, activations, pooling, adds and SE multiplies are not counted.
Output sizes are read from one forward pass on a zero batch of one image, so the count follows the
layers as they are actually called (subclassed models, `keras.applications`, shared layers alike).
"""

import math

import keras
import numpy as np


def _conv_madds(layer, out_shape):
    """MAdds of one call of a convolution or dense layer producing `out_shape` (batch first)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        per_output = math.prod(layer.kernel_size)
    elif isinstance(layer, keras.layers.Conv2D):
        cin = layer.kernel.shape[-2]
        per_output = math.prod(layer.kernel_size) * cin
    elif isinstance(layer, keras.layers.Dense):
        per_output = layer.kernel.shape[0]
    else:
        return 0
    return per_output * math.prod(out_shape[1:])


def _leaves(model):
    return [
        layer for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense))
    ]


def count(model, input_shape, exclude=(), by=()):
    """`{"params": int, "madds": int}` of `model` on one input of `input_shape` (without batch).

    Args:
        exclude: sub-layers (e.g. an auxiliary head) whose weights and MAdds are not counted; they
            are also not run, so pass layers that are only used in training.
        by: sub-layers (e.g. the blocks of a chain) whose own MAdds are also reported, in order, as
            `"by": [int, ...]`.
    """
    spec = np.zeros((1, *input_shape), "float32")
    if not model.built:
        model(spec, training=False)  # some layers are only made in `build`
    excluded = {id(w) for layer in exclude for w in layer.weights}
    excluded_layers = {id(l) for layer in exclude for l in layer._flatten_layers()}
    owner = {id(leaf): i for i, layer in enumerate(by) for leaf in layer._flatten_layers()}
    madds = []
    patched = []
    for layer in _leaves(model):
        if id(layer) in excluded_layers:
            continue
        original = layer.call

        def call(*args, _layer=layer, _original=original, **kwargs):
            out = _original(*args, **kwargs)
            madds.append((owner.get(id(_layer)), _conv_madds(_layer, tuple(out.shape))))
            return out

        layer.call = call
        patched.append((layer, original))
    try:
        model(spec, training=False)
    finally:
        for layer, original in patched:
            layer.call = original
    params = sum(math.prod(w.shape) for w in model.trainable_weights if id(w) not in excluded)
    result = {"params": int(params), "madds": int(sum(m for _, m in madds))}
    if by:
        result["by"] = [int(sum(m for i, m in madds if i == k)) for k in range(len(by))]
    return result
