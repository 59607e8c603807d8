"""`python -m export --checkpoint=runs/retrain --formats=saved_model,onnx`: exports a retrained network.

Prints params and MAdds, refuses a network over `--max_madds` (default 600M, the mobile limit) unless
`--allow_over_budget`, writes the files and `manifest.json`, and fails when onnxruntime, the loaded
SavedModel or the TFLite interpreter disagree with the Keras model by more than `--tolerance`.
"""

from absl import app, flags

from export.budget import MOBILE_MADDS, BudgetError
from export.convert import FORMATS
from export.exporter import ExportError, export
from itnas_tf import cli
from itnas_tf.checkpoint import CheckpointError
from itnas_tf.genotypes import GenotypeError

flags.DEFINE_string("checkpoint", None, "checkpoint.npz of `python -m itnas_tf.retrain`, or its folder.")
flags.DEFINE_list("formats", ["saved_model", "onnx"], f"Comma-separated, of: {', '.join(FORMATS)}.")
flags.DEFINE_string("output_dir", None, "Where the files go (default: <checkpoint folder>/export).")
flags.DEFINE_integer("max_madds", MOBILE_MADDS, "MAdds budget (600M: the mobile setting).", lower_bound=1)
flags.DEFINE_bool("allow_over_budget", False, "Export a network over --max_madds anyway.")
flags.DEFINE_integer("opset", 17, "ONNX opset (17 or newer).")
flags.DEFINE_float("tolerance", 1e-4, "Largest max |output difference| accepted against the Keras model.", lower_bound=0)
flags.DEFINE_bool("overwrite", False, "Replace a non-empty --output_dir.")
flags.mark_flag_as_required("checkpoint")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    out, manifest = export(
        FLAGS.checkpoint, FLAGS.output_dir, FLAGS.formats, FLAGS.max_madds, FLAGS.allow_over_budget,
        FLAGS.overwrite, FLAGS.opset, FLAGS.tolerance,
    )
    budget = "over the budget (allowed)" if manifest["over_budget"] else "within the budget"
    print(f"{manifest['network']}: {manifest['params']:,} params, {manifest['madds'] / 1e6:.2f}M MAdds, "
          f"{budget} of {manifest['max_madds'] / 1e6:.0f}M")
    for fmt, diff in manifest["parity"]["max_abs_diff"].items():
        print(f"  {fmt:<12} {manifest['files'][fmt]:<14} max |diff| vs Keras {diff:.2e}")
    print(f"\nwrote {out} ({', '.join(manifest['files'].values())}, manifest.json)")


if __name__ == "__main__":
    cli.run(main, (BudgetError, CheckpointError, ExportError, GenotypeError))
