"""The demo FEST catalogue (seeds/demo-fest.xml) is schema-valid, self-consistent and documented.

Only lxml and the standard library are used, so these checks run before anything else in the
project works. The official XSD lives in ../shared (beside the repository); the schema test is
skipped cleanly when it is absent.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
from lxml import etree

from tests.reference import REPO, SHARED

SEED = REPO / "seeds" / "demo-fest.xml"
SEED_README = REPO / "seeds" / "README.md"
M30_XSD = SHARED / "reference" / "xsd" / "eresept" / "ER-M30-2014-12-01.xsd"

M30_NS = "http://www.kith.no/xmlstds/eresept/m30/2014-12-01"
FS_NS = "http://www.kith.no/xmlstds/eresept/forskrivning/2014-12-01"
M30 = f"{{{M30_NS}}}"
FS = f"{{{FS_NS}}}"

GUID_ID = re.compile(r"ID_[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}")

# Each IDREF element and the payload type(s) its value must name.
REFERENCE_TARGETS = {
    "RefLegemiddelMerkevare": {"LegemiddelMerkevare"},
    "RefVirkestoffMedStyrke": {"VirkestoffMedStyrke"},
    "RefVirkestoff": {"Virkestoff"},
    "RefByttegruppe": {"Byttegruppe"},
    "RefRefusjonsgruppe": {"Refusjonsgruppe"},
    "RefVilkar": {"Vilkar"},
    "RefPakning": {"Legemiddelpakning"},
}
# VarselSlv/Referanseelement/RefElement: the target type depends on Klasse (code system 7486).
VARSEL_KLASSE_TARGETS = {
    "1": "LegemiddelMerkevare",
    "2": "Legemiddelpakning",
    "3": "LegemiddelVirkestoff",
    "4": "Refusjonsgruppe",
}
DRUG_PAYLOADS = {
    "LegemiddelMerkevare",
    "Legemiddelpakning",
    "LegemiddelVirkestoff",
    "Legemiddeldose",
    "Virkestoff",
    "VirkestoffMedStyrke",
    "MedForbMatr",
    "Naringsmiddel",
}


def localname(element: etree._Element) -> str:
    return etree.QName(element).localname


@pytest.fixture(scope="module")
def catalogue() -> etree._ElementTree:
    return etree.parse(str(SEED))


@pytest.fixture(scope="module")
def root(catalogue: etree._ElementTree) -> etree._Element:
    return catalogue.getroot()


@pytest.fixture(scope="module")
def domain_ids(root: etree._Element) -> dict[str, str]:
    """Domain id -> payload type. Entry ids (Oppf*/Id) and code-system OIDs (Info/Id) excluded."""
    ids: dict[str, str] = {}
    for id_element in root.iter(M30 + "Id", FS + "Id"):
        owner = localname(id_element.getparent())
        if owner.startswith("Oppf") or owner == "Info":
            continue
        assert id_element.text not in ids, f"duplicate domain id {id_element.text}"
        ids[id_element.text] = owner
    return ids


@pytest.fixture(scope="module")
def packages(root: etree._Element) -> list[etree._Element]:
    return list(root.iter(FS + "Legemiddelpakning"))


def test_demo_catalogue_validates_against_the_official_m30_schema(catalogue):
    if not M30_XSD.exists():
        pytest.skip(f"official FEST XSD not found at {M30_XSD}")
    schema = etree.XMLSchema(etree.parse(str(M30_XSD)))
    assert schema.validate(catalogue), "\n".join(
        f"line {error.line}: {error.message}" for error in list(schema.error_log)[:20]
    )


def test_file_opens_with_a_demo_data_disclaimer(root):
    comment = root.getprevious()
    assert isinstance(comment, etree._Comment)
    assert "DEMO DATA" in comment.text
    assert "NOT a clinical source" in comment.text


def test_layout_follows_the_production_file(root):
    assert root.tag == M30 + "FEST" and root.nsmap[None] == M30_NS
    assert localname(root[0]) == "HentetDato"
    for entry in root.iter(etree.Element):
        if not localname(entry).startswith("Oppf"):
            continue
        assert [localname(child) for child in entry[:3]] == ["Id", "Tidspunkt", "Status"]
        assert entry[2].get("V") == "A" and entry[2].get("DN") == "Aktiv oppføring"
        payloads = entry[3:]
        if localname(entry) == "OppfKodeverk":  # a code system is Info plus its Elements
            assert [localname(p) for p in payloads[:2]] == ["Info", "Element"]
        else:
            assert len(payloads) == 1, f"{localname(entry)} {entry[0].text}: not one payload"
        for payload in payloads:
            if localname(payload) in DRUG_PAYLOADS:
                assert payload.nsmap[None] == FS_NS, f"{localname(payload)} must redeclare fs"
            else:
                assert payload.tag.startswith(M30), localname(payload)


def test_ids_are_uppercase_guids_and_entry_ids_never_double_as_domain_ids(root, domain_ids):
    entry_ids = [e[0].text for e in root.iter(etree.Element) if localname(e).startswith("Oppf")]
    assert len(entry_ids) == len(set(entry_ids))
    assert not set(entry_ids) & set(domain_ids)
    for value in [*entry_ids, *domain_ids]:
        assert GUID_ID.fullmatch(value), value


def test_every_reference_resolves_to_a_domain_id_of_the_right_type(root, domain_ids):
    checked = 0
    for ref in root.iter(etree.Element):
        name = localname(ref)
        if name in REFERENCE_TARGETS:
            expected = REFERENCE_TARGETS[name]
        elif name == "RefElement":
            klasse = ref.getparent().find(M30 + "Klasse").get("V")
            expected = {VARSEL_KLASSE_TARGETS[klasse]}
        else:
            continue
        assert ref.text in domain_ids, f"{name} {ref.text} does not resolve"
        assert domain_ids[ref.text] in expected, (
            f"{name} {ref.text} points at a {domain_ids[ref.text]}, expected {expected}"
        )
        checked += 1
    assert checked > 300


def gs1_check_digit_is_valid(code: str) -> bool:
    weights = [3 if i % 2 == 0 else 1 for i in range(len(code) - 1)][::-1]
    total = sum(int(digit) * weight for digit, weight in zip(code[:-1], weights, strict=True))
    return (10 - total % 10) % 10 == int(code[-1])


def test_gs1_check_digit_helper_accepts_a_known_good_ntin_and_rejects_a_bad_one():
    assert gs1_check_digit_is_valid("7046260148840")
    assert not gs1_check_digit_is_valid("7046260148841")


def test_every_ean_is_13_digits_with_a_valid_gs1_check_digit(packages):
    eans = [ean.text for package in packages for ean in package.findall(FS + "Ean")]
    assert len(eans) == len(packages)
    for ean in eans:
        assert re.fullmatch(r"\d{13}", ean), ean
        assert gs1_check_digit_is_valid(ean), ean


def test_varenr_is_a_unique_six_digit_string_and_the_ean_is_its_ntin(packages):
    varenr = [package.findtext(FS + "Varenr") for package in packages]
    assert len(varenr) == len(set(varenr))
    assert any(number.startswith("0") for number in varenr), "leading zeros must survive"
    for package, number in zip(packages, varenr, strict=True):
        assert re.fullmatch(r"\d{6}", number), number
        assert package.findtext(FS + "Ean")[:12] == "704626" + number


def test_every_substitution_group_has_packages_from_at_least_two_products(root, packages):
    products_by_group: dict[str, set[str]] = defaultdict(set)
    packages_by_group: dict[str, int] = defaultdict(int)
    for package in packages:
        group = package.findtext(f"{FS}PakningByttegruppe/{FS}RefByttegruppe")
        if group:
            packages_by_group[group] += 1
            products_by_group[group].add(
                package.findtext(f"{FS}Pakningsinfo/{FS}RefLegemiddelMerkevare")
            )
    groups = [group.findtext(M30 + "Id") for group in root.iter(M30 + "Byttegruppe")]
    assert len(groups) >= 5
    for group in groups:
        assert packages_by_group[group] >= 2, group
        assert len(products_by_group[group]) >= 2, group


def test_all_three_interaction_relevance_levels_are_present(root):
    levels = {
        interaction.find(M30 + "Relevans").get("V")
        for interaction in root.iter(M30 + "Interaksjon")
    }
    assert levels == {"1", "2", "3"}


def test_handling_paragraphs_start_with_the_standard_headings(root):
    headings = (
        "Dosetilpasning:",
        "Justering av administrering:",
        "Monitorering:",
        "Legemiddelalternativer:",
    )
    for text in root.iter(M30 + "Handtering"):
        for paragraph in text.text.strip().split("\n"):
            assert paragraph.startswith(headings), paragraph


def test_herbal_interaction_group_names_its_substance_only_by_id(root):
    """Johannesurt has no ATC: the group lists RefVirkestoff, the product carries no Atc."""
    herbal_groups = [
        group
        for group in root.iter(M30 + "Substansgruppe")
        if group.findtext(M30 + "Navn") == "Johannesurt"
    ]
    assert len(herbal_groups) >= 1
    product_substances = set()
    for product in root.iter(FS + "LegemiddelMerkevare"):
        if product.find(FS + "Atc") is None:
            for ref in product.iter(FS + "RefVirkestoffMedStyrke"):
                strength = next(
                    s
                    for s in root.iter(FS + "VirkestoffMedStyrke")
                    if s.findtext(FS + "Id") == ref.text
                )
                product_substances.add(strength.findtext(FS + "RefVirkestoff"))
    for group in herbal_groups:
        assert group.find(f"{M30}Substans/{M30}Atc") is None
        refs = {ref.text for ref in group.iter(M30 + "RefVirkestoff")}
        assert refs and refs <= product_substances


def test_codeine_group_matches_the_combination_product_only_through_its_component_atc(root):
    codeine_only_groups = [
        group
        for group in root.iter(M30 + "Substansgruppe")
        if [atc.get("V") for atc in group.iter(M30 + "Atc")] == ["R05DA04"]
    ]
    assert codeine_only_groups
    components = {atc.get("V") for atc in root.iter(FS + "AtcKombipreparat")}
    assert "R05DA04" in components
    combination_atcs = {
        product.find(FS + "Atc").get("V")
        for product in root.iter(FS + "LegemiddelMerkevare")
        if len(product.findall(FS + "SortertVirkestoffMedStyrke")) > 1
        and product.find(FS + "Atc") is not None
    }
    assert "N02AJ06" in combination_atcs
    assert not any(code.startswith("R05DA04") for code in combination_atcs)


def test_readme_lists_every_interaction_and_substitution_package(root, packages):
    readme = SEED_README.read_text(encoding="utf-8")
    for interaction in root.iter(M30 + "Interaksjon"):
        assert interaction.findtext(M30 + "Id") in readme
    for package in packages:
        if package.find(FS + "PakningByttegruppe") is not None:
            assert f"`{package.findtext(FS + 'Varenr')}`" in readme
