"""The ward overview's reads (issue #16 performance): the light chart query gives the statuses
the validated records give, the page and the JSON API agree, and the overview's statements do
not grow with the number of residents (the audit records of the residents' reads included)."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import date, timedelta

from sqlalchemy import event, text

from interactions.dosage import Quantity, Use
from medloop import demo
from medloop.api.auth import issue_token
from medloop.domain.administration import (
    ChartRequest,
    Outcome,
    dose_in_force,
    dose_status,
    effective_charting,
)
from medloop.domain.oslo import local_date, local_day_bounds
from medloop.domain.patient import Patient
from medloop.loop import administration
from medloop.loop.change import mark_entered_in_error
from medloop.loop.patients import register_patient
from medloop.loop.runner import Call
from medloop.pages.signin import demo_people
from medloop.store import administration as store
from medloop.store.list_changes import current_entries_for_use, list_version
from tests.loop.administration.helpers import admission_order, prescribe_with
from tests.loop.administration.helpers import as_needed as loop_as_needed
from tests.pages.helpers import bedside, chart_given, chart_link, client_signed_in

LEVOTYROKSIN_EAN = "7046260906068"


def chart_levotyroksin(client, world, index: int) -> None:
    """Chart demo resident ``index``'s morning levotyroksin as given, scanned, through the
    pages (wristband first), as a nurse does."""
    html, _ = bedside(client, world, index)
    saved = chart_given(client, chart_link(html, "Levotyroksin"), LEVOTYROKSIN_EAN)
    assert saved.status_code in (200, 303), saved.text


def _reference_statuses(conn, ward_id, day: date, now) -> dict[str, tuple[str, bool, str | None]]:
    """The ward's day as the chart was computed before the light query: every planned dose and
    charting validated from its stored record, then the domain's rules."""
    ward = store.read_ward(conn, ward_id)
    start, end = local_day_bounds(day)
    stays = [
        a
        for a in store.admissions_to(conn, ward_id)
        if a.admitted_at < end and (a.discharged_at is None or a.discharged_at > start)
    ]
    doses = store.planned_doses(conn, ward_id=ward_id, start=start, end=end)
    chartings = store.chartings_of_doses(conn, [d.id for d in doses])
    schedules = store.schedules_of(conn, sorted({d.patient_id for d in doses}))
    found = {}
    for dose in doses:
        standing = effective_charting(
            c.administration for c in chartings.get(dose.id, ()) if c.stands
        )
        in_force = dose_in_force(dose, schedules.get(dose.entry_id, []), standing is not None)
        if not in_force or not any(
            a.patient_id == dose.patient_id and a.covers(dose.due_at) for a in stays
        ):
            continue
        found[str(dose.id)] = (
            dose_status(dose.due_at, standing, ward.config, now).value,
            standing is not None and standing.late,
            None if standing is None else str(standing.id),
        )
    return found


