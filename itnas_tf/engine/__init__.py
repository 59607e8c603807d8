"""The IT-NAS core: the Indicator Token block and the mixed edge it ranks."""

from itnas_tf.engine.indicator_token import MIX_MODES, IndicatorTokenBlock
from itnas_tf.engine.mixed_layer import MixedLayer, collecting_importance, masked, mixed_layers, set_ranking
from itnas_tf.engine.supernet import STRATEGIES, Supernet
