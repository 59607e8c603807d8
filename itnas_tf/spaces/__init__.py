"""The search spaces: the cells `darts` and RobustDARTS's `s1`..`s4` (`darts.py`), `nb201`
(`nb201.py`), NAS-Bench-1Shot1's `nb101_1shot1_s1`..`s3` (`nb101.py`), and the chain `proxyless`
(`proxyless.py`)."""

from itnas_tf.spaces import darts, nb101, nb201, proxyless

CELL_SPACES = ("darts", "s1", "s2", "s3", "s4", "nb201")  # with a target network (and the tuner)
NB101_SPACES = tuple(nb101.SPACES)
CHAIN_SPACES = ("proxyless",)
SPACES = CELL_SPACES + NB101_SPACES + CHAIN_SPACES

# (init_channels, layers) of the paper's search supernets; a chain's sizes are its widths.
DEFAULT_SIZES = {**{s: (16, 8) for s in CELL_SPACES[:5]}, "nb201": (16, 5), **{s: (16, 3) for s in NB101_SPACES},
                 "proxyless": (None, None)}


def space_module(space):
    """The module holding `space`'s supernet and its rules: `reductions(layers)`, `derive(table)`."""
    if space not in SPACES:
        raise ValueError(f"Unknown space {space!r}; known: {', '.join(SPACES)}.")
    if space in NB101_SPACES:
        return nb101.space(space)
    return {"nb201": nb201, "proxyless": proxyless}.get(space, darts)


def supernet(space, num_classes, init_channels=None, layers=None, mix="weighted", strategy="it", **chain):
    """The search network of `space`, with the paper's sizes where `init_channels`/`layers` are None.

    `chain` (proxyless only): `widths`, `se`, `paths_per_step`, `seed` of `ProxylessSupernet`.
    """
    module = space_module(space)
    if module is proxyless:
        return proxyless.ProxylessSupernet(num_classes, mix=mix, strategy=strategy, **chain)
    if chain:
        raise ValueError(f"{sorted(chain)} are settings of the chain spaces, not of {space}.")
    default_c, default_layers = DEFAULT_SIZES[space]
    C, N = init_channels or default_c, layers or default_layers
    if space in NB101_SPACES:
        return nb101.NB101Supernet(num_classes, C, N, nb101.SPACES[space], mix=mix, strategy=strategy)
    if module is nb201:
        return nb201.NB201Supernet(num_classes, C, N, mix=mix, strategy=strategy)
    return darts.DartsSupernet(num_classes, C, N, space=space, mix=mix, strategy=strategy)
