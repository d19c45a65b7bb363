"""Builders for the API tests: an app over the ``engine`` fixture with the demo catalogue and
one patient, tokens for every role, and request helpers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from medloop.api.app import create_app
from medloop.api.auth import issue_token
from medloop.api.config import ApiSettings
from tests.loop.helpers import GP, NOW, PHARMACIST, TODAY, demo_world

NATIONAL_ID = "21014605158"
OTHER_NATIONAL_ID = "15035010030"
GP_TOKEN = issue_token(
    "gp",
    GP.personnel.hpr_number,
    GP.organisation.id,
    name=GP.personnel.name,
    organisation_name=GP.organisation.name,
)
PHARMACIST_TOKEN = issue_token(
    "pharmacist",
    PHARMACIST.personnel.hpr_number,
    PHARMACIST.organisation.id,
    name=PHARMACIST.personnel.name,
    organisation_name=PHARMACIST.organisation.name,
)
NURSING_HOME = "974600951"
NURSE_TOKEN = issue_token("nurse", "5551234", NURSING_HOME, name="Nina Sykepleier")
SECOND_NURSE_TOKEN = issue_token("nurse", "5559876", NURSING_HOME, name="Siri Sykepleier")
WARD_ADMIN_TOKEN = issue_token(
    "nurse", "5552468", NURSING_HOME, name="Wenche Avdelingsleder", ward_admin=True
)
OTHER_HOME_WARD_ADMIN_TOKEN = issue_token(
    "nurse", "5551357", "8012399", name="Rune Avdelingsleder", ward_admin=True
)
OTHER_HOME_NURSE_TOKEN = issue_token("nurse", "5550000", "8012399", name="Ola Sykepleier")
OTHER_PHARMACY_TOKEN = issue_token("pharmacist", "7654321", "8090699", name="Ola Farmasøyt")
PATIENT_TOKEN = issue_token("patient", NATIONAL_ID)
OTHER_PATIENT_TOKEN = issue_token("patient", OTHER_NATIONAL_ID)


def auth(token: str, **headers: str) -> dict[str, str]:
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

    def get(self, path: str, token: str = GP_TOKEN, **headers: str):
        return self.client.get(path, headers=auth(token, **headers))

    def post(self, path: str, body: Any, token: str = GP_TOKEN, **headers: str):
        return self.client.post(path, json=body, headers=auth(token, **headers))

    def version(self) -> int:
        return int(self.get(f"/patients/{self.patient_id}/list").headers["ETag"].strip('"'))

    def write(self, path: str, body: Any, token: str = GP_TOKEN, **headers: str):
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
