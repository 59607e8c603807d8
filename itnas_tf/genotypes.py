"""Genotypes of the three kinds of space and their text forms (DESIGN.md section 4).

- DARTS cells: `Genotype(normal, normal_concat, reduce, reduce_concat)`, the DARTS repository's
  namedtuple, parsed from the text the DARTS, PC-DARTS and P-DARTS repositories print or paste.
- NB201 cells: `NB201Genotype`, the `|op~j|+|...|` string of NAS-Bench-201.
- Chain networks: `ChainGenotype`, a JSON object.
"""

import ast
import collections
import dataclasses
import json
import pathlib

from itnas_tf.ops.darts import PRIMITIVES
from itnas_tf.ops.registry import MBCONV_OPS, NB201_OPS


class GenotypeError(ValueError):
    """A genotype text or object that does not describe a valid architecture."""


# --------------------------------------------------------------------------------------------------
# DARTS cells

Genotype = collections.namedtuple("Genotype", "normal normal_concat reduce reduce_concat")

DARTS_CELL_OPS = PRIMITIVES + ("noise",)
_FIELDS = Genotype._fields


def _literal(node, what):
    """A Python literal from the AST: str/int constants, lists/tuples, and `range(a, b)`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, what) for e in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        args = [_literal(a, what) for a in node.args]
        if node.func.id == "range" and all(isinstance(a, int) for a in args) and 1 <= len(args) <= 3:
            return list(range(*args))
        if node.func.id == "list" and len(args) == 1 and isinstance(args[0], list):
            return args[0]
    raise GenotypeError(
        f"Unsupported expression in {what}: {ast.unparse(node)!r}. Only op names, integers, "
        "lists, tuples and range(a, b) are accepted."
    )


def parse_genotype(text, steps=None, ops=DARTS_CELL_OPS):
    """Parses a DARTS genotype without `eval`.

    Accepts `Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])`, its
    positional form, a leading `NAME = ` (as genotypes stand in `genotypes.py`), a `genotypes.`
    prefix, and `range(2, 6)` for the concat lists.

    Raises:
        GenotypeError: the text is not such a genotype, or the cells are invalid (see `validate`).
    """
    try:
        tree = ast.parse(text.strip())
    except SyntaxError as e:
        raise GenotypeError(f"Not a DARTS genotype (syntax error: {e.msg}): {text[:80]!r}") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], (ast.Expr, ast.Assign)):
        raise GenotypeError(f"Expected one `Genotype(...)` expression, got: {text[:80]!r}")
    call = tree.body[0].value
    name = getattr(call, "func", None)
    name = getattr(name, "id", None) or getattr(name, "attr", None)
    if not isinstance(call, ast.Call) or name != "Genotype":
        raise GenotypeError(f"Expected `Genotype(normal=..., ...)`, got: {text[:80]!r}")
    if len(call.args) > len(_FIELDS):
        raise GenotypeError(f"Genotype takes {len(_FIELDS)} fields, got {len(call.args)} positional.")
    fields = {f: _literal(a, f) for f, a in zip(_FIELDS, call.args)}
    for kw in call.keywords:
        if kw.arg not in _FIELDS:
            raise GenotypeError(f"Unknown Genotype field {kw.arg!r}; fields are {', '.join(_FIELDS)}.")
        if kw.arg in fields:
            raise GenotypeError(f"Genotype field {kw.arg!r} given twice.")
        fields[kw.arg] = _literal(kw.value, kw.arg)
    missing = [f for f in _FIELDS if f not in fields]
    if missing:
        raise GenotypeError(f"Genotype is missing field(s): {', '.join(missing)}.")
    cells = {}
    for cell in ("normal", "reduce"):
        edges = fields[cell]
        if not isinstance(edges, list) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], int)
            for e in edges
        ):
            raise GenotypeError(f"Genotype.{cell} must be a list of ('op_name', input_index) pairs.")
        cells[cell] = [tuple(e) for e in edges]
    genotype = Genotype(
        cells["normal"], fields["normal_concat"], cells["reduce"], fields["reduce_concat"]
    )
    validate(genotype, steps=steps, ops=ops)
    return genotype


def validate(genotype, steps=None, ops=DARTS_CELL_OPS):
    """Checks a DARTS genotype: 2 edges per node, input indices that exist, known ops, concat.

    Args:
        steps: intermediate nodes per cell; `None` takes it from the edge count.
    """
    for cell in ("normal", "reduce"):
        edges = getattr(genotype, cell)
        concat = getattr(genotype, cell + "_concat")
        n = len(edges)
        cell_steps = steps if steps is not None else n // 2
        if n == 0 or n != 2 * cell_steps:
            want = f"{2 * steps} (2 per node, {steps} nodes)" if steps else "an even, non-zero count"
            raise GenotypeError(f"The {cell} cell has {n} edges; expected {want}.")
        for i, (op, j) in enumerate(edges):
            node = i // 2
            if op not in ops:
                raise GenotypeError(
                    f"The {cell} cell's edge {i} uses unknown op {op!r}; known: {', '.join(ops)}."
                )
            if not 0 <= j < node + 2:
                raise GenotypeError(
                    f"The {cell} cell's edge {i} ({op!r}) reads input {j}, but node {node + 2} can "
                    f"only read the two cell inputs and earlier nodes (0..{node + 1})."
                )
        concat = list(concat)
        if not concat or len(set(concat)) != len(concat) or not all(
            isinstance(k, int) and 2 <= k < cell_steps + 2 for k in concat
        ):
            raise GenotypeError(
                f"{cell}_concat {concat} must list distinct intermediate nodes in 2..{cell_steps + 1}."
            )
        unused = sorted(set(range(2, cell_steps + 2)) - set(concat) - {j for _, j in edges})
        if unused:
            raise GenotypeError(
                f"The {cell} cell's node(s) {unused} feed nothing: no later node reads them and {cell}_concat "
                f"{concat} leaves them out. A DARTS cell has {n // 2} intermediate nodes here (two edges each, "
                f"{n} edges); the search spaces' cells have 4 (8 edges) and concat [2, 3, 4, 5]."
            )


def format_genotype(genotype):
    """The DARTS repositories' text form, with plain lists for the concat fields."""
    def edges(cell):
        return "[" + ", ".join(f"({op!r}, {j})" for op, j in cell) + "]"

    return (
        f"Genotype(normal={edges(genotype.normal)}, normal_concat={list(genotype.normal_concat)}, "
        f"reduce={edges(genotype.reduce)}, reduce_concat={list(genotype.reduce_concat)})"
    )


