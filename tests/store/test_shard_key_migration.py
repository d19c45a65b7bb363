"""Migration 0020 gives every table of patient data its patient_id (docs/scaling.md, Citus):
the child rows get their parent's, the audit records their patient's, and the audit log and
every attested row verify as before, with the same heads digest, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect, select, text

from medloop import demo
from medloop.store import attestation, audit
from medloop.store.columns import SHARD_KEY
from medloop.store.migrate import alembic_config, upgrade
from medloop.store.tables import metadata
from tests.reference import DEMO

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

#: Tables born with their patient_id before 0020 (0018's wristband), a copy all the same.
BORN_WITH_IT = frozenset({"wristband"})
#: The child tables 0020 gave a patient_id (a copy of their parent row's): those whose shard key
#: the row digests leave out (``attestation.ATTESTED``), less the ones born with it. The
#: migration keeps its own frozen list; this one follows the code.
CHILDREN = sorted(
    name
    for name, left_out in attestation.ATTESTED.items()
    if SHARD_KEY in left_out and name not in BORN_WITH_IT
)


def _downgrade(engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def _verified(engine) -> audit.VerifyResult:
    with engine.connect() as conn:
        return audit.verify(conn)


def _patient_ids(engine) -> dict[str, dict[tuple, str | None]]:
    """table -> {primary key: patient_id} of every child table, audit_event and
    idempotency_key."""
    found = {}
    with engine.connect() as conn:
        for name in [*CHILDREN, "audit_event", "idempotency_key"]:
            table = metadata.tables[name]
            key = list(table.primary_key.columns)
            found[name] = {
                tuple(row[:-1]): row[-1]
                for row in conn.execute(select(*key, table.c.patient_id)).all()
            }
    return found


def test_0020_backfills_patient_id_and_every_chain_and_row_still_verifies(engine):
    demo.build(engine, DEMO, now=AT)
    written = _patient_ids(engine)  # as the store wrote them with the rows
    assert sum(len(rows) for name, rows in written.items() if name in CHILDREN) > 0
    assert all(v is not None for name in CHILDREN for v in written[name].values())
    assert any(v is not None for v in written["audit_event"].values())
    head = _verified(engine)
    assert head.ok, head.problems

    # The database as it was before 0020 (the columns gone: what the rows were is what the
    # chains and the attested digests commit to), then migrated again.
    _downgrade(engine, "0018")  # the revision before 0020 (0018: wristbands, kept)
    with engine.connect() as conn:
        for name in [*CHILDREN, "audit_event", "idempotency_key"]:
            columns = {c["name"] for c in inspect(conn).get_columns(name)}
            assert "patient_id" not in columns, name
        for name in BORN_WITH_IT:
            assert "patient_id" in {c["name"] for c in inspect(conn).get_columns(name)}, name
    upgrade(engine)
    after = _verified(engine)

    assert after.ok, after.problems
    assert after.heads == head.heads
    assert after.events == head.events
    backfilled = _patient_ids(engine)
    for name in CHILDREN:
        assert backfilled[name] == written[name], name
    # every audit record of a patient's chain has the patient's id; the system chain none
    assert backfilled["audit_event"] == written["audit_event"]
    with engine.connect() as conn:
        system = conn.execute(
            text("SELECT count(*) FROM audit_event WHERE chain = :c AND patient_id IS NOT NULL"),
            {"c": audit.NO_PATIENT},
        ).scalar_one()
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM audit_event a JOIN patient p ON p.national_id = a.chain "
                "WHERE a.patient_id IS NULL OR a.patient_id <> p.id"
            )
        ).scalar_one()
    assert system == 0
    assert orphans == 0
    # a key claimed by a command gets the patient its response names
    for key, patient_id in written["idempotency_key"].items():
        assert backfilled["idempotency_key"][key] in (patient_id, None)


def test_the_append_only_triggers_are_back_after_0020(engine):
    demo.build(engine, DEMO, now=AT)
    for name in ["prescription_version", "audit_event"]:
        with engine.begin() as conn:
            statement = text(f"UPDATE {name} SET patient_id = NULL")  # noqa: S608
            try:
                conn.execute(statement)
            except Exception as error:  # noqa: BLE001 - the driver's error, either database
                assert "append-only" in str(error)
            else:
                raise AssertionError(f"{name} took an UPDATE")
