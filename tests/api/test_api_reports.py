"""The quality reports over HTTP on records made by the real commands: a ward's report after a
morning round (a scanned dose and a witnessed PRN dose), its CSV and SVG, the policy's scoping
(another home's nurse, a doctor, a pharmacist), and bad periods as problem documents."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

from medloop.api.auth import issue_token
from tests.api.helpers import (
    GP_TOKEN,
    NURSE_TOKEN,
    OTHER_HOME_NURSE_TOKEN,
    PATIENT_TOKEN,
    PHARMACIST_TOKEN,
    SECOND_NURSE_TOKEN,
    WARD_ADMIN_TOKEN,
    auth,
    prescribe_body,
)
from tests.loop.helpers import GP
from tests.reports.svg import marks

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
PRN_TABLET = {
    "use": "as-needed",
    "as_needed": [
        {
            "amount": {"value": 1, "unit": "tablett"},
            "max_per_24h": {"value": 1, "unit": "tablett"},
        }
    ],
}
SIMVASTATIN_GENERIC_EAN = "7046260904705"
OKSYKODON_EAN = "7046260910997"
NEXT_MORNING = datetime(2026, 11, 21, 7, 5, tzinfo=UTC)  # 08:05 in Oslo
PERIOD = "from=2026-11-20&to=2026-11-21"
OTHER_GP_TOKEN = issue_token("gp", "987654321", "8095068", name="Annen Lege")


def prescribed(world, body: dict) -> None:
    """Prescribe ``body``, overriding (with a reason) the alerts that need it."""
    answer = world.write(f"/patients/{world.patient_id}/prescriptions", body)
    if answer.status_code == 409 and answer.json()["code"] == "override-required":
        keys = answer.json()["alert_keys"]
        body = {**body, "overrides": dict.fromkeys(keys, "Vurdert, lav dose")}
        answer = world.write(f"/patients/{world.patient_id}/prescriptions", body)
    assert answer.status_code == 201, answer.text


def _round(world) -> str:
    """Simvastatin every morning, oksykodon and zopiklon as needed; admitted on 20 November;
    on the 21st the morning dose is given with a scan and one PRN dose with a witness. The
    ward's id."""
    simvastatin = prescribe_body("090436", dosage=MORNING)
    oksykodon = prescribe_body("091099", use="as-needed", dosage=PRN)
    zopiklon = prescribe_body("090742", use="as-needed", dosage=PRN_TABLET)
    for body in (simvastatin, oksykodon, zopiklon):
        prescribed(world, body)
    ward_id = str(uuid.uuid4())
    created = world.post(
        "/nursing/wards", {"ward_id": ward_id, "name": "Avdeling 2"}, token=WARD_ADMIN_TOKEN
    )
    assert created.status_code == 201, created.text
    admission = world.post(
        f"/nursing/patients/{world.patient_id}/admissions",
        {
            "admission_id": str(uuid.uuid4()),
            "ward_id": ward_id,
            "admitted_at": "2026-11-20T09:00:00Z",
            "reason": "Langtidsopphold",
            "decision_reference": "Vedtak 2026/0815",
        },
        token=WARD_ADMIN_TOKEN,
    )
    assert admission.status_code == 201, admission.text
    world.clock.at = NEXT_MORNING
    chart = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-21", token=NURSE_TOKEN)
    (patient,) = chart.json()["patients"]
    (dose,) = [d for d in patient["doses"] if d["entry_id"] == simvastatin["entry_id"]]
    path = f"/nursing/patients/{world.patient_id}/administrations"
    given = world.post(
        path,
        {
            "administration_id": str(uuid.uuid4()),
            "entry_id": simvastatin["entry_id"],
            "planned_dose_id": dose["planned_dose_id"],
            "outcome": "given",
            "given_at": NEXT_MORNING.isoformat(),
            "dose": {"value": 1, "unit": "tablett"},
            "scan": SIMVASTATIN_GENERIC_EAN,
        },
        token=NURSE_TOKEN,
    )
    assert given.status_code == 201, given.text
    prn = world.client.post(
        path,
        json={
            "administration_id": str(uuid.uuid4()),
            "entry_id": oksykodon["entry_id"],
            "outcome": "given",
            "given_at": NEXT_MORNING.isoformat(),
            "dose": {"value": 1, "unit": "kapsel"},
            "scan": OKSYKODON_EAN,
        },
        headers=auth(NURSE_TOKEN, **{"X-Witness-Authorization": f"Bearer {SECOND_NURSE_TOKEN}"}),
    )
    assert prn.status_code == 201, prn.text
    return ward_id


