"""The shipped dose-limit rule file."""

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from interactions import atc
from interactions.dose_rules import Condition, DoseRuleSet, Limit, is_search_url, load_dose_rules
from interactions.units import Amount

NURSING_HOME_SUBSTANCES = {
    "N02BE01",
    "M01AE01",
    "R05DA04",
    "N02AX02",
    "B01AF02",
    "B01AF01",
    "A10BA02",
    "C10AA01",
    "C08CA01",
    "N05CF01",
    "N05AD01",
    "N05AH04",
    "N06AB04",
    "N06AX11",
    "N06DA02",
    "N06DX01",
    "M05BA04",
    "L04AX03",
    "N03AX16",
    "A11CC05",
}


def test_rule_file_covers_at_least_thirty_substances_with_cited_sources() -> None:
    rules = load_dose_rules()
    assert len({rule.substance for rule in rules.rules}) >= 30
    assert NURSING_HOME_SUBSTANCES <= set(rules.by_atc())
    for rule in rules.rules:
        assert rule.source.citation
        assert all(atc.is_substance_code(code) for code in rule.atc)
        assert rule.route in rules.routes


def test_weekly_substances_are_marked_weekly() -> None:
    rules = load_dose_rules().by_atc()
    for code in ("M05BA04", "L04AX03", "L01BA01"):
        assert all(rule.schedule == "weekly" for rule in rules[code])


def test_limits_read_absolute_and_per_kilogram_values() -> None:
    assert Limit.model_validate("4 g").amount(weight_kg=None) == Amount(4000, "mg")
    per_kg = Limit.model_validate("60 mg/kg")
    assert per_kg.per_kg and per_kg.amount(weight_kg=None) is None
    assert per_kg.amount(weight_kg=50) == Amount(3000, "mg")
    assert Limit.model_validate("18000 IE").amount(weight_kg=None) == Amount(18000, "IU")


def test_limits_must_be_amounts_of_substance() -> None:
    with pytest.raises(ValidationError):
        Limit.model_validate("2 tabletter")


def test_a_rule_file_with_unnamed_routes_or_duplicate_ids_is_rejected(tmp_path: Path) -> None:
    document = json.loads(load_dose_rules().model_dump_json())
    document["rules"].append(document["rules"][0])
    with pytest.raises(ValidationError, match="unique"):
        DoseRuleSet.model_validate(document)
    document["rules"].pop()
    document["routes"] = {}
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValidationError, match="routes"):
        load_dose_rules(path)


def test_every_rule_cites_its_document_section_units_and_unsigned_review_fields() -> None:
    document = json.loads(
        (Path(__file__).parents[2] / "interactions" / "rules" / "dose_limits.json").read_text()
    )
    rules = load_dose_rules()
    for raw, rule in zip(document["rules"], rules.rules, strict=True):
        source = rule.source
        assert source.product and source.section.strip(), rule.id
        assert source.url.startswith("https://") and source.url.rstrip("/").count("/") >= 3
        assert source.located in ("document", "search")
        if source.located == "document":
            assert not is_search_url(source.url), rule.id
            assert ";jsessionid" not in source.url, rule.id  # a session, not the address
        if "SmPC" in source.document or "preparatomtale" in source.document:
            assert source.section.startswith("4.2"), rule.id
        # present in the file and empty until a clinical pharmacist signs
        assert raw["reviewed_by"] is None and raw["reviewed_on"] is None, rule.id
        assert rule.amount_of, rule.id
        for measure in ("single", "daily", "weekly", "course"):
            for limit in rule.limits(measure):  # type: ignore[arg-type]
                assert limit.amount(weight_kg=70) is not None
    assert "NOT CLINICAL TRUTH" in rules.disclaimer
    assert rules.routes["65"] == "Transdermal bruk"


@pytest.mark.parametrize(
    "url",
    ["https://www.legemiddelsok.no/", "https://www.felleskatalogen.no", "http://x.no/a/b.pdf"],
)
def test_a_source_url_that_is_a_home_page_is_rejected(url: str) -> None:
    document = json.loads(load_dose_rules().model_dump_json())
    document["rules"][0]["source"]["url"] = url
    with pytest.raises(ValidationError, match="home page|https"):
        DoseRuleSet.model_validate(document)


def test_a_rule_without_review_fields_or_section_is_rejected() -> None:
    document = json.loads(load_dose_rules().model_dump_json())
    del document["rules"][0]["reviewed_by"]
    with pytest.raises(ValidationError, match="reviewed_by"):
        DoseRuleSet.model_validate(document)
    document = json.loads(load_dose_rules().model_dump_json())
    document["rules"][0]["source"]["section"] = ""
    with pytest.raises(ValidationError, match="section"):
        DoseRuleSet.model_validate(document)
    document["rules"][0]["source"]["section"] = "  "
    with pytest.raises(ValidationError, match="section"):
        DoseRuleSet.model_validate(document)


