"""What the benchmark suite measures and at which sizes: the default run, `--quick` and `--peer`."""

EDGE_OPS = {
    "darts": ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
              "dil_conv_3x3", "dil_conv_5x5"],
    "nb201": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"],
}
# name -> sizes; "quick" keeps every code path at toy sizes
SIZES = {
    "full": {
        # start-up: process start to the end of the first training step, each supernet as searched
        "startup": [
            {"space": "darts", "strategy": "it", "init_channels": 16, "layers": 8, "batch": 64, "side": 32},
            {"space": "darts", "strategy": "darts", "init_channels": 16, "layers": 8, "batch": 64, "side": 32},
            {"space": "nb201", "strategy": "it", "init_channels": 16, "layers": 5, "batch": 64, "side": 32},
            {"space": "nb201", "strategy": "darts", "init_channels": 16, "layers": 5, "batch": 64, "side": 32},
            # the sampled chain at the reference widths (`layers`, `init_channels`: not settings of a chain)
            {"space": "proxyless", "strategy": "it", "init_channels": None, "layers": None, "batch": 64, "side": 32},
        ],
        "supernets": [
            # the DARTS supernet first: its tracing is the longest, the rest fills the other core meanwhile
            {"space": "darts", "init_channels": 16, "layers": 8, "batch": 64, "side": 32, "warmup": 1, "steps": 3},
            {"space": "nb201", "init_channels": 16, "layers": 5, "batch": 64, "side": 32, "warmup": 2, "steps": 6},
        ],
        "edge": {"base": {"n": 8, "channels": 16, "batch": 64}, "n": [2, 4, 8], "channels": [16, 64], "batch": [16, 64],
                 "side": 32, "warmup": 2, "steps": 8},
        "pipeline": {"images": 4096, "batch": 64, "init_channels": 16, "layers": 5, "steps": 16},
        "serving": {"darts_cifar": {"init_channels": 36, "layers": 20}, "proxyless_side": 224, "repeats": 20, "batch_repeats": 5,
                    "batch": 64},
        # --peer: ours (the default mix) against xautodl's supernet, same shapes. `layers` counts our
        # cells; xautodl's N is layers / 3 (the DARTS space at 6 cells, as xautodl's N=2 builds it)
        "peer": [
            {"space": "nb201", "init_channels": 16, "layers": 5, "batch": 64, "side": 32, "warmup": 2, "steps": 8},
            {"space": "darts", "init_channels": 16, "layers": 6, "batch": 64, "side": 32, "warmup": 1, "steps": 4},
        ],
    },
    "quick": {
        "startup": [
            {"space": "nb201", "strategy": "it", "init_channels": 4, "layers": 1, "batch": 8, "side": 16},
        ],
        "supernets": [
            {"space": "nb201", "init_channels": 4, "layers": 1, "batch": 8, "side": 16, "warmup": 1, "steps": 2},
        ],
        "edge": {"base": {"n": 4, "channels": 8, "batch": 8}, "n": [2, 4], "channels": [8], "batch": [8],
                 "side": 8, "warmup": 1, "steps": 2},
        "pipeline": {"images": 256, "batch": 16, "init_channels": 4, "layers": 1, "steps": 4},
        "serving": {"darts_cifar": {"init_channels": 4, "layers": 3}, "proxyless_side": 32, "repeats": 2, "batch_repeats": 2, "batch": 4},
        "peer": [
            {"space": "nb201", "init_channels": 4, "layers": 1, "batch": 8, "side": 16, "warmup": 1, "steps": 2},
            {"space": "darts", "init_channels": 4, "layers": 3, "batch": 8, "side": 16, "warmup": 1, "steps": 2},
        ],
    },
}
# Each start-up row is run this many times, the rows in turn: its first call varies by a third from run to run
STARTUP_RUNS = 3
VARIANTS = [("it", "weighted"), ("it", "transformer"), ("darts", "weighted")]
# Left out unless --all: tracing it alone takes ~7 min here, which the default run would add.
ONLY_WITH_ALL = {("darts", "it", "transformer")}
FAST_PATHS = [("float32", False), ("float32", True), ("mixed_bfloat16", False)]  # (dtype policy, XLA)
PEER_LAYOUTS = ("nchw", "channels_last")


def cells(space, layers):
    """The cell count of a supernet: NB201's `layers` is N, the cells per stage (3N in all)."""
    return layers * 3 if space == "nb201" else layers
