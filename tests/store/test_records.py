"""A stored record that does not load (issue #13) is named, not a silent 500: the list read
answers with the ``stored-record-unreadable`` problem naming the table and the row, and
``medloop records check`` lists it. The corrupt row is inserted directly, bypassing every
validator, as an older version or a hand edit could have left it."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from medloop.cli import app as cli
from medloop.domain.multidose.periods import PackingPeriod
from medloop.loop.runner import Done, run_work
from medloop.store import administration, alerts, multidose, prescriptions
from medloop.store.columns import StoredRecordUnreadable, names_unreadable
from medloop.store.idempotency import idempotency_key
from medloop.store.list_changes import entry_version, list_change
from medloop.store.patients import patient
from medloop.store.records import check
from tests.api.helpers import (
    NEXT_MORNING,
    NURSE_TOKEN,
    PATIENT_TOKEN,
    PHARMACIST_TOKEN,
    WARD_ADMIN_TOKEN,
    admission_body,
    admitted,
    auth,
    dispense_body,
    given_next_morning,
    make_world,
    multidose_patient,
    pharmacy_version,
    prescribe_body,
)
from tests.loop.helpers import NOW, SIMVASTATIN_28, another_patient
from tests.store.helpers import intruded, intruder

MORNING_DOSE = {
    "use": "regular",
    "fixed": [{"amount": {"value": 1, "unit": "tablett"}, "time_of_day": "morning"}],
}


def corrupt_dose(world) -> tuple[str, int]:
    """A new list version whose entry version has a dose of ``null`` (what the PostgreSQL batch
    path once wrote for ``1e309``); returns the row's (entry id, version)."""
    body = prescribe_body(SIMVASTATIN_28, dosage=MORNING_DOSE)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201
    with world.engine.begin() as conn:
        last = conn.execute(
            select(entry_version).where(entry_version.c.entry_id == body["entry_id"])
        ).one()
        change = conn.execute(
            select(list_change)
            .where(list_change.c.patient_id == str(world.patient_id))
            .where(list_change.c.list_version == last.list_version)
        ).one()
        record = copy.deepcopy(last.record)
        record["entry"]["dosage"]["fixed"][0]["amount"]["value"] = None
        record["list_version"] = last.list_version + 1
        record["entry"]["version"] = last.version + 1
        conn.execute(
            list_change.insert().values(
                patient_id=change.patient_id,
                list_version=last.list_version + 1,
                at=change.at,
                author=change.author,
                reason=None,
            )
        )
        conn.execute(
            entry_version.insert().values(
                entry_id=last.entry_id,
                version=last.version + 1,
                patient_id=last.patient_id,
                list_version=last.list_version + 1,
                kind=last.kind,
                record=record,
            )
        )
        # A new revision: no process may answer from the state it cached before.
        conn.execute(
            update(patient)
            .where(patient.c.id == str(world.patient_id))
            .values(revision=patient.c.revision + 1)
        )
    return body["entry_id"], last.version + 1


def test_a_list_with_an_unreadable_record_answers_a_problem_naming_the_record(engine):
    world = make_world(engine)
    world.client = TestClient(world.client.app, raise_server_exceptions=False)
    entry_id, version = corrupt_dose(world)
    for path, token in ((f"/patients/{world.patient_id}/list", None), ("/me/list", PATIENT_TOKEN)):
        response = world.get(path) if token is None else world.client.get(path, headers=auth(token))
        assert response.status_code == 500
        problem = response.json()
        assert problem["type"] == "https://medloop.dev/problems/stored-record-unreadable"
        assert problem["table"] == "entry_version"
        assert problem["key"] == {"entry_id": entry_id, "version": str(version)}
        assert "amount.value" in problem["detail"]


