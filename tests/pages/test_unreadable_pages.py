"""A page whose patient has a stored record that no longer loads (issue #13's promise: named,
never an anonymous failure) is an error page in the user's language naming the record and the
request id, not the API's problem JSON in the browser."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from medloop.store.administration import planned_dose
from medloop.store.alerts import alert
from medloop.store.multidose import period
from medloop.store.patients import patient
from tests.pages.gp_helpers import as_person, resident
from tests.pages.helpers import BUILT
from tests.store.helpers import intruded


def _error_page(answer, record: str) -> None:
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("text/html")
    assert "En lagret post kan ikke leses" in answer.text
    assert f"<code>{record}" in answer.text
    assert f"<code>{answer.headers['X-Request-ID']}</code>" in answer.text


def test_the_gp_page_of_a_patient_with_an_unreadable_alert_names_it(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    engine = pages_world.engine
    with engine.connect() as conn:
        raised = conn.execute(select(alert).where(alert.c.patient_id == patient_id)).first()
    assert raised is not None  # the demo's resident has alerts on record
    assert client.get(f"/app/gp/patients/{patient_id}").status_code == 200
    intruded(engine, alert, alert.c.id == raised.id, record={**raised.record, "severity": "x"})
    _error_page(client.get(f"/app/gp/patients/{patient_id}"), f"alert (id={raised.id})")


def _row_of(page: str, name: str) -> str:
    """The overview row whose resident link reads ``name``."""
    head, found, rest = page.partition(f">{name}</a>")
    assert found, f"no row for {name}"
    return head[head.rindex("<tr") :] + found + rest[: rest.index("</tr>")]


def _doses_in_row(page: str, name: str) -> list[str]:
    """What the resident's overview row says of the day's doses, in order (the time columns
    are those of the residents shown, so a row's empty cells may differ)."""
    row = _row_of(page, name)
    found = re.findall(r'<span class="(?:state [^"]*|hint)">([^<]*)</span>', row)
    assert found, f"nothing shown for {name}"
    return found


def test_the_ward_page_names_a_residents_unreadable_record_and_shows_the_others(
    client, pages_world
):
    """One resident's planned doses no longer load: the ward's overview still shows every
    other resident's doses, and that resident's row, first, says none of the day is shown and
    names the record (table and id, never the stored value)."""
    as_person(client, "nurse")
    ward = f"/app/nurse/wards/{pages_world.world.ward_id}"
    before = client.get(ward)
    assert before.status_code == 200
    _, kari = resident(pages_world.world, 0)
    intruded(
        pages_world.engine,
        planned_dose,
        (planned_dose.c.ward_id == str(pages_world.world.ward_id))
        & (planned_dose.c.patient_id == kari),
        record={"id": "not a planned dose"},
    )
    shown = client.get(ward)
    assert shown.status_code == 200, shown.text
    row = _row_of(shown.text, "Kari Nordmann")
    assert "ingen av dagens doser vises" in row
    assert "<code>planned_dose (id=" in row
    assert "not a planned dose" not in shown.text
    assert shown.text.index("Kari Nordmann") < shown.text.index("Per Hansen")
    for name in ("Per Hansen", "Ingrid Berg"):
        assert _doses_in_row(shown.text, name) == _doses_in_row(before.text, name)


def test_the_ward_page_names_a_residents_unreadable_patient_record(client, pages_world):
    """A resident's own record (name, birth date) no longer loads: the row cannot even say
    who, but says so and names the record; the others are shown as ever."""
    as_person(client, "nurse")
    ward = f"/app/nurse/wards/{pages_world.world.ward_id}"
    before = client.get(ward)
    _, ingrid = resident(pages_world.world, 2)
    engine = pages_world.engine
    with engine.connect() as conn:
        stored = conn.execute(select(patient.c.record).where(patient.c.id == ingrid)).scalar_one()
    intruded(engine, patient, patient.c.id == ingrid, record={**stored, "birth_date": "never"})
    shown = client.get(ward)
    assert shown.status_code == 200, shown.text
    row = _row_of(shown.text, "Navnet kan ikke leses")
    assert f"<code>patient (id={ingrid})</code>" in row
    assert "never" not in shown.text
    for name in ("Kari Nordmann", "Per Hansen"):
        assert _doses_in_row(shown.text, name) == _doses_in_row(before.text, name)


def test_the_worklist_lists_a_patient_whose_period_does_not_load_apart(client, pages_world):
    """Kari's packing period no longer loads: the pharmacist's worklist still lists Per Hansen's
    deadline, and names Kari with the record that cannot be read instead of leaving her out."""
    pages_world.clock.at = BUILT + timedelta(hours=1)  # the demo's deadlines just passed
    as_person(client, "pharmacist")
    _, kari = resident(pages_world.world, 0)
    engine = pages_world.engine
    with engine.connect() as conn:
        (row,) = conn.execute(select(period).where(period.c.patient_id == kari)).all()
    intruded(engine, period, period.c.id == row.id, record={**row.record, "first_day": "soon"})
    answer = client.get("/app/pharmacy", params={"days": 14})
    assert answer.status_code == 200, answer.text
    apart, _, listed = answer.text.partition("<table>")
    assert "Pasienter med journal som ikke kan leses" in apart
    assert "Kari Nordmann" in apart and f"<code>multidose_period (id={row.id})</code>" in apart
    assert "Kari Nordmann" not in listed and "Per Hansen" in listed
    assert "soon" not in answer.text
