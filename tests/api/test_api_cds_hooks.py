"""CDS Hooks: discovery, order-select and order-sign with FHIR R4 MedicationRequest drafts
coded by FEST varenr, FEST id or ATC, cards built from the same alerts, and feedback."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from medloop.api.cds import ATC, FEST_VARENR
from medloop.api.fhir_dosage import UCUM
from medloop.store.access import cds_card, cds_feedback
from medloop.store.idempotency import idempotency_key
from tests.api.helpers import (
    NATIONAL_ID,
    PHARMACIST_TOKEN,
    draft,
    hook,
    prescribe_body,
)
from tests.loop.helpers import KLARITROMYCIN, SIMVASTATIN_28
from tests.store.helpers import intruded


def _on_simvastatin(world) -> None:
    body = prescribe_body(SIMVASTATIN_28)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201


def _signing_klaritromycin(world) -> dict[str, Any]:
    """An order-sign call for clarithromycin on a list with simvastatin (a critical card)."""
    _on_simvastatin(world)
    patient = str(world.patient_id)
    return hook("order-sign", patient, draft("rx1", FEST_VARENR, KLARITROMYCIN, patient))


def test_discovery_lists_order_select_and_order_sign(world):
    services = world.client.get("/cds-services").json()["services"]
    assert {(s["id"], s["hook"]) for s in services} == {
        ("medloop-order-select", "order-select"),
        ("medloop-order-sign", "order-sign"),
    }


def test_order_sign_returns_a_critical_card_with_override_reasons_and_the_catalogue_version(
    world,
):
    request = _signing_klaritromycin(world)
    response = world.post("/cds-services/medloop-order-sign", request)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    critical = [c for c in cards if c["indicator"] == "critical"]
    assert critical, cards
    card = critical[0]
    assert len(card["summary"]) <= 140 and card["overrideReasons"]
    assert "catalogue version 1" in card["source"]["label"]
    with world.engine.connect() as conn:
        stored = conn.execute(select(cds_card.c.id)).scalars().all()
    assert {c["uuid"] for c in cards} == set(stored)


def test_order_select_answers_only_for_the_selected_drafts_and_accepts_the_national_id(world):
    _on_simvastatin(world)
    patient = NATIONAL_ID
    request = hook(
        "order-select",
        patient,
        draft("a", FEST_VARENR, KLARITROMYCIN, patient),
        draft("b", ATC, "N02BE01", patient),
        selections=["MedicationRequest/b"],
    )
    cards = world.post("/cds-services/medloop-order-select", request).json()["cards"]
    involved = [c["extension"]["dev.medloop.alert-key"].rsplit("/", 1)[1].split(",") for c in cards]
    assert involved and all("b" in ids for ids in involved)
    assert not any(c["indicator"] == "critical" for c in cards)


def test_a_draft_without_a_known_coding_gets_a_not_checked_card_naming_the_coding(world):
    request = hook(
        "order-sign",
        str(world.patient_id),
        draft("x", "http://snomed.info/sct", "12345", str(world.patient_id)),
    )
    response = world.post("/cds-services/medloop-order-sign", request)
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert card["indicator"] == "warning" and card["summary"].startswith("Not checked")
    assert "MedicationRequest.medicationCodeableConcept.coding" in card["detail"]
    assert "SNOMED CT" in card["detail"]
    assert card["extension"]["dev.medloop.element"] == (
        "MedicationRequest.medicationCodeableConcept.coding"
    )


def test_only_prescribers_may_call_the_services(world):
    request = hook(
        "order-sign",
        str(world.patient_id),
        draft("rx1", FEST_VARENR, KLARITROMYCIN, str(world.patient_id)),
    )
    response = world.post("/cds-services/medloop-order-sign", request, token=PHARMACIST_TOKEN)
    assert response.status_code == 403
    unknown = hook("order-sign", str(uuid.uuid4()), draft("rx1", FEST_VARENR, KLARITROMYCIN, "x"))
    assert (
        world.post("/cds-services/medloop-order-sign", unknown, token=PHARMACIST_TOKEN).status_code
        == 403
    )


def test_feedback_is_stored_for_issued_cards_and_refused_for_unknown_ones(world):
    request = _signing_klaritromycin(world)
    card = world.post("/cds-services/medloop-order-sign", request).json()["cards"][0]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {
                    "reason": card["overrideReasons"][0] if card["overrideReasons"] else None,
                    "userComment": "short course",
                },
                "outcomeTimestamp": "2026-11-20T09:05:00Z",
            }
        ]
    }
    assert world.post("/cds-services/medloop-order-sign/feedback", feedback).status_code == 200
    with world.engine.connect() as conn:
        rows = conn.execute(select(cds_feedback)).mappings().all()
    assert len(rows) == 1
    assert [(r["card_id"], r["outcome"], r["comment"]) for r in rows] == [
        (card["uuid"], "overridden", "short course")
    ]
    retried = world.post(
        "/cds-services/medloop-order-sign/feedback", feedback, **{"Idempotency-Key": "fb-1"}
    )
    again = world.post(
        "/cds-services/medloop-order-sign/feedback", feedback, **{"Idempotency-Key": "fb-1"}
    )
    assert retried.status_code == again.status_code == 200
    with world.engine.connect() as conn:
        assert len(conn.execute(select(cds_feedback)).all()) == 2  # the first and one retried
    unknown = {"feedback": [{**feedback["feedback"][0], "card": str(uuid.uuid4())}]}
    assert world.post("/cds-services/medloop-order-sign/feedback", unknown).status_code == 404


def test_a_retried_hook_call_with_the_same_idempotency_key_returns_the_same_cards(world):
    request = _signing_klaritromycin(world)
    first = world.post("/cds-services/medloop-order-sign", request, **{"Idempotency-Key": "h1"})
    second = world.post("/cds-services/medloop-order-sign", request, **{"Idempotency-Key": "h1"})
    assert first.status_code == 200 and first.content == second.content
    with world.engine.connect() as conn:
        assert len(conn.execute(select(cds_card.c.id)).all()) == len(first.json()["cards"])


def test_a_retried_hook_call_whose_stored_cards_no_longer_load_is_named_not_shown(world):
    """A retry is answered with the cards stored with its idempotency key only when they still
    load as cards: a card altered past the API (an indicator no CDS client knows) is not shown
    to a prescriber; the answer names the key's row, never the stored value."""
    request = _signing_klaritromycin(world)
    first = world.post("/cds-services/medloop-order-sign", request, **{"Idempotency-Key": "h1"})
    assert first.status_code == 200 and first.json()["cards"]
    with world.engine.connect() as conn:
        claimed = conn.execute(select(idempotency_key)).one()
    broken = copy.deepcopy(claimed.response)
    broken["cards"][0]["indicator"] = "harmless"
    intruded(world.engine, idempotency_key, idempotency_key.c.key == "h1", response=broken)
    world.client = TestClient(world.client.app, raise_server_exceptions=False)
    retried = world.post("/cds-services/medloop-order-sign", request, **{"Idempotency-Key": "h1"})
    assert retried.status_code == 500, retried.text
    problem = retried.json()
    assert problem["type"] == "https://medloop.dev/problems/stored-record-unreadable"
    assert (problem["table"], problem["key"]) == (
        "idempotency_key",
        {"scope": claimed.scope, "key": "h1"},
    )
    assert "indicator" in problem["detail"] and "harmless" not in retried.text


