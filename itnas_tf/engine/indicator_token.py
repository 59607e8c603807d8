"""`IndicatorTokenBlock`: one single-head transformer encoder layer over candidate-op tokens."""

import math

import keras
from keras import ops

from itnas_tf.ops.base import register, replica_context

MIX_MODES = ("weighted", "transformer")
MAX_SCALE = 100.0  # the cap on the learned sharpness, as Swin Transformer V2 caps its logit scale


def weighted_sum(weights, outputs):
    """`sum_i weights[:, i] * outputs[i]` over the outputs that are not `None` (known zeros)."""
    # one unstack, not a slice per output: on a 7-op edge, ~60 fewer nodes to trace with the gradient
    columns = ops.unstack(ops.reshape(weights, (-1, len(outputs), 1, 1, 1)), axis=1)
    terms = [w * o for w, o in zip(columns, outputs) if o is not None]
    result = terms[0]
    for term in terms[1:]:
        result = result + term
    return result


def _unit(x):
    """`x / |x|` along the last axis; a zero vector stays zero."""
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-24))


def _batch_mean(weights):
    """The mean of `weights` `(batch, n)` over the whole batch, `(1, n)`: over every replica's samples
    when the step runs on several, so that a mirrored step mixes as the one-device step does."""
    total = ops.sum(weights, axis=0, keepdims=True)
    count = ops.cast(ops.shape(weights)[0], weights.dtype)
    context = replica_context()
    if context is not None:
        import tensorflow as tf

        total, count = context.all_reduce(tf.distribute.ReduceOp.SUM, [total, count])
    return total / count