def test_records_check_lists_every_unreadable_record(engine):
    world = make_world(engine)
    with engine.connect() as conn:
        assert list(check(conn)) == []
    entry_id, version = corrupt_dose(world)
    with engine.connect() as conn:
        (found,) = check(conn)
        assert list(check(conn, world.patient_id)) == [found]
        conn.execute(text("SELECT 1"))
    assert (found.table, found.key, found.column) == (
        "entry_version",
        {"entry_id": entry_id, "version": str(version)},
        "record",
    )

    url = engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["records", "check", "--db", url, "--json"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["unreadable"] == [found.as_json()]
    plain = CliRunner().invoke(cli, ["records", "check", "--db", url])
    assert plain.exit_code == 1 and f"entry_version (entry_id={entry_id}" in plain.stdout


def test_records_check_passes_on_readable_records_and_checks_its_patient_option(engine):
    world = make_world(engine)
    body = prescribe_body(SIMVASTATIN_28, dosage=MORNING_DOSE)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201
    url = engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(
        cli, ["records", "check", "--db", url, "--patient", str(world.patient_id)]
    )
    assert result.exit_code == 0, result.output
    assert "every stored record loads" in result.stdout
    bad = CliRunner().invoke(cli, ["records", "check", "--db", url, "--patient", "x"])
    assert bad.exit_code == 1


def _record_of(engine, table, row_id: str):
    """The stored record of ``table``'s row ``row_id``, as the driver reads it."""
    with engine.connect() as conn:
        return conn.execute(select(table.c.record).where(table.c.id == row_id)).scalar_one()


def _corrupt(engine, table, row_id: str, field: str, value) -> None:
    """Set ``field`` of the stored record of ``table``'s row ``row_id`` to ``value``, past every
    validator and the append-only triggers, as an older version or a hand edit could have left
    it."""
    record = copy.deepcopy(_record_of(engine, table, row_id))
    record[field] = value
    with intruder(engine, table.name) as conn:
        conn.execute(update(table).where(table.c.id == row_id).values(record=record))


def test_a_multidose_read_with_an_unreadable_period_names_the_record(engine):
    """The multidose overview reads the packing periods: one whose record no longer loads is
    named (table, key, what is wrong), as the list read names an entry version."""
    world = make_world(engine)
    world.client = TestClient(world.client.app, raise_server_exceptions=False)
    period_id = multidose_patient(world)
    assert world.get(f"/multidose/patients/{world.patient_id}").status_code == 200
    _corrupt(engine, multidose.period, period_id, "first_day", "not a day")
    response = world.get(f"/multidose/patients/{world.patient_id}")
    assert response.status_code == 500
    problem = response.json()
    assert problem["type"] == "https://medloop.dev/problems/stored-record-unreadable"
    assert problem["table"] == "multidose_period"
    assert problem["key"] == {"id": period_id}
    assert "first_day" in problem["detail"] and "not a day" not in problem["detail"]


def test_a_ward_read_with_an_unreadable_planned_dose_names_the_record(engine):
    """A resident's planned doses, read by the store for charting and planning: one whose
    record no longer loads raises ``StoredRecordUnreadable`` naming its row; a read that
    fails for no stored record's sake keeps its own error."""
    world = make_world(engine)
    admitted(world)
    patient_id = world.patient_id
    with engine.connect() as conn:
        doses = administration.planned_doses(
            conn,
            patient_ids=[patient_id],
            start=NEXT_MORNING - timedelta(days=1),
            end=NEXT_MORNING + timedelta(days=2),
        )
    assert doses
    dose_id = str(doses[0].id)
    _corrupt(engine, administration.planned_dose, dose_id, "amount", {"value": "many"})
    with engine.connect() as conn, pytest.raises(StoredRecordUnreadable) as raised:
        administration.planned_dose_by_id(conn, patient_id, doses[0].id)
    assert (raised.value.table, raised.value.key) == ("planned_dose", {"id": dose_id})
    assert raised.value.reason.startswith("amount")


def test_a_decorated_read_whose_failure_no_stored_record_explains_raises_it_unchanged(engine):
    """``names_unreadable`` looks for an unreadable row only once a load failed, and finding
    none re-raises the read's own error."""

    @names_unreadable(multidose.period)
    def failing(conn, patient_id):
        return PackingPeriod.model_validate({"id": "not even a uuid"})

    world = make_world(engine)
    with engine.connect() as conn, pytest.raises(ValidationError):
        failing(conn, world.patient_id)


def _unreadable(response, table: str, key: dict, *, named: str) -> None:
    assert response.status_code == 500, response.text
    problem = response.json()
    assert problem["type"] == "https://medloop.dev/problems/stored-record-unreadable"
    assert (problem["table"], problem["key"]) == (table, key)
    assert named in problem["detail"]


def _overridden_by_nobody(engine, alert_id: int, **values) -> None:
    """The stored alert ``alert_id`` made an override whose author does not load (a string
    where the ``Actor`` is), with ``values`` set too."""
    table = alerts.alert
    intruded(
        engine,
        table,
        table.c.id == alert_id,
        override_reason="known combination",
        override_by={"personnel": "nobody"},
        **values,
    )


def test_a_list_read_with_an_unreadable_alert_names_the_alert(engine):
    """The list shows the open alerts and the overrides on record: an alert, or an override's
    author, that no longer loads is named like an entry version, and ``records check`` lists
    both."""
    world = make_world(engine)
    world.client = TestClient(world.client.app, raise_server_exceptions=False)
    body = prescribe_body(SIMVASTATIN_28)  # no dosage: a dose-not-checked alert
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201
    with engine.connect() as conn:
        raised = conn.execute(select(alerts.alert)).one()
    record = {**raised.record, "severity": "apocalyptic"}
    intruded(engine, alerts.alert, alerts.alert.c.id == raised.id, record=record)
    listed = world.get(f"/patients/{world.patient_id}/list")
    _unreadable(listed, "alert", {"id": str(raised.id)}, named="severity")
    assert "apocalyptic" not in listed.json()["detail"]

    _overridden_by_nobody(engine, raised.id, record=raised.record)
    listed = world.get(f"/patients/{world.patient_id}/list")
    _unreadable(listed, "alert", {"id": str(raised.id)}, named="personnel")
    with engine.connect() as conn:
        (found,) = check(conn, world.patient_id)
    assert (found.table, found.column) == ("alert", "override_by")


def _second_resident(world, ward_id: str) -> str:
    """Ola Nordmann, simvastatin every morning, admitted to the ward too; returns his id."""
    other = another_patient(world.engine)
    his = dataclasses.replace(world, patient_id=other)
    at, world.clock.at = world.clock.at, NOW  # admitted with the first, his doses planned
    body = prescribe_body(SIMVASTATIN_28, dosage=MORNING_DOSE)
    assert his.write(f"/patients/{other}/prescriptions", body).status_code == 201
    admission = his.post(
        f"/nursing/patients/{other}/admissions",
        admission_body(ward_id, "2026-11-20T09:00:00Z"),
        token=WARD_ADMIN_TOKEN,
    )
    assert admission.status_code == 201, admission.text
    world.clock.at = at
    return str(other)


def _chart_of(shown, patient_id: str) -> list[dict]:
    assert shown.status_code == 200, shown.text
    return [p for p in shown.json()["patients"] if p["patient_id"] == patient_id]


def test_a_ward_chart_names_a_residents_unreadable_record_and_shows_every_other(engine):
    """The ward chart builds the day's planned doses without validating them again and
    validates a charting only when it shows it. A record of one resident's that no longer
    loads (a charting, a planned dose, the admission) is named on that resident's chart, which
    then shows nothing of the day, first on the ward; every other resident's chart is as
    ever: one corrupt record does not take the whole ward's round away."""
    world = make_world(engine)
    world.client = TestClient(world.client.app, raise_server_exceptions=False)
    ward_id, simvastatin, _ = admitted(world)
    dose_id, charting_id = given_next_morning(world, ward_id, simvastatin)
    other = _second_resident(world, ward_id)
    chart_path = f"/nursing/wards/{ward_id}/chart?day=2026-11-21"
    mine = str(world.patient_id)
    whole = world.get(chart_path, token=NURSE_TOKEN)
    (his,) = _chart_of(whole, other)
    assert his["doses"] and his["unreadable"] is None
    assert [p["unreadable"] for p in whole.json()["patients"]] == [None, None]

    def shown_without(table, row_id: str, named: str) -> None:
        shown = world.get(chart_path, token=NURSE_TOKEN)
        first = shown.json()["patients"][0]
        assert first["patient_id"] == mine, "the unreadable resident comes first"
        assert (first["doses"], first["as_needed"], first["prn"]) == ([], [], [])
        assert first["unreadable"]["table"] == table.name
        assert first["unreadable"]["key"] == {"id": row_id}
        assert named in first["unreadable"]["detail"]
        assert _chart_of(shown, other) == [his]

    stored = _record_of(engine, administration.administration, charting_id)
    table = administration.administration
    intruded(engine, table, table.c.id == charting_id, record={**stored, "outcome": "vanished"})
    shown_without(table, charting_id, named="outcome")
    assert "vanished" not in world.get(chart_path, token=NURSE_TOKEN).text

    intruded(engine, table, table.c.id == charting_id, record=stored)
    assert world.get(chart_path, token=NURSE_TOKEN).json() == whole.json()
    planned = _record_of(engine, administration.planned_dose, dose_id)
    table = administration.planned_dose
    without_amount = {k: v for k, v in planned.items() if k != "amount"}
    intruded(engine, table, table.c.id == dose_id, record=without_amount)
    shown_without(table, dose_id, named="amount")

    intruded(engine, table, table.c.id == dose_id, record=planned)
    table = administration.admission
    (stay,) = _rows_of(engine, table, table.c.patient_id == mine)
    intruded(engine, table, table.c.id == stay.id, record={**stay.record, "ward_id": "nowhere"})
    shown_without(table, stay.id, named="ward_id")


def test_a_resident_with_an_unreadable_stay_shows_none_of_the_day(engine):
    """Discharged and admitted again the same day: when one of the two stays' records no longer
    loads, neither stay's doses are charted that day (no part of the day taken for the whole),
    both name the record, first on the ward; a day the unreadable stay did not cover charts the
    other as ever."""
    world = make_world(engine)
    world.client = TestClient(world.client.app, raise_server_exceptions=False)
    ward_id, _, _ = admitted(world)
    mine = str(world.patient_id)
    table = administration.admission
    (first,) = _rows_of(engine, table, table.c.patient_id == mine)
    world.clock.at = NEXT_MORNING - timedelta(hours=1)
    discharge = f"/nursing/patients/{mine}/admissions/{first.id}/discharge"
    assert world.post(discharge, {}, token=WARD_ADMIN_TOKEN).status_code == 200
    again = world.post(
        f"/nursing/patients/{mine}/admissions",
        admission_body(ward_id, world.clock.at.isoformat()),
        token=WARD_ADMIN_TOKEN,
    )
    assert again.status_code == 201, again.text
    chart_path = f"/nursing/wards/{ward_id}/chart?day=2026-11-21"
    stays = world.get(chart_path, token=NURSE_TOKEN).json()["patients"]
    assert len(stays) == 2 and any(p["doses"] for p in stays)
    intruded(engine, table, table.c.id == first.id, record={**first.record, "ward_id": "x"})
    shown = world.get(chart_path, token=NURSE_TOKEN).json()["patients"]
    assert [(p["patient_id"], p["doses"]) for p in shown] == [(mine, []), (mine, [])]
    assert {p["admission_id"] for p in shown} == {first.id, again.json()["admission_id"]}
    assert [p["unreadable"]["key"] for p in shown] == [{"id": first.id}] * 2
    # The next day the unreadable stay had ended (by the row's times): the stay that loads is
    # charted as ever, and the old stay's record is not brought up again day after day.
    next_day = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-22", token=NURSE_TOKEN)
    (only,) = next_day.json()["patients"]
    assert only["admission_id"] == again.json()["admission_id"]
    assert only["unreadable"] is None and only["doses"]


def _rows_of(engine, table, where) -> list:
    with engine.connect() as conn:
        return conn.execute(select(table).where(where)).all()


def test_a_ward_chart_whose_ward_does_not_load_names_the_ward(engine):
    """Without the ward's configuration no dose has a status: a ward record that no longer
    loads still fails the whole chart, named."""
    world = make_world(engine)
    world.client = TestClient(world.client.app, raise_server_exceptions=False)
    ward_id, _, _ = admitted(world)
    table = administration.ward
    (ward,) = _rows_of(engine, table, table.c.id == ward_id)
    intruded(engine, table, table.c.id == ward_id, record={**ward.record, "name": None})
    shown = world.get(f"/nursing/wards/{ward_id}/chart?day=2026-11-21", token=NURSE_TOKEN)
    _unreadable(shown, "ward", {"id": ward_id}, named="name")


def test_a_command_on_a_patient_whose_record_no_longer_loads_names_the_record(engine):
    """A command reads the patient's record (once its cached state is stale): a record that
    no longer loads is named, the command refused and nothing stored."""
    world = make_world(engine)
    world.client = TestClient(world.client.app, raise_server_exceptions=False)
    version = world.version()  # the list read names the record too (above)
    stored = _record_of(engine, patient, str(world.patient_id))
    broken = {**stored, "birth_date": "not a day"}
    intruded(engine, patient, patient.c.id == str(world.patient_id), record=broken)
    with engine.connect() as conn:
        versions = conn.execute(select(func.count()).select_from(entry_version)).scalar_one()
    body = prescribe_body(SIMVASTATIN_28, dosage=MORNING_DOSE)
    path = f"/patients/{world.patient_id}/prescriptions"
    refused = world.post(path, body, **{"If-Match": f'"{version}"'})
    _unreadable(refused, "patient", {"id": str(world.patient_id)}, named="birth_date")
    assert "not a day" not in refused.json()["detail"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(entry_version)).scalar_one() == (
            versions
        )


def test_a_dispense_that_shows_an_unreadable_override_names_the_alert(engine):
    """A dispense shows the pharmacist the overrides on record for the entry, read from the
    patient's state as stored: an override whose author no longer loads is named, and the
    dispense is refused with nothing stored."""
    world = make_world(engine)
    world.client = TestClient(world.client.app, raise_server_exceptions=False)
    body = prescribe_body(SIMVASTATIN_28)  # no dosage: a dose-not-checked alert on the entry
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201
    version = pharmacy_version(world)
    with engine.connect() as conn:
        raised = conn.execute(select(alerts.alert)).one()
    assert body["entry_id"] in raised.record["medications"]
    _overridden_by_nobody(engine, raised.id)
    dispensed = world.post(
        f"/pharmacy/patients/{world.patient_id}/dispenses",
        dispense_body(body["terms"]["prescription_id"], SIMVASTATIN_28),
        token=PHARMACIST_TOKEN,
        **{"If-Match": version},
    )
    _unreadable(dispensed, "alert", {"id": str(raised.id)}, named="personnel")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(prescriptions.dispense)).scalar() == 0