# The DARTS family's published cells, named as their repositories name them (quark0/darts,
# yuhuixu1993/PC-DARTS, chenxin061/pdarts); `read_genotype` takes the names.
DARTS_V1 = parse_genotype(
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"
)
DARTS_V2 = parse_genotype(
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)

PC_DARTS_CIFAR = parse_genotype(
    "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), "
    "('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, 6), "
    "reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))"
)
PC_DARTS_IMAGE = parse_genotype(
    "Genotype(normal=[('skip_connect', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('skip_connect', 1), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('dil_conv_5x5', 4)], normal_concat=range(2, 6), "
    "reduce=[('sep_conv_3x3', 0), ('skip_connect', 1), ('dil_conv_5x5', 2), ('max_pool_3x3', 1), ('sep_conv_3x3', 2), "
    "('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 3)], reduce_concat=range(2, 6))"
)
PDARTS = parse_genotype(
    "Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 0), ('dil_conv_5x5', 4)], normal_concat=range(2, 6), "
    "reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2), ('max_pool_3x3', 0), "
    "('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)], reduce_concat=range(2, 6))"
)


# --------------------------------------------------------------------------------------------------
# NB201 cells


@dataclasses.dataclass(frozen=True)
class NB201Genotype:
    """A NAS-Bench-201 cell: `nodes[k-1]` lists the `(op, input)` edges into node `k` (k = 1..3)."""

    nodes: tuple

    @classmethod
    def from_string(cls, text):
        """Parses `|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|...|`."""
        text = text.strip()
        nodes = []
        for k, part in enumerate(text.split("+"), start=1):
            if len(part) < 2 or not part.startswith("|") or not part.endswith("|"):
                raise GenotypeError(
                    f"Malformed NB201 string {text!r}: node {k} is {part!r}, expected '|op~j|...|'."
                )
            edges = []
            for item in part[1:-1].split("|"):
                op, sep, j = item.partition("~")
                if not sep or not j.isdigit():
                    raise GenotypeError(
                        f"Malformed NB201 string {text!r}: edge {item!r} is not 'op~input_index'."
                    )
                edges.append((op, int(j)))
            nodes.append(tuple(edges))
        genotype = cls(tuple(nodes))
        genotype.validate()
        return genotype

    def validate(self, num_nodes=3):
        if len(self.nodes) != num_nodes:
            raise GenotypeError(f"An NB201 cell has {num_nodes} nodes after the input; got {len(self.nodes)}.")
        for k, edges in enumerate(self.nodes, start=1):
            inputs = sorted(j for _, j in edges)
            if inputs != list(range(k)):
                raise GenotypeError(
                    f"NB201 node {k} must have exactly one edge from each of nodes 0..{k - 1}; "
                    f"got inputs {inputs}."
                )
            for op, _ in edges:
                if op not in NB201_OPS:
                    raise GenotypeError(f"Unknown NB201 op {op!r}; known: {', '.join(NB201_OPS)}.")

    def edges(self):
        """The six `(op, target, source)` edges in NB201 order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2."""
        return [
            (op, k, j)
            for k, node in enumerate(self.nodes, start=1)
            for op, j in sorted(node, key=lambda e: e[1])
        ]

    @classmethod
    def from_ops(cls, ops):
        """From the six ops in edge order (as `edges()` lists them)."""
        ops = list(ops)
        if len(ops) != 6:
            raise GenotypeError(f"An NB201 cell has 6 edges; got {len(ops)} ops.")
        nodes = (((ops[0], 0),), ((ops[1], 0), (ops[2], 1)), ((ops[3], 0), (ops[4], 1), (ops[5], 2)))
        genotype = cls(nodes)
        genotype.validate()
        return genotype

    def to_string(self):
        return "+".join("|" + "|".join(f"{op}~{j}" for op, j in node) + "|" for node in self.nodes)

    def __str__(self):
        return self.to_string()


