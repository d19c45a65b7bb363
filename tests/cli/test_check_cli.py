"""``medloop check``: the JSON request/response contract, problem objects and exit codes, on the
demo catalogue (seeds/README.md lists its varenr, interactions and substitution groups)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner

from fest.loader import import_catalogue
from interactions import CatalogueSnapshot
from medloop.catalogue import load_snapshot
from medloop.cli import app
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.reference import DEMO

runner = CliRunner()

DEMO_HENTET_DATO = "2026-11-02T03:10:00"
ALERT_KEYS = {
    "kind",
    "severity",
    "medications",
    "summary",
    "detail",
    "source",
    "requires_override",
    "key",
}
PROBLEMS = "https://medloop.dev/problems/"

WARFARIN, IBUPROFEN, FLUKONAZOL = "090232", "090181", "091065"
KLARITROMYCIN, TRIMETOPRIM, OKSYKODON = "091014", "091031", "091099"
METFORMIN, FUROSEMID = "090555", "090402"
PARACETAMOL_KODEIN, PARACETAMOL_1G = "090113", "090062"
PENICILLIN_V, ZOPIKLON = "091048", "090742"
TERBINAFIN_ATC = "D01BA02"
SIMVASTATIN_GENERIC_GROUP = "ID_DB5F387E-214B-50AF-B009-89A166D6177B"
METOTREKSAT_PRODUCT = "ID_4EFAEAF3-898D-5D8D-B61F-EB410D9C3148"
PERIKUM_SUBSTANCE = "ID_19500788-D5C0-548F-8EE2-A4A22D59797F"

IX_WARFARIN_NSAID = "ID_8E3FBCCA-3FA2-5E7F-B4E3-51F1D94F5A4B"
IX_SIMVASTATIN_KLARITROMYCIN = "ID_68ED82AB-529B-5819-A876-42E5C4F1F3BF"
IX_METOTREKSAT_TRIMETOPRIM = "ID_7F757C08-FA15-5F37-B5C7-6395C24E21F5"
IX_OPIOID_BENZODIAZEPINE = "ID_E28E529B-BD51-5F52-B043-B555DB581A76"
IX_WARFARIN_FLUKONAZOL = "ID_AAE761A1-3E00-5EB8-96D1-FEBE6CBAE62E"
IX_METFORMIN_FUROSEMID = "ID_E901902E-B676-5B1B-91F5-51A77130536F"
IX_PERIKUM_ANTICOAGULANT = "ID_D9F51E5B-3DBD-581E-A05A-143D7AA5C0EC"
IX_KODEIN_TERBINAFIN = "ID_0EED2184-5BF0-5591-BE43-87D23EFBF217"


@dataclass(frozen=True)
class Demo:
    url: str
    snapshot: CatalogueSnapshot

    def package_id(self, varenr: str) -> str:
        return next(p.id for p in self.snapshot.packages if p.varenr == varenr)

    def dose_unit_id(self, varenr: str) -> str:
        product_ids = next(p.product_ids for p in self.snapshot.packages if p.varenr == varenr)
        return next(d.id for d in self.snapshot.dose_units if d.product_id in product_ids)


@pytest.fixture
def demo(sqlite_url: str) -> Demo:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    import_catalogue(engine, DEMO)
    with engine.connect() as conn:
        snapshot = load_snapshot(conn)
    engine.dispose()
    return Demo(sqlite_url, snapshot)


def run_check(url: str, request: dict[str, Any] | str, *flags: str) -> tuple[int, dict[str, Any]]:
    text = request if isinstance(request, str) else json.dumps(request)
    result = runner.invoke(app, ["check", "--db", url, "--json", *flags], input=text)
    return result.exit_code, json.loads(result.stdout)


def by_varenr(*varenrs: str) -> list[dict[str, str]]:
    return [{"id": f"m{n}", "varenr": varenr} for n, varenr in enumerate(varenrs, start=1)]


def interaction_ids(response: dict[str, Any]) -> dict[tuple[str, ...], str]:
    return {
        tuple(alert["medications"]): alert["detail"]["interaction_id"]
        for alert in response["alerts"]
        if alert["kind"] == "interaction"
    }


def the_interaction(response: dict[str, Any], interaction_id: str) -> dict[str, Any]:
    [alert] = [
        a
        for a in response["alerts"]
        if a["kind"] == "interaction" and a["detail"]["interaction_id"] == interaction_id
    ]
    return alert


def test_check_has_help() -> None:
    result = runner.invoke(app, ["check", "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_response_has_exactly_the_catalogue_and_alerts_of_the_contract(demo: Demo) -> None:
    code, response = run_check(demo.url, {"medications": by_varenr(WARFARIN, IBUPROFEN)})
    assert code == 0
    assert set(response) == {"catalogue", "alerts"}
    assert response["catalogue"] == {"version": 1, "hentet_dato": DEMO_HENTET_DATO}
    assert response["alerts"]
    for alert in response["alerts"]:
        assert set(alert) == ALERT_KEYS
        assert set(alert["source"]) == {"catalogue_version", "hentet_dato", "fest_id", "rule_id"}


def test_warfarin_with_an_nsaid_by_varenr_is_avoid_and_requires_override(demo: Demo) -> None:
    _, response = run_check(demo.url, {"medications": by_varenr(WARFARIN, IBUPROFEN)})
    alert = the_interaction(response, IX_WARFARIN_NSAID)
    assert alert["severity"] == "avoid" and alert["requires_override"] is True
    assert alert["medications"] == ["m1", "m2"]
    assert alert["detail"]["relevance"] == 1
    assert alert["source"]["fest_id"] == IX_WARFARIN_NSAID
    assert alert["key"] == f"interaction/{IX_WARFARIN_NSAID}/m1,m2"
    assert response["alerts"][0] == alert, "the most severe alert comes first"


def test_every_kind_of_fest_id_resolves_and_is_checked(demo: Demo) -> None:
    request = {
        "medications": [
            {"id": "warfarin-package", "fest_id": demo.package_id(WARFARIN)},
            {"id": "perikum-substance", "fest_id": PERIKUM_SUBSTANCE},
            {"id": "simvastatin-generic-group", "fest_id": SIMVASTATIN_GENERIC_GROUP},
            {"id": "klaritromycin", "varenr": KLARITROMYCIN},
            {"id": "zopiklon-dose-unit", "fest_id": demo.dose_unit_id(ZOPIKLON)},
            {"id": "oksykodon", "varenr": OKSYKODON},
            {"id": "metotreksat-brand", "fest_id": METOTREKSAT_PRODUCT},
            {"id": "trimetoprim", "varenr": TRIMETOPRIM},
        ]
    }
    code, response = run_check(demo.url, request)
    assert code == 0, response
    found = interaction_ids(response)
    assert found[("perikum-substance", "warfarin-package")] == IX_PERIKUM_ANTICOAGULANT
    assert found[("klaritromycin", "simvastatin-generic-group")] == IX_SIMVASTATIN_KLARITROMYCIN
    assert found[("oksykodon", "zopiklon-dose-unit")] == IX_OPIOID_BENZODIAZEPINE
    assert found[("metotreksat-brand", "trimetoprim")] == IX_METOTREKSAT_TRIMETOPRIM


def test_all_adds_the_relevance_3_pair_that_is_absent_without_it(demo: Demo) -> None:
    request = {"medications": by_varenr(METFORMIN, FUROSEMID)}
    _, plain = run_check(demo.url, request)
    _, everything = run_check(demo.url, request, "--all")
    assert interaction_ids(plain) == {}
    alert = the_interaction(everything, IX_METFORMIN_FUROSEMID)
    assert alert["severity"] == "no-action" and alert["requires_override"] is False
    assert alert["detail"]["relevance"] == 3


def test_codeine_component_interaction_fires_on_a_paracetamol_codeine_product(
    demo: Demo,
) -> None:
    request = {
        "medications": [
            {"id": "m1", "varenr": PARACETAMOL_KODEIN},
            {"id": "m2", "atc": TERBINAFIN_ATC},
        ]
    }
    _, response = run_check(demo.url, request)
    alert = the_interaction(response, IX_KODEIN_TERBINAFIN)
    assert alert["severity"] == "precautions"
    via = {m["medication"]: m["via"] for m in alert["detail"]["matches"]}
    assert via == {"m1": "R05DA04", "m2": TERBINAFIN_ATC}


def test_allergy_to_an_atc_group_flags_the_drug_below_it_and_requires_override(
    demo: Demo,
) -> None:
    request = {
        "medications": by_varenr(PENICILLIN_V, KLARITROMYCIN),
        "patient": {"allergies": [{"atc": "J01C"}], "weight_kg": 70},
    }
    _, response = run_check(demo.url, request)
    [alert] = [a for a in response["alerts"] if a["kind"] == "allergy"]
    assert alert["medications"] == ["m1"]
    assert alert["severity"] == "avoid" and alert["requires_override"] is True
    assert alert["detail"]["allergen"] == "J01C" and alert["detail"]["via"].startswith("J01C")


def test_proposed_checks_only_pairs_involving_the_new_entry(demo: Demo) -> None:
    request = {"medications": by_varenr(WARFARIN, IBUPROFEN, FLUKONAZOL), "proposed": ["m3"]}
    _, response = run_check(demo.url, request)
    assert interaction_ids(response) == {("m1", "m3"): IX_WARFARIN_FLUKONAZOL}
    assert all("m3" in alert["medications"] for alert in response["alerts"])


def test_a_handled_alert_is_not_raised_again(demo: Demo) -> None:
    request: dict[str, Any] = {"medications": by_varenr(WARFARIN, IBUPROFEN)}
    _, first = run_check(demo.url, request)
    key = the_interaction(first, IX_WARFARIN_NSAID)["key"]
    handled = {"key": key, "handled_by": "lege 1", "handled_at": "2026-11-03T10:00:00"}
    request["handled"] = [{**handled, "reason": "kort kur, INR følges"}]
    _, second = run_check(demo.url, request)
    assert key not in {alert["key"] for alert in second["alerts"]}
    assert {a["key"] for a in second["alerts"]} == {a["key"] for a in first["alerts"]} - {key}


def test_structured_dosage_is_checked_against_the_dose_limits(demo: Demo) -> None:
    two_tablets = {"amount": {"value": 2, "unit": "tablett"}}
    four_times_a_day = ("morning", "midday", "evening", "night")
    dosage = {
        "use": "regular",
        "fixed": [{**two_tablets, "time_of_day": slot} for slot in four_times_a_day],
    }
    request = {"medications": [{"id": "m1", "varenr": PARACETAMOL_1G, "dosage": dosage}]}
    _, response = run_check(demo.url, request)
    daily = [
        a for a in response["alerts"] if a["kind"] == "dose" and a["detail"]["measure"] == "daily"
    ]
    assert [(a["detail"]["amount"], a["detail"]["limit"]) for a in daily] == [(8000.0, "4 g")]


def test_entries_not_in_use_together_are_not_paired(demo: Demo) -> None:
    warfarin, ibuprofen = by_varenr(WARFARIN, IBUPROFEN)
    request = {
        "medications": [
            {**warfarin, "start": "2026-01-01", "stop": "2026-01-31"},
            {**ibuprofen, "start": "2026-02-01"},
        ]
    }
    _, response = run_check(demo.url, request)
    assert interaction_ids(response) == {}


def test_every_alert_carries_the_catalogue_version_and_hentet_dato(demo: Demo) -> None:
    request = {
        "medications": by_varenr(
            WARFARIN, IBUPROFEN, PARACETAMOL_KODEIN, "090130", "090912", "090946", PENICILLIN_V
        ),
        "patient": {"allergies": [{"atc": "J01C"}]},
    }
    _, response = run_check(demo.url, request, "--all")
    kinds = {alert["kind"] for alert in response["alerts"]}
    assert {"interaction", "duplicate", "allergy", "notice", "not-assessed"} <= kinds
    for alert in response["alerts"]:
        assert alert["source"]["catalogue_version"] == 1
        assert alert["source"]["hentet_dato"] == DEMO_HENTET_DATO


def test_unknown_varenr_and_fest_id_exit_2_naming_each_bad_medication(demo: Demo) -> None:
    request = {
        "medications": [
            {"id": "m1", "varenr": WARFARIN},
            {"id": "m2", "varenr": "999999"},
            {"id": "m3", "fest_id": "ID_00000000-0000-0000-0000-000000000000"},
            {"id": "m4", "atc": "Q99ZZ99"},
        ]
    }
    code, problem = run_check(demo.url, request)
    assert code == 2
    assert problem["type"] == PROBLEMS + "unknown-medication"
    assert problem["status"] == 422 and problem["title"] and "m2" in problem["detail"]
    assert [(e["id"], e["reference"]) for e in problem["errors"]] == [
        ("m2", {"varenr": "999999"}),
        ("m3", {"fest_id": "ID_00000000-0000-0000-0000-000000000000"}),
        ("m4", {"atc": "Q99ZZ99"}),
    ]
    assert all("not in the catalogue" in e["reason"] for e in problem["errors"])


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]"])
def test_malformed_json_exits_2_with_an_invalid_request_problem(demo: Demo, text: str) -> None:
    code, problem = run_check(demo.url, text)
    assert code == 2
    assert problem["type"] == PROBLEMS + "invalid-request" and problem["status"] == 422
    assert problem["errors"]


@pytest.mark.parametrize("command", ["check", "review"])
def test_input_that_is_not_utf_8_exits_2_with_an_invalid_request_problem(
    demo: Demo, command: str
) -> None:
    """stdin is read as bytes: text that is not UTF-8 is named by the parser (it used to end
    in a UnicodeDecodeError traceback), and UTF-8 with Norwegian letters still reads."""
    result = runner.invoke(app, [command, "--db", demo.url, "--json"], input=b"\xff\xfe{}")
    assert result.exit_code == 2, result.output
    problem = json.loads(result.stdout)
    assert problem["type"] == PROBLEMS + "invalid-request"
    assert "UTF-8" in problem["errors"][0]["msg"]
    norwegian = {
        "medications": [
            {"id": "m1", "varenr": WARFARIN, "indication": "hjerteflimmer (blodfortynnende, æøå)"}
        ]
    }
    read = runner.invoke(
        app,
        [command, "--db", demo.url, "--json"],
        input=json.dumps(norwegian, ensure_ascii=False).encode(),
    )
    assert read.exit_code == 0, read.output


def test_a_request_of_the_wrong_shape_exits_2_listing_every_validation_error(
    demo: Demo,
) -> None:
    request = {
        "medications": [
            {"id": "m1", "varenr": WARFARIN, "atc": "B01AA03"},
            {"id": "m2"},
            {"id": "m3", "varenr": IBUPROFEN, "start": "2026-02-01", "stop": "2026-01-01"},
        ],
        "patient": {"alergies": [{"atc": "J01C"}]},
    }
    code, problem = run_check(demo.url, request)
    assert code == 2
    assert problem["type"] == PROBLEMS + "invalid-request"
    assert sorted(tuple(e["loc"]) for e in problem["errors"]) == [
        ("medications", 0),
        ("medications", 1),
        ("medications", 2),
        ("patient", "alergies"),
    ]


def test_repeated_ids_and_proposed_ids_off_the_list_are_invalid_requests(demo: Demo) -> None:
    warfarin, ibuprofen = by_varenr(WARFARIN, IBUPROFEN)
    repeated = {"medications": [warfarin, {**ibuprofen, "id": warfarin["id"]}]}
    off_list = {"medications": by_varenr(WARFARIN), "proposed": ["m9"]}
    for request in (repeated, off_list):
        code, problem = run_check(demo.url, request)
        assert code == 2 and problem["type"] == PROBLEMS + "invalid-request"


def test_no_catalogue_imported_exits_2_with_a_problem(sqlite_url: str) -> None:
    code, problem = run_check(sqlite_url, {"medications": by_varenr(WARFARIN)})
    assert code == 2
    assert problem["type"] == PROBLEMS + "no-catalogue"
    assert "fest import" in problem["detail"]


def test_without_json_prints_a_short_list_of_alerts(demo: Demo) -> None:
    text = json.dumps({"medications": by_varenr(WARFARIN, IBUPROFEN)})
    result = runner.invoke(app, ["check", "--db", demo.url], input=text)
    assert result.exit_code == 0
    first, *lines = result.stdout.splitlines()
    assert first.startswith("Catalogue version 1 (HentetDato 2026-11-02T03:10:00)")
    assert any(line.startswith("avoid") and "[override required]" in line for line in lines)


def test_without_json_a_problem_goes_to_stderr_with_each_bad_medication(demo: Demo) -> None:
    text = json.dumps({"medications": [{"id": "m7", "varenr": "999999"}]})
    result = runner.invoke(app, ["check", "--db", demo.url], input=text)
    assert result.exit_code == 2 and result.stdout == ""
    assert "m7: varenr '999999' is not in the catalogue" in result.stderr


def test_patient_age_sex_weight_and_renal_function_reach_the_dose_rules(demo: Demo) -> None:
    from datetime import date, timedelta

    measured = (date.today() - timedelta(days=10)).isoformat()
    twice_two_tablets = {
        "use": "regular",
        "fixed": [
            {"amount": {"value": 2, "unit": "tablett"}, "time_of_day": "morning"},
            {"amount": {"value": 2, "unit": "tablett"}, "time_of_day": "evening"},
        ],
    }
    medications = [{"id": "m1", "varenr": METFORMIN, "dosage": twice_two_tablets}]
    patient = {
        "age": 84,
        "sex": "female",
        "weight_kg": 52,
        "renal": {"egfr": 40, "measured": measured},
    }
    code, response = run_check(demo.url, {"medications": medications, "patient": patient})
    assert code == 0
    [alert] = [a for a in response["alerts"] if a["kind"] == "dose"]
    assert alert["detail"]["rule_id"] == "metformin-oral-renal-30-44"
    assert alert["detail"]["patient"].startswith("eGFR 40")
    crcl = {**patient, "renal": {"crcl": 50, "measured": measured}}
    _, response = run_check(demo.url, {"medications": medications, "patient": crcl})
    # 45-59 ml/min: at most 2000 mg a day (the SmPC renal table of the 2016 EU referral)
    assert [a for a in response["alerts"] if a["kind"] == "dose"] == []
    thrice = {
        **twice_two_tablets,
        "fixed": [
            *twice_two_tablets["fixed"],
            {"amount": {"value": 2, "unit": "tablett"}, "time_of_day": "midday"},
        ],
    }
    three_g = [{"id": "m1", "varenr": METFORMIN, "dosage": thrice}]
    _, response = run_check(demo.url, {"medications": three_g, "patient": crcl})
    [alert] = [a for a in response["alerts"] if a["kind"] == "dose"]
    assert alert["detail"]["rule_id"] == "metformin-oral-renal-45-59"
    assert alert["detail"]["amount"] == 3000.0 and alert["detail"]["limit"] == "2000 mg"
    normal = {**patient, "renal": {"crcl": 60, "measured": measured}}
    _, response = run_check(demo.url, {"medications": medications, "patient": normal})
    assert [a for a in response["alerts"] if a["kind"] == "dose"] == []  # 2000 mg ≤ 3000 mg
    _, response = run_check(demo.url, {"medications": medications})
    assert {
        a["detail"]["reason_code"] for a in response["alerts"] if a["kind"] == "dose-not-checked"
    } == {"renal-function-unknown"}


@pytest.mark.parametrize(
    "renal",
    [
        {"egfr": 40, "crcl": 40, "measured": "2026-11-01"},
        {"egfr": 40},
        {"egfr": -1, "measured": "2026-11-01"},
    ],
)
def test_a_malformed_renal_function_is_an_invalid_request(demo: Demo, renal: dict) -> None:
    request = {"medications": by_varenr(METFORMIN), "patient": {"renal": renal}}
    code, response = run_check(demo.url, request)
    assert code == 2 and response["type"] == PROBLEMS + "invalid-request"


def test_an_entry_indication_is_read_and_reaches_the_checked_medication(demo: Demo) -> None:
    from interactions import Knowledge
    from medloop.check import parse_request, resolve_medications

    request = {
        "medications": [
            {"id": "m1", "varenr": METFORMIN, "indication": "T90 Diabetes type 2"},
            {"id": "m2", "varenr": WARFARIN},
        ]
    }
    code, _ = run_check(demo.url, request)
    assert code == 0
    medications = resolve_medications(
        Knowledge.build(demo.snapshot), parse_request(json.dumps(request))
    )
    assert [m.indication for m in medications] == ["T90 Diabetes type 2", None]


@pytest.mark.parametrize("indication", [5, ["L88"], "x" * 2001, ""])
def test_a_malformed_indication_is_an_invalid_request(demo: Demo, indication: Any) -> None:
    request = {"medications": [{"id": "m1", "varenr": METFORMIN, "indication": indication}]}
    code, response = run_check(demo.url, request)
    assert code == 2 and response["type"] == PROBLEMS + "invalid-request"
    assert [e["loc"][:3] for e in response["errors"]] == [["medications", 0, "indication"]]
