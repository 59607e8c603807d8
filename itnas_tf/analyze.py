"""`python -m itnas_tf.analyze FOLDER... --output_dir=DIR`: the paper's analyses of finished searches.

FOLDER is a search's --output_dir; give several (seeds, strategies) of one space to compare them.
With `--benchmark` (a NAS-Bench-201 CSV such as `../shared/data/nb201/nb201_table.csv`, or the official
NATS-Bench files) nb201 searches get their selected cells' accuracies, the trajectory plot and the
benchmark ground truth of the ranking analysis. Writes `report.md`, `analysis.json` and PNGs.
"""

from absl import app, flags

from itnas_tf import cli
from itnas_tf.analysis import AnalysisError, BenchmarkError, NB201Table, analyze
from itnas_tf.checkpoint import CheckpointError
from itnas_tf.data import DataError
from itnas_tf.genotypes import GenotypeError

flags.DEFINE_string("output_dir", None, "Where the report, analysis.json and the figures go.")
flags.DEFINE_string("benchmark", None, "A NAS-Bench-201 table: CSV with arch_str and <dataset>_test_acc_200ep columns, "
                    "or a NATS-Bench topology folder (needs `pip install nats_bench`).")
flags.DEFINE_bool("discretize", True, "Measure the discretisation accuracy of every op on every edge (the supernet "
                  "with that op alone on the edge, fine-tuned briefly): a ground truth of the ranking analysis.")
flags.DEFINE_integer("finetune_steps", 10, "SGD steps of each discretised supernet before it is scored.", lower_bound=0)
flags.DEFINE_bool("zero_cost", True, "Score NASWOT and SynFlow per op per edge as further indicators.")
flags.DEFINE_string("gradcam_edge", None, "The edge (or layer) of the Grad-CAM grid, in the last cell (default: the last that chooses an op).")
flags.DEFINE_string("data_dir", None, "tensorflow-datasets folder of the searches' data.")
flags.mark_flag_as_required("output_dir")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) < 2:
        raise app.UsageError("Give one or more search output folders.")
    table = NB201Table.load(FLAGS.benchmark) if FLAGS.benchmark else None
    analyze(argv[1:], FLAGS.output_dir, table, FLAGS.discretize, FLAGS.zero_cost, FLAGS.gradcam_edge,
            FLAGS.finetune_steps, FLAGS.data_dir)
    print(f"wrote {FLAGS.output_dir}/report.md")


if __name__ == "__main__":
    cli.run(main, (AnalysisError, BenchmarkError, CheckpointError, DataError, GenotypeError))