def test_work_on_a_patient_that_fails_on_an_unreadable_record_names_it(engine):
    """Work on one patient (``run_work``) that reads a stored record as it was stored gets the
    error naming the record; work failing while every record loads keeps its own error."""
    world = make_world(engine)
    body = prescribe_body(SIMVASTATIN_28)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201

    def authors(ctx) -> Done:
        return Done({"by": [a.override_by["personnel"]["name"] for a in ctx.state.alerts]})

    with pytest.raises(TypeError):  # no override on record: this work's own fault
        run_work(engine, "test.authors", authors, patient_id=world.patient_id)
    with engine.connect() as conn:
        raised = conn.execute(select(alerts.alert)).one()
    _overridden_by_nobody(engine, raised.id)
    with pytest.raises(StoredRecordUnreadable) as named:
        run_work(engine, "test.authors", authors, patient_id=world.patient_id)
    assert (named.value.table, named.value.key) == ("alert", {"id": str(raised.id)})


def test_a_replay_whose_stored_response_no_longer_loads_names_the_key(engine):
    """A retried command is answered from the response stored with its idempotency key, its
    alerts validated again: a stored response that no longer loads is named like any other
    record (table, key, never the value), and the retry stores nothing."""
    world = make_world(engine)
    world.client = TestClient(world.client.app, raise_server_exceptions=False)
    body = prescribe_body(SIMVASTATIN_28)  # no dosage: a dose-not-checked alert in the response
    path = f"/patients/{world.patient_id}/prescriptions"
    version = world.version()
    first = world.post(path, body, **{"If-Match": f'"{version}"', "Idempotency-Key": "rx-1"})
    assert first.status_code == 201, first.text
    with engine.connect() as conn:
        claimed = conn.execute(select(idempotency_key)).one()
    assert claimed.response["alerts"]
    broken = copy.deepcopy(claimed.response)
    broken["alerts"][0]["severity"] = "apocalyptic"
    where = (idempotency_key.c.scope == claimed.scope) & (idempotency_key.c.key == "rx-1")
    intruded(engine, idempotency_key, where, response=broken)
    with engine.connect() as conn:
        versions = conn.execute(select(func.count()).select_from(entry_version)).scalar_one()
    retried = world.post(path, body, **{"If-Match": f'"{version}"', "Idempotency-Key": "rx-1"})
    key = {"scope": claimed.scope, "key": "rx-1"}
    _unreadable(retried, "idempotency_key", key, named="severity")
    assert "apocalyptic" not in retried.json()["detail"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(entry_version)).scalar_one() == (
            versions
        )

    without_version = {k: v for k, v in claimed.response.items() if k != "list_version"}
    intruded(engine, idempotency_key, where, response=without_version)
    retried = world.post(path, body, **{"If-Match": f'"{version}"', "Idempotency-Key": "rx-1"})
    _unreadable(retried, "idempotency_key", key, named="list_version")
