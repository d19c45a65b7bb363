"""Builders for the API tests: an app over the ``engine`` fixture with the demo catalogue and
one patient, tokens for every role, and request helpers."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationrequest import MedicationRequest

from medloop.api.app import create_app
from medloop.api.auth import issue_token
from medloop.api.config import ApiSettings
from tests.loop.helpers import (
    GP,
    NOW,
    OTHER_NATIONAL_ID,
    PHARMACIST,
    TODAY,
    demo_world,
)

NATIONAL_ID = "21014605158"


class Token:
    """The bearer token of one test identity, issued when it is first sent and issued again
    before it nears its expiry: tokens issued when the module was imported expired after an
    hour, and a long run of the suite got 401s (#14). Use it where a token string goes
    (``auth(token)``, an f-string); ``str(token)`` is the token itself."""

    REFRESH_AFTER = timedelta(minutes=30)
    """A token is issued for an hour (``issue_token``'s lifetime) and re-issued after this."""

    def __init__(self, role: str, subject: str, organisation: str | None = None, **claims: Any):
        self._claims: dict[str, Any] = {"organisation": organisation, **claims}
        self._role, self._subject = role, subject
        self._value: str | None = None
        self._issued: datetime | None = None

    def __str__(self) -> str:
        now = datetime.now(UTC)
        if self._value is None or self._issued is None or now - self._issued >= self.REFRESH_AFTER:
            self._value = issue_token(self._role, self._subject, now=now, **self._claims)
            self._issued = now
        return self._value

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        return f"Token({self._role!r}, {self._subject!r})"


GP_TOKEN = Token(
    "gp",
    GP.personnel.hpr_number,
    GP.organisation.id,
    name=GP.personnel.name,
    organisation_name=GP.organisation.name,
)
PHARMACIST_TOKEN = Token(
    "pharmacist",
    PHARMACIST.personnel.hpr_number,
    PHARMACIST.organisation.id,
    name=PHARMACIST.personnel.name,
    organisation_name=PHARMACIST.organisation.name,
)
NURSING_HOME = "974600951"
NURSE_TOKEN = Token("nurse", "5551234", NURSING_HOME, name="Nina Sykepleier")
SECOND_NURSE_TOKEN = Token("nurse", "5559876", NURSING_HOME, name="Siri Sykepleier")
WARD_ADMIN_TOKEN = Token(
    "nurse", "5552468", NURSING_HOME, name="Wenche Avdelingsleder", ward_admin=True
)
OTHER_HOME_WARD_ADMIN_TOKEN = Token(
    "nurse", "5551357", "8012399", name="Rune Avdelingsleder", ward_admin=True
)
OTHER_HOME_NURSE_TOKEN = Token("nurse", "5550000", "8012399", name="Ola Sykepleier")
OTHER_PHARMACY_TOKEN = Token("pharmacist", "7654321", "8090699", name="Ola Farmasøyt")
PATIENT_TOKEN = Token("patient", NATIONAL_ID)
OTHER_PATIENT_TOKEN = Token("patient", OTHER_NATIONAL_ID)


def auth(token: str | Token, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


class Clock:
    """The API's clock in the tests: ``NOW`` until a test moves it."""

    def __init__(self) -> None:
        self.at = NOW

    def __call__(self):
        return self.at


@dataclass
class World:
    client: TestClient
    engine: Any
    patient_id: uuid.UUID
    clock: Clock

    def get(self, path: str, token: str | Token = GP_TOKEN, **headers: str):
        return self.client.get(path, headers=auth(token, **headers))

    def post(self, path: str, body: Any, token: str | Token = GP_TOKEN, **headers: str):
        return self.client.post(path, json=body, headers=auth(token, **headers))

    def version(self) -> int:
        return int(self.get(f"/patients/{self.patient_id}/list").headers["ETag"].strip('"'))

    def write(self, path: str, body: Any, token: str | Token = GP_TOKEN, **headers: str):
        """A write based on the current list version."""
        return self.post(path, body, token, **{"If-Match": f'"{self.version()}"', **headers})


def prescribe_body(varenr: str, **fields: Any) -> dict[str, Any]:
    return {
        "entry_id": str(uuid.uuid4()),
        "drug": {"varenr": varenr},
        "use": "regular",
        "start": TODAY.isoformat(),
        "terms": {"prescription_id": str(uuid.uuid4()), "quantity": {"packages": 1}},
        **fields,
    }


def dispense_body(prescription_id: str, varenr: str) -> dict[str, Any]:
    return {
        "dispense_id": str(uuid.uuid4()),
        "prescription_id": prescription_id,
        "varenr": varenr,
        "dispensed_on": TODAY.isoformat(),
        "quantity": {"packages": 1},
        "batch": "B123",
        "expiry": "2028-10-01",
    }


def make_world(engine) -> World:
    patient_id = demo_world(engine)
    clock = Clock()
    app = create_app(ApiSettings.from_env("sqlite://"), engine=engine, clock=clock)
    return World(TestClient(app), engine, patient_id, clock)


# -- nursing home, multidose, pharmacy and CDS Hooks builders --------------------------------

MORNING = {
    "use": "regular",
    "fixed": [{"amount": {"value": 1, "unit": "tablett"}, "time_of_day": "morning"}],
}
PRN = {
    "use": "as-needed",
    "as_needed": [
        {
            "amount": {"value": 1, "unit": "kapsel"},
            "max_per_24h": {"value": 4, "unit": "kapsel"},
            "min_interval": {"value": 4, "unit": "hour"},
        }
    ],
}
SIMVASTATIN_GENERIC_EAN = "7046260904705"
OKSYKODON_EAN = "7046260910997"
NEXT_MORNING = datetime(2026, 11, 21, 7, 5, tzinfo=UTC)  # 08:05 in Oslo


def admission_body(ward_id: str, admitted_at: str, **changes) -> dict:
    return {
        "admission_id": str(uuid.uuid4()),
        "ward_id": ward_id,
        "admitted_at": admitted_at,
        "reason": "Korttidsopphold etter hoftebrudd",
        "decision_reference": "Vedtak 2026/0815",
        **changes,
    }


def admitted(world) -> tuple[str, str, str]:
    """Simvastatin every morning and oksykodon as needed, then admitted to a new ward of the
    nurse's home; returns (ward id, simvastatin entry, oksykodon entry)."""
    simvastatin = prescribe_body("090436", dosage=MORNING)
    oksykodon = prescribe_body("091099", use="as-needed", dosage=PRN)
    for body in (simvastatin, oksykodon):
        assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201
    ward_id = str(uuid.uuid4())
    created = world.post(
        "/nursing/wards", {"ward_id": ward_id, "name": "Avdeling 2"}, token=WARD_ADMIN_TOKEN
    )
    assert created.status_code == 201, created.text
    assert world.get(f"/patients/{world.patient_id}/list", token=NURSE_TOKEN).status_code == 403
    admission = world.post(
        f"/nursing/patients/{world.patient_id}/admissions",
        admission_body(ward_id, "2026-11-20T09:00:00Z"),
        token=WARD_ADMIN_TOKEN,
    )
    assert admission.status_code == 201, admission.text
    return ward_id, simvastatin["entry_id"], oksykodon["entry_id"]


def given_next_morning(world, ward_id: str, entry_id: str) -> tuple[str, str]:
    """The clock at ``NEXT_MORNING`` and the entry's dose of that morning on the ward's chart
    charted as given by the nurse (the scan skipped); returns (planned dose id,
    administration id)."""
    world.clock.at = NEXT_MORNING
    chart = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-21", token=NURSE_TOKEN)
    assert chart.status_code == 200, chart.text
    (patient,) = chart.json()["patients"]
    (dose,) = [d for d in patient["doses"] if d["entry_id"] == entry_id]
    given = world.post(
        f"/nursing/patients/{world.patient_id}/administrations",
        {
            "administration_id": str(uuid.uuid4()),
            "entry_id": entry_id,
            "planned_dose_id": dose["planned_dose_id"],
            "outcome": "given",
            "given_at": NEXT_MORNING.isoformat(),
            "dose": {"value": 1, "unit": "tablett"},
            "scan_skipped": "scanner-unavailable",
        },
        token=NURSE_TOKEN,
    )
    assert given.status_code == 201, given.text
    return dose["planned_dose_id"], given.json()["administration_id"]


def multidose_patient(world) -> str:
    """Simvastatin in multidose, the GP's practice and the demo pharmacy responsible; returns
    the open period's id."""
    body = prescribe_body("090436", dosage=MORNING, multidose=True)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201
    base = f"/multidose/patients/{world.patient_id}"
    registered = world.post(
        f"{base}/responsibility",
        {
            "doctor": GP.model_dump(mode="json"),
            "pharmacy": PHARMACIST.organisation.model_dump(mode="json"),
            "valid_from": "2026-11-20",
        },
    )
    assert registered.status_code == 200, registered.text
    period_id = str(uuid.uuid4())
    opened = world.post(
        f"{base}/periods",
        {
            "period_id": period_id,
            "first_day": "2026-11-30",
            "order_deadline": "2026-11-25T12:00:00Z",
        },
        token=PHARMACIST_TOKEN,
    )
    assert opened.status_code == 201, opened.text
    return period_id


def pharmacy_version(world) -> str:
    """The ETag of the pharmacy's view of the patient's prescriptions."""
    response = world.get(
        f"/pharmacy/patients/{world.patient_id}/prescriptions", token=PHARMACIST_TOKEN
    )
    return response.headers["ETag"]


def draft(
    draft_id: str, system: str, code: str, patient: str, *dosage: dict[str, Any]
) -> dict[str, Any]:
    """A draft MedicationRequest, validated by fhir.resources before it is sent."""
    request = MedicationRequest(
        id=draft_id,
        status="draft",
        intent="proposal",
        subject={"reference": f"Patient/{patient}"},
        medicationCodeableConcept={"coding": [{"system": system, "code": code}]},
        dosageInstruction=list(dosage) or None,
    )
    return request.model_dump(mode="json", exclude_none=True)


def hook(hook_name: str, patient: str, *drafts: dict[str, Any], selections=()) -> dict:
    bundle = Bundle(type="collection", entry=[{"resource": d} for d in drafts])
    context: dict[str, Any] = {
        "userId": "Practitioner/431002737",
        "patientId": patient,
        "draftOrders": bundle.model_dump(mode="json", exclude_none=True),
    }
    if hook_name == "order-select":
        context["selections"] = list(selections)
    return {"hook": hook_name, "hookInstance": str(uuid.uuid4()), "context": context}


class AccessLines(logging.Handler):
    """The access log's lines (``app.RequestId``), but for their milliseconds and moment: a
    handler to attach to the ``medloop.access`` logger and compare two paths' lines with."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        assert isinstance(record.msg, dict)
        self.lines.append({k: v for k, v in record.msg.items() if k not in ("ms", "timestamp")})
