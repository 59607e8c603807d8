"""`python -m itnas_tf.visualize GENOTYPE --out=cell.png`: a picture of a genotype.

GENOTYPE is genotype text (DARTS `Genotype(...)`, NB201 `|op~j|+...`, chain JSON) or a path to a
search's `result.json` (its edges then show the IT importance of their op and of the runner-up) or
to a chain genotype's JSON file. `.png`, `.svg` and `.pdf` are written.
"""

import json
import pathlib

from absl import app, flags

from itnas_tf import cli
from itnas_tf.genotypes import GenotypeError, read_genotype
from itnas_tf.plots import RENDERERS, PlotError, check_path, picture, write

flags.DEFINE_string("out", None, "The picture file: .png, .svg or .pdf.")
flags.DEFINE_enum("renderer", "auto", list(RENDERERS), "Cells: graphviz's dot, or matplotlib (auto: dot when installed).")
flags.DEFINE_float("max_madds", 600e6, "Chains: the MAdds budget the total is shown against.", lower_bound=1)
FLAGS = flags.FLAGS


def importance_of(source):
    """The importance table of a `result.json` path, else `None`."""
    path = pathlib.Path(source)
    if source.lstrip()[:1] in "|{G" or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data.get("importance") if isinstance(data, dict) else None


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("Give one genotype (text, result.json or chain JSON file) and --out=FILE.")
    if cli.genotype_help(argv[1]):  # needs no --out
        return
    if FLAGS.out is None:
        raise app.UsageError("--out=FILE is required: the picture to write (.png, .svg or .pdf).")
    out = check_path(FLAGS.out)
    genotype = read_genotype(argv[1])
    used = write(picture(genotype, importance_of(argv[1]), FLAGS.max_madds), out, FLAGS.renderer)
    print(f"wrote {out} (drawn with {used})")


if __name__ == "__main__":
    cli.run(main, (GenotypeError, PlotError, ValueError))
