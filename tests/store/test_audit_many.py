"""``audit.append_many``: the records of a read of several patients (a ward's chart) appended
in a number of statements that does not grow with the patients, byte for byte what one
``append`` per event writes (sequence numbers, previous hashes, hashes, the claim of the rows
the transaction appended on the first record), ``audit verify`` passing — on SQLite and
PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine, event, select

from medloop import demo
from medloop.domain.patient import Patient
from medloop.loop.patients import register_patient
from medloop.loop.runner import Call
from medloop.store import attestation
from medloop.store.access import Accessor, record_reads
from medloop.store.administration import ward
from medloop.store.audit import (
    NO_PATIENT,
    AuditEvent,
    InvalidAuditEvent,
    WriteTransactionRequired,
    append,
    append_many,
    audit_event,
    chain_lock_key,
    verify,
)
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from medloop.store.patients import find_patient_id
from tests.loop.helpers import GP
from tests.store.helpers import an_event, writer

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
# Three patients with a list (their chains carry their patient id), one national id no list is
# kept for (its chain has none) and the system chain.
BIRTHS = (date(1931, 3, 1), date(1934, 5, 2), date(1940, 1, 3))
RESIDENTS = tuple(str(demo.national_id(born, 300 + 37 * n)) for n, born in enumerate(BIRTHS))
NO_LIST = "03039012345"


@pytest.fixture(scope="module")
def audited_engine(module_db_url: str):
    """A database with the three residents registered (each registration is an audit record on
    the resident's chain) and a record on the chain with no list and on the system chain, so
    every chain the tests append to has a tail."""
    engine = make_engine(module_db_url)
    upgrade(engine)
    for n, national_id in enumerate(RESIDENTS):
        patient = Patient(
            id=uuid.uuid4(),
            national_id=national_id,
            given_name=f"Beboer{n}",
            family_name="Test",
            birth_date=BIRTHS[n],
        )
        register_patient(engine, patient, Call(actor=GP, at=T0 - timedelta(days=1)))
    with writer(engine).begin() as conn:
        append(conn, an_event(0, patient=NO_LIST, occurred_at=T0 - timedelta(hours=2)))
        append(conn, an_event(1, patient=None, occurred_at=T0 - timedelta(hours=2)))
    yield engine
    engine.dispose()


def _events(offset: int) -> list[AuditEvent]:
    """A ward read's records and then some: every kind of chain, one chain twice, text beyond
    ASCII, an integer beyond 64 bits, fixed times (so that two runs can be compared)."""
    at = T0 + timedelta(minutes=offset)
    return [
        an_event(offset + 1, patient=RESIDENTS[0], occurred_at=at, reason="tjenstlig behov"),
        an_event(offset + 2, patient=RESIDENTS[1], occurred_at=at, detail={"navn": "Ærlig Øst"}),
        an_event(offset + 3, patient=NO_LIST, occurred_at=at),
        an_event(offset + 4, patient=None, occurred_at=at, detail={"big": 2**70}),
        an_event(offset + 5, patient=RESIDENTS[0], occurred_at=at + timedelta(seconds=1)),
        an_event(offset + 6, patient=RESIDENTS[2], occurred_at=at, organisation=None),
    ]


def _rows(conn) -> list[dict]:
    query = select(audit_event).order_by(audit_event.c.chain, audit_event.c.seq)
    return [dict(row) for row in conn.execute(query).mappings()]


COMMAND = uuid.UUID("0123456789abcdef0123456789abcdef")


def _with_a_claim(conn) -> None:
    """A row of patient data appended before the records (the next audit record claims it)."""
    attestation.insert(
        conn,
        ward,
        id="7d0f4c52-5e0e-4a57-9a1b-1c5c0b0e0001",
        organisation_id="8012345",
        created_at=T0,
        record={"name": "Avdeling 2"},
    )


def test_append_many_writes_what_one_append_per_event_writes(audited_engine, monkeypatch):
    # The claim's command id is random: the same one for both runs, so they can be compared.
    monkeypatch.setattr(attestation, "uuid", SimpleNamespace(uuid4=lambda: COMMAND))
    events = _events(0)
    with writer(audited_engine).connect() as conn:
        sequential = conn.begin()
        _with_a_claim(conn)
        one_by_one = [append(conn, e) for e in events]
        expected_rows = _rows(conn)
        sequential.rollback()  # a rolled-back append leaves no gap: the same tails again
    with writer(audited_engine).begin() as conn:
        _with_a_claim(conn)
        together = append_many(conn, events)
    with audited_engine.connect() as conn:
        assert _rows(conn) == expected_rows
        result = verify(conn)
    assert together == one_by_one
    assert result.ok and result.problem_count == 0, result.problems
    # every chain went on from its tail; the chain named twice got two records in order
    first, second = together[0], together[4]
    assert first.seq > 1 and second.seq == first.seq + 1 and second.prev_hash == first.hash
    r0, r1, r2 = RESIDENTS
    assert [r.chain for r in together] == [r0, r1, NO_LIST, NO_PATIENT, r0, r2]
    # the rows appended before are claimed by the first record of the batch, by no other
    assert together[0].detail[attestation.DETAIL_KEY]["rows"] == 1
    assert all(attestation.DETAIL_KEY not in r.detail for r in together[1:])


def test_the_records_carry_each_chains_patient_id(audited_engine):
    with writer(audited_engine).begin() as conn:
        append_many(conn, _events(100))
        found = dict(
            conn.execute(
                select(audit_event.c.chain, audit_event.c.patient_id).where(
                    audit_event.c.request_id == "req-106"
                )
            ).all()
        )
        expected = str(find_patient_id(conn, RESIDENTS[2]))
    assert found == {RESIDENTS[2]: expected}


def _statements(engine: Engine, work) -> list[str]:
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        with writer(engine).begin() as conn:
            work(conn)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return seen


def test_the_statements_do_not_grow_with_the_chains(audited_engine):
    def many(first: int, count: int):
        # new chains, their patients' ids given (nothing to look up)
        events = [
            an_event(n, patient=f"0404{n:07d}", patient_id=str(uuid.uuid4()), occurred_at=T0)
            for n in range(first, first + count)
        ]
        return lambda conn: append_many(conn, events)

    # the locks (PostgreSQL) or the tails (SQLite), and the insert
    assert len(_statements(audited_engine, many(0, 2))) == 2
    assert len(_statements(audited_engine, many(2, 40))) == 2


def test_a_read_of_several_patients_looks_them_up_once_and_appends_together(audited_engine):
    with audited_engine.connect() as conn:
        ids = [find_patient_id(conn, n) for n in RESIDENTS]
    who = Accessor(actor="1234567", actor_role="nurse", organisation="8012345", request_id="r")
    seen = _statements(
        audited_engine, lambda conn: record_reads(conn, who, "administration.read.ward", ids)
    )
    # the national ids (noting the ids for the records), then the locks or tails, the insert
    assert len(seen) == 3, seen
    with audited_engine.connect() as conn:
        rows = conn.execute(
            select(audit_event.c.chain, audit_event.c.patient_id, audit_event.c.detail).where(
                audit_event.c.action == "administration.read.ward"
            )
        ).all()
    assert sorted((r.chain, r.patient_id, r.detail["patient_id"]) for r in rows) == sorted(
        (n, str(i), str(i)) for n, i in zip(RESIDENTS, ids, strict=True)
    )


@pytest.mark.postgres
def test_the_locks_are_taken_in_key_order_skipping_those_held(postgres_url):
    engine = make_engine(postgres_url)
    upgrade(engine)
    chains = ["05050500001", "05050500002", "05050500003", "05050500004"]
    sent: list[object] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if "unnest" in statement:
            sent.append(parameters)

    try:
        with writer(engine).begin() as conn:
            append(conn, an_event(0, patient=chains[2]))  # holds this chain's lock now
            event.listen(engine, "before_cursor_execute", note)
            append_many(conn, [an_event(n, patient=c) for n, c in enumerate(chains)])
    finally:
        event.remove(engine, "before_cursor_execute", note)
        engine.dispose()
    (parameters,) = sent
    keys = next(iter(dict(parameters).values()))
    assert keys == sorted(chain_lock_key(c) for c in chains if c != chains[2])


@pytest.mark.postgres
def test_concurrent_ward_reads_over_the_same_chains_neither_fork_nor_deadlock(postgres_url):
    engine = make_engine(postgres_url)
    upgrade(engine)
    chains = [f"0606060{n:04d}" for n in range(6)]
    rounds, start, failures = 10, threading.Barrier(3), []

    def reader(order: list[str], tag: int) -> None:
        try:
            start.wait()
            for n in range(rounds):
                with writer(engine).begin() as conn:
                    append_many(conn, [an_event(tag * 100 + n, patient=c) for c in order])
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    orders = [chains, chains[::-1], chains[2:] + chains[:2]]
    threads = [threading.Thread(target=reader, args=(o, t)) for t, o in enumerate(orders)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures, failures
        with engine.connect() as conn:
            result = verify(conn)
            counts = conn.execute(
                select(audit_event.c.chain, audit_event.c.seq).order_by(
                    audit_event.c.chain, audit_event.c.seq
                )
            ).all()
    finally:
        engine.dispose()
    assert result.ok, result.problems
    assert [seq for _c, seq in counts] == list(range(1, 3 * rounds + 1)) * len(chains)


def test_an_invalid_event_refuses_the_batch_before_anything_is_written(audited_engine):
    with audited_engine.connect() as conn:
        before = _rows(conn)
    bad = [an_event(1, patient=RESIDENTS[0]), an_event(2, patient=RESIDENTS[1], actor="")]
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(audited_engine, "before_cursor_execute", note)
    try:
        with pytest.raises(InvalidAuditEvent, match="actor"):
            with writer(audited_engine).begin() as conn:
                append_many(conn, bad)
    finally:
        event.remove(audited_engine, "before_cursor_execute", note)
    assert seen == []
    with audited_engine.connect() as conn:
        assert _rows(conn) == before


def test_nothing_to_append_sends_nothing_and_sqlite_needs_a_write_transaction(audited_engine):
    assert _statements(audited_engine, lambda conn: append_many(conn, [])) == []
    if audited_engine.dialect.name == "sqlite":
        with audited_engine.connect() as conn, pytest.raises(WriteTransactionRequired):
            append_many(conn, [an_event(1)])
