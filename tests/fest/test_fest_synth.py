"""Tests for the synthetic FEST M30 catalogue generator (``fest.synth``)."""

from __future__ import annotations

import ast
import functools
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

import fest.synth
from fest.synth import NS_FS, NS_M30, write_synthetic
from tests.reference import XSD_DIR

M30 = f"{{{NS_M30}}}"
FS = f"{{{NS_FS}}}"
SEED = 3
GUID_ID = re.compile(r"^ID_[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
CATALOGUE_ORDER = [
    "HentetDato",
    "KatLegemiddelMerkevare",
    "KatLegemiddelpakning",
    "KatVirkestoff",
    "KatLegemiddelVirkestoff",
    "KatHandelsvare",
    "KatRefusjon",
    "KatVilkar",
    "KatVarselSlv",
    "KatKodeverk",
    "KatByttegruppe",
    "KatLegemiddeldose",
    "KatInteraksjon",
    "KatStrDosering",
]
# Payload element -> key in write_synthetic's result.
PAYLOAD_KEY = {
    "LegemiddelMerkevare": "LegemiddelMerkevare",
    "Legemiddelpakning": "Legemiddelpakning",
    "LegemiddelVirkestoff": "LegemiddelVirkestoff",
    "Legemiddeldose": "Legemiddeldose",
    "Virkestoff": "Virkestoff",
    "VirkestoffMedStyrke": "VirkestoffMedStyrke",
    "Interaksjon": "Interaksjon",
    "InteraksjonIkkeVurdert": "InteraksjonIkkeVurdert",
    "Byttegruppe": "Byttegruppe",
    "Refusjonshjemmel": "Refusjonshjemmel",
    "Vilkar": "Vilkar",
    "VarselSlv": "VarselSlv",
    "Kortdose": "Kortdose",
    "MedForbMatr": "Handelsvare",
    "Naringsmiddel": "Handelsvare",
    "Brystprotese": "Handelsvare",
}


def local(element: etree._Element) -> str:
    return etree.QName(element).localname


@functools.cache
def official_schema() -> etree.XMLSchema | None:
    xsd = XSD_DIR / "ER-M30-2014-12-01.xsd"
    return etree.XMLSchema(etree.parse(str(xsd))) if xsd.is_file() else None


def unresolved_refs(doc: etree._ElementTree) -> tuple[int, list[str | None]]:
    """(number of IDREF elements, the values that match no Id in the document)."""
    ids = {e.text for e in doc.iter(f"{M30}Id", f"{FS}Id")}
    refs = [
        e.text
        for e in doc.iter()
        if isinstance(e.tag, str)
        and ((local(e).startswith("Ref") and local(e)[3].isupper()) or local(e) == "ParentId")
    ]
    return len(refs), [r for r in refs if r not in ids]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("fest") / "fest.xml"
    return path, write_synthetic(path, scale=0.02, seed=SEED)


@pytest.fixture(scope="module")
def doc(small: tuple[Path, dict[str, int]]) -> etree._ElementTree:
    return etree.parse(str(small[0]))


@pytest.fixture(scope="module")
def ids(doc: etree._ElementTree) -> dict[str, str]:
    """Every domain or entry Id in the file, mapped to the element that owns it."""
    return {e.text: local(e.getparent()) for e in doc.iter(f"{M30}Id", f"{FS}Id")}


def test_validates_against_the_official_xsd(doc: etree._ElementTree) -> None:
    schema = official_schema()
    if schema is None:
        pytest.skip(f"official XSD not found in {XSD_DIR}")
    assert schema.validate(doc), list(schema.error_log)[:5]


def test_follows_production_conventions(doc: etree._ElementTree) -> None:
    root = doc.getroot()
    assert root.tag == f"{M30}FEST"
    assert root.nsmap == {None: NS_M30}
    assert [local(child) for child in root] == CATALOGUE_ORDER
    assert root.findtext(f"{M30}HentetDato") == f"2026-11-01T03:0{SEED}:00"
    merkevare = next(doc.iter(f"{FS}LegemiddelMerkevare"))
    assert merkevare.nsmap[None] == NS_FS
    entries = [e for e in root.iter() if isinstance(e.tag, str) and local(e).startswith("Oppf")]
    assert {e.find(f"{M30}Status").get("V") for e in entries} == {"A"}
    entry_ids = {e.findtext(f"{M30}Id") for e in entries}
    assert len(entry_ids) == len(entries)
    assert all(GUID_ID.match(i) for i in entry_ids)
    domain_ids = {e.text for e in doc.iter(f"{FS}Id")}
    assert domain_ids and not entry_ids & domain_ids


def test_text_is_escaped(doc: etree._ElementTree) -> None:
    templates = [e.text for e in doc.iter(f"{M30}BeskrivelseTerm")]
    assert any("<dose>" in t for t in templates)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    first, again, other = tmp_path / "a.xml", tmp_path / "b.xml", tmp_path / "c.xml"
    write_synthetic(first, scale=0.005, seed=11)
    write_synthetic(again, scale=0.005, seed=11)
    write_synthetic(other, scale=0.005, seed=12)
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_returned_counts_equal_the_entries_in_the_file(
    small: tuple[Path, dict[str, int]], doc: etree._ElementTree
) -> None:
    found: Counter[str] = Counter()
    for entry in doc.getroot().iter():
        if isinstance(entry.tag, str) and local(entry).startswith("Oppf") and len(entry) > 3:
            payload = local(entry[3])
            if payload in PAYLOAD_KEY:
                found[PAYLOAD_KEY[payload]] += 1
    assert dict(found) == small[1]
    assert all(n >= 1 for n in small[1].values())


def test_counts_scale_linearly(tmp_path: Path, small: tuple[Path, dict[str, int]]) -> None:
    double = write_synthetic(tmp_path / "double.xml", scale=0.04, seed=SEED)
    for key, n in small[1].items():
        if n >= 20:
            assert 1.8 <= double[key] / n <= 2.2, key


def test_every_idref_resolves(doc: etree._ElementTree) -> None:
    n_refs, unresolved = unresolved_refs(doc)
    assert n_refs > 100
    assert unresolved == []


def test_notices_reference_the_kind_their_class_names(
    doc: etree._ElementTree, ids: dict[str, str]
) -> None:
    owner = {
        "1": "LegemiddelMerkevare",
        "2": "Legemiddelpakning",
        "3": "LegemiddelVirkestoff",
        "4": "Refusjonsgruppe",
    }
    for element in doc.iter(f"{M30}Referanseelement"):
        klasse = element.find(f"{M30}Klasse").get("V")
        assert {ids[r.text] for r in element.iter(f"{M30}RefElement")} == {owner[klasse]}


def test_interaction_groups_use_atc_levels_and_substances_without_atc(
    doc: etree._ElementTree,
) -> None:
    lengths: Counter[int] = Counter()
    without_atc = 0
    for group in doc.iter(f"{M30}Substansgruppe"):
        substances = group.findall(f"{M30}Substans")
        codes = [s.find(f"{M30}Atc") for s in substances]
        lengths.update(len(c.get("V")) for c in codes if c is not None)
        if all(c is None for c in codes):
            without_atc += 1
            assert all(s.find(f"{M30}RefVirkestoff") is not None for s in substances)
    assert {4, 5, 7} <= set(lengths)
    assert lengths[7] > lengths[5] > 0
    assert without_atc > 0
    relevans = Counter(e.get("V") for e in doc.iter(f"{M30}Relevans"))
    assert set(relevans) == {"1", "2", "3"}
    assert relevans["2"] > relevans["1"] + relevans["3"]


def test_not_assessed_codes_are_level_5_codes_on_products(doc: etree._ElementTree) -> None:
    on_products = {e.get("V") for e in doc.iter(f"{FS}Atc")}
    not_assessed = [e.find(f"{M30}Atc").get("V") for e in doc.iter(f"{M30}InteraksjonIkkeVurdert")]
    assert not_assessed
    assert all(len(code) == 7 and code in on_products for code in not_assessed)


def test_combination_products_carry_component_atc_codes(doc: etree._ElementTree) -> None:
    kombi = {
        s.findtext(f"{FS}Id"): s.find(f"{FS}AtcKombipreparat")
        for s in doc.iter(f"{FS}VirkestoffMedStyrke")
    }
    combos = [
        m
        for m in doc.iter(f"{FS}LegemiddelMerkevare")
        if len(m.findall(f"{FS}SortertVirkestoffMedStyrke")) >= 2
    ]
    assert combos
    for product in combos:
        refs = [r.text for r in product.iter(f"{FS}RefVirkestoffMedStyrke")]
        assert all(kombi[r] is not None for r in refs)


def test_substitution_groups_hold_2_to_8_packages_of_one_strength(doc: etree._ElementTree) -> None:
    strength_of = {
        m.findtext(f"{FS}Id"): m.findtext(
            f"{FS}SortertVirkestoffMedStyrke/{FS}RefVirkestoffMedStyrke"
        )
        for m in doc.iter(f"{FS}LegemiddelMerkevare")
    }
    members: dict[str, set[str | None]] = {}
    sizes: Counter[str] = Counter()
    for package in doc.iter(f"{FS}Legemiddelpakning"):
        group = package.findtext(f"{FS}PakningByttegruppe/{FS}RefByttegruppe")
        if group is not None:
            merkevare = package.findtext(f"{FS}Pakningsinfo/{FS}RefLegemiddelMerkevare")
            members.setdefault(group, set()).add(strength_of[merkevare])
            sizes[group] += 1
    assert len(sizes) == sum(1 for _ in doc.iter(f"{M30}Byttegruppe"))
    assert all(2 <= n <= 8 for n in sizes.values())
    assert all(len(strengths) == 1 for strengths in members.values())


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scale=st.floats(min_value=0.0001, max_value=0.01), seed=st.integers(0, 2**32))
def test_any_small_catalogue_is_valid_and_self_contained(
    tmp_path: Path, scale: float, seed: int
) -> None:
    path = tmp_path / "any.xml"
    counts = write_synthetic(path, scale=scale, seed=seed)
    assert min(counts.values()) >= 1
    doc = etree.parse(str(path))
    schema = official_schema()
    assert schema is None or schema.validate(doc), list(schema.error_log)[:5]
    assert unresolved_refs(doc)[1] == []


def test_rejects_a_non_positive_scale(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_synthetic(tmp_path / "x.xml", scale=0)


def test_imports_nothing_from_the_application_layers() -> None:
    tree = ast.parse(Path(fest.synth.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert not imported & {"medloop", "interactions"}
