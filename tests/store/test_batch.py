"""A command's appends queued and sent together (medloop.store.batch), and the audit record
hashed in SQL on PostgreSQL: order kept, failures reported as SQLAlchemy reports them, nothing
sent from a block that failed, and the same hashes as this process computes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    bindparam,
    event,
    literal,
    select,
    text,
)
from sqlalchemy.engine.events import ConnectionEvents
from sqlalchemy.exc import IntegrityError

from medloop.domain.patient import NationalId, Patient
from medloop.store import batch, patients
from medloop.store.audit import (
    AuditEvent,
    _canonical_parts,
    _hash_of_parts,
    append,
    chain_lock_key,
    chain_lock_key_sql,
    note_chain_locked,
    note_patient,
    record_hash,
    verify,
)
from medloop.store.db import make_engine, writer
from medloop.store.migrate import upgrade
from tests.store.helpers import scratch_engine, scratch_rows


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest):
    engine = scratch_engine(request.getfixturevalue(f"{request.param}_url"), migrated=True)
    yield engine
    engine.dispose()


def test_queued_rows_are_there_for_the_next_statement_of_the_transaction(engine):
    with engine.execution_options(write=True).begin() as conn:
        with batch.batched(conn):
            batch.insert(conn, scratch_rows, [{"id": "a", "n": 1, "record": {"x": [1, 2]}}])
            batch.insert(
                conn,
                scratch_rows,
                [{"id": "b", "n": 2, "record": None}, {"id": "c", "n": 3, "record": {"å": "ø"}}],
            )
            seen = conn.execute(select(scratch_rows).order_by(scratch_rows.c.id)).all()
    assert [tuple(r) for r in seen] == [
        ("a", 1, {"x": [1, 2]}),
        ("b", 2, None),
        ("c", 3, {"å": "ø"}),
    ]


def test_leaving_the_block_sends_what_is_queued(engine):
    with engine.execution_options(write=True).begin() as conn:
        with batch.batched(conn):
            batch.insert(conn, scratch_rows, [{"id": "a", "n": 1, "record": {}}])
    with engine.connect() as conn:
        assert conn.execute(select(scratch_rows.c.id)).scalars().all() == ["a"]


def test_json_null_is_stored_as_sqlalchemy_stores_it(engine):
    with engine.execution_options(write=True).begin() as conn:
        conn.execute(scratch_rows.insert(), {"id": "plain", "n": 0, "record": None})
        with batch.batched(conn):
            batch.insert(conn, scratch_rows, [{"id": "queued", "n": 0, "record": None}])
    with engine.connect() as conn:
        stored = dict(
            conn.execute(text("SELECT id, CAST(record AS TEXT) FROM batch_scratch")).all()
        )
    assert stored["queued"] == stored["plain"]


def test_a_duplicate_key_in_the_queue_is_an_integrity_error_and_nothing_is_kept(engine):
    with engine.execution_options(write=True).begin() as conn:
        conn.execute(scratch_rows.insert(), {"id": "a", "n": 1, "record": None})
    with pytest.raises(IntegrityError):
        with engine.execution_options(write=True).begin() as conn:
            with batch.batched(conn):
                batch.insert(conn, scratch_rows, [{"id": "b", "n": 2, "record": None}])
                batch.insert(conn, scratch_rows, [{"id": "a", "n": 3, "record": None}])
    with engine.connect() as conn:
        assert conn.execute(select(scratch_rows.c.id)).scalars().all() == ["a"]


def test_queued_rows_are_there_for_an_executemany_and_a_statement_without_parameters(engine):
    with engine.execution_options(write=True).begin() as conn:
        with batch.batched(conn):
            batch.insert(conn, scratch_rows, [{"id": "a", "n": 1, "record": None}])
            # An UPDATE of several rows (the DBAPI's executemany): it finds the queued row.
            conn.execute(
                scratch_rows.update()
                .where(scratch_rows.c.id == bindparam("key"))
                .values(n=bindparam("new_n")),
                [{"key": "a", "new_n": 10}, {"key": "z", "new_n": 0}],
            )
            batch.insert(conn, scratch_rows, [{"id": "b", "n": 2, "record": None}])
            # An INSERT of several rows (SQLAlchemy's "insertmanyvalues" on PostgreSQL).
            conn.execute(
                scratch_rows.insert(),
                [{"id": "c", "n": 3, "record": None}, {"id": "d", "n": 4, "record": None}],
            )
            batch.insert(conn, scratch_rows, [{"id": "e", "n": 5, "record": None}])
            counted = conn.exec_driver_sql("SELECT count(*), sum(n) FROM batch_scratch").one()
    assert tuple(counted) == (5, 24)


@pytest.mark.postgres
def test_a_postgres_engine_has_no_engine_event_listeners(postgres_url):
    # The queue is sent by the dialect's execute hooks: an engine listener would make every
    # connect, begin, commit and close of every transaction dispatch events.
    # (The tests' own statement capture listens on every engine, as a class: not counted.)
    engine = make_engine(postgres_url)
    try:
        own = {
            name: list(getattr(engine.dispatch, name).listeners)
            for name in dir(ConnectionEvents)
            if not name.startswith("_") and callable(getattr(ConnectionEvents, name))
        }
        assert "before_cursor_execute" in own and "commit" in own
        assert not any(own.values())
        assert engine.dialect._has_events
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_block_left_with_an_exception_sends_nothing(postgres_url):
    # (On SQLite the rows went in at once; a command's failure rolls its transaction back.)
    engine = scratch_engine(postgres_url, migrated=True)

    class Refused(Exception):
        pass

    with engine.execution_options(write=True).begin() as conn:
        with pytest.raises(Refused):
            with batch.batched(conn):
                batch.insert(conn, scratch_rows, [{"id": "a", "n": 1, "record": None}])
                raise Refused
        batch.insert(conn, scratch_rows, [{"id": "b", "n": 2, "record": None}])
    with engine.connect() as conn:
        assert conn.execute(select(scratch_rows.c.id)).scalars().all() == ["b"]
    engine.dispose()


@pytest.mark.postgres
def test_on_postgres_queued_rows_and_the_audit_record_share_one_round_trip(postgres_url):
    engine = scratch_engine(postgres_url, migrated=True)
    executed: list[str] = []
    event.listen(
        engine, "before_cursor_execute", lambda c, cur, statement, *rest: executed.append(statement)
    )
    try:
        with engine.execution_options(write=True).begin() as conn:
            # As a command does: the chain's lock first (its revision bump takes it).
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": chain_lock_key("01017012345")}
            )
            note_chain_locked(conn, "01017012345")
            # ...and it has read the patient, so the audit record's patient id is known
            # (migration 0020) without a lookup by national id.
            note_patient(conn, "01017012345", uuid.uuid4())
            with batch.batched(conn):
                batch.insert(conn, scratch_rows, [{"id": "a", "n": 1, "record": None}])
                batch.insert(conn, scratch_rows, [{"id": "b", "n": 2, "record": None}])
                record = append(
                    conn,
                    AuditEvent(
                        actor="1", actor_role="doctor", action="list.read", patient="01017012345"
                    ),
                )
        # Through SQLAlchemy only the lock; the rows and the audit insert went as one pipeline.
        assert [s.split()[0] for s in executed] == ["SELECT"]
        with engine.connect() as conn:
            assert conn.execute(select(scratch_rows.c.id)).scalars().all() == ["a", "b"]
            assert verify(conn).ok
        assert record.seq == 1
    finally:
        engine.dispose()


texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@given(
    actor=texts.filter(bool),
    action=texts.filter(bool),
    reason=st.none() | texts,
    patient=st.none() | st.text("0123456789", min_size=11, max_size=11),
    detail=st.dictionaries(texts, st.none() | st.integers() | texts | st.lists(st.integers())),
    seq=st.integers(1, 10**12),
    prev=st.text("0123456789abcdef", min_size=64, max_size=64),
)
def test_the_record_cut_around_seq_and_prev_hash_hashes_as_the_whole_record(
    actor, action, reason, patient, detail, seq, prev
):
    values = {
        "chain": patient or "-",
        "occurred_at": datetime(2026, 12, 3, 7, 0, 0, 123456, UTC),
        "actor": actor,
        "actor_role": "doctor",
        "organisation": None,
        "patient": patient,
        "action": action,
        "outcome": "ok",
        "request_id": None,
        "reason": reason,
        "detail": detail,
    }
    head, middle = _canonical_parts(values)
    assert _hash_of_parts(head, prev, middle, seq) == record_hash(
        {**values, "seq": seq, "prev_hash": prev}
    )


@pytest.mark.postgres
def test_postgres_hashes_non_ascii_records_as_this_process_does(postgres_url):
    engine = make_engine(postgres_url)
    upgrade(engine)
    try:
        for n, words in enumerate(["Ærlig øre på Å", "emoji 🙂 and \u00a0", '\\ " quotes']):
            with engine.execution_options(write=True).begin() as conn:
                # append itself refuses a hash the database computed differently
                append(
                    conn,
                    AuditEvent(
                        actor="1",
                        actor_role="doctor",
                        action="list.read",
                        patient="01017012345",
                        reason=words,
                        detail={"n": n, words: [words]},
                    ),
                )
        with engine.connect() as conn:
            result = verify(conn)
        assert result.ok and result.events == 3
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_derives_the_same_chain_lock_key_as_this_process(postgres_url):
    # Commands and audited reads lock the chain with the key PostgreSQL computes; refusals
    # and other appends with the key computed here: they must be one lock.
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            for chain in ("01017012345", "-", "Ærlig øre"):
                computed = conn.execute(select(chain_lock_key_sql(literal(chain)))).scalar_one()
                assert computed == chain_lock_key(chain)
    finally:
        engine.dispose()


def _registered_patient(engine) -> Patient:
    from medloop.demo import GP, national_id  # noqa: PLC0415 - only these tests need them
    from medloop.loop.patients import register_patient  # noqa: PLC0415
    from medloop.loop.runner import Call  # noqa: PLC0415

    found = Patient(
        id=uuid.uuid4(),
        national_id=NationalId(national_id(date(1970, 1, 1), 7)),
        given_name="Kari",
        family_name="Nordmann",
        birth_date=date(1970, 1, 1),
    )
    register_patient(engine, found, Call(actor=GP, at=datetime.now(UTC)))
    return found


@pytest.mark.postgres
def test_the_first_statements_read_through_psycopg_give_what_sqlalchemy_gives(postgres_url):
    """``first_row`` sends the patient's access and lock statements, and the idempotency
    claim, to psycopg directly; the rows must be what SQLAlchemy's execution returns."""
    engine = make_engine(postgres_url)
    try:
        upgrade(engine)
        person = _registered_patient(engine)
        by_id = {"patient_id": str(person.id)}
        cases = [
            (patients._ACCESS_LOCKING_CHAIN, by_id),
            (patients._OWN_ACCESS_LOCKING_CHAIN, {"national_id": str(person.national_id)}),
            (patients._BUMP_REVISION_LOCKING_CHAIN, by_id),
        ]
        for statement, params in cases:
            with writer(engine).begin() as conn:
                direct = batch.first_row(conn, statement, params)
                conn.rollback()
            with writer(engine).begin() as conn:
                through_sqlalchemy = conn.execute(statement, params).first()
                conn.rollback()
            assert direct is not None
            assert direct._asdict() == through_sqlalchemy._asdict()
            assert {k: type(v) for k, v in direct._asdict().items()} == {
                k: type(v) for k, v in through_sqlalchemy._asdict().items()
            }
        with writer(engine).begin() as conn:
            assert (
                batch.first_row(
                    conn, patients._ACCESS_LOCKING_CHAIN, {"patient_id": str(uuid.uuid4())}
                )
                is None
            )
    finally:
        engine.dispose()


