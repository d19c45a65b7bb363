"""PostgreSQL reads an audit chain's tail from the primary key, however long the chain: the
append's tail lookup must not read the whole chain (migration 0022's statistics)."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import text

from medloop.store import audit
from medloop.store.db import make_engine
from medloop.store.migrate import alembic_config, upgrade

pytestmark = pytest.mark.postgres

LONG = 3000
"""Records of the one long chain (a patient read many times), among many short ones."""

TAIL = "WHERE chain = :chain AND patient_id = :patient_id ORDER BY seq DESC LIMIT 1"
"""The tail lookup of ``audit._APPEND_PG`` (checked below), as prepared here with ``$n``."""


def _chains(conn) -> None:
    """600 chains of 2 records and one of ``LONG``, each chain naming its own patient."""
    for chains, length, prefix in ((600, 2, "s"), (1, LONG, "long")):
        conn.execute(
            text(
                "INSERT INTO audit_event (chain, seq, occurred_at, actor, actor_role, action, "
                "outcome, detail, prev_hash, hash, patient_id) "
                "SELECT :prefix || c, s, now(), 'hpr:1', 'gp', 'medication-list.read.list', "
                "'ok', '{}', md5(c || '.' || s), md5(s || '.' || c), 'p-' || :prefix || c "
                "FROM generate_series(1, :chains) AS c, generate_series(1, :length) AS s"
            ),
            {"prefix": prefix, "chains": chains, "length": length},
        )
    conn.execute(text("ANALYZE audit_event"))


def _tail_buffers(conn) -> tuple[int, int]:
    """The long chain's tail as the append's generic plan (a prepared statement's, as psycopg
    runs it) finds it: (its seq, the buffers the lookup touched)."""
    conn.execute(text("SET plan_cache_mode = force_generic_plan"))
    conn.execute(
        text(
            "PREPARE tail(varchar, varchar) AS SELECT seq, hash FROM audit_event "
            + TAIL.replace(":chain", "$1").replace(":patient_id", "$2")
        )
    )
    try:
        seq = conn.execute(text("EXECUTE tail('long1', 'p-long1')")).scalar_one()
        (plan,) = conn.execute(
            text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE tail('long1', 'p-long1')")
        ).scalar_one()
    finally:
        conn.execute(text("DEALLOCATE tail"))
        conn.execute(text("RESET plan_cache_mode"))
    if isinstance(plan, str):
        plan = json.loads(plan)
    top = plan["Plan"]
    return seq, top["Shared Hit Blocks"] + top["Shared Read Blocks"]


def test_the_append_looks_up_the_tail_it_is_checked_against():
    assert TAIL in re.sub(r"\s+", " ", str(audit._APPEND_PG))


def test_the_tail_of_a_long_chain_is_read_from_the_index_not_the_whole_chain(postgres_url):
    """With 0022's statistics the planner knows a chain names one patient, and its generic plan
    reads the tail backwards from the primary key: a few buffers for a chain of 3 000 records.
    Without them (the planner multiplies the two conditions' selectivities, expecting about one
    row) it scans every record of the chain and sorts them: the cost that grew with every
    audited read of a patient."""
    engine = make_engine(postgres_url)
    upgrade(engine)
    with engine.begin() as conn:
        _chains(conn)
    with engine.connect() as conn:
        seq, with_statistics = _tail_buffers(conn)
        conn.rollback()
    assert seq == LONG
    assert with_statistics <= 10, with_statistics

    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        from alembic import command

        command.downgrade(config, "0021")
        conn.execute(text("ANALYZE audit_event"))
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM pg_statistic_ext WHERE stxname = :name"),
                {"name": "audit_event_chain_patient"},
            ).scalar_one()
            == 0
        )
        seq, without = _tail_buffers(conn)
        conn.rollback()
    assert seq == LONG
    assert without > 5 * with_statistics + 40, without  # the chain's ~80 pages: what 0022 removes

    upgrade(engine)
    with engine.connect() as conn:
        seq, buffers = _tail_buffers(conn)
        conn.rollback()
    assert (seq, buffers <= 10) == (LONG, True), buffers
    engine.dispose()
