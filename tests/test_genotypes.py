import json

import pytest

from itnas_tf.genotypes import (
    DARTS_V2,
    PROXYLESS_GPU,
    ChainGenotype,
    Genotype,
    GenotypeError,
    NB201Genotype,
    format_genotype,
    parse_genotype,
)

# As they stand in the PC-DARTS and P-DARTS repositories' genotypes.py.
PC_DARTS = (
    "PCDARTS = Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), "
    "('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), "
    "('dil_conv_3x3', 1)], normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), "
    "('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))"
)
P_DARTS = (
    "PDARTS = Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0),"
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3',0),"
    "('dil_conv_5x5', 4)], normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), "
    "('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2), ('max_pool_3x3', 0), "
    "('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)], reduce_concat=range(2, 6))"
)


@pytest.mark.parametrize("text", [PC_DARTS, P_DARTS, format_genotype(DARTS_V2)])
def test_pasted_darts_genotypes_parse_and_round_trip(text):
    genotype = parse_genotype(text, steps=4)
    assert list(genotype.normal_concat) == [2, 3, 4, 5]
    assert parse_genotype(format_genotype(genotype)) == genotype


def test_darts_v2_is_the_published_cell():
    assert DARTS_V2.normal[7] == ("dil_conv_3x3", 2)
    assert DARTS_V2.reduce[0] == ("max_pool_3x3", 0)
    assert isinstance(DARTS_V2, Genotype)


def test_positional_form_and_module_prefix_are_accepted():
    g = DARTS_V2
    text = f"genotypes.Genotype({g.normal}, [2, 3, 4, 5], {g.reduce}, list(range(2, 6)))"
    assert parse_genotype(text) == g


def test_parsing_never_evaluates_code():
    text = format_genotype(DARTS_V2).replace("[2, 3, 4, 5]", "__import__('os').getcwd()", 1)
    with pytest.raises(GenotypeError, match="Unsupported expression in normal_concat"):
        parse_genotype(text)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda t: t.replace("('dil_conv_3x3', 2)], normal_concat", "], normal_concat"), "7 edges"),
        (lambda t: t.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 6)"), "reads input 6"),
        (lambda t: t.replace("('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0)",
                             "('sep_conv_3x3', 2), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0)", 1), "reads input 2"),
        (lambda t: t.replace("dil_conv_3x3", "conv_7x7"), "unknown op 'conv_7x7'"),
        (lambda t: t.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 9]"), "normal_concat"),
        (lambda t: t.replace(", reduce_concat=[2, 3, 4, 5]", ""), "missing field"),
        (lambda t: t[:-5], "syntax error"),
    ],
)
def test_bad_darts_genotypes_are_refused_with_the_reason(edit, message):
    with pytest.raises(GenotypeError, match=message):
        parse_genotype(edit(format_genotype(DARTS_V2)), steps=4)


def test_wrong_edge_count_for_the_space_is_refused():
    with pytest.raises(GenotypeError, match="expected 10"):
        parse_genotype(format_genotype(DARTS_V2), steps=5)


NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_nb201_string_round_trips_and_lists_edges_in_order():
    g = NB201Genotype.from_string(NB201)
    assert g.to_string() == NB201
    ops = [op for op, _, _ in g.edges()]
    assert ops == ["nor_conv_3x3"] * 3 + ["skip_connect", "nor_conv_3x3", "nor_conv_1x1"]
    assert NB201Genotype.from_ops(ops) == g


@pytest.mark.parametrize(
    "text,message",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|", "3 nodes"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~0|+|none~0|none~1|none~2|", "one edge from each"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "Unknown NB201 op 'conv'"),
        ("nor_conv_3x3~0+|none~0|none~1|+|none~0|none~1|none~2|", "Malformed"),
        ("|nor_conv_3x3|+|none~0|none~1|+|none~0|none~1|none~2|", "not 'op~input_index'"),
    ],
)
def test_malformed_nb201_strings_are_refused(text, message):
    with pytest.raises(GenotypeError, match=message):
        NB201Genotype.from_string(text)


def test_chain_genotype_json_round_trips():
    text = PROXYLESS_GPU.to_json()
    assert json.loads(text)["ops"][:2] == ["mb3_k5", "zero"]
    assert ChainGenotype.from_json(text) == PROXYLESS_GPU
    assert len(PROXYLESS_GPU.ops) == 21


@pytest.mark.parametrize(
    "text,message",
    [
        ('{"ops": ["mb4_k3"]}', "Unknown chain op"),
        ('{"ops": ["mb3_k3"], "widths": {"stages": [1, 2]}}', "one per block"),
        ('{"ops": ["mb3_k3"], "depth": 3}', "Unknown chain genotype key"),
        ('["mb3_k3"]', "JSON object"),
        ('{"ops": ["mb3_k3"], "input_size": 0}', "input_size"),
        ("not json", "must be JSON"),
    ],
)
def test_bad_chain_genotypes_are_refused(text, message):
    with pytest.raises(GenotypeError, match=message):
        ChainGenotype.from_json(text)