# --------------------------------------------------------------------------------------------------
# Chain networks

CHAIN_OPS = MBCONV_OPS + ("zero",)
_WIDTH_KEYS = ("stem", "first", "stages", "head")


@dataclasses.dataclass
class ChainGenotype:
    """A chain network (ProxylessNAS space): one op per searchable layer, optional widths."""

    ops: list
    space: str = "proxyless"
    widths: dict = None
    se: bool = False
    input_size: int = 224
    num_classes: int = 1000

    def __post_init__(self):
        self.ops = list(self.ops)
        bad = [op for op in self.ops if op not in CHAIN_OPS]
        if bad:
            raise GenotypeError(f"Unknown chain op(s) {bad}; known: {', '.join(CHAIN_OPS)}.")
        if not self.ops:
            raise GenotypeError("A chain genotype needs at least one op.")
        if self.widths is not None:
            unknown = set(self.widths) - set(_WIDTH_KEYS)
            if unknown:
                raise GenotypeError(f"Unknown width key(s) {sorted(unknown)}; known: {', '.join(_WIDTH_KEYS)}.")
            stages = self.widths.get("stages")
            if stages is not None and len(stages) != len(self.ops):
                raise GenotypeError(
                    f"widths.stages has {len(stages)} widths for {len(self.ops)} ops; give one per block."
                )
        for name in ("input_size", "num_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise GenotypeError(f"{name} must be a positive integer, got {value!r}.")

    @classmethod
    def from_json(cls, text):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise GenotypeError(f"A chain genotype must be JSON: {e}") from None
        if not isinstance(data, dict) or "ops" not in data:
            raise GenotypeError('A chain genotype is a JSON object with at least "ops": [...].')
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise GenotypeError(f"Unknown chain genotype key(s): {sorted(unknown)}.")
        return cls(**data)

    def to_json(self, indent=None):
        data = {
            "space": self.space,
            "ops": self.ops,
            "widths": self.widths,
            "se": self.se,
            "input_size": self.input_size,
            "num_classes": self.num_classes,
        }
        if self.widths is None:
            del data["widths"]
        return json.dumps(data, indent=indent)

    def __str__(self):
        return self.to_json()


PROXYLESS_GPU = ChainGenotype(
    ops=(
        "mb3_k5 zero zero zero mb3_k7 zero zero mb3_k3 mb6_k7 zero zero mb3_k5 mb6_k5 zero mb3_k3 "
        "mb3_k5 mb6_k7 mb6_k7 mb6_k7 mb6_k5 mb6_k7"
    ).split(),
    widths={
        "stem": 40,
        "first": 24,
        "stages": [32] * 4 + [56] * 4 + [112] * 4 + [128] * 4 + [256] * 4 + [432],
        "head": 1728,
    },
)

# MobileNetV2 1.0 in the chain space: its 16 blocks after the first (all e6 k3), each stage's unused
# places `zero`; counted, it is keras.applications.MobileNetV2 (reference.md).
MOBILENET_V2 = ChainGenotype(
    ops=["mb6_k3"] * 2 + ["zero"] * 2 + ["mb6_k3"] * 3 + ["zero"] + ["mb6_k3"] * 4 + ["mb6_k3"] * 3 + ["zero"]
    + ["mb6_k3"] * 3 + ["zero"] + ["mb6_k3"],
    widths={"stem": 32, "first": 16, "stages": [24] * 4 + [32] * 4 + [64] * 4 + [96] * 4 + [160] * 4 + [320], "head": 1280},
)

# The names `read_genotype` takes, with what each is.
NAMED = {
    "DARTS_V1": (DARTS_V1, "DARTS first order, CIFAR-10 (quark0/darts)"),
    "DARTS_V2": (DARTS_V2, "DARTS second order, CIFAR-10 (quark0/darts)"),
    "PC_DARTS_cifar": (PC_DARTS_CIFAR, "PC-DARTS, CIFAR-10 (yuhuixu1993/PC-DARTS; its PCDARTS)"),
    "PC_DARTS_image": (PC_DARTS_IMAGE, "PC-DARTS, searched on ImageNet (yuhuixu1993/PC-DARTS)"),
    "PDARTS": (PDARTS, "P-DARTS, CIFAR-10 (chenxin061/pdarts)"),
    "PROXYLESS_GPU": (PROXYLESS_GPU, "ProxylessNAS-GPU, a chain at 224x224 (reference.md)"),
    "MOBILENET_V2": (MOBILENET_V2, "MobileNetV2 1.0, a chain at 224x224"),
}
ALIASES = {"PCDARTS": "PC_DARTS_cifar", "PC_DARTS": "PC_DARTS_cifar", "MobileNetV2": "MOBILENET_V2"}


def named_genotypes_help():
    """The text `--genotype=help` prints: every name `read_genotype` takes."""
    width = max(map(len, NAMED))
    lines = ["Published genotypes (--genotype=NAME):"]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in NAMED.items()]
    lines.append("Also: " + ", ".join(f"{alias} (= {name})" for alias, name in ALIASES.items()) + ".")
    return "\n".join(lines)