def test_the_ward_report_counts_what_the_round_charted(world):
    ward_id = _round(world)
    world.clock.at = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    answer = world.get(f"/reports/wards/{ward_id}?{PERIOD}", token=NURSE_TOKEN)

    assert answer.status_code == 200, answer.text
    report = answer.json()
    # the admission came after the 20th's morning round: the 21st's dose is the one planned
    assert report["doses"] == {
        "planned": 1,
        "on_time": 1,
        "late": 0,
        "missed": 0,
        "refused": 0,
        "held": 0,
        "not_given": 0,
        "pending": 0,
    }
    assert [(s["slot"], s["on_time"]) for s in report["by_slot"]] == [("08:00", 1)]
    assert report["scan"]["given"] == 2 and report["scan"]["scanned"] == 2
    assert report["scan"]["share_scanned"] == 1.0
    (resident,) = report["prn"]["residents"]
    assert resident["patient_id"] == str(world.patient_id) and resident["doses"] == 1
    assert report["psychotropics"]["residents"] == 1
    # zopiklon (N05CF01) as needed: a hypnotic, not an antipsychotic
    psychotropics = report["psychotropics"]
    assert (psychotropics["with_any"], psychotropics["with_antipsychotic"]) == (1, 0)
    assert {c["id"]: c["residents"] for c in psychotropics["by_class"]} == {
        "antipsychotic": 0,
        "anxiolytic": 0,
        "hypnotic": 1,
        "antidepressant": 0,
    }
    assert psychotropics["count_distribution"] == {"0": 0, "1": 1, "2": 0, "3+": 0}
    (review,) = report["reviews"]["residents"]
    # no review signed since the admission yesterday: the admission review is due now
    assert (review["admitted_on"], review["last_review"], review["next_due"], review["status"]) == (
        "2026-11-20",
        None,
        "2026-11-20",
        "due-now",
    )
    # the named resident's access is audited as the ward chart's is
    log = world.get("/me/access-log", token=PATIENT_TOKEN).json()["events"]
    assert ("nurse", "report.read.ward") in {(e["actor_role"], e["action"]) for e in log}


def test_the_ward_reports_csv_and_chart_carry_the_same_rows(world):
    ward_id = _round(world)
    world.clock.at = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    table = world.get(
        f"/reports/wards/{ward_id}/tables/doses-by-slot.csv?{PERIOD}", token=NURSE_TOKEN
    )
    chart = world.get(f"/reports/wards/{ward_id}/charts/scan.svg?{PERIOD}", token=NURSE_TOKEN)

    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(table.text)))
    assert rows[0] == ["slot", "outcome", "doses"]
    assert ["08:00", "on time", "1"] in rows[1:]
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/svg+xml"
    assert "<title" in chart.text and "Scan compliance" in chart.text
    bars = marks(chart.text, "bar")
    assert {(b["scan"], b["doses"]) for b in bars} == {
        ("scanned", "2"),
        ("not scanned, no reason", "0"),
    }


def test_a_ward_report_is_only_for_the_wards_own_nurses(world):
    ward_id = _round(world)
    for token in (OTHER_HOME_NURSE_TOKEN, GP_TOKEN, PHARMACIST_TOKEN):
        refused = world.get(f"/reports/wards/{ward_id}?{PERIOD}", token=token)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert str(world.patient_id) not in refused.text
    unknown = world.get(f"/reports/wards/{uuid.uuid4()}?{PERIOD}", token=NURSE_TOKEN)
    assert unknown.status_code == 403  # an unknown ward looks like another home's


def test_a_doctor_reads_only_their_own_prescribing_and_a_nurse_none(world):
    mine = world.get("/reports/prescriber?from=2026-11-01&to=2026-11-30", token=GP_TOKEN)
    assert mine.status_code == 200, mine.text
    assert mine.json()["prescriber"] == GP.personnel.hpr_number
    for token in (NURSE_TOKEN, PHARMACIST_TOKEN):
        assert world.get("/reports/prescriber", token=token).status_code == 403
    for token in (NURSE_TOKEN, GP_TOKEN):
        assert world.get("/reports/pharmacy", token=token).status_code == 403
    # a query naming another prescriber is not a parameter the route takes
    other = world.get("/reports/prescriber?hpr=999999999", token=GP_TOKEN)
    assert other.status_code == 422


