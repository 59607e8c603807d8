"""Variables made under a bare TensorFlow name, so that eager TensorFlow reuses one kernel to make them.

Eager TensorFlow keeps one kernel per distinct set of an op's attributes, and `VarHandleOp` carries the
variable's name as `debug_name`. Under Keras's layer scopes every name is a unique path
(`supernet/cell_3/mixed_layer_2/.../kernel`), so each of a supernet's thousands of variables, the
optimizers' included, built a kernel of its own: 0.56 ms a variable here against 0.14 ms under its
bare name (docs/performance.md). Keras names variables itself (`Variable.path`, saved weights,
checkpoints); TensorFlow's own name (`kernel:0`) is not read by anything here.
"""

import contextlib

import tensorflow as tf


def _unscoped(next_creator, **kwargs):
    with tf.name_scope(""):  # the root scope: the variable's TensorFlow name is its bare name
        return next_creator(**kwargs)


@contextlib.contextmanager
def bare_variable_names():
    """Variables made meanwhile get their bare names in TensorFlow (Keras's names and paths unchanged)."""
    with tf.variable_creator_scope(_unscoped):
        yield
