"""The medication review over HTTP: the findings a meeting starts from, signing with a decision
per finding (a stop made in the same transaction), reading the signed review and its PDF (text
extracted and checked), the next review's "since last time", and refusals that change nothing."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from typing import Any

import pypdf

from tests.api.helpers import NURSE_TOKEN, admitted, prescribe_body
from tests.loop.helpers import varenr_of

PROBLEMS = "https://medloop.dev/problems/"
WARFARIN, IBUPROFEN = "090232", "090181"
PARTICIPANTS = [
    {"role": "doctor", "name": "Anja Fos Eidsvik", "hpr_number": "431002737"},
    {"role": "nurse", "name": "Nina Sykepleier"},
    {"role": "pharmacist", "name": "Per Apoteker"},
]


def prescribed(world, varenr: str, **fields: Any) -> str:
    body = prescribe_body(varenr, **fields)
    path = f"/patients/{world.patient_id}/prescriptions"
    answer = world.write(path, body)
    if answer.status_code == 409:
        overrides = dict.fromkeys(answer.json()["alert_keys"], "reviewed with the GP")
        answer = world.write(path, {**body, "overrides": overrides})
    assert answer.status_code == 201, answer.text
    return body["entry_id"]


def resident(world) -> dict[str, str]:
    return {
        "warfarin": prescribed(world, WARFARIN),
        "ibuprofen": prescribed(world, IBUPROFEN),
        "amitriptyline": prescribed(world, varenr_of(world.engine, "N06AA09")),
    }


def started(world) -> tuple[dict[str, Any], str]:
    answer = world.get(f"/patients/{world.patient_id}/review")
    assert answer.status_code == 200, answer.text
    return answer.json(), answer.headers["ETag"]


def decisions(current: dict[str, Any], ids: dict[str, str]) -> list[dict[str, Any]]:
    made = []
    for key, finding in zip(
        current["finding_keys"], current["assessment"]["findings"], strict=True
    ):
        if ids["ibuprofen"] in finding["medications"]:
            made.append(
                {"finding": key, "action": "stop", "entry_id": ids["ibuprofen"], "reason": "NSAID"}
            )
        else:
            made.append({"finding": key, "action": "continue", "reason": "benefit outweighs risk"})
    return made


def sign(world, current, etag, made, token=None, review_id=None):
    body = {
        "review_id": review_id or str(uuid.uuid4()),
        "participants": PARTICIPANTS,
        "decisions": made,
    }
    path = f"/patients/{world.patient_id}/reviews"
    if token is None:
        return world.post(path, body, **{"If-Match": etag}), body["review_id"]
    return world.post(path, body, token, **{"If-Match": etag}), body["review_id"]


def test_review_end_to_end_with_pdf_and_since_last_time(world) -> None:
    ids = resident(world)
    current, etag = started(world)
    criteria = {f["criterion"] for f in current["assessment"]["findings"]}
    assert {"NORGEP-NH:2", "NORGEP-NH:3", "NORGEP-NH:12", "STOPP:C10"} <= criteria
    assert current["since_last"] is None
    assert etag == f'"{current["list_version"]}"'

    signed, review_id = sign(world, current, etag, decisions(current, ids))
    assert signed.status_code == 201, signed.text
    assert signed.headers["Location"] == f"/patients/{world.patient_id}/reviews/{review_id}"
    assert signed.json()["stopped"] == [ids["ibuprofen"]]
    assert signed.json()["list_version"] == current["list_version"] + 1
    listed = world.get(f"/patients/{world.patient_id}/list").json()
    status = {e["id"]: e["status"] for e in listed["entries"]}
    assert status[ids["ibuprofen"]] == "discontinued"

    stored = world.get(f"/patients/{world.patient_id}/reviews/{review_id}")
    assert stored.status_code == 200
    assert stored.json()["assessment"]["findings"] == current["assessment"]["findings"]
    assert [r["id"] for r in world.get(f"/patients/{world.patient_id}/reviews").json()] == [
        review_id
    ]

    pdf = world.get(f"/patients/{world.patient_id}/reviews/{review_id}/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Legemiddelgjennomgang" in text
    assert "Kari Nordmann" in text
    assert "NORGEP-NH:12" in text and "Seponer" in text and "Fortsett" in text
    assert "Farmasøyt: Per Apoteker" in text

    again, _ = started(world)
    since = again["since_last"]
    assert since["previous_review_id"] == review_id
    assert len(since["entries_removed"]) == 1 and "buprofen" in since["entries_removed"][0].lower()
    assert any(label.startswith("NORGEP-NH:12 ") for label in since["findings_resolved"])


def test_the_pdf_dates_a_review_signed_after_oslos_midnight_by_the_oslo_day(world) -> None:
    """23:30 UTC on 20 November is 00:30 on the 21st in Oslo: the PDF says when it was signed,
    and when the review before was, in Oslo's time, not UTC's date."""
    ids = resident(world)
    world.clock.at = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    current, etag = started(world)
    first, _ = sign(world, current, etag, decisions(current, ids))
    assert first.status_code == 201, first.text
    again, etag = started(world)
    assert again["since_last"]["previous_signed_at"].startswith("2026-11-20T23:30")
    second, review_id = sign(world, again, etag, decisions(again, ids))
    assert second.status_code == 201, second.text

    pdf = world.get(f"/patients/{world.patient_id}/reviews/{review_id}/pdf")
    assert pdf.status_code == 200
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    text = " ".join(text.split())
    assert "signert 2026-11-21 00:30" in text
    assert "(2026-11-21)" in text and "(2026-11-20)" not in text


def test_a_review_missing_a_decision_is_refused_with_a_problem_and_changes_nothing(world) -> None:
    ids = resident(world)
    current, etag = started(world)
    refused, _ = sign(world, current, etag, decisions(current, ids)[1:])
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["type"] == PROBLEMS + "review-incomplete"
    assert problem["title"] == "Every finding of the review needs a decision"
    assert world.version() == current["list_version"]
    assert world.get(f"/patients/{world.patient_id}/reviews").json() == []


def test_a_review_whose_doctor_is_not_the_signer_is_refused_and_changes_nothing(world) -> None:
    ids = resident(world)
    current, etag = started(world)
    body = {
        "review_id": str(uuid.uuid4()),
        "participants": [
            {"role": "doctor", "name": "Another Doctor", "hpr_number": "7654321"},
            {"role": "nurse", "name": "Nina Sykepleier", "hpr_number": "1234567"},
        ],
        "decisions": decisions(current, ids),
    }
    path = f"/patients/{world.patient_id}/reviews"
    refused = world.post(path, body, **{"If-Match": etag})
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"] == PROBLEMS + "review-signer-not-participant"
    assert world.version() == current["list_version"]
    assert world.get(path).json() == []

    body["participants"] = [{"role": "doctor", "name": "Anja Fos Eidsvik"}, *PARTICIPANTS[1:]]
    signed = world.post(path, body, **{"If-Match": etag})
    assert signed.status_code == 201, signed.text
    stored = world.get(f"{path}/{body['review_id']}").json()
    doctor = next(p for p in stored["participants"] if p["role"] == "doctor")
    assert doctor["hpr_number"] == "431002737"  # the signer's own, recorded for the doctor


def test_a_malformed_decision_is_a_422_naming_the_field(world) -> None:
    ids = resident(world)
    current, etag = started(world)
    made = decisions(current, ids)
    made[0] = {"finding": made[0]["finding"], "action": "continue"}  # no reason
    refused, _ = sign(world, current, etag, made)
    assert refused.status_code == 422
    assert "reason" in refused.text
    assert world.version() == current["list_version"]


def test_a_nurse_reads_the_review_but_cannot_sign_it(world) -> None:
    admitted(world)
    ids = {"ibuprofen": "none"}
    current, etag = started(world)
    refused, _ = sign(world, current, etag, decisions(current, ids), token=NURSE_TOKEN)
    assert refused.status_code == 403
    seen = world.get(f"/patients/{world.patient_id}/review", NURSE_TOKEN)
    assert seen.status_code == 200


def test_an_unknown_review_is_a_404_problem(world) -> None:
    answer = world.get(f"/patients/{world.patient_id}/reviews/{uuid.uuid4()}")
    assert answer.status_code == 404
    assert answer.json()["type"] == PROBLEMS + "review-not-found"
    pdf = world.get(f"/patients/{world.patient_id}/reviews/{uuid.uuid4()}/pdf")
    assert pdf.status_code == 404


def test_signing_on_a_stale_list_version_is_412(world) -> None:
    ids = resident(world)
    current, _ = started(world)
    refused, _ = sign(world, current, f'"{current["list_version"] - 1}"', decisions(current, ids))
    assert refused.status_code == 412


def test_kidney_function_recorded_as_an_observation_drives_the_renal_criteria(world) -> None:
    metformin = prescribed(world, "090555")
    before, _ = started(world)
    assert not [f for f in before["assessment"]["findings"] if f["set"] == "RENAL"]
    assert [n for n in before["assessment"]["not_assessed"] if n["set"] == "RENAL"]
    recorded = world.post(
        f"/patients/{world.patient_id}/observations",
        {"renal_function": {"kind": "egfr", "value": 25, "measured_at": "2026-11-19T08:00:00Z"}},
    )
    assert recorded.status_code == 200, recorded.text
    after, _ = started(world)
    renal = [f for f in after["assessment"]["findings"] if f["set"] == "RENAL"]
    assert [(f["criterion"], f["medications"]) for f in renal] == [
        ("RENAL:metformin-oral-renal-30", [metformin])
    ]
    assert after["assessment"]["renal"] == "eGFR 25 ml/min measured 2026-11-19"
    stopp = {f["criterion"] for f in after["assessment"]["findings"] if f["set"] == "STOPP"}
    assert "STOPP:E6" in stopp


def test_without_the_pdf_renderer_the_pdf_is_a_503_problem_not_a_500(world, monkeypatch) -> None:
    import builtins

    ids = resident(world)
    current, etag = started(world)
    signed, review_id = sign(world, current, etag, decisions(current, ids))
    assert signed.status_code == 201
    real_import = builtins.__import__

    def no_weasyprint(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "weasyprint":
            raise OSError("cannot load library 'libpango-1.0-0'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_weasyprint)
    answer = world.get(f"/patients/{world.patient_id}/reviews/{review_id}/pdf")
    assert answer.status_code == 503
    assert answer.json()["type"] == PROBLEMS + "pdf-unavailable"
    assert "libpango" in answer.json()["detail"]
