"""The cell search spaces: `darts` and RobustDARTS's `s1`..`s4` (`darts.py`), `nb201` (`nb201.py`)."""

from itnas_tf.spaces import darts, nb201

SPACES = ("darts", "s1", "s2", "s3", "s4", "nb201")

# (init_channels, layers) of the paper's search supernets.
DEFAULT_SIZES = {**{s: (16, 8) for s in SPACES[:5]}, "nb201": (16, 5)}


def space_module(space):
    """The module holding `space`'s supernet and its rules: `reductions(layers)`, `derive(table)`."""
    if space not in SPACES:
        raise ValueError(f"Unknown space {space!r}; known: {', '.join(SPACES)}.")
    return nb201 if space == "nb201" else darts


def supernet(space, num_classes, init_channels=None, layers=None, mix="weighted", strategy="it"):
    """The search network of `space`, with the paper's sizes where `init_channels`/`layers` are None."""
    module = space_module(space)
    default_c, default_layers = DEFAULT_SIZES[space]
    C, N = init_channels or default_c, layers or default_layers
    if module is nb201:
        return nb201.NB201Supernet(num_classes, C, N, mix=mix, strategy=strategy)
    return darts.DartsSupernet(num_classes, C, N, space=space, mix=mix, strategy=strategy)
