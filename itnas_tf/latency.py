"""`python -m itnas_tf.latency --output=latency.json`: the chain space's latency table on this CPU.

Measures every candidate block at every position, and the fixed parts, as tiny ONNX graphs run by
onnxruntime at batch 1 (`export.latency_table`), and whole networks to check the additive model
against (`--check_networks` random chains, ProxylessNAS-GPU's and MobileNetV2's ops), every graph in
turn with the others; refuses to write a table whose mean error is over 15% unless
`--allow_model_error`. `python -m itnas_tf.search --latency_table=latency.json --max_latency_ms=...`
selects under it.
"""

import itnas_tf  # noqa: F401 (first: a command line's quiet start, before TensorFlow loads)
import pathlib

from absl import app, flags

from itnas_tf import cli
from itnas_tf.chain_searcher import widths_setting
from itnas_tf.genotypes import GenotypeError
from itnas_tf.results import write_json_atomic
from itnas_tf.spaces.proxyless_latency import LatencyError, LatencyTable

flags.DEFINE_string("widths", None, "The target network's widths as JSON {stem, first, stages, head} (default: the reference widths).")
flags.DEFINE_bool("se", False, "MBConv blocks with squeeze-and-excitation.")
flags.DEFINE_integer("input_size", 224, "The input side.", lower_bound=1)
flags.DEFINE_integer("num_classes", 1000, "Classes of the classifier.", lower_bound=1)
flags.DEFINE_integer("threads", 1, "onnxruntime's intra-op threads (as the deployment will run).", lower_bound=1)
flags.DEFINE_integer("runs", 30, "Timed runs per graph, every graph in turn (after 5 warm-up rounds); the median is "
                     "kept.", lower_bound=1)
flags.DEFINE_integer("check_networks", 22, "Random chains the additive model is checked on, besides ProxylessNAS-GPU "
                     "and MobileNetV2.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed of the random chains.")
flags.DEFINE_bool("allow_model_error", False, "Write the table even when its mean error is over 15%.")
flags.DEFINE_string("output", None, "Where the table goes (JSON).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.mark_flag_as_required("output")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from export.latency_table import MAX_ERROR, measure_table

    output = pathlib.Path(FLAGS.output)
    if output.exists() and not FLAGS.overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it, or choose another --output.")
    widths = widths_setting(FLAGS.widths, "widths")
    record = measure_table(widths, FLAGS.se, FLAGS.input_size, FLAGS.num_classes, FLAGS.threads, FLAGS.runs,
                           FLAGS.check_networks, FLAGS.seed)
    fastest, _ = LatencyTable(record).minimum()
    print(f"fastest network of the space: {fastest:.3f} ms predicted")
    if "check" in record:
        error = record["check"]["mean_abs_error"]
        print(f"additive model: mean |error| {error:.1%} over {len(record['check']['networks'])} whole networks "
              f"(limit {MAX_ERROR:.0%})")
        if error > MAX_ERROR and not FLAGS.allow_model_error:
            cli.fail(f"the additive latency model is off by {error:.1%} on average (over {MAX_ERROR:.0%}), so the "
                     "table was not written. Measure on a quiet machine, with more --runs, or pass "
                     "--allow_model_error to keep it anyway. (Networks of well under a millisecond are mostly "
                     "onnxruntime's cost per operator, which no table of blocks adds up.)", cli.FAILED)
    write_json_atomic(output, record)
    print(f"wrote {output}")


if __name__ == "__main__":
    cli.run(main, (FileExistsError, GenotypeError, LatencyError))
