"""The audit log: per-patient hash chains, append-only triggers, tamper detection, concurrent
appenders, the patient's access view and ``medloop audit verify`` — on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from medloop.cli import app
from medloop.store.audit import (
    GENESIS_HASH,
    NO_PATIENT,
    AuditEvent,
    InvalidAuditEvent,
    Outcome,
    WriteTransactionRequired,
    append,
    audit_event,
    events_for_patient,
    heads_digest,
    record_hash,
    verify,
)
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.store.helpers import (
    OTHER_PATIENT,
    PATIENT,
    an_event,
    append_all,
    tamper,
    writer,
)


@pytest.fixture
def sqlite_engine(sqlite_url: str):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(postgres_url: str):
    engine = make_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def verified(engine: Engine):
    with engine.connect() as conn:
        return verify(conn)


def stored_rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(audit_event).order_by(audit_event.c.seq)).mappings()
        return [dict(row) for row in rows]


def test_records_chain_from_genesis_through_every_append(engine):
    records = []
    for batch in range(6):
        records += append_all(engine, [an_event(batch * 10 + i) for i in range(10)])

    assert [r.seq for r in records] == list(range(1, 61))
    assert records[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(records))
    rows = stored_rows(engine)
    assert [row["hash"] for row in rows] == [r.hash for r in records]
    assert all(record_hash(row) == row["hash"] for row in rows)
    result = verified(engine)
    assert result.ok and result.events == 60 and result.chains == 1
    assert result.heads == heads_digest({PATIENT: records[-1].hash})


def test_the_hash_is_sha256_of_sorted_compact_json_of_every_field_but_the_hash(engine):
    oslo = timezone(timedelta(hours=1))
    [record] = append_all(
        engine,
        [
            AuditEvent(
                actor="9144889",
                actor_role="nurse",
                organisation="974589095",
                patient=PATIENT,
                action="entry.administer",
                outcome=Outcome.REFUSED,
                request_id="r-1",
                reason="tjenstlig behov",
                detail={"zeta": [1, 2.5], "alpha": {"b": None, "a": "ø"}},
                occurred_at=datetime(2026, 3, 29, 2, 30, 0, 5, tzinfo=oslo),
            )
        ],
    )
    canonical = (
        '{"action":"entry.administer","actor":"9144889","actor_role":"nurse",'
        '"chain":"' + PATIENT + '","detail":{"alpha":{"a":"ø","b":null},"zeta":[1,2.5]},'
        '"occurred_at":"2026-03-29T01:30:00.000005Z","organisation":"974589095",'
        f'"outcome":"refused","patient":"{PATIENT}","prev_hash":"{GENESIS_HASH}",'
        '"reason":"tjenstlig behov","request_id":"r-1","seq":1}'
    )
    assert record.hash == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert record.occurred_at == datetime(2026, 3, 29, 1, 30, 0, 5, tzinfo=UTC)
    assert verified(engine).ok


json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    detail=st.dictionaries(st.text(), json_values, max_size=5),
    # PostgreSQL text cannot hold NUL; inside JSON it is escaped.
    reason=st.none()
    | st.text(
        st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=80
    ),
)
def test_any_json_detail_reads_back_with_the_hash_it_was_appended_with(engine, detail, reason):
    [record] = append_all(engine, [an_event(reason=reason, detail=detail)])

    with engine.connect() as conn:
        row = (
            conn.execute(select(audit_event).where(audit_event.c.seq == record.seq))
            .mappings()
            .one()
        )
        assert record_hash(row) == record.hash
        assert verify(conn).ok


@pytest.mark.parametrize(
    "change",
    [
        "actor = '1111111'",
        "patient = NULL",
        "outcome = 'error'",
        "detail = '{\"n\": 99}'",
        "reason = 'curious'",
    ],
)
def test_verify_reports_a_changed_field_at_its_record(engine, change):
    records = append_all(engine, [an_event(i) for i in range(20)])

    tamper(engine, f"UPDATE audit_event SET {change} WHERE seq = 7")

    result = verified(engine)
    assert not result.ok and result.events == 6
    assert result.heads == heads_digest({PATIENT: records[5].hash})
    broken = result.broken
    assert (broken.seq, broken.problem, broken.found) == (7, "hash", records[6].hash)
    assert broken.expected != records[6].hash


def test_verify_reports_a_detail_that_is_no_longer_json_on_sqlite(sqlite_engine):
    records = append_all(sqlite_engine, [an_event(i) for i in range(3)])

    tamper(sqlite_engine, "UPDATE audit_event SET detail = '{not json' WHERE seq = 2")

    broken = verified(sqlite_engine).broken
    assert (broken.seq, broken.problem, broken.found) == (2, "hash", records[1].hash)


def test_verify_reports_a_changed_record_whose_hash_was_recomputed_at_the_next_record(engine):
    records = append_all(engine, [an_event(i) for i in range(20)])
    forged = {**stored_rows(engine)[6], "actor": "1111111"}

    forged_hash = record_hash(forged)
    tamper(
        engine, f"UPDATE audit_event SET actor = '1111111', hash = '{forged_hash}' WHERE seq = 7"
    )

    broken = verified(engine).broken
    assert (broken.seq, broken.problem) == (8, "prev_hash")
    assert (broken.expected, broken.found) == (forged_hash, records[6].hash)


@pytest.mark.parametrize("deleted", [1, 10, 19])
def test_verify_reports_a_deleted_record_as_a_gap(engine, deleted):
    append_all(engine, [an_event(i) for i in range(20)])

    tamper(engine, f"DELETE FROM audit_event WHERE seq = {deleted}")

    result = verified(engine)
    assert result.events == deleted - 1
    assert result.broken.as_json() == {
        "chain": PATIENT,
        "seq": deleted + 1,
        "problem": "gap",
        "expected": str(deleted),
        "found": str(deleted + 1),
    }


def test_verify_reports_records_swapped_in_sequence(engine):
    records = append_all(engine, [an_event(i) for i in range(20)])

    tamper(
        engine,
        "UPDATE audit_event SET seq = -1 WHERE seq = 5",
        "UPDATE audit_event SET seq = 5 WHERE seq = 6",
        "UPDATE audit_event SET seq = 6 WHERE seq = -1",
    )

    broken = verified(engine).broken
    assert (broken.seq, broken.problem, broken.expected, broken.found) == (
        5,
        "prev_hash",
        records[3].hash,
        records[4].hash,
    )


def test_verify_reports_a_record_added_without_linking_to_the_last_one(engine):
    records = append_all(engine, [an_event(i) for i in range(5)])
    with writer(engine).begin() as conn:
        forged = {**stored_rows(engine)[4], "seq": 6, "actor": "1111111"}
        conn.execute(audit_event.insert().values(forged))

    broken = verified(engine).broken
    assert (broken.seq, broken.problem) == (6, "prev_hash")
    assert (broken.expected, broken.found) == (records[4].hash, records[3].hash)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET actor = '1111111' WHERE seq = 2",
        "DELETE FROM audit_event WHERE seq = 3",
        "DELETE FROM audit_event",
    ],
)
def test_update_and_delete_through_sql_are_refused(engine, statement):
    append_all(engine, [an_event(i) for i in range(3)])

    with pytest.raises(DBAPIError, match="audit_event is append-only"):
        with writer(engine).begin() as conn:
            conn.exec_driver_sql(statement)

    assert verified(engine).events == 3


@pytest.mark.postgres
def test_truncate_is_refused_on_postgresql(postgres_engine):
    append_all(postgres_engine, [an_event()])

    with pytest.raises(DBAPIError, match="audit_event is append-only: TRUNCATE refused"):
        with postgres_engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE audit_event")

    assert verified(postgres_engine).events == 1


def test_an_append_in_a_rolled_back_transaction_leaves_no_trace_and_no_gap(engine):
    append_all(engine, [an_event(1)])

    class ChangeFailed(Exception):
        pass

    with pytest.raises(ChangeFailed):
        with writer(engine).begin() as conn:
            append(conn, an_event(2, action="entry.prescribe"))
            raise ChangeFailed
    [after] = append_all(engine, [an_event(3)])

    assert [row["request_id"] for row in stored_rows(engine)] == ["req-1", "req-3"]
    assert after.seq == 2
    assert verified(engine).events == 2


def test_concurrent_appenders_produce_one_unbroken_chain(engine):
    threads_count, appends_each = 8, 25
    start = threading.Barrier(threads_count)
    failures: list[BaseException] = []

    def appender(thread: int) -> None:
        try:
            start.wait()
            for i in range(appends_each):
                with writer(engine).begin() as conn:
                    append(conn, an_event(thread * 1000 + i, actor=f"thread-{thread}"))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    threads = [threading.Thread(target=appender, args=(t,)) for t in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    result = verified(engine)
    assert result.ok and result.events == threads_count * appends_each
    rows = stored_rows(engine)
    assert [row["seq"] for row in rows] == list(range(1, threads_count * appends_each + 1))
    assert sorted(row["detail"]["n"] for row in rows) == sorted(
        t * 1000 + i for t in range(threads_count) for i in range(appends_each)
    )
    times = [row["occurred_at"] for row in rows]
    assert times == sorted(times)


def test_append_on_sqlite_needs_a_write_transaction(sqlite_engine):
    with pytest.raises(WriteTransactionRequired, match=r"execution_options\(write=True\)"):
        with sqlite_engine.begin() as conn:
            append(conn, an_event())


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (an_event(outcome="fine"), "outcome 'fine' is not one of ok, refused, conflict, error"),
        (an_event(actor=""), "needs actor"),
        (an_event(occurred_at=datetime(2026, 1, 1)), "time zone"),
        (an_event(detail={"when": datetime(2026, 1, 1, tzinfo=UTC)}), "detail is not JSON"),
        (an_event(detail={"dose": float("nan")}), "detail is not JSON"),
        (an_event(reason="\ud800"), "reason is not valid Unicode text"),
        (an_event(detail={"note": "\udfff"}), "detail is not valid Unicode text"),
    ],
)
def test_an_invalid_event_is_refused_before_anything_is_written(engine, event, message):
    with pytest.raises(InvalidAuditEvent, match=message):
        with writer(engine).begin() as conn:
            append(conn, event)
    assert verified(engine).events == 0


def test_a_patient_sees_who_accessed_their_data_newest_first_page_by_page(engine):
    append_all(
        engine,
        [
            an_event(1, actor="9144889", actor_role="doctor", action="list.read"),
            an_event(2, patient=OTHER_PATIENT),
            an_event(
                3,
                actor="system",
                actor_role="system",
                organisation=None,
                patient=None,
                action="job.run",
            ),
            an_event(
                4,
                actor="5012345",
                actor_role="nurse",
                organisation="990123456",
                action="dose.chart",
            ),
            an_event(5, actor=PATIENT, actor_role="patient", organisation=None, action="list.read"),
            an_event(
                6,
                actor="7012345",
                actor_role="pharmacist",
                organisation="981234567",
                action="dispense",
            ),
        ],
    )

    with engine.connect() as conn:
        first = events_for_patient(conn, PATIENT, limit=3)
        second = events_for_patient(conn, PATIENT, limit=3, before=first.next_before)
        assert events_for_patient(conn, "00000000000").events == []

    seen = [(e.actor, e.actor_role, e.organisation, e.action) for e in first.events + second.events]
    assert seen == [
        ("7012345", "pharmacist", "981234567", "dispense"),
        (PATIENT, "patient", None, "list.read"),
        ("5012345", "nurse", "990123456", "dose.chart"),
        ("9144889", "doctor", "974589095", "list.read"),
    ]
    assert first.next_before == 2 and second.next_before is None
    times = [e.occurred_at for e in first.events + second.events]
    assert times == sorted(times, reverse=True) and all(t.tzinfo == UTC for t in times)


def run_cli(engine: Engine, *options: str):
    url = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(app, ["audit", "verify", "--db", url, *options])


def test_cli_verify_on_an_empty_log_is_intact(engine):
    result = run_cli(engine, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "ok": True,
        "events": 0,
        "chains": 0,
        "heads": GENESIS_HASH,
        "records": 0,
        "rows": 0,
        "problem_count": 0,
        "problems": [],
    }


def test_cli_verify_prints_the_event_count_and_last_hash_and_exits_0(engine):
    records = append_all(engine, [an_event(i) for i in range(12)])

    as_json = run_cli(engine, "--json")
    as_text = run_cli(engine)

    assert as_json.exit_code == 0
    heads = heads_digest({PATIENT: records[-1].hash})
    assert json.loads(as_json.stdout) == {
        "ok": True,
        "events": 12,
        "chains": 1,
        "heads": heads,
        "records": 12,
        "rows": 0,
        "problem_count": 0,
        "problems": [],
    }
    assert as_text.exit_code == 0
    assert as_text.stdout.strip() == (
        f"audit log intact: 12 events in 1 chains, heads digest {heads}; "
        "0 rows of patient data attested"
    )


def test_cli_verify_reports_every_broken_link_first_one_first_and_exits_1(engine):
    records = append_all(engine, [an_event(i) for i in range(12)])
    tamper(
        engine,
        "DELETE FROM audit_event WHERE seq = 4",
        "UPDATE audit_event SET actor = 'x' WHERE seq = 9",
    )

    as_json = run_cli(engine, "--json")
    as_text = run_cli(engine)

    assert as_json.exit_code == 1
    gap = {"chain": PATIENT, "seq": 5, "problem": "gap", "expected": "4", "found": "5"}
    changed = json.loads(as_json.stdout)["problems"][1]
    assert json.loads(as_json.stdout) == {
        "ok": False,
        "events": 3,
        "chains": 1,
        "heads": heads_digest({PATIENT: records[2].hash}),
        "broken": gap,
        "records": 11,
        "rows": 0,
        "problem_count": 2,
        "problems": [
            gap,
            {**changed, "chain": PATIENT, "seq": 9, "problem": "hash", "found": records[8].hash},
        ],
    }
    assert as_text.exit_code == 1
    assert (
        f"audit log broken at event 5 of chain {PATIENT} (gap): expected 4, found 5"
        in as_text.stderr
    )
    assert f"event 9 of chain {PATIENT}: hash: expected {changed['expected']}" in as_text.stderr

    limited = run_cli(engine, "--json", "--max-problems", "1")
    assert limited.exit_code == 1
    assert json.loads(limited.stdout)["problems"] == [gap]
    assert json.loads(limited.stdout)["problem_count"] == 2


def test_verify_walks_the_log_in_chunks(engine):
    records = append_all(engine, [an_event(i) for i in range(23)])
    with engine.connect() as conn:
        for chunk in (1, 5, 23, 24):
            result = verify(conn, chunk=chunk)
            assert (result.ok, result.events, result.heads) == (
                True,
                23,
                heads_digest({PATIENT: records[-1].hash}),
            )


def test_appenders_to_different_patients_each_get_an_unbroken_chain(engine):
    patients = [f"0101701{n:04d}" for n in range(4)]
    start = threading.Barrier(len(patients))
    failures: list[BaseException] = []

    def appender(patient: str) -> None:
        try:
            start.wait()
            for i in range(15):
                with writer(engine).begin() as conn:
                    append(conn, an_event(i, patient=patient))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    threads = [threading.Thread(target=appender, args=(p,)) for p in patients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    result = verified(engine)
    assert (result.ok, result.events, result.chains) == (True, 60, 4)
    with engine.connect() as conn:
        for patient in patients:
            page = events_for_patient(conn, patient, limit=100)
            assert [e.seq for e in page.events] == list(range(15, 0, -1))
            assert {e.chain for e in page.events} == {patient}


def test_events_about_no_patient_form_a_chain_of_their_own(engine):
    [system, about_patient] = append_all(
        engine, [an_event(1, patient=None, action="fest.import"), an_event(2)]
    )
    assert (system.chain, system.seq, system.prev_hash) == (NO_PATIENT, 1, GENESIS_HASH)
    assert (about_patient.chain, about_patient.seq) == (PATIENT, 1)
    assert verified(engine).heads == heads_digest(
        {NO_PATIENT: system.hash, PATIENT: about_patient.hash}
    )
