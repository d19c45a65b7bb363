"""``medloop review``: the JSON contract (findings, ACB, not assessed) on the demo catalogue,
and ``medloop check``'s problem objects and exit code 2 for bad requests."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from fest.loader import import_catalogue
from medloop.cli import app
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.reference import DEMO

runner = CliRunner()
PROBLEMS = "https://medloop.dev/problems/"
FINDING_KEYS = {"criterion", "set", "medications", "summary", "detail", "source"}


@pytest.fixture
def demo_url(sqlite_url: str) -> str:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    import_catalogue(engine, DEMO)
    engine.dispose()
    return sqlite_url


def run_review(url: str, request: dict[str, Any] | str) -> tuple[int, dict[str, Any]]:
    text = request if isinstance(request, str) else json.dumps(request)
    result = runner.invoke(app, ["review", "--db", url, "--json"], input=text)
    return result.exit_code, json.loads(result.stdout)


def regular(mg: float | None = None) -> dict[str, Any]:
    dosage: dict[str, Any] = {"use": "regular"}
    if mg is not None:
        dosage["fixed"] = [{"amount": {"value": mg, "unit": "mg"}}]
    return dosage


RESIDENT = {
    "medications": [
        {"id": "m1", "atc": "N06AA09", "dosage": regular(), "start": "2025-01-01"},
        {"id": "m2", "atc": "N05BA04", "dosage": regular(45.0), "start": "2025-01-01"},
        {"id": "m3", "varenr": "090232", "dosage": regular()},
        {"id": "m4", "atc": "M01AE01", "dosage": regular()},
        {"id": "m5", "atc": "A10BA02", "dosage": regular()},
        {"id": "m6", "atc": "N02AA05", "dosage": regular()},
    ],
    "patient": {
        "age": 87,
        "sex": "female",
        "weight_kg": 54,
        "renal": {"egfr": 28, "measured": (date.today() - timedelta(days=5)).isoformat()},
    },
}


def test_review_has_help() -> None:
    result = runner.invoke(app, ["review", "--help"])
    assert result.exit_code == 0 and "NORGEP-NH" in result.output


def test_response_has_the_contracts_catalogue_findings_acb_and_not_assessed(demo_url: str) -> None:
    code, response = run_review(demo_url, RESIDENT)
    assert code == 0
    assert {"catalogue", "findings", "acb", "not_assessed"} <= set(response)
    assert response["catalogue"] == {"version": 1, "hentet_dato": "2026-11-02T03:10:00"}
    for finding in response["findings"]:
        assert set(finding) == FINDING_KEYS
        assert set(finding["medications"]) <= {m["id"] for m in RESIDENT["medications"]}
        assert finding["source"]["citation"] and finding["source"]["url"].startswith("https://")
    assert set(response["acb"]) >= {"score", "medications"}


def test_the_demo_resident_gets_norgep_stopp_renal_findings_and_acb(demo_url: str) -> None:
    _, response = run_review(demo_url, RESIDENT)
    found = {(f["criterion"], tuple(f["medications"])) for f in response["findings"]}
    assert ("NORGEP-NH:2", ("m1",)) in found  # amitriptyline, regular
    assert ("NORGEP-NH:6", ("m2",)) in found  # oxazepam 45 mg a day
    assert ("NORGEP-NH:12", ("m3", "m4")) in found  # warfarin + ibuprofen
    assert ("STOPP:E4", ("m4",)) in found  # NSAID with eGFR 28
    assert ("STOPP:E6", ("m5",)) in found  # metformin with eGFR 28
    assert ("RENAL:metformin-oral-renal-30", ("m5",)) in found
    assert ("STOPP:L2", ("m6",)) in found  # oxycodone without a laxative
    sets = {f["set"] for f in response["findings"]}
    assert sets == {"NORGEP-NH", "STOPP", "START", "RENAL"}
    # amitriptyline (3) + warfarin (1)
    assert response["acb"]["score"] == 4
    assert response["acb"]["medications"] == ["m1", "m3"]


def test_criteria_that_need_clinical_information_are_listed_with_what_is_missing(
    demo_url: str,
) -> None:
    _, response = run_review(demo_url, RESIDENT)
    listed = {n["criterion"]: n for n in response["not_assessed"]}
    assert listed["START:C1"]["missing"] == ["diagnosis: atrial fibrillation"]
    assert listed["STOPP:K1"]["missing"] == ["history of recurrent falls"]
    assert listed["STOPP:K1"]["medications"] == ["m2"]  # oxazepam is a benzodiazepine
    assert "STOPP:D12" not in listed  # no antipsychotic on the list


def test_without_renal_function_the_renal_criteria_are_not_assessed(demo_url: str) -> None:
    request = {"medications": RESIDENT["medications"], "patient": {"age": 87}}
    _, response = run_review(demo_url, request)
    assert not [f for f in response["findings"] if f["set"] == "RENAL"]
    renal = [n for n in response["not_assessed"] if n["set"] == "RENAL"]
    assert [n["medications"] for n in renal] == [["m5"]]
    assert renal[0]["missing"] == ["renal function (eGFR or creatinine clearance with its date)"]


def test_unknown_references_exit_2_with_checks_problem_object(demo_url: str) -> None:
    request = {"medications": [{"id": "m1", "varenr": "999999"}, {"id": "m2", "atc": "N06AA09"}]}
    code, problem = run_review(demo_url, request)
    assert code == 2
    assert problem["type"] == PROBLEMS + "unknown-medication"
    assert [e["id"] for e in problem["errors"]] == ["m1"]


@pytest.mark.parametrize(
    "renal", [{"egfr": 30}, {"egfr": 30, "crcl": 30, "measured": "2026-01-01"}, {"egfr": -1}]
)
def test_a_malformed_request_exits_2_as_an_invalid_request(demo_url: str, renal: dict) -> None:
    request = {"medications": [{"id": "m1", "atc": "N06AA09"}], "patient": {"renal": renal}}
    code, problem = run_review(demo_url, request)
    assert code == 2 and problem["type"] == PROBLEMS + "invalid-request"


def test_without_json_prints_findings_one_a_line(demo_url: str) -> None:
    result = runner.invoke(app, ["review", "--db", demo_url], input=json.dumps(RESIDENT))
    assert result.exit_code == 0
    assert "NORGEP-NH:6" in result.output and "ACB score 4" in result.output