def _api_chart(client, world) -> dict:
    nurse = next(p for p in demo_people() if p.key == "nurse").claims
    token = issue_token("nurse", nurse["sub"], nurse["org"], name=nurse["name"])
    answer = client.get(
        f"/nursing/wards/{world.world.ward_id}/chart",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_ward_chart_shows_the_statuses_the_validated_records_give(client, pages_world):
    client_signed_in(client, "nurse")
    chart_levotyroksin(client, pages_world, 2)
    at = pages_world.clock.at
    with pages_world.engine.connect() as conn:
        expected = _reference_statuses(conn, pages_world.world.ward_id, local_date(at), at)
    body = _api_chart(client, pages_world)
    shown = {
        d["planned_dose_id"]: (
            d["status"],
            d["late"],
            None if d["charting"] is None else d["charting"]["id"],
        )
        for p in body["patients"]
        for d in p["doses"]
    }
    assert shown == expected
    states = Counter(status for status, _, _ in shown.values())
    assert states["given"] == 1 and len(states) >= 2, states  # a charted dose among others


def test_the_overview_page_counts_what_the_api_chart_lists(client, pages_world):
    client_signed_in(client, "nurse")
    chart_levotyroksin(client, pages_world, 2)
    body = _api_chart(client, pages_world)
    html = client.get(f"/app/nurse/wards/{pages_world.world.ward_id}/overview").text
    for patient in body["patients"]:
        given = sum(1 for d in patient["doses"] if d["status"] == "given")
        row = html.split(f'nurse/residents/{patient["patient_id"]}"', 1)[1].split("</tr>", 1)[0]
        # the row's summary cell of given doses (SUMMARY_STATES' "given")
        assert re.search(rf'state-given"[^>]*>\s*{given}\b', row) or given == 0, row


def _statements(world, path: str, client) -> tuple[int, int]:
    """(statements other than the audit log's, audit statements) of one GET of ``path``."""
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(world.engine, "before_cursor_execute", note)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(world.engine, "before_cursor_execute", note)
    audit = [s for s in seen if "audit_event" in s or "pg_advisory_xact_lock" in s]
    return len(seen) - len(audit), len(audit)


def test_the_overviews_reads_do_not_grow_with_the_residents(client, pages_world):
    client_signed_in(client, "nurse")
    overview = f"/app/nurse/wards/{pages_world.world.ward_id}/overview"
    client.get(overview)  # warm what is read once per process
    reads, audits = _statements(pages_world, overview, client)
    residents = len(pages_world.world.patients)
    at = pages_world.clock.at - timedelta(hours=1)
    for n in range(3):
        _admitted(pages_world, n, at)
    more_reads, more_audits = _statements(pages_world, overview, client)
    assert more_reads == reads
    # one audit record per resident read stays the rule, appended together (audit.append_many):
    # the chains' locks (PostgreSQL) or tails (SQLite) and one insert, however many residents
    assert more_audits == audits == 2
    with pages_world.engine.connect() as conn:
        recorded = conn.execute(
            text("SELECT count(*) FROM audit_event WHERE action = 'administration.read.ward-chart'")
        ).scalar_one()
    assert recorded == 2 * residents + (residents + 3)  # warm-up, first and second read


PARACETAMOL = "090028"
PARACETAMOL_EAN = "7046260900288"


def _admitted(world, n: int, at) -> uuid.UUID:
    """New resident ``n`` of the demo ward, admitted at ``at``."""
    patient = Patient(
        id=uuid.uuid4(),
        national_id=demo.national_id(date(1931, 3, 1 + n), 300 + 37 * n),
        given_name=f"Ny{n}",
        family_name="Beboer",
        birth_date=date(1931, 3, 1 + n),
    )
    register_patient(world.engine, patient, Call(actor=demo.GP, at=at))
    administration.admit(
        world.engine,
        patient.id,
        admission_order(world.world.ward_id, at),
        Call(actor=demo.NURSE, at=at),
    )
    return patient.id


def _admitted_with_paracetamol(world, n: int, at) -> uuid.UUID:
    """A new resident of the demo ward with paracetamol as needed (as Kari has)."""
    patient_id = _admitted(world, n, at)
    prescribe_with(
        world.engine,
        patient_id,
        PARACETAMOL,
        loop_as_needed(unit="tablett", max_24h=4, min_hours=6),
        at=at,
    )
    return patient_id


def _paracetamol_entry(world, patient_id) -> uuid.UUID:
    with world.engine.connect() as conn:
        found = current_entries_for_use(conn, [patient_id], Use.AS_NEEDED.value)
    return next(e.id for e in found[patient_id] if e.drug.varenr == PARACETAMOL)


def _give_paracetamol(world, patient_id, at) -> None:
    """A PRN paracetamol dose given at ``at`` (the charting command, as the pages call it)."""
    administration.chart(
        world.engine,
        patient_id,
        ChartRequest(
            administration_id=uuid.uuid4(),
            entry_id=_paracetamol_entry(world, patient_id),
            outcome=Outcome.GIVEN,
            given_at=at,
            dose=Quantity(value=1, unit="tablett"),
            scan=PARACETAMOL_EAN,
        ),
        Call(actor=demo.NURSE, at=at),
    )


def _prn_cell(html: str, patient_id) -> str:
    """The text of the overview's PRN cell of a resident (the row's second last cell)."""
    row = html.split(f'nurse/residents/{patient_id}"', 1)[1].split("</tr>", 1)[0]
    cell = re.findall(r"<td>(.*?)</td>", row, re.S)[-2]
    return " ".join(re.sub(r"<[^>]+>", " ", cell).split())


def test_the_overview_names_prn_doses_without_reads_growing_with_the_residents(client, pages_world):
    client_signed_in(client, "nurse")
    overview = f"/app/nurse/wards/{pages_world.world.ward_id}/overview"
    at = pages_world.clock.at - timedelta(hours=2)
    _, kari = pages_world.patient(0)
    _give_paracetamol(pages_world, kari, at)
    client.get(overview)  # warm what is read once per process
    reads, _ = _statements(pages_world, overview, client)
    others = [_admitted_with_paracetamol(pages_world, n, at) for n in range(3)]
    for n, patient_id in enumerate(others):
        _give_paracetamol(pages_world, patient_id, at + timedelta(minutes=10 * (n + 1)))
    more_reads, _ = _statements(pages_world, overview, client)
    # four residents given a PRN dose now, one before: their medicines' names in one query
    assert more_reads == reads
    html = client.get(overview).text
    for patient_id in [kari, *others]:
        cell = _prn_cell(html, patient_id)
        assert re.fullmatch(r"\d\d:\d\d Paracet[^()]*", cell), cell


def test_a_prn_dose_whose_entry_was_entered_in_error_shows_the_name_marked(client, pages_world):
    client_signed_in(client, "nurse")
    _, kari = pages_world.patient(0)
    at = pages_world.clock.at - timedelta(hours=2)
    _give_paracetamol(pages_world, kari, at)
    with pages_world.engine.connect() as conn:
        version = list_version(conn, kari)
    mark_entered_in_error(
        pages_world.engine,
        kari,
        _paracetamol_entry(pages_world, kari),
        Call(actor=demo.GP, at=at + timedelta(minutes=30), reason="Feil pasient"),
        based_on=version,
    )
    html = client.get(f"/app/nurse/wards/{pages_world.world.ward_id}/overview").text
    cell = _prn_cell(html, kari)
    # the dose was given and stands: the nurse sees what was given, and that the entry is void
    assert re.fullmatch(r"\d\d:\d\d Paracet.* \(feilregistrert i legemiddellisten\)", cell), cell
    english = client.get(
        f"/app/nurse/wards/{pages_world.world.ward_id}/overview",
        headers={"Accept-Language": "en"},
    )
    assert "Paracet" in english.text