def genotype_text(genotype):
    """The text form of a genotype of any kind, as `read_genotype` reads it back."""
    if isinstance(genotype, Genotype):
        return format_genotype(genotype)
    if isinstance(genotype, ChainGenotype):
        return genotype.to_json()
    return str(genotype)


def read_genotype(text):
    """A genotype from its text (DARTS `Genotype(...)`, NB201 `|op~j|+...`, chain JSON), a path to a
    search's `result.json` or a chain genotype's JSON file, or a name of `NAMED`."""
    text = text.strip()
    if not text:
        raise GenotypeError("--genotype is empty: give a genotype's text, a path to a search's result.json or a "
                            "chain genotype's JSON file, or a published name (--genotype=help lists them).")
    if text.startswith("{"):
        return ChainGenotype.from_json(text)
    name = ALIASES.get(text, text)
    if name in NAMED:
        return NAMED[name][0]
    if not text.startswith(("|", "Genotype", "genotypes.")) and "=" not in text:
        path = pathlib.Path(text)
        if not path.is_file():
            what = "published genotype" if text.isidentifier() else "file"
            raise GenotypeError(f"--genotype: no such {what} {text!r}. Give a genotype's text, a path to a file, "
                                f"or one of {', '.join(NAMED)} (--genotype=help says what they are).")
        content = path.read_text()
        try:
            data = json.loads(content)
        except json.JSONDecodeError as e:
            raise GenotypeError(f"--genotype: {path} is not JSON ({e}).") from None
        if isinstance(data, dict) and "ops" in data:
            return ChainGenotype.from_json(content)
        if isinstance(data, dict) and isinstance(data.get("genotype"), str):
            text = data["genotype"]
        else:
            raise GenotypeError(f"--genotype: {path} is neither a result.json nor a chain genotype.")
    if text.startswith("|"):
        return NB201Genotype.from_string(text)
    return parse_genotype(text)