def test_the_issue_22_substances_have_rules() -> None:
    by_atc = load_dose_rules().by_atc()
    # fentanyl and buprenorphine patches, oxazepam, digoxin, lithium, colchicine (oral oxycodone
    # and morphine have no SmPC maximum and no rule: see the README)
    for code in ("N02AB03", "N02AE01", "N05BA04", "C01AA05", "N05AN01", "M04AC01"):
        assert code in by_atc, code
    assert any(rule.route == "65" for rule in by_atc["N02AB03"])


def test_every_note_says_how_the_figure_was_checked() -> None:
    statements = (
        "Figure checked against",
        "FIGURE NOT RE-READ",
        "FIGURE NOT VERIFIED",
        "Figure carried over",
    )
    for rule in load_dose_rules().rules:
        assert rule.note is not None and rule.note.startswith(statements), rule.id


def test_no_shipped_rule_cites_only_a_product_search() -> None:
    # The format still accepts located "search" for a rule under review (see below), but the
    # shipped file must name every rule's document: a new search-only source fails here.
    at_search = sorted(
        rule.id for rule in load_dose_rules().rules if rule.source.located == "search"
    )
    assert at_search == [], f"rules citing only a product search, not a document: {at_search}"


def test_every_unverified_figure_keeps_its_marker_and_is_listed_in_the_readme() -> None:
    """A figure not read in a document says so at the start of its note, and the README's
    clinical-rules paragraph names exactly those rules, so the marker cannot go quiet."""
    rules = load_dose_rules().rules
    unverified = [rule.id for rule in rules if "NOT VERIFIED" in (rule.note or "")]
    for rule in rules:
        if rule.id in unverified:
            assert (rule.note or "").startswith("FIGURE NOT VERIFIED"), rule.id
    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    section = readme.split("### Dose limits", 1)[1].split("\n### ", 1)[0]
    text = " ".join(section.split())
    listed = re.search(r"The (\d+) rules whose figure is still NOT VERIFIED[^:]*: ([^.]*)\.", text)
    assert listed, "the README no longer lists the unverified rules"
    assert int(listed.group(1)) == len(unverified)
    assert re.findall(r"`([^`]+)`", listed.group(2)) == unverified


@pytest.mark.parametrize(
    "url",
    [
        "https://www.felleskatalogen.no/medisin/sok?sokord=Voltaren",
        "https://www.felleskatalogen.no/medisin/internsok?felt=sctid&sokord=769512001",
        "https://example.org/products?q=paracetamol",
    ],
)
def test_a_document_source_with_a_search_url_is_rejected(url: str) -> None:
    document = json.loads(load_dose_rules().model_dump_json())
    source = document["rules"][0]["source"]
    source.update(url=url, located="document")
    with pytest.raises(ValidationError, match="product search"):
        DoseRuleSet.model_validate(document)
    source["located"] = "search"
    assert DoseRuleSet.model_validate(document).rules[0].source.url == url


def test_a_document_url_is_not_mistaken_for_a_search() -> None:
    for url in (
        "https://www.felleskatalogen.no/medisin/paracet-karo-pharma-562628",
        "https://www.fass.se/LIF/product?nplId=20200401000089&userType=0",
        "https://www.legemiddelhandboka.no/legacy/chapter/L5.3.1.2",
    ):
        assert not is_search_url(url), url


def test_the_readme_counts_the_rules_that_cite_a_document() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    text = " ".join(readme.split())
    rules = load_dose_rules().rules
    cited = [rule for rule in rules if rule.source.located == "document"]
    read = [rule for rule in cited if (rule.note or "").startswith("Figure checked against")]
    assert f"Of the {len(rules)} rules, {len(cited)} cite the document itself" in text
    assert f"in {len(read)} the figures were read in it" in text
    assert f"in {len(cited) - len(read)} the stored copy did not show every figure" in text


def test_an_indication_condition_names_icpc2_codes() -> None:
    condition = Condition.model_validate({"indication_icpc2": ["L88"]})
    assert condition.facts == ("indication",)
    assert str(condition) == "indication ICPC-2 L88"
    for codes in ([], ["l88"], ["L8"], ["L88 Revmatoid artritt"], "L88"):
        with pytest.raises(ValidationError):
            Condition.model_validate({"indication_icpc2": codes})


def test_the_rheumatoid_arthritis_rule_of_subcutaneous_methotrexate_is_for_l88_only() -> None:
    rules = {rule.id: rule for rule in load_dose_rules().rules}
    general, ra = rules["methotrexate-subcutaneous"], rules["methotrexate-subcutaneous-l88"]
    assert general.when is None and ra.when is not None
    assert ra.when.indication_icpc2 == ("L88",) and ra.route == general.route == "62"
    assert [str(limit) for limit in ra.max_weekly] == ["25 mg"]
    assert [str(limit) for limit in general.max_weekly] == ["30 mg"]
