"""The yearly medication review end to end on the demo nursing home (issue #19): Per Hansen's
review meeting (doctor, nurse, pharmacist) finds NORGEP-NH and STOPP/START criteria on his
list; the doctor stops quetiapine, lowers oxazepam and continues the rest with reasons; the
signed review reads back, prints as PDF (text extracted and checked), and a year later the
next review shows what changed since."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from typing import Any

import pypdf
from fastapi.testclient import TestClient

from medloop.api.app import create_app
from medloop.api.config import ApiSettings
from medloop.demo import RESIDENTS, build, national_id
from tests.api.helpers import Clock
from tests.reference import DEMO

BUILT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
A_YEAR_LATER = datetime(2027, 11, 22, 9, 0, tzinfo=UTC)
HALF_TABLET = {
    "use": "regular",
    "fixed": [{"amount": {"value": 0.5, "unit": "tablett"}, "time_of_day": "evening"}],
    "text": "1/2 tablett om kvelden",
}


def _decisions(current: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    quetiapine = next(i for i, n in names.items() if n.startswith("Kvetiapin"))
    oxazepam = next(i for i, n in names.items() if n.startswith("Oksazepam"))
    made = []
    findings = current["assessment"]["findings"]
    for key, finding in zip(current["finding_keys"], findings, strict=True):
        if quetiapine in finding["medications"]:
            made.append(
                {
                    "finding": key,
                    "action": "stop",
                    "entry_id": quetiapine,
                    "reason": "uro bedre; seponeres med observasjon",
                    "discontinuation_reason": "A",
                }
            )
        elif oxazepam in finding["medications"]:
            made.append(
                {
                    "finding": key,
                    "action": "change",
                    "entry_id": oxazepam,
                    "dosage": HALF_TABLET,
                    "reason": "nedtrapping",
                }
            )
        else:
            made.append({"finding": key, "action": "continue", "reason": "vurdert, fortsetter"})
    return made


def test_per_hansens_yearly_review_on_the_demo_nursing_home(engine) -> None:
    world = build(engine, DEMO, now=BUILT)
    clock = Clock()
    clock.at = BUILT
    client = TestClient(create_app(ApiSettings.from_env("sqlite://"), engine=engine, clock=clock))
    gp = {"Authorization": f"Bearer {world.tokens['gp']}"}
    nurse = {"Authorization": f"Bearer {world.tokens['nurse']}"}
    per = national_id(RESIDENTS[1].birth, 100 + 37)
    per_id = client.get(f"/patients?national_id={per}", headers=gp).json()["patient_id"]

    started = client.get(f"/patients/{per_id}/review", headers=nurse)  # the ward prepares
    assert started.status_code == 200, started.text
    current = started.json()
    found = {f["criterion"] for f in current["assessment"]["findings"]}
    assert {"NORGEP-NH:23", "NORGEP-NH:25", "NORGEP-NH:26", "STOPP:L2", "START:K2"} <= found
    assert current["assessment"]["acb"]["score"] >= 3
    assert len(current["assessment"]["indicators"]["psychotropics"]) == 3
    names = {str(e["entry_id"]): e["name"] for e in current["assessment"]["entries"]}

    review_id = str(uuid.uuid4())
    body = {
        "review_id": review_id,
        "participants": [
            {"role": "doctor", "name": "Anja Fos Eidsvik", "hpr_number": "431002737"},
            {"role": "nurse", "name": "Nina Sykepleier"},
            {"role": "pharmacist", "name": "Per Apoteker"},
        ],
        "decisions": _decisions(current, names),
        "note": "Årlig legemiddelgjennomgang",
    }
    signed = client.post(
        f"/patients/{per_id}/reviews",
        json=body,
        headers={**gp, "If-Match": started.headers["ETag"]},
    )
    assert signed.status_code == 201, signed.text
    assert len(signed.json()["stopped"]) == 1 and len(signed.json()["changed"]) == 1

    entries = client.get(f"/patients/{per_id}/list", headers=gp).json()["entries"]
    by_name = {e["drug"]["resolved"]["name"]: e for e in entries if "drug" in e}
    quetiapine = next(e for n, e in by_name.items() if n.startswith("Kvetiapin"))
    oxazepam = next(e for n, e in by_name.items() if n.startswith("Oksazepam"))
    assert quetiapine["status"] == "discontinued"
    assert oxazepam["dosage"]["fixed"][0]["amount"]["value"] == 0.5

    pdf = client.get(f"/patients/{per_id}/reviews/{review_id}/pdf", headers=gp)
    assert pdf.status_code == 200
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    for expected in ("Per Hansen", "NORGEP-NH:25", "Seponer", "Endre", "Sykepleier: Nina"):
        assert expected in text, expected
    assert "Årlig legemiddelgjennomgang" in text

    clock.at = A_YEAR_LATER
    next_review = client.get(f"/patients/{per_id}/review", headers=gp).json()
    since = next_review["since_last"]
    assert since["previous_review_id"] == review_id
    assert [n for n in since["entries_removed"] if n.startswith("Kvetiapin")]
    assert [n for n in since["entries_changed"] if n.startswith("Oksazepam")]
    assert any(label.startswith("NORGEP-NH:25 ") for label in since["findings_resolved"])
