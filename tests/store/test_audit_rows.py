"""Every row of patient data is attested by the audit record of the command that appended it
(medloop.store.attestation): ``verify`` recomputes each command's rows digest from the tables
and reports a row changed, deleted or added by someone who got past the append-only triggers
(a superuser) — on SQLite and PostgreSQL, for every table family."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, UniqueConstraint, select, update
from typer.testing import CliRunner

from fest.schema import metadata
from medloop.cli import app
from medloop.demo import build
from medloop.store import attestation
from medloop.store.audit import audit_event, verify
from tests.reference import DEMO
from tests.store.helpers import intruder

BUILT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def world(engine: Engine) -> Engine:
    build(engine, DEMO, now=BUILT)
    return engine


def verified(engine: Engine, **options):
    with engine.connect() as conn, conn.begin():
        return verify(conn, **options)


def first_row(engine: Engine, table: str) -> dict:
    t = metadata.tables[table]
    with engine.connect() as conn:
        row = conn.execute(select(t).order_by(*t.primary_key.columns).limit(1)).mappings().first()
    assert row is not None, f"the demo world has no {table} row"
    return dict(row)


def claimant(engine: Engine, command: str) -> tuple[str, int]:
    with engine.connect() as conn:
        for row in conn.execute(
            select(audit_event.c.chain, audit_event.c.seq, audit_event.c.detail)
        ):
            if (row.detail.get(attestation.DETAIL_KEY) or {}).get("command") == command:
                return row.chain, row.seq
    raise AssertionError(f"no audit record claims command {command}")


def changed(row: dict, column: str) -> object:
    value = row[column]
    if isinstance(value, dict):
        return {**value, "tampered": True}
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, datetime):
        return value.replace(year=value.year - 1)
    return "x" + str(value)[1:]


def bumped(value: object, n: int) -> object:
    """``value`` made different (a unique key's copy)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value + 1000 + n
    if isinstance(value, (date, datetime)):
        return value + timedelta(days=1000 + n)
    return f"z{n}" + str(value)[2:]


def key_of(table: str, row: dict) -> dict:
    return {c.name: row[c.name] for c in metadata.tables[table].primary_key.columns}


def where_key(table: str, row: dict):
    t = metadata.tables[table]
    return [t.c[name] == value for name, value in key_of(table, row).items()]


# (table, a column to change): one or more tables per family.
FAMILIES = [
    pytest.param("list_change", "reason", id="list-change"),
    pytest.param("entry_version", "record", id="list-entry-version"),
    pytest.param("prescription", "issued_at", id="prescription"),
    pytest.param("prescription_version", "record", id="prescription-version"),
    pytest.param("alert", "override_reason", id="alert-override"),
    pytest.param("patient", "record", id="patient"),
    pytest.param("multidose_responsibility", "record", id="multidose-responsibility"),
    pytest.param("multidose_period", "record", id="multidose-period"),
    pytest.param("ward", "record", id="ward"),
    pytest.param("ward_config", "record", id="ward-config"),
    pytest.param("admission", "record", id="admission"),
    pytest.param("schedule", "fingerprint", id="administration-schedule"),
    pytest.param("planned_dose", "record", id="administration-planned-dose"),
]


def test_a_world_built_through_the_commands_verifies_with_every_row_attested(world):
    result = verified(world)
    assert result.ok and result.problems == () and result.problem_count == 0
    with world.connect() as conn:
        for name in attestation.ATTESTED:
            t = metadata.tables[name]
            unstamped = conn.execute(select(t).where(t.c.command_id.is_(None))).first()
            assert unstamped is None, name
    assert result.rows > 50


@pytest.mark.parametrize(("table", "column"), FAMILIES)
def test_a_changed_row_is_reported_at_the_audit_record_of_its_command(world, table, column):
    row = first_row(world, table)
    if row[column] is None:
        column = "record" if "record" in row else column
    chain, seq = claimant(world, row["command_id"])
    before = verified(world)
    t = metadata.tables[table]
    with intruder(world, table) as conn:
        conn.execute(
            update(t)
            .where(*where_key(table, row))
            .values({column: changed(row, column) if row[column] is not None else "x"})
        )

    result = verified(world)
    assert not result.ok
    # A patient's record is claimed by its own digest (every command that writes it claims it
    # anew), the other columns by the rows digest of the command that appended the row.
    problem = "record" if (table, column) == ("patient", "record") else "rows"
    assert [(p.chain, p.seq, p.problem) for p in result.problems] == [(chain, seq, problem)]
    assert result.problems[0].row is not None  # the command's first row, to find it by
    # The chains are intact: only the data changed, and only the rows digest shows it.
    assert result.heads == before.heads


@pytest.mark.parametrize(("table", "column"), FAMILIES)
def test_a_deleted_row_is_reported_at_the_audit_record_of_its_command(world, table, column):
    row = first_row(world, table)
    chain, seq = claimant(world, row["command_id"])
    t = metadata.tables[table]
    with intruder(world, table) as conn:
        conn.execute(t.delete().where(*where_key(table, row)))

    problems = [(p.chain, p.seq, p.problem) for p in verified(world).problems]
    assert (chain, seq, "rows") in problems


@pytest.mark.parametrize(("table", "column"), FAMILIES)
def test_an_inserted_row_is_reported_whoever_it_claims_to_belong_to(world, table, column):
    row = first_row(world, table)
    chain, seq = claimant(world, row["command_id"])
    t = metadata.tables[table]
    unique = (
        {c.name for c in t.primary_key.columns}
        | {c.name for i in t.indexes if i.unique for c in i.columns}
        | {c.name for k in t.constraints if isinstance(k, UniqueConstraint) for c in k.columns}
    )
    unique |= {c.name for c in t.columns if c.unique}
    copies = []
    for n, command in enumerate([row["command_id"], "f" * 32, None]):
        copy = {k: v for k, v in row.items() if not (table == "alert" and k == "id")}
        for name in unique & set(copy):
            copy[name] = bumped(copy[name], n)
        copy["command_id"] = command
        copies.append(copy)
    with intruder(world, table) as conn:
        for copy in copies:
            conn.execute(t.insert(), copy)

    result = verified(world)
    problems = [(p.chain, p.seq, p.problem) for p in result.problems]
    assert (chain, seq, "rows") in problems  # a row added to a command
    assert (None, None, "unclaimed-rows") in problems  # a row of a command nobody audited
    assert (None, None, "unattested-row") in problems  # a row without a command
    if table == "patient":  # and no audit record claims any inserted patient's record
        assert problems.count((None, None, "unattested-record")) == 3
        assert len(problems) == 6
    else:
        assert len(problems) == 3


def test_the_dose_changed_from_1_to_10_tablets_in_the_list_is_detected_by_the_cli(world):
    t = metadata.tables["entry_version"]
    with world.connect() as conn:
        rows = conn.execute(select(t)).mappings().all()
    one = '"amount": {"value": 1.0, "unit": "tablett"}'
    ten = '"amount": {"value": 10.0, "unit": "tablett"}'
    row = next(r for r in rows if one in json.dumps(r["record"]))
    tampered = json.loads(json.dumps(row["record"]).replace(one, ten))
    with intruder(world, "entry_version") as conn:
        conn.execute(update(t).where(*where_key("entry_version", row)).values(record=tampered))
    url = world.url.render_as_string(hide_password=False)

    result = CliRunner().invoke(app, ["audit", "verify", "--db", url, "--json"])

    assert result.exit_code == 1
    [problem] = json.loads(result.stdout)["problems"]
    assert problem["problem"] == "rows"
    assert (problem["chain"], problem["seq"]) == claimant(world, row["command_id"])
    as_text = CliRunner().invoke(app, ["audit", "verify", "--db", url])
    assert as_text.exit_code == 1
    assert as_text.stderr.startswith(
        f"audit log broken (rows): event {problem['seq']} of chain {problem['chain']}: rows: "
    )


def test_every_problem_is_listed_up_to_the_limit_and_all_are_counted(world):
    t = metadata.tables["planned_dose"]
    with world.connect() as conn:
        doses = conn.execute(select(t.c.id, t.c.command_id)).all()
    commands = {d.command_id for d in doses}
    assert len(commands) >= 3
    with intruder(world, "planned_dose") as conn:
        conn.execute(update(t).values(record={"tampered": True}))

    everything = verified(world)
    limited = verified(world, max_problems=2)

    assert everything.problem_count == len(everything.problems) == len(commands)
    assert {p.problem for p in everything.problems} == {"rows"}
    assert limited.problem_count == len(commands) and len(limited.problems) == 2
