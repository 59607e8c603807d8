"""`MixedLayer`: one searchable edge (cell spaces) or layer (chain spaces)."""

import contextlib

import keras
from keras import ops

from itnas_tf.engine.indicator_token import MIX_MODES, IndicatorTokenBlock, weighted_sum
from itnas_tf.engine.shared_edges import in_stateless_scope, shared_call, stateless_cond
from itnas_tf.ops.base import build_in_call, builds_by_calling, register, replica_context, synchronized_batch_norms
from itnas_tf.ops.basic import Zero
from itnas_tf.ops.registry import make_op


def _whole_batch(mask):
    """Whether `mask` samples one path for the whole batch (`(n,)`): only its candidates are computed."""
    return mask is not None and len(mask.shape) == 1


@register
class MixedLayer(keras.layers.Layer):
    """Runs every candidate op on the input and lets an `IndicatorTokenBlock` rank them.

    Args:
        candidates: the candidate layers; each must map the input to the same shape.
        names: one op name per candidate (used in importance tables and genotypes); defaults to
            the layers' names.
        mix: what the edge returns. `"weighted"`: the candidates' outputs weighted by the IT's
            attention renormalised over the candidates (closest to the final network).
            `"transformer"`: the encoder's output for the IT token. `"alphas"`: the DARTS baseline,
            the outputs weighted by the `weights` given at call time (softmaxed architecture
            parameters the supernet owns); no IT block is made.
        ffn_ratio: FFN width multiple of the encoder (`"transformer"` mix only).

    Call with `candidate_mask` (`(n,)` or `(batch, n)`, true where active) to let the IT attend
    only over a sampled subset: masked candidates get exactly zero attention and weight. A mask of
    the whole batch (`(n,)`, SPOS-style path sampling) also skips them (`cond`): a masked candidate
    is not computed, gets no gradient and leaves its BatchNorm statistics alone.

    A `Zero` candidate (`none`) is never run: its output would be a map of zeros that costs a
    multiply, a weighting and their gradients to add nothing. The IT reads it as the zero token it
    is, so importances, outputs and gradients are unchanged.
    """

    def __init__(self, candidates, names=None, mix="weighted", ffn_ratio=2, **kwargs):
        super().__init__(**kwargs)
        if mix not in MIX_MODES + ("alphas",):
            raise ValueError(f"mix must be one of {MIX_MODES + ('alphas',)}, got {mix!r}.")
        if not candidates:
            raise ValueError("MixedLayer needs at least one candidate.")
        self.candidates = list(candidates)
        self.names = list(names) if names is not None else [c.name for c in self.candidates]
        if len(self.names) != len(self.candidates):
            raise ValueError(f"Got {len(self.names)} names for {len(self.candidates)} candidates.")
        self.mix = mix
        self.ffn_ratio = ffn_ratio
        self.block = None
        self.output_shape_ = None  # the candidates' output shape, once built
        object.__setattr__(self, "fixed_mask", None)  # set by `masked`; not a weight, not tracked
        if mix != "alphas":
            self.block = IndicatorTokenBlock(
                len(self.candidates), encode=mix == "transformer", ffn_ratio=ffn_ratio, name="it_block"
            )

    @classmethod
    def from_ops(cls, op_names, channels, stride=1, affine=True, se=False, **kwargs):
        """A MixedLayer over named ops of `OPS` (`make_op` raises on an unknown name)."""
        ops_ = [make_op(n, channels, stride, affine=affine, se=se) for n in op_names]
        return cls(ops_, names=op_names, **kwargs)

    @builds_by_calling
    def build(self, input_shape):
        for candidate in self.candidates:
            if not candidate.built:
                candidate.build(input_shape)
        self._built_from(input_shape, [candidate.compute_output_spec(keras.KerasTensor(tuple(input_shape))).shape
                                       for candidate in self.candidates])

    def _maybe_build(self, call_spec):
        # A first eager call that runs every candidate builds them as it reaches them (`build_in_call`);
        # a mask of the whole batch would leave the untaken ones unbuilt, so that call builds first.
        mask = call_spec.arguments_dict.get("candidate_mask")
        if not _whole_batch(self.fixed_mask if mask is None else mask):
            build_in_call(self, call_spec)
        super()._maybe_build(call_spec)

    def _built_from(self, input_shape, shapes):
        """Checks the candidates' output shapes and builds the IT block from them."""
        shapes = [tuple(s) for s in shapes]
        if len(set(s[1:] for s in shapes)) > 1:
            listing = ", ".join(f"{n} -> {s}" for n, s in zip(self.names, shapes))
            raise ValueError(
                f"MixedLayer '{self.name}': the candidates map input {tuple(input_shape)} to different "
                f"shapes ({listing}). Every candidate must produce the same shape: give them the same "
                "stride and output width."
            )
        self.output_shape_ = shapes[0]
        if self.block is not None and not self.block.built:
            self.block.build(shapes[0])

    def call(self, x, candidate_mask=None, weights=None, training=None):
        """`weights` (`(n,)`, the DARTS strategy's softmaxed alphas) is required with `mix="alphas"`,
        where a mask renormalises them over the active candidates."""
        if candidate_mask is None:
            candidate_mask = self.fixed_mask
        # traced once per kind of edge and called by every edge of that kind (`shared_edges.py`)
        return shared_call(self, type(self)._mix, x, candidate_mask, weights, training)

    def _mix(self, x, candidate_mask, weights, training):
        zeros = [isinstance(c, Zero) for c in self.candidates]
        if all(zeros):
            zeros[0] = False  # something must give the output its shape
        outputs = [None if zero else candidate(x) for zero, candidate in zip(zeros, self.candidates)] \
            if not _whole_batch(candidate_mask) else self._run_sampled(x, zeros, candidate_mask, training)
        if self.output_shape_ is None:  # built by this call (`build_in_call`): the rest of `build`
            shape = tuple(x.shape)
            for zero, candidate in zip(zeros, self.candidates):
                if zero and not candidate.built:
                    candidate.build(shape)
            self._built_from(shape, [c.compute_output_shape(shape) if o is None else o.shape
                                     for c, o in zip(self.candidates, outputs)])
        dtype = next(o.dtype for o in outputs if o is not None)
        if self.block is None:
            if weights is None:
                raise ValueError(f"MixedLayer '{self.name}' (mix='alphas') needs `weights` at call time.")
            weights = ops.broadcast_to(ops.cast(weights, dtype), (1, len(outputs)))
            if candidate_mask is not None:
                weights = weights * ops.cast(candidate_mask, dtype)
                weights = weights / ops.sum(weights, axis=-1, keepdims=True)
        else:
            _, mixing = self.block(outputs, candidate_mask=candidate_mask)
            if self.mix == "transformer":
                return mixing
            weights = ops.cast(mixing, dtype)
        return weighted_sum(weights, outputs)

    def _run_sampled(self, x, zeros, mask, training):
        """The outputs with the candidates that `mask` leaves out replaced by zeros, uncomputed."""
        if training and replica_context() is not None and any(_synchronized(c) for c in self.candidates):
            return self._run_sampled_synchronized(x, zeros, mask)
        outputs = []
        for zero, candidate, active in zip(zeros, self.candidates, ops.unstack(ops.cast(mask, "bool"))):
            if zero:
                outputs.append(None)
                continue
            shape = (ops.shape(x)[0], *self.output_shape_[1:])
            if in_stateless_scope():  # a shared edge's trace (`shared_edges.py`)
                outputs.append(stateless_cond(active, candidate, x, lambda c=candidate: ops.zeros(shape, c.compute_dtype)))
                continue
            outputs.append(
                ops.cond(active, lambda c=candidate: c(x), lambda c=candidate: ops.zeros(shape, c.compute_dtype))
            )
        return outputs

    def _run_sampled_synchronized(self, x, zeros, mask):
        """`_run_sampled` where BatchNorms all-reduce their moments across replicas.

        `MirroredStrategy` cannot all-reduce inside a `cond`. So no `cond` here: each candidate runs
        on the first `b * active` samples, the whole batch or none, and a skipped one computes
        nothing (its convolutions see an empty batch; its BatchNorms get zero sums and keep their
        statistics). The mask is the same on every replica, so all skip the same candidates. The
        candidates run as their `segments()`, side by side, so that the all-reduces of a segment
        (`synchronized_batch_norms`: two) serve every candidate's BatchNorm at once.
        """
        context = replica_context()
        batch = ops.shape(x)[0]
        runs = {}  # candidate index -> (its samples, its segments)
        for i, (zero, candidate, active) in enumerate(zip(zeros, self.candidates, ops.unstack(ops.cast(mask, "int32")))):
            if zero:
                continue
            if not hasattr(candidate, "segments"):
                raise NotImplementedError(
                    f"MixedLayer '{self.name}': {type(candidate).__name__} has no `segments()`, so its synchronised "
                    "BatchNorms cannot run on a sampled path; train with --sync_batch_norm=false."
                )
            runs[i] = (batch * active, candidate.segments())
        maps = {i: x[:taken] for i, (taken, _) in runs.items()}
        for k in range(max(len(segments) for _, segments in runs.values())):
            stage = [i for i, (_, segments) in runs.items() if k < len(segments)]
            pairs = [(runs[i][1][k][1], runs[i][1][k][0](maps[i])) for i in stage]
            for i, output in zip(stage, synchronized_batch_norms(pairs, context)):
                maps[i] = output
        outputs = []
        for i in range(len(self.candidates)):
            if i not in runs:
                outputs.append(None)
                continue
            output = ops.pad(maps[i], [[0, batch - runs[i][0]], [0, 0], [0, 0], [0, 0]])
            output.set_shape((None, *self.output_shape_[1:]))
            outputs.append(output)
        return outputs

    def importance(self):
        """`{op name: mean IT attention}` over the samples collected so far."""
        if self.block is None:
            raise ValueError(f"MixedLayer '{self.name}' has no IT block (mix='alphas').")
        return dict(zip(self.names, self.block.mean_importance().tolist()))

    def get_config(self):
        config = {
            "candidates": [keras.saving.serialize_keras_object(c) for c in self.candidates],
            "names": self.names,
            "mix": self.mix,
            "ffn_ratio": self.ffn_ratio,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["candidates"] = [keras.saving.deserialize_keras_object(c) for c in config["candidates"]]
        return cls(**config)


def _synchronized(layer):
    """Whether `layer` holds a BatchNorm that all-reduces its moments across replicas."""
    return any(getattr(sub, "synchronized", False) for sub in layer._flatten_layers())


def mixed_layers(model):
    """Every `MixedLayer` inside `model`, in the order Keras tracks them."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, MixedLayer)]


@contextlib.contextmanager
def masked(masks):
    """Runs each `MixedLayer` in `masks` (`{layer: (n,) mask}`) as if called with that
    `candidate_mask`, e.g. to discretise or remove an op on one edge of a built supernet.

    Give `tf.Variable`s and assign them between calls: a traced function then serves every mask.
    """
    for layer, mask in masks.items():
        object.__setattr__(layer, "fixed_mask", mask)
    try:
        yield
    finally:
        for layer in masks:
            object.__setattr__(layer, "fixed_mask", None)


@contextlib.contextmanager
def collecting_importance(model):
    """Accumulates the IT rows of every `MixedLayer` of `model` while the block runs.

    Example:
        with collecting_importance(supernet):
            supernet.predict(valid_ds)
        table = {layer.name: layer.importance() for layer in mixed_layers(supernet)}
    """
    layers = [layer for layer in mixed_layers(model) if layer.block is not None]
    if not layers:
        raise ValueError(f"Model '{model.name}' has no MixedLayer with an IT block to collect importance from.")
    for layer in layers:
        layer.block.start_collecting()
    try:
        yield layers
    finally:
        for layer in layers:
            layer.block.stop_collecting()


def set_ranking(model, on):
    """Switches the IT rows of every `MixedLayer` of `model` on, or off for a warm-up: off, every
    IT attends uniformly, so each candidate trains at the same weight and no ranking is learned yet."""
    for layer in mixed_layers(model):
        if layer.block is not None:
            layer.block.set_ranking(on)
