"""Edges of one structure traced once: a supernet's step calls one `tf.function` per kind of edge.

An 8-cell DARTS supernet has 112 edges but 5 kinds (ops, widths, strides, map sizes); NB201's has
90 edges and 3 kinds. Traced edge by edge, the step's graph held every edge's ops and their
gradients: 35 s of tracing for DARTS on 2 CPU cores. Here the second edge of a kind traces a
`tf.function` of its variables' values (Keras's stateless call), and every later edge of that kind
calls it with its own, so a kind is traced twice per step function (and its gradient built once).
The first edge of a kind is traced on its own, as before: a kind of one edge (6 of the sampled
chain's 11 kinds) would only pay the function's overhead. TensorFlow inlines the calls when it
instantiates the step, so the kernels that run are the same (but a max pool's gradient, which pools
again: `ops/basic.py`).

The values are the unshared trace's, bit for bit, in the forward pass (outputs, importances,
BatchNorm statistics). In the backward pass an edge's function returns one gradient for its input,
the sum over its own candidates, which the step then adds to the other consumers' gradients: the
same terms added in another order, so gradients differ from the unshared trace's in the last bits
(float32 rounding), and a training run's numbers with them. `ITNAS_SHARED_EDGES=off` traces edge
by edge as before.

An edge is shared only where its structure says all there is to know about it: every sublayer a
class of this package or of Keras, configured alike (its name aside), built, with variables of the
same shapes. Distributed steps (their synchronised BatchNorms all-reduce inside the edge) and mixed
precision (Keras casts the variables' values as it reads them) trace edge by edge.
"""

import json
import os
import weakref

import tensorflow as tf
from keras.src.backend.common.stateless_scope import StatelessScope, in_stateless_scope

SWITCH = "ITNAS_SHARED_EDGES"
_MODULES = ("itnas_tf.", "keras.")
_FIRST = weakref.WeakValueDictionary()  # structure -> the first edge of that kind
_FUNCTIONS = weakref.WeakValueDictionary()  # structure -> _Shared; kept alive by the edges using it


def sharing_on():
    """`$ITNAS_SHARED_EDGES` (`on`, the default, or `off`)."""
    choice = os.environ.get(SWITCH, "on").lower()
    if choice not in ("on", "off"):
        raise ValueError(f"{SWITCH}={choice!r}: set it to on (the default) or off.")
    return choice == "on"


class _Shared:
    """One kind of edge: the edge it was traced from (`template`) and its `tf.function`."""

    def __init__(self, template, run):
        self.template = template
        self.function = tf.function(self._body, autograph=False)
        self._run = run

    def _body(self, trainable, non_trainable, x, candidate_mask, weights, training):
        """The template's forward pass on the given variable values; returns the output and
        `{index: new value}` of the non-trainable variables the pass assigned."""
        variables = self.template.non_trainable_variables
        mapping = list(zip(self.template.trainable_variables, trainable)) + list(zip(variables, non_trainable))
        with StatelessScope(state_mapping=mapping) as scope:
            before = [scope.get_current_value(v) for v in variables]
            output = self._run(self.template, x, candidate_mask, weights, training)
        after = [scope.get_current_value(v) for v in variables]
        return output, {i: new for i, (old, new) in enumerate(zip(before, after)) if new is not old}


def shared_call(layer, run, x, candidate_mask, weights, training):
    """`run(layer, x, candidate_mask, weights, training)`, through the function of `layer`'s kind
    where it can be shared; else called directly."""
    shared = _shared(layer, run, x, training)
    if shared is None:
        return run(layer, x, candidate_mask, weights, training)
    if candidate_mask is not None:
        candidate_mask = tf.convert_to_tensor(candidate_mask)
    output, updates = shared.function(
        _values(layer.trainable_variables), _values(layer.non_trainable_variables),
        x, candidate_mask, weights, bool(training),
    )
    variables = layer.non_trainable_variables
    for i, value in updates.items():
        variables[i].assign(value)
    return output


def stateless_cond(active, layer, x, otherwise):
    """`cond(active, layer(x), otherwise())` inside a shared edge's trace: the state that `layer`
    assigns leaves the branch as an output of the `cond` (an update made inside a branch cannot be
    read outside it), then updates the edge's state."""
    variables = layer.non_trainable_variables
    mapping = [(v, v.value) for v in layer.variables]  # the edge's values, not the template's own

    def run():
        with StatelessScope(state_mapping=mapping) as scope:
            output = layer(x)
        return output, [scope.get_current_value(v) for v in variables]

    output, values = tf.cond(active, run, lambda: (otherwise(), [v.value for v in variables]))
    for variable, value in zip(variables, values):
        variable.assign(value)
    return output


def _values(variables):
    """The variables' current values, read at the call: the shared function takes tensors, as
    Keras's stateless call does."""
    return [tf.convert_to_tensor(v.value) for v in variables]


def _shared(layer, run, x, training):
    """The `_Shared` of `layer`'s kind, made on first need; None where `layer` traces on its own."""
    if (
        not tf.inside_function() or in_stateless_scope() or not isinstance(x, tf.Tensor)
        or tf.distribute.has_strategy() or not sharing_on()
        or layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype
    ):
        return None
    key = _structure(layer, x, training)
    if key is None:
        return None
    shared = _FUNCTIONS.get(key)
    if shared is None:
        if _FIRST.setdefault(key, layer) is layer:
            return None  # the first edge of its kind traces on its own: a kind of one edge shares nothing
        shared = _FUNCTIONS[key] = _Shared(layer, run)
    # the edges hold their kinds' functions (the cache only maps to them); not a tracked attribute
    layer.__dict__.setdefault("_shared_kinds", {})[key] = shared
    return shared


def _structure(layer, x, training):
    """What makes two edges compute the same function of their variables, as a hashable key; None
    where a sublayer's class is not this package's or Keras's (its state may live outside its config)."""
    parts = []
    for sub in layer._flatten_layers():
        cls = type(sub)
        if not sub.built or not cls.__module__.startswith(_MODULES):
            return None
        # each sublayer is compared on its own: the configs that nest theirs (with their names) drop them
        config = {k: v for k, v in sub.get_config().items() if k not in ("name", "candidates", "layers")}
        parts.append((f"{cls.__module__}.{cls.__qualname__}", json.dumps(config, sort_keys=True, default=repr)))
    variables = tuple(
        (tuple(v.shape), v.dtype, v.trainable) for v in layer.trainable_variables + layer.non_trainable_variables
    )
    return tuple(parts), variables, tuple(x.shape), x.dtype.name, bool(training)