def test_the_revision_bump_carries_its_own_increment(engine):
    """A statement's own literal parameters (``revision + 1``) go with it to psycopg."""
    person = _registered_patient(engine)
    revisions = []
    for _ in range(3):
        with writer(engine).begin() as conn:
            revisions.append(patients.lock_for_command(conn, person.id).revision)
    assert revisions == [revisions[0], revisions[0] + 1, revisions[0] + 2]


def test_a_claimed_idempotency_key_replays_and_a_reused_one_is_refused(engine):
    from medloop.store.idempotency import IdempotencyKeyReused, run_once  # noqa: PLC0415

    def run(fingerprint: str):
        with writer(engine).begin() as conn:
            return run_once(conn, "scope", "key-1", fingerprint, lambda: {"n": 1})

    first, again = run("a" * 64), run("a" * 64)
    assert (first.replayed, again.replayed) == (False, True)
    assert again.response == {"n": 1}
    with pytest.raises(IdempotencyKeyReused):
        run("b" * 64)


# -- a queued row's JSON values encoded once, for its digest and its insert (issue #20) ---------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # beyond 64 bits: the ordinary way
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


@given(record=json_values, reason=st.none() | texts)
def test_a_digest_over_the_sent_json_text_is_the_digest_over_the_value(record, reason):
    from medloop.store import attestation

    encoder = attestation._encoders("postgresql")["list_change"]
    row = {
        "patient_id": str(uuid.UUID(int=7)),
        "list_version": 3,
        "at": datetime(2026, 12, 5, 12, 0, tzinfo=UTC),
        "author": record,
        "reason": reason,
    }
    columns = batch._json_columns(attestation.metadata.tables["list_change"], tuple(row))
    assert columns == {"author"}
    sent = batch._encoded(row, columns)
    if sent is None:  # orjson refuses the value: the row goes the ordinary way
        with pytest.raises(TypeError):
            batch.orjson.dumps(record, option=batch.orjson.OPT_NON_STR_KEYS)
        return
    assert sent["author"] == batch._dumps(record)  # what the ordinary insert sends
    assert attestation._row_digest(encoder, row, texts=sent) == attestation._row_digest(
        encoder, row
    )


