"""Every SQL statement the test suite sends to a table of patient data routes by patient.

The property Citus (distributed PostgreSQL) needs to run a statement on one shard when the
tables are distributed by patient (docs/scaling.md, "Sharding by patient on Citus"): the
statement filters each distributed table it reads or changes by the table's distribution
column (``patient_id``; ``id`` for ``patient``), by equality or ``IN`` on parameters, or joins
it on that column to a table that is so filtered; an ``INSERT`` names the column. The known
fan-outs (the scheduled jobs' selection of patients, ``audit verify``, ward views, the lookup
by national id, reports, exports) are listed in :data:`ALLOWED`, each with where it comes from
and why it may cross shards; any other statement that does not route fails here, so a new
unrouted statement on the hot path fails CI.

``tests/sql_capture.py`` records every statement (installed by ``tests/conftest.py``); the
check runs last (``@pytest.mark.last``) over what the whole session sent, on both databases.
Run alone it has nothing to check and fails: run it with the tests it is to judge, e.g.
``pytest tests/loop tests/api tests/store tests/ops/test_citus_routing.py``.
"""

from __future__ import annotations

import pytest

from medloop.store import tables
from tests import sql_capture
from tests.citus_routing import (
    _VERIFY,
    DISTRIBUTED,
    _findings,
    classify,
)


def test_every_table_is_placed_and_every_distributed_table_has_its_column():
    # A new table must be placed here (and in docs/scaling.md), and if it is patient data it
    # needs its patient_id.
    for name, column in DISTRIBUTED.items():
        assert column in tables.metadata.tables[name].c, f"{name} has no {column}"
    assert set(DISTRIBUTED) >= {
        "prescription_version",
        "cds_feedback",
        "discharge",
        "audit_event",
        "idempotency_key",
    }


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT record FROM dispense WHERE patient_id = %(p)s ORDER BY recorded_at",
        "SELECT record FROM dispense WHERE dispense.patient_id IN (?, ?) AND id = ?",
        "SELECT id FROM patient WHERE patient.id = ? FOR UPDATE",
        "UPDATE patient SET revision = revision + 1 WHERE id = %(patient_id)s RETURNING record",
        "DELETE FROM schedule WHERE patient_id = $1",
        "INSERT INTO cds_feedback (id, card_id, patient_id) VALUES (?, ?, ?)",
        "UPDATE idempotency_key SET status = ? WHERE scope = ? AND key = ? AND patient_id = ?",
        # a join on the distribution column to a routed table
        "SELECT d.record, a.record FROM dispense AS d LEFT OUTER JOIN dispense_annulment AS a "
        "ON a.dispense_id = d.id AND a.patient_id = d.patient_id WHERE d.patient_id = ?",
        # a correlated subquery routed through the outer, routed table
        "SELECT p.record FROM patient AS p WHERE p.id = ? AND EXISTS "
        "(SELECT 1 FROM admission WHERE admission.patient_id = p.id)",
        # INSERT ... SELECT: the target names the column, the SELECT routes
        "INSERT INTO audit_event (chain, seq, patient_id) SELECT :chain, n.seq, :patient_id "
        "FROM (SELECT coalesce(max(seq), 0) + 1 AS seq FROM audit_event "
        "WHERE chain = :chain AND patient_id = :patient_id) AS n",
        "SELECT fest_drug.name FROM fest_drug WHERE id = ?",  # a reference table
        "SELECT pg_advisory_xact_lock(%(key)s)",
    ],
)
def test_the_classifier_accepts_routed_statements(sql):
    assert classify(sql).routed, sql


@pytest.mark.parametrize(
    ("sql", "unrouted"),
    [
        ("SELECT record FROM dispense WHERE id = ?", ["dispense"]),
        ("SELECT id FROM patient WHERE national_id = %(n)s", ["patient"]),
        ("SELECT count(*) FROM prescription_version", ["prescription_version"]),
        # OR does not route: either side may hold
        ("SELECT 1 FROM dispense WHERE patient_id = ? OR id = ?", ["dispense"]),
        # a join on a key other than the distribution column
        (
            "SELECT t.record, r.record FROM multidose_task AS t LEFT OUTER JOIN "
            "multidose_task_resolution AS r ON r.task_id = t.id WHERE t.patient_id = ?",
            ["multidose_task_resolution"],
        ),
        # a join on the distribution column, but nothing routed
        (
            "SELECT 1 FROM dispense JOIN dispense_annulment "
            "ON dispense_annulment.patient_id = dispense.patient_id",
            ["dispense", "dispense_annulment"],
        ),
        # an unrouted subquery inside a routed statement
        (
            "SELECT record FROM planned_dose WHERE patient_id = ? AND entry_id IN "
            "(SELECT entry_id FROM entry_version WHERE kind = ?)",
            ["entry_version"],
        ),
        # INSERT ... SELECT whose target lacks the column, and whose SELECT fans out
        (
            "INSERT INTO discharge (admission_id, at) "
            "SELECT id, ? FROM admission WHERE ward_id = ?",
            ["admission", "discharge"],
        ),
        ("UPDATE idempotency_key SET status = ? WHERE scope = ? AND key = ?", ["idempotency_key"]),
        ("DELETE FROM idempotency_key WHERE scope = ? AND created_at < ?", ["idempotency_key"]),
        # a NULL distribution value routes nowhere
        ("SELECT seq FROM audit_event WHERE chain = ? AND patient_id IS NULL", ["audit_event"]),
    ],
)
def test_the_classifier_finds_unrouted_statements(sql, unrouted):
    assert list(classify(sql).unrouted) == unrouted, sql


