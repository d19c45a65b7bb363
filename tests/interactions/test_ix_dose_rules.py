"""The shipped dose-limit rule file."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from interactions import atc
from interactions.dose_rules import DoseRuleSet, Limit, load_dose_rules
from interactions.units import Amount

NURSING_HOME_SUBSTANCES = {
    "N02BE01", "M01AE01", "R05DA04", "N02AX02", "B01AF02", "B01AF01", "A10BA02", "C10AA01",
    "C08CA01", "N05CF01", "N05AD01", "N05AH04", "N06AB04", "N06AX11", "N06DA02", "N06DX01",
    "M05BA04", "L04AX03", "N03AX16", "A11CC05",
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