def test_a_moment_written_out_again_is_the_same_text_and_another_gets_its_own():
    from datetime import timedelta, timezone

    from medloop.store import attestation

    oslo = datetime(2026, 12, 5, 13, 0, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    utc = datetime(2026, 12, 5, 12, 0, 0, 5, tzinfo=UTC)
    naive = datetime(2026, 12, 5, 12, 0, 0, 5)
    for _ in range(2):
        for moment in (oslo, utc, naive):
            assert attestation._datetime_utc(moment) == "2026-12-05T12:00:00.000005Z"
    assert attestation._datetime_utc(utc + timedelta(seconds=1)) == "2026-12-05T12:00:01.000005Z"
    assert attestation._datetime_utc("not a moment") == "not a moment"


def test_an_access_by_id_and_by_national_id_read_the_same_patient(engine):
    person = _registered_patient(engine)
    asked = uuid.UUID(str(person.id))  # as a route parses it: an object of its own
    with engine.execution_options(write=True).begin() as conn:
        by_id = patients.read_for_access(conn, asked)
        assert patients.accessed_in_transaction(conn, person.id)
    with engine.execution_options(write=True).begin() as conn:
        own = patients.read_own_for_access(conn, str(person.national_id))
    assert by_id == own
    assert type(by_id.patient_id) is uuid.UUID and by_id.patient_id == person.id
    assert by_id.patient_id is asked  # the caller's id kept, not parsed again from the row
    with engine.execution_options(write=True).begin() as conn:
        assert patients.read_for_access(conn, uuid.uuid4()) is None


def test_the_record_read_with_the_lock_or_the_access_is_decoded_only_when_asked_for(
    engine, monkeypatch
):
    """A command or an audited read whose patient's state is cached never uses the record the
    first statement read with the lock (issue #20): it comes as the stored JSON text, and is
    decoded (as the driver's JSON loader would have) only when asked for."""
    person = _registered_patient(engine)
    stored = person.model_dump(mode="json")
    decoded = []
    real = patients._decoded
    monkeypatch.setattr(patients, "_decoded", lambda text: decoded.append(text) or real(text))
    with writer(engine).begin() as conn:
        locked = patients.lock_for_command(conn, person.id)
        accessed = patients.read_for_access(conn, person.id)
        own = patients.read_own_for_access(conn, str(person.national_id))
        assert decoded == []
        assert locked.record == stored and accessed.record == stored and own.record == stored
        assert type(locked.record) is dict and list(locked.record) == list(stored)
        assert locked.record is locked.record  # decoded once
        assert len(decoded) == 3
        assert patients.read_patient_revision(conn, person.id) == (person, locked.revision)
    # Built from a value (``loop.runner``'s lock without a bump), the record is that value.
    value = {"id": str(person.id)}
    assert patients.Locked(value, 1, None).record is value