def test_the_check_reports_the_applications_unrouted_statements_and_passes_the_rest():
    def seen(statement: str, *origins: str) -> sql_capture.Seen:
        return sql_capture.Seen("sqlite", statement, 1, "t", set(origins))

    unrouted = "SELECT record FROM dispense WHERE id = ?"
    checked, problems, used = _findings(
        [
            seen("SELECT record FROM dispense WHERE patient_id = ?", "medloop/store/x.py:f"),
            seen(unrouted, "medloop/store/prescriptions.py:find < medloop/loop/dispense.py:d"),
            seen(unrouted, ""),  # the test's own inspection
            seen(unrouted, "medloop/store/migrations/versions/0020_patient_shard_key.py:up"),
            seen(
                "SELECT count(*) FROM dispense WHERE command_id IS NULL",
                "medloop/store/attestation.py:unstamped_rows < medloop/store/audit.py:verify",
            ),
            seen("SELECT name FROM fest_drug", "medloop/catalogue.py:load"),
        ]
    )
    assert checked == 3
    assert len(problems) == 1
    assert "dispense not routed" in problems[0] and "medloop/loop/dispense.py:d" in problems[0]
    assert [a.why for a in used] == [_VERIFY]


@pytest.mark.last
def test_every_statement_the_suite_sent_to_patient_tables_routes_by_patient():
    # Run last (see tests/conftest.py): every statement the session sent was captured.
    seen = list(sql_capture.STATEMENTS.values())
    checked, problems, _used = _findings(seen)
    assert checked, (
        "no statement to a table of patient data was captured: the capture is broken, or this "
        "test ran without the tests it judges (run it with e.g. tests/loop tests/api)"
    )
    assert not problems, f"{len(problems)} of {checked} statements do not route:\n" + "\n".join(
        sorted(problems)
    )


def test_under_xdist_the_controller_judges_every_workers_statements_together(tmp_path, monkeypatch):
    from tests import citus_routing

    assert citus_routing.verdict(tmp_path) == "no worker reported the SQL statements it captured"
    origin = "medloop/store/prescriptions.py:find < medloop/loop/dispense.py:d"
    routed = sql_capture.Seen(
        "sqlite", "SELECT record FROM dispense WHERE patient_id = ?", 1, "t", {origin}
    )
    unrouted = sql_capture.Seen(
        "sqlite", "SELECT record FROM dispense WHERE id = ?", 2, "u", {origin}
    )
    key = ("sqlite", "x")
    monkeypatch.setattr(sql_capture, "STATEMENTS", {key: routed})
    sql_capture.report(tmp_path, "gw0")
    assert citus_routing.verdict(tmp_path) is None
    monkeypatch.setattr(sql_capture, "STATEMENTS", {key: unrouted})
    sql_capture.report(tmp_path, "gw1")
    problem = citus_routing.verdict(tmp_path)
    assert problem.startswith("1 of 2 statements do not route") and "dispense WHERE id" in problem


def test_a_decorated_store_read_has_the_origin_of_the_read_itself(engine, monkeypatch):
    """``columns.names_unreadable`` wraps a store read without sending a statement of its own:
    the statement's origin names the read and its callers, not the wrapper, so the allowed
    fan-outs (matched by origin) keep matching. (Captured apart from the session's
    statements: other tests send the same statement from their own callers.)"""
    from medloop.store import administration

    monkeypatch.setattr(sql_capture, "STATEMENTS", {})
    with engine.connect() as conn:
        assert administration.wards_of_organisation(conn, "no-such-organisation") == []
    origins = {
        origin
        for seen in sql_capture.STATEMENTS.values()
        if "FROM ward" in seen.statement and "organisation_id" in seen.statement
        for origin in seen.origins
    }
    assert origins, "the read's statement was captured"
    assert all(
        o.startswith("medloop/store/administration.py:wards_of_organisation") for o in origins
    )
    assert not any("columns.py" in o for o in origins)
