"""`docs/benchmarks.md` from the figures the runs wrote (`benchmarks.json`, `peer.json`,
`latency_table.json`)."""

import json

from benchmarks.sizes import FAST_PATHS, ONLY_WITH_ALL, cells

QUICK = "**Quick mode: toy sizes, for the smoke test; these figures mean nothing.**"


def ratio(a, b):
    """`a / b` to two places, or "n/a" where `b` is zero (a toy model may not raise the peak memory)."""
    return f"{a / b:.2f}" if b else "n/a"


def suite_section(results):
    """The default run's part of the report: everything but the peer comparison."""
    sup, sizes_name, seconds, command = (results[k] for k in ("supernet", "sizes", "seconds", "command"))

    def darts_row(row):
        return next(r for r in sup if r["space"] == row["space"] and r["strategy"] == "darts")

    lines = [
        f"Made by `{command}` in {seconds / 60:.1f} min on: {results['machine']}.", "",
        "Medians over timed steps after warm-up steps. Peak memory: the process's peak resident set less its",
        "peak before the model was built (each row its own process). CPU figures: this machine has no GPU.", "",
        "## Supernet: IT against DARTS, same network", "",
        "| space | C | cells | batch | strategy | mix | train step (s) | selection forward / batch (s) | warm-up incl. tracing (s) "
        "| peak memory (MB) | step / DARTS step | memory / DARTS memory |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sup:
        darts = darts_row(row)
        lines.append(
            f"| {row['space']} | {row['init_channels']} | {cells(row['space'], row['layers'])} | {row['batch']} | {row['strategy']} | "
            f"{row['mix'] if row['strategy'] == 'it' else 'alphas'} | {row['step_s']:.3f} | {row['forward_s']:.3f} | "
            f"{row['warmup_s']:.0f} | {row['peak_mb']:.0f} | {row['step_s'] / darts['step_s']:.2f} | "
            f"{row['peak_mb'] / darts['peak_mb']:.2f} |"
        )
    measured = {(r["space"], r["strategy"], r["mix"]) for r in sup}
    skipped = [f"the {mix} mix on the {space} supernet" for space, strategy, mix in sorted(ONLY_WITH_ALL)
               if (space, "darts", "weighted") in measured and (space, strategy, mix) not in measured]
    if skipped:
        lines += ["", f"Not measured in this run (`--all` adds it): {', '.join(skipped)}."]
    lines += ["", "The DARTS step is first-order bilevel: an alpha step on a search-valid batch, then the weight step.",
              "The edge table below compares the IT with the DARTS weight step alone.", "",
              "## Selection cost", "",
              "One pass over search-valid against one training epoch over search-train (the 50/50 split gives both "
              "the same number of batches):", "",
              "| space | mix | selection pass / training epoch |", "|---|---|---|"]
    for row in sup:
        if row["strategy"] == "it":
            lines.append(f"| {row['space']} | {row['mix']} | {row['forward_s'] / row['step_s']:.2f} |")
    grid = [r for r in results["edge"] if r["table"] == "grid"]
    lines += ["", "## One mixed edge: the IT's share as the edge grows", "",
              f"Training step of one `MixedLayer` (the heaviest n DARTS ops, {grid[0]['side']}x{grid[0]['side']} input) "
              "plus a linear head: the IT "
              "(weighted mix) against the same edge weighted by softmaxed alphas (the DARTS weight step).", "",
              "| candidates | channels | batch | IT step (s) | alpha step (s) | IT / alphas |", "|---|---|---|---|---|---|"]
    for it in (r for r in grid if r["mix"] == "weighted"):
        alphas = next(r for r in grid if r["mix"] == "alphas" and all(r[k] == it[k] for k in ("n", "channels", "batch")))
        lines.append(f"| {it['n']} | {it['channels']} | {it['batch']} | {it['step_s']:.4f} | {alphas['step_s']:.4f} | "
                     f"{it['step_s'] / alphas['step_s']:.2f} |")
    fast = [r for r in results["edge"] if r["table"] == "fast"]
    lines += ["", "## Fast paths on one edge", "",
              f"The IT edge step (channels {fast[0]['channels']}, batch {fast[0]['batch']}, every op of the space) with "
              "XLA (`--jit_compile`) or mixed precision (`--mixed_precision`):", "",
              "| ops | dtype policy | XLA | step (s) | / float32 |", "|---|---|---|---|---|"]
    for r in fast:
        base = next(b for b in fast if b["ops"] == r["ops"] and (b["policy"], b["jit"]) == FAST_PATHS[0])
        lines.append(f"| {r['ops']} | {r['policy']} | {'yes' if r['jit'] else 'no'} | {r['step_s']:.4f} | "
                     f"{r['step_s'] / base['step_s']:.2f} |")
    pipe = results["pipeline"][0]
    lines += ["", "## Input pipeline", "",
              f"The real search pipeline (split, shuffle, crop and flip, normalise, prefetch) feeding an NB201 supernet "
              f"(C={pipe['init_channels']}, {pipe['layers']} cells per stage, batch {pipe['batch']}) over "
              f"{pipe['steps']} steps: {pipe['wait_share']:.2%} of the time waiting for the next batch "
              f"(median step {pipe['step_s']:.3f} s).", "",
              "## Serving the target networks", "",
              "| network | runtime | batch-1 latency (ms) | throughput at batch "
              f"{results['serving'][0]['batch']} (images/s) |", "|---|---|---|---|"]
    for row in results["serving"]:
        for name in ("keras_predict", "keras_call", "saved_model", "onnxruntime"):
            lines.append(f"| {row['network']} | {name} | {row[name]['latency_ms']:.2f} | {row[name]['throughput_ips']:.1f} |")
    lines += startup_section(results)
    if sizes_name == "quick":
        lines[:0] = [QUICK, ""]
    return lines


STARTUP_PARTS = ("imports", "build", "trace", "graph_optimisation", "step")


def startup_section(results):
    """Process start to the end of the first training step, by part (absent from runs before it existed)."""
    if not results.get("startup"):
        return []
    made = results.get("parts_made_by", {}).get("startup")
    lines = ["", "## Start-up: process start to the end of the first training step", "",
             (f"Measured by `{made['command']}` on: {made['machine']}. " if made else "")
             + "One process at a time, nothing else running in it. Each supernet compiled and built as the "
             "searcher builds it (its optimisers, `itnas_tf/optimizers.py`; `Supernet.build_for_fit`), then `train_step` as one `tf.function`: imports "
             "(TensorFlow, Keras, itnas_tf), build, tracing the step (forward, gradient, optimizer), the first "
             "call's graph optimisation and instantiation (the first step's time less a later step's; without a GPU "
             "Grappler runs its model pruner alone, `itnas_tf/engine/tracing.py`; it also holds the first touch of the "
             "step's memory, which later steps reuse), and the step. Each row is the run with the "
             "median time to the first step, of several (the rows run in turn); the last column is the range "
             "over its runs.", "",
             "| space | C | cells | batch | strategy | " + " | ".join(p.replace("_", " ") + " (s)" for p in STARTUP_PARTS)
             + " | to first step (s) | runs (s) |", "|---|---|---|---|---" + "|---" * (len(STARTUP_PARTS) + 2) + "|"]
    for row in results["startup"]:
        chain = row["space"] == "proxyless"
        lines.append(
            f"| {row['space']} | {'reference widths' if chain else row['init_channels']} | "
            f"{'21 layers' if chain else cells(row['space'], row['layers'])} | {row['batch']} | {row['strategy']} | "
            + " | ".join(f"{row['parts'][p]:.1f}" for p in STARTUP_PARTS) + f" | {row['startup_s']:.1f} | {spread(row)} |"
        )
    return lines


def spread(row):
    """`min-max of n` over a start-up row's runs; "1 run" for figures measured before rows were repeated."""
    runs = row.get("runs_s", [row["startup_s"]])
    return f"{min(runs):.1f}-{max(runs):.1f} of {len(runs)}" if len(runs) > 1 else "1 run"


def startup(row, other=None):
    """A row's seconds to its first step, or `row / other`; "n/a" for runs made before it was measured."""
    if "startup_s" not in row or (other is not None and "startup_s" not in other):
        return "n/a"
    return f"{row['startup_s']:.1f}" if other is None else ratio(row["startup_s"], other["startup_s"])


def peer_section(peer):
    """The `--peer` run's part: our supernet against xautodl's, ratios and where the time goes."""
    lines = [
        "## Against the PyTorch reference (xautodl)", "",
        f"Made by `{peer['command']}` in {peer['seconds'] / 60:.1f} min on: {peer['machine']}; "
        + ", ".join(f"{k} {v}" for k, v in peer["versions"].items())
        + f"; {peer['threads']} threads each (TensorFlow's default intra-op pool, `torch.set_num_threads`).", "",
        "Each row its own process, same shapes (32x32 inputs, 10 classes), same weight step (SGD, momentum 0.9, "
        "weight decay 3e-4, gradient norm clipped at 5). Ours: the IT search step (IT weights and supernet "
        f"weights, `mix={peer['mix']}`, the default). xautodl: the weight step of its DARTS search (the "
        "alphas fixed), in PyTorch's default NCHW layout and in `channels_last`. Forward: one batch in "
        "inference mode, the per-batch cost of a selection pass. To first step: from the process's start to the "
        "end of its first training step, "
        + (f"with up to {peer.get('parallel', 2)} processes starting at once." if peer.get("parallel", 2) > 1
           else "one process starting at a time.")
        + " Both implementations run with the allocator named above (a command line's, `itnas_tf/malloc.py`).", "",
        "| space | C | cells | batch | implementation | train step (s) | forward / batch (s) | peak memory (MB) "
        "| to first step (s) | step: ours / this | memory: ours / this | to first step: ours / this |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = []  # (space, our row, xautodl's rows, xautodl's fastest row)
    for space in dict.fromkeys(r["space"] for r in peer["rows"]):
        rows = [r for r in peer["rows"] if r["space"] == space]
        ours = next(r for r in rows if r["implementation"] == "itnas_tf")
        theirs = [r for r in rows if r is not ours]
        groups.append((space, ours, theirs, min(theirs, key=lambda r: r["step_s"])))
    verdicts = []
    for space, ours, theirs, best in groups:
        for r in [ours, *theirs]:
            name = "itnas_tf (IT)" if r is ours else f"xautodl DARTS, {r['layout']}"
            lines.append(
                f"| {space} | {r['init_channels']} | {r['cells']} | {r['batch']} | {name} | {r['step_s']:.3f} | "
                f"{r['forward_s']:.3f} | {r['peak_mb']:.0f} | {startup(r)} | {ratio(ours['step_s'], r['step_s'])} | "
                f"{ratio(ours['peak_mb'], r['peak_mb'])} | {startup(ours, r)} |"
            )
        step, memory = ours["step_s"] / best["step_s"], ours["peak_mb"] <= best["peak_mb"]
        verdicts.append(
            f"- {space}: step {step:.2f}x xautodl's faster layout ({best['layout']}), target 0.8: "
            f"{'met' if step <= 0.8 else 'missed'}; peak memory {ratio(ours['peak_mb'], best['peak_mb'])}x, "
            f"target 1.0: {'met' if memory else 'missed'}."
        )
        if "startup_s" in ours:
            first = min(theirs, key=lambda r: r["startup_s"])
            verdicts.append(f"- {space}: process start to the end of the first training step {startup(ours, first)}x "
                            f"xautodl's ({first['layout']}), target 3.0: "
                            f"{'met' if ours['startup_s'] <= 3 * first['startup_s'] else 'missed'}.")
    lines += ["", "Targets (ours against xautodl at its best):", "", *verdicts, "",
              "### Where the time goes", "",
              "Share of op time per op type in one training step (TensorFlow: the profiler's op spans on the "
              "executor threads; PyTorch: `torch.profiler` self CPU time per aten op):", ""]
    for space, ours, _, best in groups:
        for r, name in ((ours, "itnas_tf"), (best, f"xautodl, {best['layout']}")):
            shares = ", ".join(f"{op} {share:.0%}" for op, share in r["profile"])
            lines.append(f"- {space}, {name}: {shares}.")
    if peer["sizes"] == "quick":
        lines[2:2] = [QUICK, ""]
    return lines


def latency_section(table):
    """The chain latency table's additive model against whole networks (`python -m itnas_tf.latency`)."""
    check = table["check"]
    rows = check["networks"]
    lines = [
        "## Chain latency table", "",
        f"Made by `python -m itnas_tf.latency --output=benchmarks/results/latency_table.json` (then "
        f"`python -m benchmarks.run --report_only`) on: {table['cpu']}, onnxruntime {table['onnxruntime']}, "
        f"{table['threads']} thread(s), batch 1, median of {table['runs']} warm runs, every part and whole network "
        f"timed in turn. The chain network at "
        f"{table['input_size']}x{table['input_size']}, {table['num_classes']} classes, widths "
        f"`{json.dumps(table['widths'])}`{', SE' if table['se'] else ''}. Each network's predicted latency is "
        "the sum of its parts' in the table; measured, the whole network exported to ONNX. `random_k`: random "
        "chains; ProxylessNAS-GPU and MobileNetV2: their ops at these widths.", "",
        f"**Mean |error| {check['mean_abs_error']:.1%}** over {len(rows)} networks (refused over 15%); "
        f"largest {max(abs(r['error']) for r in rows):.1%}.", "",
        "| network | predicted (ms) | measured (ms) | error |", "|---|---|---|---|",
    ]
    lines += [f"| {r['name']} | {r['predicted_ms']:.2f} | {r['measured_ms']:.2f} | {r['error']:+.1%} |" for r in rows]
    return lines


def render(results=None, peer=None, latency=None):
    """The whole report from whichever runs have figures."""
    lines = ["# Benchmarks", ""]
    if results:
        lines += suite_section(results)
    else:
        lines += ["No figures of the default run yet: `python -m benchmarks.run`."]
    if peer:
        lines += ["", *peer_section(peer)]
    if latency:
        lines += ["", *latency_section(latency)]
    return "\n".join(lines) + "\n"