@register
class IndicatorTokenBlock(keras.layers.Layer):
    """Reads `n` candidate outputs as tokens beside a learned Indicator Token (IT).

    A token is a whole `(h, w, c)` map. The IT `(c,)` and one positional vector per token are
    broadcast over `h, w`. The layer returns the IT's attention row over the candidates,
    `a = A[:, 0, 1:]`, and, with `encode=True`, the encoder's output for the IT token,
    `y = LN(z + FFN(z))`, `z = LN(T_0 + sum_j A[0, j] V_j)` (V "lite": one `c x c` projection at
    every pixel); without it, the weights of the `weighted` mix: `a / sum(a)`, averaged over the batch.

    Queries and keys read each token's mean over its pixels, and a score is their cosine times a
    learned sharpness: `A_ij = softmax_j(cos(q_i, k_j) * exp(min(s, log 100)))`, `s` from `log 10`,
    as Swin Transformer V2 bounds its attention. A dot product over whole maps grows like `h w`
    (the IT's query is the same at every pixel), so on 32x32 maps the scores reached +-120 and
    each sample's row was one-hot; these stay within +-100 whatever `h`, `w` and `c`, and a map
    and its upsampled copy score alike. Only the IT row of `A` is ever computed in `call`;
    `attention_matrix` computes the whole matrix (for analysis and tests).

    Why the `weighted` mix is the batch's mean row, not each sample's: mixing each sample with its
    own row let the row pick, per sample, whichever op fit the training loss at once (single-level
    DARTS per sample); on 10,000 CIFAR-10 images the loss rose when ranking began and the search
    drifted to `skip_connect` (docs/results.md). The importances stay per sample (DESIGN.md 1.4).

    A token given as `None` is a candidate known to output zeros (`none`), which the caller need not
    compute: it enters the attention as the zero map (plus its position) it stands for.

    The IT row can be accumulated over many batches (mean over samples) for selection:
    `start_collecting()`, run the validation data, `mean_importance()`. Collection is a variable
    flag, so it switches on and off inside already compiled `predict`/`evaluate` functions.

    Args:
        num_candidates: `n`, the number of candidate tokens.
        encode: whether to build V, the LayerNorms and the FFN and return the encoder output
            (`MixedLayer(mix="transformer")`); with `encode=False` they would get no gradient.
        ffn_ratio: the FFN's hidden width as a multiple of `c`.
    """

    def __init__(self, num_candidates, encode=False, ffn_ratio=2, **kwargs):
        super().__init__(**kwargs)
        if num_candidates < 1:
            raise ValueError(f"IndicatorTokenBlock needs at least one candidate, got {num_candidates}.")
        self.num_candidates = int(num_candidates)
        self.encode = bool(encode)
        self.ffn_ratio = ffn_ratio

    def build(self, token_shape):
        """`token_shape` is one candidate output's shape, `(batch, h, w, c)`."""
        if len(token_shape) != 4 or None in token_shape[1:]:
            raise ValueError(
                f"IndicatorTokenBlock needs candidate outputs of static shape (batch, h, w, c), got "
                f"{tuple(token_shape)}."
            )
        _, h, w, c = token_shape
        n = self.num_candidates
        token_init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.indicator = self.add_weight(shape=(c,), initializer=token_init, name="indicator_token")
        self.position = self.add_weight(shape=(n + 1, c), initializer=token_init, name="position")
        self.query = self.add_weight(shape=(c, c), initializer="glorot_uniform", name="query")
        self.key = self.add_weight(shape=(c, c), initializer="glorot_uniform", name="key")
        self.logit_scale = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(math.log(10.0)), name="logit_scale"
        )
        if self.encode:
            hidden = int(self.ffn_ratio * c)
            self.value = self.add_weight(shape=(c, c), initializer="glorot_uniform", name="value")
            self.norm_1 = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_1")
            self.ffn_1 = keras.layers.Dense(hidden, activation="relu", name="ffn_1")
            self.ffn_2 = keras.layers.Dense(c, name="ffn_2")
            self.norm_2 = keras.layers.LayerNormalization(epsilon=1e-5, name="norm_2")
            for layer, shape in (
                (self.norm_1, token_shape),
                (self.ffn_1, token_shape),
                (self.ffn_2, (*token_shape[:3], hidden)),
                (self.norm_2, token_shape),
            ):
                layer.build(shape)
        # Selection state: per-replica sums, summed across replicas when read. Initializers, not
        # values: Keras may first build the layer inside a symbolic (stateless) trial call, where
        # only deferred variables may be made; a value there would abort the build halfway.
        self.importance_sum = keras.Variable(
            "zeros", shape=(n,), trainable=False, aggregation="sum", synchronization="on_read",
            name="importance_sum",
        )
        self.importance_count = keras.Variable(
            "zeros", shape=(), trainable=False, aggregation="sum", synchronization="on_read",
            name="importance_count",
        )
        self.collecting = keras.Variable("zeros", shape=(), trainable=False, name="collecting")
        # 1: the IT row is the attention; 0: uniform over the candidates (warm-up), and the
        # ranking parameters get no gradient through it
        self.ranking = keras.Variable("ones", shape=(), trainable=False, name="ranking")

    # -- attention -------------------------------------------------------------------------------

    def _scores(self, tokens, candidate_mask):
        """The IT row's scores `cos(q_0, k_j) * exp(min(s, log 100))`, `(batch, n + 1)`, in float32."""
        # float32 throughout, also under mixed precision: the pixel means sum whole maps
        indicator, position, query, key = (
            ops.cast(w, "float32") for w in (self.indicator, self.position, self.query, self.key)
        )
        means = [None if t is None else ops.mean(ops.cast(t, "float32"), axis=(1, 2)) for t in tokens]
        zero = ops.zeros_like(next(m for m in means if m is not None))
        pooled = ops.stack([zero if m is None else m for m in means], axis=1) + position[1:]  # (b, n, c)
        it_token = indicator + position[0]
        q0 = _unit(ops.matmul(it_token, query))  # (c,)
        k0 = _unit(ops.matmul(it_token, key))
        k = _unit(ops.einsum("bnc,cd->bnd", pooled, key))
        cosines = ops.concatenate(
            [ops.broadcast_to(ops.sum(q0 * k0), (ops.shape(k)[0], 1)), ops.einsum("bnd,d->bn", k, q0)], axis=1
        )
        return self._mask(cosines * (ops.cast(self.ranking, "float32") * self._scale()), candidate_mask)

    def _scale(self):
        """The learned sharpness, `exp(min(s, log 100))`: at most 100, so the scores stay in +-100."""
        return ops.exp(ops.minimum(ops.cast(self.logit_scale, "float32"), math.log(MAX_SCALE)))

    @staticmethod
    def _mask(scores, candidate_mask):
        """Sets the scores of masked-out candidate columns to -inf; the IT's column stays."""
        if candidate_mask is None:
            return scores
        mask = ops.cast(candidate_mask, "bool")
        if len(mask.shape) == 1:
            mask = mask[None, :]
        mask = ops.concatenate([ops.ones_like(mask[:, :1]), mask], axis=1)
        if len(scores.shape) == 3:
            mask = mask[:, None, :]
        return ops.where(mask, scores, float("-inf"))

    def attention_matrix(self, tokens, candidate_mask=None):
        """The full `(batch, n+1, n+1)` attention matrix, computed without any shortcut: every token
        pooled over its pixels, every query against every key."""
        real = next(t for t in tokens if t is not None)
        maps = [ops.zeros_like(real) if t is None else t for t in tokens]
        stacked = ops.stack([ops.cast(t, "float32") for t in maps], axis=1)  # (b, n, h, w, c)
        it = ops.broadcast_to(self.indicator, ops.shape(stacked[:, :1]))
        t = ops.concatenate([it, stacked], axis=1) + self.position[None, :, None, None, :]
        pooled = ops.mean(t, axis=(2, 3))  # (b, n + 1, c)
        q = _unit(ops.einsum("bnc,cd->bnd", pooled, self.query))
        k = _unit(ops.einsum("bnc,cd->bnd", pooled, self.key))
        scores = ops.einsum("bid,bjd->bij", q, k) * (self.ranking * self._scale())
        return ops.softmax(self._mask(scores, candidate_mask), axis=-1)

    # -- forward ---------------------------------------------------------------------------------

    def call(self, tokens, candidate_mask=None):
        """Returns `(a, y)`: the IT row over the candidates `(batch, n)`, and with `encode` the encoder
        output `(batch, h, w, c)`, otherwise `a` renormalised over the candidates `(batch, n)`."""
        if len(tokens) != self.num_candidates:
            raise ValueError(f"Expected {self.num_candidates} candidate outputs, got {len(tokens)}.")
        scores = self._scores(tokens, candidate_mask)
        row = ops.softmax(scores, axis=-1)  # (b, n + 1)
        importance = row[:, 1:]
        self._collect(importance)
        if not self.encode:
            # `a / sum(a)` as a softmax over the candidates' own scores (the same value, but finite
            # when the IT's own column takes all the attention and every `a_i` underflows to 0),
            # averaged over the batch: one mix per edge and step, as DARTS's alphas are
            return importance, _batch_mean(ops.softmax(scores[:, 1:], axis=-1))
        # z = LN(T_0 + sum_{j=0..n} A_0j V T_j), T_0 = IT + p_0, T_j = O_j + p_j. The token-constant
        # parts (the IT, the positions) add up to one c-vector per sample, so no position-shifted copy
        # of a map is made (or kept for the gradient): same value, a fraction of the memory.
        dtype = next(t for t in tokens if t is not None).dtype
        value = ops.cast(self.value, "float32")
        it_token = ops.cast(self.indicator + self.position[0], "float32")
        constants = ops.concatenate([it_token[None], ops.cast(self.position[1:], "float32")], axis=0)  # (n+1, c)
        shift = it_token + ops.matmul(ops.matmul(row, constants), value)  # (b, c)
        mixed = weighted_sum(ops.cast(row[:, 1:], dtype), tokens)
        z = self.norm_1(ops.matmul(mixed, ops.cast(value, dtype)) + ops.cast(shift, dtype)[:, None, None, :])
        return importance, self.norm_2(z + self.ffn_2(self.ffn_1(z)))

    def _collect(self, importance):
        flag = ops.cast(self.collecting, "float32")
        self.importance_sum.assign_add(flag * ops.sum(importance, axis=0))
        batch = ops.cast(ops.shape(importance)[0], "float32")
        self.importance_count.assign_add(flag * batch)

    # -- selection state -------------------------------------------------------------------------

    def start_collecting(self, reset=True):
        if reset:
            self.importance_sum.assign(ops.zeros_like(self.importance_sum))
            self.importance_count.assign(0.0)
        self.collecting.assign(1.0)

    def stop_collecting(self):
        self.collecting.assign(0.0)

    def set_ranking(self, on):
        """Off: the IT attends uniformly (warm-up: every candidate trains at the same weight)."""
        self.ranking.assign(1.0 if on else 0.0)

    def mean_importance(self):
        """Mean IT attention per candidate over all collected samples, as a numpy array."""
        count = float(self.importance_count.numpy())  # not np.array(.value): fails on replicas
        if count == 0:
            raise RuntimeError(
                f"{self.name}: no importance was collected; call start_collecting() and run data "
                "through the model first."
            )
        return self.importance_sum.numpy() / count

    def get_config(self):
        config = {
            "num_candidates": self.num_candidates,
            "encode": self.encode,
            "ffn_ratio": self.ffn_ratio,
        }
        return {**super().get_config(), **config}
