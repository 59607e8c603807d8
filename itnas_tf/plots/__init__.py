"""Pictures of genotypes: cell graphs (DARTS, NB201) and chain strips (proxyless)."""

from itnas_tf.plots.cells import CellGraph, darts_cells, nb201_cell
from itnas_tf.plots.chain import chain_blocks, chain_figure
from itnas_tf.plots.render import RENDERERS, SUFFIXES, PlotError, check_path, to_dot, write
from itnas_tf.plots.picture import picture
