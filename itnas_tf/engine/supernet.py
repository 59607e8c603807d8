"""`Supernet`: what every cell-space search network shares, whichever strategy ranks its edges."""

import inspect

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from keras import ops

from itnas_tf.distribution import multi_worker
from itnas_tf.engine.tracing import lean_grappler, traced_once
from itnas_tf.engine.variables import bare_variable_names

STRATEGIES = ("it", "darts")


class Supernet(keras.Model):
    """Base of the search networks: the IT strategy, or the DARTS baseline on the same network.

    A space's supernet builds its edges as `MixedLayer(mix=self.edge_mix)`, declares the DARTS
    architecture parameters with `add_alphas`, passes `self.edge_weights(group)` rows to its edges,
    and lists its edges in `search_edges()`. Everything else is here, so both strategies train and
    select on the same network.

    - `strategy="it"`: mono-level; the edges rank their candidates with their IT blocks.
    - `strategy="darts"`: one `(edges, ops)` matrix of alphas per group of edges that share them
      (DARTS: normal and reduce cells; NB201: the one cell). First-order bilevel: each training step
      first updates the alphas on a search-valid batch with `arch_optimizer`, then the weights on the
      search-train batch. The alphas are non-trainable variables, so the ordinary optimizer, weight
      decay and parameter counts leave them alone.
    """

    def __init__(self, mix="weighted", strategy="it", **kwargs):
        super().__init__(**kwargs)
        if "training" not in inspect.signature(self.call).parameters:
            # Keras's `fit` passes `training=True` only to a model whose `call` takes it; without it
            # every BatchNorm would train in inference mode, on statistics that never move
            raise TypeError(f"{type(self).__name__}.call must take a `training` argument.")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}.")
        self.mix = mix
        self.strategy = strategy
        self.edge_mix = "alphas" if strategy == "darts" else mix
        self.arch_weights = []
        self._alpha_index = {}
        self.arch_optimizer = None
        self._built_for_fit = False

    def add_alphas(self, group, num_edges, num_ops):
        """DARTS's `1e-3 * randn` architecture parameters of one group (DARTS strategy only)."""
        if self.strategy != "darts":
            return
        self._alpha_index[group] = len(self.arch_weights)
        self.arch_weights.append(
            self.add_weight(
                shape=(num_edges, num_ops),
                initializer=keras.initializers.RandomNormal(stddev=1e-3),
                trainable=False,
                name=f"alphas_{group}",
            )
        )

    def edge_weights(self, group):
        """The softmaxed alphas of `group`, `(edges, ops)`; `None` under the IT strategy."""
        if self.strategy != "darts":
            return None
        return ops.softmax(self.arch_weights[self._alpha_index[group]], axis=-1)

    def search_edges(self):
        """`{edge name: (group, row, [the MixedLayer of that edge in every cell])}`."""
        raise NotImplementedError

    def importance_table(self):
        """`{edge: {op: importance}}`: mean IT rows (averaged over the cells sharing the edge), or
        the softmaxed alphas under the DARTS strategy.

        Under the IT strategy, call it after a pass over the data inside `collecting_importance`.
        """
        table = {}
        for edge, (group, row, layers) in self.search_edges().items():
            if self.strategy == "darts":
                values = keras.ops.convert_to_numpy(self.edge_weights(group)[row])
            else:
                values = np.mean([layer.block.mean_importance() for layer in layers], axis=0)
            table[edge] = dict(zip(layers[0].names, map(float, values)))
        silent = [edge for edge, row in table.items() if sum(row.values()) < 1e-6]
        if silent:
            logging.warning(
                "The IT attends only to itself on %s: every importance there is ~0, so the op derived "
                "there is arbitrary. Search again with another --seed or a lower --learning_rate.",
                ", ".join(silent),
            )
        return table

    def compile(self, arch_optimizer=None, **kwargs):
        """Keras's `compile`, plus the optimizer of the alphas (DARTS strategy)."""
        if self.strategy == "darts":
            self.arch_optimizer = arch_optimizer or keras.optimizers.Adam(3e-4, beta_1=0.5, weight_decay=1e-3)
            if self.dtype_policy.name == "mixed_float16":  # as `compile` does for the weights' optimizer
                self.arch_optimizer = keras.optimizers.LossScaleOptimizer(self.arch_optimizer)
        super().compile(**kwargs)

    def build_for_fit(self, batch):
        """Builds the layers, the compiled loss and metrics and the optimizers from one batch `(x, y)`.

        `fit` would build them itself from a distributed batch, reduced with the strategy, which
        `MultiWorkerMirroredStrategy` cannot do (keras-team/keras#20585); built here, `fit` skips it.
        """
        x, y = batch
        with bare_variable_names():  # thousands of variables: made 4x sooner (`engine/variables.py`)
            y_pred = self(x[:2])
            for compiled in (self._compile_loss, self._compile_metrics):
                if compiled is not None and not compiled.built:  # else `_symbolic_build` traces `call` for y_pred
                    compiled.build(y[:2], y_pred)
            self._symbolic_build(data_batch=(x[:2], y[:2]))
            if self.arch_optimizer is not None:
                self.arch_optimizer.build(self.arch_weights)
        self._built_for_fit = True

    def _maybe_build(self, call_spec):
        if not self.built and call_spec.eager:
            # Keras would build the network by tracing all of `call` symbolically before this eager
            # call (as long as tracing a forward pass); marked built, each layer builds from its input
            # shape as the call reaches it, in the same order, so with the same initial values.
            self.built = True
        super()._maybe_build(call_spec)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if not self._built_for_fit:
            super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # Keras's step functions, run with Grappler's pruner alone where the rest does not pay
    # (`engine/tracing.py`); a distributed step also merges its replicas' common subgraphs
    def _spared(self, function):
        return lean_grappler(function, distributed=self.distribute_strategy.num_replicas_in_sync > 1)

    def make_train_function(self, force=False):
        if self.train_function is None or force:
            super().make_train_function(force)
            self.train_function = self._spared(self.train_function)
        return self.train_function

    def make_test_function(self, force=False):
        if self.test_function is None or force:
            super().make_test_function(force)
            self.test_function = self._spared(self.test_function)
        return self.test_function

    def make_predict_function(self, force=False):
        if self.predict_function is None or force:
            super().make_predict_function(force)
            self.predict_function = self._spared(traced_once(self.predict_function))
        return self.predict_function

    def train_step(self, data):
        if self.strategy == "darts":
            data, (x_valid, y_valid) = data
            self._arch_step(x_valid, y_valid)
        logs = super().train_step(data)
        if multi_worker(self.distribute_strategy):
            # Keras averages the logs of a multi-worker step over axis 0, which a scalar lacks.
            logs = {name: ops.reshape(value, (1,)) for name, value in logs.items()}
        return logs

    def _arch_step(self, x, y):
        arch = [w.value for w in self.arch_weights]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(arch)
            loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True), training=True)
            loss = self.arch_optimizer.scale_loss(loss)
        self.arch_optimizer.apply(tape.gradient(loss, arch), self.arch_weights)

    def get_config(self):
        return {**super().get_config(), "mix": self.mix, "strategy": self.strategy}
