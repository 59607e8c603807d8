"""The DARTS evaluation networks built from a `Genotype`: DARTS's `model.py` (`NetworkCIFAR`, `NetworkImageNet`).

Exact to the DARTS repository: affine BatchNorm, bare pools, FactorizedReduce for a strided
`skip_connect`, reduction cells at `layers//3` and `2*layers//3`, an auxiliary head after the second
reduction (training only), and drop-path on every non-identity op of a cell.
"""

import keras
from keras import ops

from itnas_tf.genotypes import GenotypeError, validate
from itnas_tf.ops import FactorizedReduce, Identity, ReLUConvBN, batch_norm, make_op
from itnas_tf.ops.base import Op, build_in_call, builds_by_calling, register


@register
class DropPath(keras.layers.Layer):
    """Zeroes whole samples with probability `rate` (a variable the trainer schedules), rescales the rest."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compute_output_shape(self, input_shape):  # else Keras traces `call` in a graph of its own for it
        return input_shape

    def call(self, x, training=None):
        if not training:
            return x
        keep = 1.0 - ops.cast(self.rate, x.dtype)
        mask = ops.cast(keras.random.uniform((ops.shape(x)[0], 1, 1, 1), seed=self.seed_generator) < keep, x.dtype)
        return x / keep * mask

    def get_config(self):  # the rate is the owner's variable; a loaded layer starts at 0
        return super().get_config()


@register
class Cell(Op):
    """One cell of the evaluation network: for each node, two ops on earlier states, summed."""

    def __init__(self, edges, concat, channels, reduction, reduction_prev, drop_rate=None, **kwargs):
        super().__init__(**kwargs)
        self.edge_list = [tuple(e) for e in edges]
        self.concat = list(concat)
        self.channels = channels
        self.reduction = reduction
        self.reduction_prev = reduction_prev
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(channels, name="preprocess0")
        else:
            self.preprocess0 = ReLUConvBN(channels, 1, 1, name="preprocess0")
        self.preprocess1 = ReLUConvBN(channels, 1, 1, name="preprocess1")
        self.ops_ = [
            make_op(name, channels, 2 if reduction and j < 2 else 1) for name, j in self.edge_list
        ]
        self.drops = [DropPath(drop_rate) if drop_rate is not None else None for _ in self.ops_]

    @builds_by_calling
    def build(self, input_shape):
        s0, s1 = (keras.KerasTensor(tuple(shape), dtype=self.compute_dtype) for shape in input_shape)
        self.call((s0, s1))
        self.built = True

    def call(self, inputs, training=None):
        s0, s1 = inputs
        states = [self.preprocess0(s0, training=training), self.preprocess1(s1, training=training)]
        for node in range(len(self.edge_list) // 2):
            total = 0
            for e in (2 * node, 2 * node + 1):
                h = self.ops_[e](states[self.edge_list[e][1]], training=training)
                if self.drops[e] is not None and not isinstance(self.ops_[e], Identity):
                    h = self.drops[e](h, training=training)
                total = total + h
            states.append(total)
        return ops.concatenate([states[i] for i in self.concat], axis=-1)

    def get_config(self):
        config = {
            "edges": self.edge_list,
            "concat": self.concat,
            "channels": self.channels,
            "reduction": self.reduction,
            "reduction_prev": self.reduction_prev,
        }
        return {**super().get_config(), **config}


@register
class AuxiliaryHead(Op):
    """DARTS's auxiliary classifier: ReLU, 5x5 avg-pool (stride 3 CIFAR / 2 ImageNet, padding
    excluded), 1x1 conv 128, BN, ReLU, 2x2 conv 768, [BN on CIFAR], ReLU, dense."""

    def __init__(self, num_classes, stride=3, bn_768=True, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.stride = stride
        self.bn_768 = bn_768
        self.conv_1 = keras.layers.Conv2D(128, 1, use_bias=False, name="conv_1")
        self.bn_1 = batch_norm(name="bn_1")
        self.conv_2 = keras.layers.Conv2D(768, 2, use_bias=False, name="conv_2")
        self.bn_2 = batch_norm(name="bn_2") if bn_768 else None
        self.classifier = keras.layers.Dense(num_classes, name="classifier")

    def call(self, x, training=None):
        x = ops.average_pool(ops.relu(x), 5, self.stride, padding="valid")
        x = ops.relu(self.bn_1(self.conv_1(x), training=training))
        x = self.conv_2(x)
        if self.bn_2 is not None:
            x = self.bn_2(x, training=training)
        x = ops.relu(x)
        return self.classifier(ops.reshape(x, (ops.shape(x)[0], -1)))

    def get_config(self):
        config = {"num_classes": self.num_classes, "stride": self.stride, "bn_768": self.bn_768}
        return {**super().get_config(), **config}


class _Network(keras.Model):
    """What both DARTS networks share: cells from the genotype, auxiliary head, drop-path rate."""

    def __init__(self, genotype, num_classes, init_channels, layers, auxiliary, drop_path_prob, **kwargs):
        super().__init__(**kwargs)
        try:
            validate(genotype)
        except GenotypeError as e:
            raise GenotypeError(f"The genotype does not fit a DARTS network: {e}") from None
        self.genotype = genotype
        self.num_classes = num_classes
        self.init_channels = init_channels
        self.num_layers = layers
        self.auxiliary = auxiliary
        self.drop_path_prob = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(drop_path_prob), trainable=False, name="drop_path_prob"
        )
        self.aux_head = None

    @builds_by_calling
    def build(self, input_shape):
        self.call(keras.KerasTensor(tuple(input_shape)))
        # The auxiliary head only runs in training; build it now so that checkpoints hold it, where
        # the features are large enough for its 5x5 pooling (otherwise training explains the limit).
        if self.aux_head is not None and min(self._aux_input_shape[1:3]) >= 5:
            self.aux_head(keras.KerasTensor(self._aux_input_shape), training=True)
        self.built = True

    def _maybe_build(self, call_spec):
        if self.aux_head is None:  # else `build` makes the head too, which no inference call reaches
            build_in_call(self, call_spec)
        super()._maybe_build(call_spec)

    def _cells(self, C, reduction_prev):
        cells, reductions = [], sorted({self.num_layers // 3, 2 * self.num_layers // 3})
        for i in range(self.num_layers):
            reduction = i in reductions
            if reduction:
                C *= 2
            cell_type = "reduce" if reduction else "normal"
            cells.append(
                Cell(
                    getattr(self.genotype, cell_type), getattr(self.genotype, cell_type + "_concat"), C,
                    reduction, reduction_prev, self.drop_path_prob, name=f"cell_{i}",
                )
            )
            reduction_prev = reduction
        return cells

    def _body(self, s0, s1, training):
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell((s0, s1), training=training)
            if i == 2 * self.num_layers // 3 and self.aux_head is not None:
                self._aux_input_shape = tuple(s1.shape)
                if training:
                    logits_aux = self.aux_head(s1, training=training)
        logits = self.classifier(ops.mean(s1, axis=(1, 2)))
        return (logits, logits_aux) if logits_aux is not None else logits

    def get_config(self):
        from itnas_tf.genotypes import format_genotype

        config = {
            "genotype": format_genotype(self.genotype),
            "num_classes": self.num_classes,
            "init_channels": self.init_channels,
            "layers": self.num_layers,
            "auxiliary": self.auxiliary,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        from itnas_tf.genotypes import parse_genotype

        config = dict(config)
        config["genotype"] = parse_genotype(config["genotype"])
        return cls(**config)


@register
class NetworkCIFAR(_Network):
    """DARTS's CIFAR network (paper: 20 cells, C=36). In training it returns `(logits, aux_logits)`
    when `auxiliary`; otherwise, and always in inference, the logits."""

    def __init__(self, genotype, num_classes=10, init_channels=36, layers=20, auxiliary=True,
                 drop_path_prob=0.0, stem_multiplier=3, **kwargs):
        super().__init__(genotype, num_classes, init_channels, layers, auxiliary, drop_path_prob, **kwargs)
        self.stem = keras.layers.Conv2D(stem_multiplier * init_channels, 3, padding="same", use_bias=False, name="stem")
        self.stem_bn = batch_norm(name="stem_bn")
        self.cells = self._cells(init_channels, False)
        if auxiliary:
            self.aux_head = AuxiliaryHead(num_classes, stride=3, bn_768=True, name="auxiliary_head")
        self.classifier = keras.layers.Dense(num_classes, name="classifier")

    def call(self, x, training=None):
        s = self.stem_bn(self.stem(x), training=training)
        return self._body(s, s, training)


@register
class NetworkImageNet(_Network):
    """DARTS's ImageNet mobile network (paper: 14 cells, C=48, 224x224): two stride-2 stems."""

    def __init__(self, genotype, num_classes=1000, init_channels=48, layers=14, auxiliary=True,
                 drop_path_prob=0.0, **kwargs):
        super().__init__(genotype, num_classes, init_channels, layers, auxiliary, drop_path_prob, **kwargs)
        C = init_channels
        self.stem0 = [
            keras.layers.ZeroPadding2D(1), keras.layers.Conv2D(C // 2, 3, 2, use_bias=False, name="stem0_conv1"),
            batch_norm(name="stem0_bn1"), keras.layers.ReLU(),
            keras.layers.ZeroPadding2D(1), keras.layers.Conv2D(C, 3, 2, use_bias=False, name="stem0_conv2"),
            batch_norm(name="stem0_bn2"),
        ]
        self.stem1 = [
            keras.layers.ReLU(), keras.layers.ZeroPadding2D(1),
            keras.layers.Conv2D(C, 3, 2, use_bias=False, name="stem1_conv"), batch_norm(name="stem1_bn"),
        ]
        self.cells = self._cells(C, True)
        if auxiliary:
            self.aux_head = AuxiliaryHead(num_classes, stride=2, bn_768=False, name="auxiliary_head")
        self.classifier = keras.layers.Dense(num_classes, name="classifier")

    def call(self, x, training=None):
        s0 = x
        for layer in self.stem0:
            s0 = layer(s0, training=training) if isinstance(layer, keras.layers.BatchNormalization) else layer(s0)
        s1 = s0
        for layer in self.stem1:
            s1 = layer(s1, training=training) if isinstance(layer, keras.layers.BatchNormalization) else layer(s1)
        return self._body(s0, s1, training)
