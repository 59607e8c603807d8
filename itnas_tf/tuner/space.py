"""A search space as keras-tuner hyperparameters, and the way between their values and genotypes.

- `nb201`: one `hp.Choice` per edge, `edge_k_j`, over the five NB201 ops.
- `darts`, `s1`..`s4`: per cell and intermediate node, `{cell}_{k}_inputs` chooses the two input
  nodes (`"0,1"`, `"0,2"`, ...); each edge `{cell}_{k}_{j}` chooses its op among the space's
  candidates less `none` (the DARTS derivation never keeps `none`), and is active only when node k
  reads node j. Conditional hyperparameters keep every value set one architecture, so keras-tuner's
  own duplicate check works for its oracles too.

Edge names are those of the supernet's importance table, so a `result.json` maps onto them.
"""

import itertools

from itnas_tf.genotypes import Genotype, GenotypeError, NB201Genotype, genotype_text
from itnas_tf.ops import NB201_OPS
from itnas_tf.spaces import CELL_SPACES, darts, nb201

DARTS_SPACES = tuple(s for s in CELL_SPACES if s != "nb201")


def check_space(space):
    if space not in CELL_SPACES:
        raise ValueError(f"Unknown space {space!r}; the tuner knows the cell spaces {', '.join(CELL_SPACES)}.")
    return space


def nodes(space):
    """DARTS-like spaces: `[(cell, k), ...]`, the intermediate nodes; NB201: `[]`."""
    return [] if space == "nb201" else [(cell, k) for cell in ("normal", "reduce") for k in range(2, darts.STEPS + 2)]


def inputs_name(cell, k):
    return f"{cell}_{k}_inputs"


def input_pairs(k):
    """The values of node k's inputs choice: `"0,1"`, `"0,2"`, ... (ascending pairs)."""
    return [f"{a},{b}" for a, b in itertools.combinations(range(k), 2)]


def edge_ops(space):
    """`{edge name: [op, ...]}`: what each edge's choice ranges over, in table order."""
    if check_space(space) == "nb201":
        return {f"edge_{k}_{j}": list(NB201_OPS) for k in range(1, nb201.NUM_NODES) for j in range(k)}
    table = {}
    for cell in ("normal", "reduce"):
        for name, candidates in zip(darts.edge_names(cell), darts.SPACE_OPS[space][cell]):
            table[name] = [op for op in candidates if op != "none"]
    return table


def _choice(hp, space, name, values, **condition):
    """`hp.Choice`, refusing a name that `hp` already holds with other choices (another space's)."""
    value = hp.Choice(name, values, **condition)
    held = next(h for h in hp.space if h.name == name)
    if list(held.values) != list(values):
        raise ValueError(
            f"The hyperparameter {name!r} is declared with choices {list(held.values)}, but the {space} "
            f"space has {list(values)}: the oracle's space is not the HyperModel's."
        )
    return value


def declare(hp, space):
    """Declares `space`'s hyperparameters in `hp` (a `keras_tuner.HyperParameters`); returns their
    active values, `{name: value}`."""
    values = {}
    choices = edge_ops(space)
    if space == "nb201":
        for name, ops in choices.items():
            values[name] = _choice(hp, space, name, ops)
        return values
    for cell, k in nodes(space):
        pairs = input_pairs(k)
        parent = inputs_name(cell, k)
        values[parent] = _choice(hp, space, parent, pairs)
        for j in range(k):
            reads_j = [p for p in pairs if str(j) in p.split(",")]
            name = f"{cell}_{k}_{j}"
            value = _choice(hp, space, name, choices[name], parent_name=parent, parent_values=reads_j)
            if value is not None:
                values[name] = value
    return values


def _get(values, name, space):
    if name not in values:
        raise GenotypeError(
            f"The hyperparameters lack {name!r}, which the {space} space needs; were they declared by "
            "`itnas_tf.tuner.declare` (or ITNASHyperModel) for this space?"
        )
    return values[name]


def to_genotype(space, values):
    """The genotype that hyperparameter values (a dict or `HyperParameters`) describe.

    A DARTS node lists its two edges by input index; the architecture does not depend on the order.
    """
    values = values if isinstance(values, dict) else values.values  # keras_tuner.HyperParameters
    if check_space(space) == "nb201":
        return NB201Genotype.from_ops([_get(values, name, space) for name in edge_ops(space)])
    genes = {"normal": [], "reduce": []}
    for cell, k in nodes(space):
        pair = _get(values, inputs_name(cell, k), space)
        if pair not in input_pairs(k):
            raise GenotypeError(f"{inputs_name(cell, k)}={pair!r} is not one of {input_pairs(k)}.")
        for j in map(int, pair.split(",")):
            genes[cell].append((_get(values, f"{cell}_{k}_{j}", space), j))
    concat = list(range(2, darts.STEPS + 2))
    return Genotype(genes["normal"], concat, genes["reduce"], concat)


def to_text(space, values):
    """The genotype text (DESIGN.md 4) of hyperparameter values, e.g. `tuner.get_best_hyperparameters()[0]`."""
    return genotype_text(to_genotype(space, values))


def from_genotype(space, genotype):
    """The active hyperparameter values of `genotype` in `space` (inverse of `to_genotype`)."""
    if check_space(space) == "nb201":
        if not isinstance(genotype, NB201Genotype):
            raise GenotypeError(f"The nb201 space needs an NB201 genotype, got a {type(genotype).__name__}.")
        return {name: op for name, (op, _, _) in zip(edge_ops(space), genotype.edges())}
    if not isinstance(genotype, Genotype):
        raise GenotypeError(f"The {space} space needs a DARTS Genotype, got a {type(genotype).__name__}.")
    values, choices = {}, edge_ops(space)
    for cell in ("normal", "reduce"):
        gene = getattr(genotype, cell)
        for i, k in enumerate(range(2, darts.STEPS + 2)):
            pair = sorted(gene[2 * i: 2 * i + 2], key=lambda e: e[1])
            values[inputs_name(cell, k)] = ",".join(str(j) for _, j in pair)
            for op, j in pair:
                name = f"{cell}_{k}_{j}"
                if op not in choices[name]:
                    raise GenotypeError(f"{name}: {op!r} is not a candidate of the {space} space ({choices[name]}).")
                values[name] = op
    return values