PARACETAMOL_500 = "090028"
METOTREKSAT_2_5 = "090946"


def tablets(count: float, times_a_day: int, **fields: Any) -> dict[str, Any]:
    """A FHIR Dosage: ``count`` tablets ``times_a_day`` times a day."""
    return {
        "text": f"{count:g} tabletter {times_a_day} ganger daglig",
        "timing": {"repeat": {"frequency": times_a_day, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [
            {"doseQuantity": {"value": count, "unit": "tablet", "system": UCUM, "code": "{tbl}"}}
        ],
        **fields,
    }


def dose_cards(world, *dosage: dict[str, Any], varenr: str = PARACETAMOL_500) -> list[dict]:
    patient = str(world.patient_id)
    request = hook(
        "order-select",
        patient,
        draft("rx1", FEST_VARENR, varenr, patient, *dosage),
        selections=["MedicationRequest/rx1"],
    )
    response = world.post("/cds-services/medloop-order-select", request)
    assert response.status_code == 200, response.text
    return [
        c
        for c in response.json()["cards"]
        if c["source"]["topic"]["code"] in ("dose", "dose-not-checked")
    ]


def weighed(world, kg: float = 70) -> None:
    """The patient's weight on record (paracetamol has a lower limit at 50 kg or less; without
    a weight that part is reported as not checked)."""
    response = world.post(
        f"/patients/{world.patient_id}/observations",
        {"weight": {"kg": kg, "measured_at": "2026-11-19T08:00:00Z"}},
    )
    assert response.status_code == 200, response.text


def test_an_order_select_draft_dosed_above_the_limit_gets_a_critical_dose_card(world):
    weighed(world)
    cards = dose_cards(world, tablets(3, 4))  # 1.5 g a dose, 6 g a day
    assert {c["indicator"] for c in cards} == {"critical"}, cards
    summaries = " ".join(c["summary"] for c in cards)
    assert "Single dose of paracetamol 1500 mg" in summaries
    assert "Daily dose of paracetamol 6000 mg exceeds the maximum 4 g" in summaries
    assert all(c["overrideReasons"] for c in cards)
    assert all("Panodil tabletter, Dosering (SPC pkt. 4.2)" in c["detail"] for c in cards)


def test_the_same_draft_with_a_normal_dose_gets_no_dose_card(world):
    assert dose_cards(world, tablets(2, 3)) == []


def test_a_light_patient_gets_the_weight_limit_and_an_unweighed_one_a_not_checked_card(world):
    four_grams = tablets(2, 4)  # 1 g four times a day: the adult maximum, over 3 g at ≤ 50 kg
    [unweighed] = dose_cards(world, four_grams)
    assert unweighed["indicator"] == "info" and "weight is not known" in unweighed["summary"]
    weighed(world, 48)
    [card] = dose_cards(world, four_grams)
    assert card["indicator"] == "critical"
    assert "maximum 3 g at weight 50 kg or less" in card["summary"]


def test_an_as_needed_draft_whose_own_maximum_is_above_the_limit_gets_a_dose_card(world):
    as_needed = tablets(
        2,
        1,
        asNeededBoolean=True,
        timing=None,
        maxDosePerPeriod={
            "numerator": {"value": 12, "system": UCUM, "code": "{tbl}"},
            "denominator": {"value": 1, "system": UCUM, "code": "d"},
        },
    )
    weighed(world)
    [card] = dose_cards(world, as_needed)
    assert card["indicator"] == "critical"
    assert card["summary"].startswith("Daily dose of paracetamol 6000 mg")


def test_a_weekly_drug_dosed_daily_gets_a_schedule_card(world):
    [card] = dose_cards(world, tablets(1, 1), varenr=METOTREKSAT_2_5)  # 17.5 mg a week
    assert card["indicator"] == "critical"
    assert "once-weekly drug but is dosed on 7 days a week" in card["summary"]
    weekly = tablets(
        4,
        1,
        timing={"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk", "dayOfWeek": ["mon"]}},
    )
    assert dose_cards(world, weekly, varenr=METOTREKSAT_2_5) == []


def test_a_dosage_that_cannot_be_mapped_is_checked_without_it_and_the_card_says_why(world):
    infusion = {"doseAndRate": [{"rateQuantity": {"value": 5, "system": UCUM, "code": "mL/h"}}]}
    [card] = dose_cards(world, infusion)
    assert card["indicator"] == "info"
    assert card["extension"]["dev.medloop.alert-key"] == (
        "dose-not-checked/paracetamol-oral:dosage-not-mapped/rx1"
    )
    assert "MedicationRequest.dosageInstruction[0].doseAndRate[0].rateQuantity" in card["detail"]
    assert "infusion" in card["detail"]


def test_a_draft_without_dosage_instruction_gets_a_dose_not_checked_card_naming_it(world):
    [card] = dose_cards(world)
    assert card["indicator"] == "info"
    key = card["extension"]["dev.medloop.alert-key"]
    assert key == "dose-not-checked/paracetamol-oral:no-dosage/rx1"
    assert (
        "MedicationRequest.dosageInstruction: the draft has no dosage instruction"
        in (card["detail"])
    )
