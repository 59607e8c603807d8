"""`python -m export --checkpoint=runs/retrain --formats=saved_model,onnx`: exports a retrained network.

Prints params and MAdds, refuses a network over `--max_madds` (default 600M, the mobile limit) unless
`--allow_over_budget`, writes the files and `manifest.json`, and fails when onnxruntime, the loaded
SavedModel or the TFLite interpreter disagree with the Keras model by more than `--tolerance`, or an
int8 file agrees with it on under 99% of the test images or is more than 1 point less accurate
(unless `--allow_accuracy_drop`). Every file's batch-1 latency on this CPU is measured.
"""

import itnas_tf  # noqa: F401 (first: a command line's quiet start, before TensorFlow loads)
from absl import app, flags

from export.budget import MOBILE_MADDS, BudgetError
from export.convert import FORMATS
from export.exporter import CALIBRATION_IMAGES, ExportError, export
from itnas_tf import cli
from itnas_tf.checkpoint import CheckpointError
from itnas_tf.data import DataError
from itnas_tf.genotypes import GenotypeError
from itnas_tf.spaces.proxyless_latency import LatencyError

flags.DEFINE_string("checkpoint", None, "checkpoint.npz of `python -m itnas_tf.retrain`, or its folder.")
flags.DEFINE_list("formats", ["saved_model", "onnx"], f"Comma-separated, of: {', '.join(FORMATS)}.")
flags.DEFINE_string("output_dir", None, "Where the files go (default: <checkpoint folder>/export).")
flags.DEFINE_integer("max_madds", MOBILE_MADDS, "MAdds budget (600M: the mobile setting).", lower_bound=1)
flags.DEFINE_bool("allow_over_budget", False, "Export a network over --max_madds anyway.")
flags.DEFINE_integer("opset", 17, "ONNX opset (17 or newer).")
flags.DEFINE_float("tolerance", 1e-4, "Largest max |output difference| accepted against the Keras model.", lower_bound=0)
flags.DEFINE_bool("overwrite", False, "Replace a non-empty --output_dir.")
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data folder of the retraining's data (int8 formats).")
flags.DEFINE_integer("calibration_images", CALIBRATION_IMAGES, "Training images that calibrate the int8 formats.",
                     lower_bound=1)
flags.DEFINE_string("calibration", None, "Calibrate int8 formats on this --dataset source's training images instead "
                    "(e.g. npz:field_images.npz), of the network's input size.")
flags.DEFINE_bool("allow_accuracy_drop", False, "Keep an int8 file that fails the accuracy rule.")
flags.DEFINE_bool("int8_per_channel", False, "A weight scale per output channel in the int8 formats, not one per "
                  "tensor: more accurate for some networks, larger (TFLite: 0.39x of float, not 0.28x).")
flags.DEFINE_integer("latency_threads", 1, "Threads of onnxruntime and LiteRT in the latency figures.", lower_bound=1)
flags.DEFINE_string("latency_table", None, "A chain network's latency table (`python -m itnas_tf.latency`): its "
                    "prediction is printed beside the measured latency.")
flags.mark_flag_as_required("checkpoint")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    out, manifest = export(
        FLAGS.checkpoint, FLAGS.output_dir, FLAGS.formats, FLAGS.max_madds, FLAGS.allow_over_budget,
        FLAGS.overwrite, FLAGS.opset, FLAGS.tolerance, data_dir=FLAGS.data_dir, calibration=FLAGS.calibration,
        calibration_images=FLAGS.calibration_images, allow_accuracy_drop=FLAGS.allow_accuracy_drop,
        per_channel=FLAGS.int8_per_channel, latency_threads=FLAGS.latency_threads, latency_table=FLAGS.latency_table,
    )
    budget = "over the budget (allowed)" if manifest["over_budget"] else "within the budget"
    print(f"{manifest['network']}: {manifest['params']:,} params, {manifest['madds'] / 1e6:.2f}M MAdds, "
          f"{budget} of {manifest['max_madds'] / 1e6:.0f}M")
    latency = manifest["latency"]
    print(f"batch-1 latency: median of {latency['runs']} warm runs, {latency['threads']} thread(s) "
          f"(SavedModel: TensorFlow's own), {latency['cpu']}")
    if latency["predicted"]:
        p = latency["predicted"]
        print(f"  predicted by {p['table']}: {p['ms']:.2f} ms ({p['threads']} thread(s), {p['cpu']})")
    for fmt, name in manifest["files"].items():
        size = f"{manifest['bytes'][fmt] / 1e6:.2f} MB"
        if fmt in manifest["int8"]:
            check = manifest["int8"][fmt]
            quality = (f"top-1 agrees {check['top1_agreement']:.1%}, accuracy {check['test_accuracy']:.2%} "
                       f"(float {check['float_test_accuracy']:.2%})" + ("" if check["passed"] else ", FAILS the rule (allowed)"))
        else:
            quality = f"max |diff| vs Keras {manifest['parity']['max_abs_diff'][fmt]:.2e}"
        print(f"  {fmt:<12} {name:<18} {size:>9}  {latency['median_ms'][fmt]:7.2f} ms  {quality}")
    print(f"\nwrote {out} ({', '.join(manifest['files'].values())}, manifest.json)")


if __name__ == "__main__":
    cli.run(main, (BudgetError, CheckpointError, DataError, ExportError, GenotypeError, LatencyError))
