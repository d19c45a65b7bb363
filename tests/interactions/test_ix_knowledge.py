"""Knowledge build and drug resolution."""

import networkx as nx
import pytest

from interactions import AmbiguousReference, Knowledge, UnknownReference
from interactions.dose_rules import load_dose_rules
from interactions.drugs import ReferenceKind
from tests.interactions.helpers import INFO, knowledge, snapshot


def test_knowledge_carries_catalogue_provenance() -> None:
    assert knowledge().version == INFO.version
    assert knowledge().hentet_dato == INFO.hentet_dato


def test_knowledge_graphs_hold_atc_tree_substance_parentage_and_interaction_groups() -> None:
    k = knowledge()
    assert k.atc_tree.has_edge("M01AE", "M01AE01")
    assert k.substance_graph.has_edge("ID_CODEINE", "ID_CODEINE_PHOSPHATE")
    assert nx.is_bipartite(k.interaction_graph)
    assert "WITHOUT" not in k.interaction_graph


def test_build_accepts_its_own_dose_rules() -> None:
    rules = load_dose_rules()
    assert Knowledge.build(snapshot(), dose_rules=rules).dose_rules is rules


def test_resolve_package_by_varenr() -> None:
    drug = knowledge().resolve(varenr="454165")
    assert drug.reference_kind is ReferenceKind.PACKAGE
    assert drug.reference_id == "PK_ZOCOR"
    assert drug.atc_codes == ("C10AA01",)
    assert drug.substitution_group_ids == ("SG_SIMVASTATIN_20",)
    assert drug.generic_group_ids == ("GG_SIMVASTATIN_20",)
    assert drug.product_ids == ("P_ZOCOR",)
    assert drug.form_name == "Tablett"
    assert drug.route_codes == ("53",)
    assert [(s.substance_id, s.value, s.unit) for s in drug.strengths] == [
        ("ID_SIMVASTATIN", 20, "mg")
    ]


def test_combination_product_resolves_component_atcs_strengths_and_parent_substances() -> None:
    drug = knowledge().resolve(fest_id="P_PARALGIN_FORTE")
    assert drug.atc_codes == ("N02AJ06", "N02BE01", "R05DA04")
    assert drug.substance_ids == ("ID_PARACETAMOL", "ID_CODEINE_PHOSPHATE")
    assert drug.parent_substance_ids == ("ID_CODEINE",)
    assert {s.atc: s.value for s in drug.strengths} == {"N02BE01": 400, "R05DA04": 30}


def test_resolve_every_kind_of_fest_id() -> None:
    expected = {
        "PK_PARACET": (ReferenceKind.PACKAGE, "N02BE01"),
        "P_PARACET": (ReferenceKind.PRODUCT, "N02BE01"),
        "GG_SIMVASTATIN_20": (ReferenceKind.GENERIC_GROUP, "C10AA01"),
        "DU_PARACET": (ReferenceKind.DOSE_UNIT, "N02BE01"),
        "ID_PARACETAMOL": (ReferenceKind.SUBSTANCE, "N02BE01"),
    }
    for fest_id, (kind, code) in expected.items():
        drug = knowledge().resolve(fest_id=fest_id)
        assert (drug.reference_kind, drug.reference_id, drug.atc_codes) == (kind, fest_id, (code,))


def test_generic_group_resolves_to_its_products_packages_and_substitution_group() -> None:
    drug = knowledge().resolve(fest_id="GG_SIMVASTATIN_20")
    assert drug.product_ids == ("P_ZOCOR", "P_SIMVASTATIN_KRKA")
    assert drug.package_ids == ("PK_ZOCOR", "PK_SIMVASTATIN_KRKA")
    assert drug.substitution_group_ids == ("SG_SIMVASTATIN_20",)
    assert drug.strengths[0].atc == "C10AA01"


def test_substance_resolves_to_the_atc_codes_it_is_sold_under() -> None:
    drug = knowledge().resolve(fest_id="ID_CODEINE")
    assert drug.atc_codes == ("R05DA04",)
    assert drug.substance_ids == ("ID_CODEINE",)


def test_resolve_by_atc_code() -> None:
    drug = knowledge().resolve(atc="n02be01")
    assert drug.reference_kind is ReferenceKind.ATC
    assert drug.atc_codes == ("N02BE01",)
    assert drug.substance_ids == ("ID_PARACETAMOL",)
    assert drug.strengths == ()


def test_unknown_references_raise_a_clear_error() -> None:
    k = knowledge()
    with pytest.raises(UnknownReference, match="varenr '999999'"):
        k.resolve(varenr="999999")
    with pytest.raises(UnknownReference, match="ATC code"):
        k.resolve(atc="X99XX99")
    with pytest.raises(UnknownReference):
        k.resolve(atc="WITHOUT")
    with pytest.raises(UnknownReference, match="FEST id"):
        k.resolve(fest_id="ID_NOPE")


def test_a_varenr_shared_by_parallel_imports_is_ambiguous_not_guessed() -> None:
    with pytest.raises(AmbiguousReference) as raised:
        knowledge().resolve(varenr="154021")
    assert raised.value.candidates == ("PK_IBUX", "PK_IBUX_PARALLEL")


def test_resolve_takes_exactly_one_reference() -> None:
    with pytest.raises(TypeError):
        knowledge().resolve(varenr="454165", atc="C10AA01")
    with pytest.raises(TypeError):
        knowledge().resolve()