def test_bad_periods_and_unknown_tables_are_problem_documents(world):
    ward_id = _round(world)
    backwards = world.get(
        f"/reports/wards/{ward_id}?from=2026-11-21&to=2026-11-20", token=NURSE_TOKEN
    )
    assert backwards.status_code == 422
    assert backwards.json()["code"] == "invalid-report-period"
    too_long = world.get("/reports/prescriber?from=2025-01-01&to=2026-11-20", token=GP_TOKEN)
    assert too_long.status_code == 422 and "400 days" in too_long.json()["detail"]
    not_a_day = world.get("/reports/pharmacy?from=yesterday", token=PHARMACIST_TOKEN)
    assert not_a_day.status_code == 422
    missing = world.get(
        f"/reports/wards/{ward_id}/charts/reviews-due.svg?{PERIOD}", token=NURSE_TOKEN
    )
    assert missing.status_code == 404 and "doses-by-slot" in missing.json()["detail"]
    assert (
        world.get(
            f"/reports/wards/{ward_id}/tables/nope.csv?{PERIOD}", token=NURSE_TOKEN
        ).status_code
        == 404
    )
    for bad in ("../x", "A" * 50):
        assert world.get(
            f"/reports/wards/{ward_id}/tables/{bad}.csv", token=NURSE_TOKEN
        ).status_code in (404, 422)


def test_the_prescriber_report_counts_antibiotic_courses_by_indication(world):
    penicillin = prescribe_body(
        "091048", use="course", indication="R74 Akutt øvre luftveisinfeksjon"
    )
    klaritromycin = prescribe_body("091014", use="course", indication="Pneumoni")
    for body in (penicillin, klaritromycin):
        answer = world.write(f"/patients/{world.patient_id}/prescriptions", body)
        assert answer.status_code == 201, answer.text

    report = world.get(
        "/reports/prescriber?from=2026-11-01&to=2026-11-30&list_size=1000", token=GP_TOKEN
    ).json()

    antibiotics = report["antibiotics"]
    assert (
        antibiotics["courses"],
        antibiotics["narrow_spectrum"],
        antibiotics["respiratory"],
        antibiotics["respiratory_narrow_spectrum"],
    ) == (2, 1, 2, 1)
    assert antibiotics["share_narrow_respiratory"] == 0.5
    assert antibiotics["per_1000"] == 2.0
    assert antibiotics["denominator"] == {"patients": 1000, "basis": "list-size"}
    (november,) = antibiotics["by_month"]
    assert november["month"] == "2026-11" and november["courses"] == 2
    # another doctor's report does not see them
    other = world.get("/reports/prescriber?from=2026-11-01&to=2026-11-30", token=OTHER_GP_TOKEN)
    assert other.json()["antibiotics"]["courses"] == 0


def test_the_alerts_a_doctor_overrode_show_in_their_override_rates(world):
    prescribed(world, prescribe_body("091099", use="as-needed", dosage=PRN))
    body = prescribe_body("090742", use="as-needed", dosage=PRN_TABLET)
    refused = world.write(f"/patients/{world.patient_id}/prescriptions", body)
    assert refused.status_code == 409
    keys = refused.json()["alert_keys"]
    prescribed(world, body)

    report = world.get("/reports/prescriber?from=2026-11-01&to=2026-11-30", token=GP_TOKEN).json()

    overridden = {(o["rule"], o["severity"]): o for o in report["overrides"] if o["overridden"]}
    assert {k.rsplit("/", 1)[0] for k in keys} == {rule for rule, _ in overridden}
    assert all(o["rate"] == 1.0 and o["raised"] == o["overridden"] for o in overridden.values())
    other = world.get("/reports/prescriber?from=2026-11-01&to=2026-11-30", token=OTHER_GP_TOKEN)
    assert other.json()["overrides"] == []
    chart = world.get(
        "/reports/prescriber/charts/override-rates.svg?from=2026-11-01&to=2026-11-30",
        token=GP_TOKEN,
    )
    bars = marks(chart.text, "bar")
    assert len(bars) == len(report["overrides"])
