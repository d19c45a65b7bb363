"""A page whose patient has a stored record that no longer loads (issue #13's promise: named,
never an anonymous failure) is an error page in the user's language naming the record and the
request id, not the API's problem JSON in the browser."""

from __future__ import annotations

from sqlalchemy import select

from medloop.store.administration import planned_dose
from medloop.store.alerts import alert
from tests.pages.gp_helpers import as_person, resident
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


def test_the_ward_page_with_an_unreadable_planned_dose_names_it(client, pages_world):
    as_person(client, "nurse")
    ward = f"/app/nurse/wards/{pages_world.world.ward_id}"
    assert client.get(ward).status_code == 200
    engine = pages_world.engine
    intruded(
        engine,
        planned_dose,
        planned_dose.c.ward_id == str(pages_world.world.ward_id),
        record={"id": "not a planned dose"},
    )
    _error_page(client.get(ward), "planned_dose (id=")
