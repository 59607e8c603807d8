"""The peer: the NAS-Bench-201 authors' PyTorch supernets (`xautodl`), measured as our supernet is.

Optional: `pip install --no-deps -r benchmarks/requirements-peer.txt` (xautodl pins a NumPy that does
not build on Python 3.11, hence `--no-deps` and the full pin list). Its DARTS step is the weight step
of xautodl's own search loop: forward, cross-entropy, backward, gradient clipping at 5, SGD with
momentum and weight decay over the weights (not the alphas). The forward pass is the per-batch cost of
a selection pass, in eval mode without gradients. After the timed steps, one step runs under
`torch.profiler` for the op-type shares.
"""

import collections
import os
import statistics
import time

from benchmarks.measures import op_shares, peak_mb, timed

MISSING = (
    "--peer needs PyTorch and xautodl, which the project does not install: run "
    "`pip install --no-deps -r benchmarks/requirements-peer.txt`."
)


def versions():
    """`{package: version}` of the peer, or raises SystemExit naming the install command."""
    try:
        import torch
        import xautodl  # noqa: F401
        from importlib.metadata import version
    except ImportError as error:
        raise SystemExit(f"{MISSING} ({error})") from error
    return {"torch": torch.__version__, "xautodl": version("xautodl")}


def build(space, init_channels, layers):
    """xautodl's DARTS supernet of `space`, the shape of ours with `layers` cells."""
    from xautodl.models import get_cell_based_tiny_net
    from xautodl.models.cell_operations import SearchSpaceNames

    if space == "nb201":
        config = {"name": "DARTS-V1", "C": init_channels, "N": layers, "max_nodes": 4,
                  "space": SearchSpaceNames["nas-bench-201"]}
    else:
        if layers % 3:
            raise ValueError(f"xautodl's DARTS network has 3N cells; {layers} is not a multiple of 3.")
        config = {"super_type": "nasnet-super", "name": "DARTS", "C": init_channels, "N": layers // 3, "steps": 4,
                  "multiplier": 4, "stem_multiplier": 3, "space": SearchSpaceNames["darts"]}
    # the search BatchNorm of both references and of ours: no affine parameters, running statistics kept
    return get_cell_based_tiny_net({**config, "num_classes": 10, "affine": False, "track_running_stats": True})


def peer_worker(ready, space, layout, init_channels, layers, batch, side, warmup, steps, launched):
    import torch

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)  # TensorFlow's intra-op pool has one thread per visible core too
    torch.manual_seed(0)
    x = torch.randn(batch, 3, side, side)
    y = torch.randint(0, 10, (batch,))
    base = peak_mb()
    model = build(space, init_channels, layers)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    weights = model.get_weights()
    optimizer = torch.optim.SGD(weights, 0.025, momentum=0.9, weight_decay=3e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_step():
        model.train()
        optimizer.zero_grad()
        loss = loss_fn(model(x)[1], y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        optimizer.step()
        return float(loss)

    def forward():
        model.eval()
        with torch.no_grad():
            return model(x)[1].sum().item()

    warmup_s = sum(timed(train_step, 1))
    startup_s = time.time() - launched  # from the process's start to the end of its first training step
    warmup_s += sum(timed(train_step, warmup - 1)) + sum(timed(forward, warmup))
    ready()
    train = timed(train_step, steps)
    selection_forward = timed(forward, steps)
    figures = {
        "step_s": statistics.median(train), "forward_s": statistics.median(selection_forward), "warmup_s": warmup_s,
        "startup_s": startup_s, "peak_mb": peak_mb() - base, "params": sum(p.numel() for p in weights),
        "threads": threads,
    }
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        train_step()
    # self time per aten op: a parent op's time is not counted again in its children
    figures["profile"] = op_shares(collections.Counter(
        {event.key: event.self_cpu_time_total * 1e-6 for event in profiler.key_averages()}
    ))
    return figures
