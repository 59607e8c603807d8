"""`picture(genotype)`: what to draw for a genotype of any kind."""

from itnas_tf.genotypes import ChainGenotype, NB201Genotype
from itnas_tf.plots.cells import darts_cells, nb201_cell
from itnas_tf.plots.chain import MOBILE_MADDS, chain_figure


def picture(genotype, importance=None, max_madds=MOBILE_MADDS):
    """A list of `CellGraph`s for a cell genotype, a matplotlib figure for a chain genotype."""
    if isinstance(genotype, ChainGenotype):
        return chain_figure(genotype, max_madds)
    if isinstance(genotype, NB201Genotype):
        return nb201_cell(genotype, importance)
    return darts_cells(genotype, importance)
