"""Admission is the permission that gives a nursing home access to a patient, so it is a
stronger one than charting: only a ward admin (claim ``ward_admin``) creates wards, looks
patients up, admits and discharges; an admission carries a reason and the municipal decision
and shows in the patient's access log; a second concurrent admission is refused without
describing the other organisation's stay; a nurse's access covers the admission's period only.
On SQLite and PostgreSQL (the ``world`` fixture)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from medloop.api.config import DEV_ISSUER
from medloop.store import administration, audit
from tests.api.helpers import (
    GP_TOKEN,
    NATIONAL_ID,
    NURSE_TOKEN,
    NURSING_HOME,
    OTHER_HOME_NURSE_TOKEN,
    OTHER_HOME_WARD_ADMIN_TOKEN,
    PATIENT_TOKEN,
    PRN,
    WARD_ADMIN_TOKEN,
    admission_body,
    auth,
    prescribe_body,
)
from tests.loop.helpers import NOW


def _ward(world, token: str = WARD_ADMIN_TOKEN, name: str = "Avdeling 2") -> str:
    ward_id = str(uuid.uuid4())
    created = world.post("/nursing/wards", {"ward_id": ward_id, "name": name}, token=token)
    assert created.status_code == 201, created.text
    return ward_id


def _admit(world, ward_id: str, at=NOW, token: str = WARD_ADMIN_TOKEN, **changes):
    return world.post(
        f"/nursing/patients/{world.patient_id}/admissions",
        admission_body(ward_id, at.isoformat(), **changes),
        token=token,
    )


def _no_patient_data(response, *more: str) -> None:
    assert response.headers["content-type"] == "application/problem+json"
    for secret in (NATIONAL_ID, *more):
        assert secret not in response.text, secret


def _nurse_reads(world, token: str) -> list:
    base = world.patient_id
    return [
        world.get(f"/patients/{base}/list", token=token),
        world.get(f"/nursing/patients/{base}/administrations", token=token),
        world.get(f"/multidose/patients/{base}", token=token),
    ]


def _admissions(world) -> list:
    with world.engine.connect() as conn:
        return administration.admissions_of(conn, world.patient_id)


# -- the take-over of the issue ----------------------------------------------------------------


def test_a_plain_nurse_of_any_home_can_no_longer_take_over_a_patient(world):
    rogue = OTHER_HOME_NURSE_TOKEN
    lookup = world.get(f"/patients?national_id={NATIONAL_ID}", token=rogue)
    assert lookup.status_code == 403
    assert str(world.patient_id) not in lookup.text
    ward = world.post(
        "/nursing/wards", {"ward_id": str(uuid.uuid4()), "name": "Rogue"}, token=rogue
    )
    assert ward.status_code == 403
    own_ward = _ward(world, OTHER_HOME_WARD_ADMIN_TOKEN, "Lia 1")
    admitted = _admit(world, own_ward, token=rogue)
    assert admitted.status_code == 403, admitted.text
    assert "ward-admin" in admitted.json()["detail"]
    _no_patient_data(admitted, str(world.patient_id))
    assert _admissions(world) == []
    for read in _nurse_reads(world, rogue):
        assert read.status_code == 403
    # The real nursing home admits afterwards, and its nurses get access.
    assert _admit(world, _ward(world)).status_code == 201
    assert all(r.status_code == 200 for r in _nurse_reads(world, NURSE_TOKEN))
    with world.engine.connect() as conn:
        events = audit.events_for_patient(conn, NATIONAL_ID, limit=100).events
    refused = {e.action for e in events if e.outcome == audit.Outcome.REFUSED}
    assert "api.ward.admit" in refused


def test_a_second_admission_elsewhere_is_refused_without_naming_the_first_stay(world):
    ward_id = _ward(world, name="Solstua avdeling 2")
    first = _admit(world, ward_id)
    assert first.status_code == 201, first.text
    rogue_ward = _ward(world, OTHER_HOME_WARD_ADMIN_TOKEN, "Lia 1")
    second = _admit(world, rogue_ward, token=OTHER_HOME_WARD_ADMIN_TOKEN)
    assert second.status_code == 409, second.text
    assert second.json()["code"] == "patient-already-admitted"
    for secret in (ward_id, "Solstua", NURSING_HOME, first.json()["admission_id"]):
        assert secret not in second.text, secret
    # Within the organisation, the stay to discharge first is named.
    same_home = _admit(world, _ward(world, name="Avdeling 3"))
    assert same_home.status_code == 409 and same_home.json()["ward_id"] == ward_id


# -- the admission's reason and municipal decision ---------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"reason": None},
        {"decision_reference": None},
        {"reason": "   "},
        {"reason": "x" * 501},
        {"decision_reference": "v" * 101},
        {"reason": "korttid\u0000"},
        {"decision_reference": "2026/\x1b[31m1"},
        {"reason": "\ud800"},
    ],
    ids=[
        "no-reason",
        "no-decision",
        "blank-reason",
        "long-reason",
        "long-decision",
        "nul",
        "escape",
        "surrogate",
    ],
)
def test_an_admission_needs_a_bounded_printable_reason_and_decision(world, changes):
    body = admission_body(_ward(world), NOW.isoformat())
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}
    refused = world.client.post(  # as JSON text: a lone surrogate travels as "\\ud800"
        f"/nursing/patients/{world.patient_id}/admissions",
        content=json.dumps(body),
        headers=auth(WARD_ADMIN_TOKEN, **{"Content-Type": "application/json"}),
    )
    assert refused.status_code == 422, refused.text
    assert _admissions(world) == []


def test_the_admission_is_audited_and_shown_in_the_patients_access_log(world):
    admitted = _admit(world, _ward(world))
    assert admitted.status_code == 201, admitted.text
    (stay,) = _admissions(world)
    assert stay.reason == "Korttidsopphold etter hoftebrudd"
    assert stay.decision_reference == "Vedtak 2026/0815"
    log = world.get("/me/access-log", token=PATIENT_TOKEN).json()["events"]
    (event,) = [e for e in log if e["action"] == "medication-list.admit"]
    assert event["actor_role"] == "nurse" and event["organisation"] == NURSING_HOME
    assert event["reason"] == "Korttidsopphold etter hoftebrudd"
    assert event["decision_reference"] == "Vedtak 2026/0815"


@pytest.mark.parametrize("hours", [-25, 25, -24 * 365])
def test_an_admission_cannot_be_backdated_or_planned_far_from_now(world, hours):
    refused = _admit(world, _ward(world), at=NOW + timedelta(hours=hours))
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "admission-time-out-of-range"
    assert _admissions(world) == []


def test_an_admission_cannot_reach_back_into_an_earlier_stay(world):
    theirs = _ward(world, OTHER_HOME_WARD_ADMIN_TOKEN, "Lia 1")
    stay = _admit(world, theirs, token=OTHER_HOME_WARD_ADMIN_TOKEN).json()["admission_id"]
    world.clock.at = NOW + timedelta(hours=2)
    discharged = world.post(
        f"/nursing/patients/{world.patient_id}/admissions/{stay}/discharge",
        {},
        token=OTHER_HOME_WARD_ADMIN_TOKEN,
    )
    assert discharged.status_code == 200, discharged.text
    overlapping = _admit(world, _ward(world), at=NOW + timedelta(hours=1))
    assert overlapping.status_code == 409, overlapping.text
    assert overlapping.json()["code"] == "admission-overlaps-earlier-stay"
    assert theirs not in overlapping.text and "8012399" not in overlapping.text
    assert _admit(world, _ward(world), at=NOW + timedelta(hours=2)).status_code == 201


# -- discharge ---------------------------------------------------------------------------------


def test_discharging_needs_a_ward_admin_and_a_time_after_the_admission(world):
    admission = _admit(world, _ward(world)).json()["admission_id"]
    path = f"/nursing/patients/{world.patient_id}/admissions/{admission}/discharge"
    plain = world.post(path, {}, token=NURSE_TOKEN)
    assert plain.status_code == 403 and "ward-admin" in plain.json()["detail"]
    before = world.post(
        path, {"at": (NOW - timedelta(hours=1)).isoformat()}, token=WARD_ADMIN_TOKEN
    )
    assert before.status_code == 422 and before.json()["code"] == "discharge-time-out-of-range"
    far = world.post(path, {"at": (NOW + timedelta(days=3)).isoformat()}, token=WARD_ADMIN_TOKEN)
    assert far.status_code == 422
    assert _admissions(world)[0].discharged_at is None
    other_home = world.post(path, {}, token=OTHER_HOME_WARD_ADMIN_TOKEN)
    assert other_home.status_code == 403
    assert world.post(path, {}, token=WARD_ADMIN_TOKEN).status_code == 200


# -- access covers the admission's period only -------------------------------------------------


def test_after_the_discharge_the_homes_nurses_read_nothing(world):
    admission = _admit(world, _ward(world)).json()["admission_id"]
    assert all(r.status_code == 200 for r in _nurse_reads(world, NURSE_TOKEN))
    world.clock.at = NOW + timedelta(hours=3)
    path = f"/nursing/patients/{world.patient_id}/admissions/{admission}/discharge"
    assert world.post(path, {}, token=WARD_ADMIN_TOKEN).status_code == 200
    world.clock.at = NOW + timedelta(hours=3, minutes=1)
    for read in _nurse_reads(world, NURSE_TOKEN):
        assert read.status_code == 403, read.text
        _no_patient_data(read, str(world.patient_id))


def test_before_the_admission_begins_the_homes_nurses_read_nothing(world):
    assert _admit(world, _ward(world), at=NOW + timedelta(hours=2)).status_code == 201
    for read in _nurse_reads(world, NURSE_TOKEN):
        assert read.status_code == 403, read.text
    world.clock.at = NOW + timedelta(hours=2)
    assert all(r.status_code == 200 for r in _nurse_reads(world, NURSE_TOKEN))


def test_a_nurse_sees_only_what_was_charted_during_her_homes_admission(world):
    oksykodon = prescribe_body("091099", use="as-needed", dosage=PRN)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", oksykodon).status_code == 201
    # A stay at the other home first, with a charting there.
    theirs = _ward(world, OTHER_HOME_WARD_ADMIN_TOKEN, "Lia 1")
    stay = _admit(world, theirs, token=OTHER_HOME_WARD_ADMIN_TOKEN).json()["admission_id"]
    world.clock.at = NOW + timedelta(minutes=30)
    charted = world.post(
        f"/nursing/patients/{world.patient_id}/administrations",
        {
            "administration_id": str(uuid.uuid4()),
            "entry_id": oksykodon["entry_id"],
            "outcome": "refused",
            "reason": "declined at Lia",
        },
        token=OTHER_HOME_NURSE_TOKEN,
    )
    assert charted.status_code == 201, charted.text
    world.clock.at = NOW + timedelta(hours=1)
    assert (
        world.post(
            f"/nursing/patients/{world.patient_id}/admissions/{stay}/discharge",
            {},
            token=OTHER_HOME_WARD_ADMIN_TOKEN,
        ).status_code
        == 200
    )
    # Then ours, the same day.
    world.clock.at = NOW + timedelta(hours=2)
    ours = _ward(world)
    assert _admit(world, ours, at=world.clock.at).status_code == 201
    history = world.get(f"/nursing/patients/{world.patient_id}/administrations", token=NURSE_TOKEN)
    assert history.status_code == 200 and history.json() == []
    assert "declined at Lia" not in history.text
    earlier = world.client.get(
        f"/nursing/patients/{world.patient_id}/administrations",
        params={"since": NOW.isoformat()},
        headers=auth(NURSE_TOKEN),
    )
    assert earlier.status_code == 403
    _no_patient_data(earlier, "declined at Lia")
    chart = world.get(f"/nursing/wards/{ours}/chart?day={NOW.date()}", token=NURSE_TOKEN)
    assert chart.status_code == 200 and "declined at Lia" not in chart.text
    # Nor can she correct the other home's record: it is answered as not there.
    theirs_in_error = world.post(
        f"/nursing/patients/{world.patient_id}/administrations/"
        f"{charted.json()['administration_id']}/entered-in-error",
        {"reason": "not ours"},
        token=NURSE_TOKEN,
    )
    assert theirs_in_error.status_code == 404, theirs_in_error.text
    # The prescriber sees the whole history, the other home's record standing.
    everything = world.get(f"/nursing/patients/{world.patient_id}/administrations", token=GP_TOKEN)
    assert "declined at Lia" in everything.text
    assert [h["stands"] for h in everything.json()] == [True]


EXTREME_TIMES = [
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00Z",
]


@pytest.mark.parametrize("moment", EXTREME_TIMES)
def test_a_naive_or_extreme_time_is_a_422_not_a_500(world, moment):
    ward_id = _ward(world)
    body = admission_body(ward_id, moment)
    admitted = world.post(
        f"/nursing/patients/{world.patient_id}/admissions", body, token=WARD_ADMIN_TOKEN
    )
    assert admitted.status_code == 422, admitted.text
    admission = _admit(world, ward_id).json()["admission_id"]
    discharged = world.post(
        f"/nursing/patients/{world.patient_id}/admissions/{admission}/discharge",
        {"at": moment},
        token=WARD_ADMIN_TOKEN,
    )
    assert discharged.status_code == 422, discharged.text
    for token in (NURSE_TOKEN, GP_TOKEN):
        for name in ("since", "until"):
            window = world.client.get(
                f"/nursing/patients/{world.patient_id}/administrations",
                params={name: moment},
                headers=auth(token),
            )
            assert window.status_code == 422, (token, name, window.text)


# -- the patient lookup ------------------------------------------------------------------------


def test_only_a_ward_admin_nurse_looks_patients_up_by_national_id_and_it_is_audited(world):
    path = f"/patients?national_id={NATIONAL_ID}"
    refused = world.get(path, token=NURSE_TOKEN)
    assert refused.status_code == 403 and str(world.patient_id) not in refused.text
    # Refused alike whether or not a list is kept for the national id.
    unknown = world.get("/patients?national_id=15035010030", token=NURSE_TOKEN)
    assert unknown.status_code == 403
    found = world.get(path, token=WARD_ADMIN_TOKEN)
    assert found.status_code == 200 and found.json()["patient_id"] == str(world.patient_id)
    assert world.get(path, token=GP_TOKEN).status_code == 200
    log = world.get("/me/access-log", token=PATIENT_TOKEN).json()["events"]
    seen = {(e["actor"], e["action"], e["outcome"]) for e in log}
    assert ("5551234", "api.patient.lookup", "refused") in seen  # the plain nurse's attempt
    assert ("5552468", "medication-list.read.lookup", "ok") in seen  # the ward admin's


def test_plain_nurses_still_chart_on_an_admitted_patient(world):
    entry = prescribe_body("091099", use="as-needed", dosage=PRN)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", entry).status_code == 201
    _admit(world, _ward(world))
    charted = world.post(
        f"/nursing/patients/{world.patient_id}/administrations",
        {
            "administration_id": str(uuid.uuid4()),
            "entry_id": entry["entry_id"],
            "outcome": "refused",
            "reason": "declined",
        },
        token=NURSE_TOKEN,
    )
    assert charted.status_code == 201, charted.text


# -- a witness token of the wrong key type -----------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_a_witness_token_signed_for_another_key_type_is_401_not_500(world, algorithm):
    entry = prescribe_body("091099", use="as-needed", dosage=PRN)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", entry).status_code == 201
    _admit(world, _ward(world))
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    now = int(time.time())
    witness = jwt.encode(
        {
            "sub": "5559876",
            "role": "nurse",
            "org": NURSING_HOME,
            "iss": DEV_ISSUER,
            "aud": "medloop-api",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        },
        private,
        algorithm=algorithm,
    )
    response = world.client.post(
        f"/nursing/patients/{world.patient_id}/administrations",
        json={
            "administration_id": str(uuid.uuid4()),
            "entry_id": entry["entry_id"],
            "outcome": "given",
            "given_at": NOW.isoformat(),
            "dose": {"value": 1, "unit": "kapsel"},
            "scan": "7046260910997",
        },
        headers=auth(NURSE_TOKEN, **{"X-Witness-Authorization": f"Bearer {witness}"}),
    )
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthenticated"


# -- the demo ----------------------------------------------------------------------------------


def test_the_demo_prints_a_plain_and_a_ward_admin_nurse_token(engine):
    from fastapi.testclient import TestClient

    from medloop.api.app import create_app
    from medloop.api.config import ApiSettings
    from medloop.demo import DEMO_DECISION, build
    from tests.api.helpers import Clock
    from tests.reference import DEMO

    demo = build(engine, DEMO, now=NOW)
    clock = Clock()
    client = TestClient(create_app(ApiSettings.from_env("sqlite://"), engine=engine, clock=clock))
    patient_id = next(iter(demo.patients.values()))
    with engine.connect() as conn:
        (stay,) = administration.admissions_of(conn, patient_id)
    assert stay.decision_reference == DEMO_DECISION
    path = f"/nursing/patients/{patient_id}/admissions/{stay.id}/discharge"
    plain = client.post(path, json={}, headers=auth(demo.tokens["nurse"]))
    assert plain.status_code == 403
    clock.at = NOW + timedelta(hours=1)
    admin = client.post(path, json={}, headers=auth(demo.tokens["ward-admin"]))
    assert admin.status_code == 200, admin.text
