"""What a PostgreSQL connection sent and received, read from libpq's own protocol trace: the
round trips (one per ``ReadyForQuery`` the server sends) and the statements executed in each.
Counts what reaches the server whichever way it was sent (SQLAlchemy or psycopg directly)."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from psycopg.pq import Trace, TransactionStatus


@contextmanager
def round_trips(engine) -> Iterator[list[list[str]]]:
    """Trace the engine's one pooled connection while the block runs; afterwards the list
    holds one entry per round trip: the statements it carried, each by its first word."""
    with engine.connect() as conn:  # the pool's one idle connection: the block gets it next
        driver = conn.connection.driver_connection
        assert engine.pool.checkedin() == 0, "trace needs a pool with one connection"
    with traced(engine, driver) as trips:
        yield trips


@contextmanager
def traced(engine, driver) -> Iterator[list[list[str]]]:
    """``round_trips`` of one psycopg connection of ``engine`` (checked out or not)."""
    pgconn = driver.pgconn
    trips: list[list[str]] = []
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
        try:
            yield trips
        finally:
            pgconn.untrace()
            trace.seek(0)
            lines = trace.read().splitlines()
            trips.extend(_parse(lines, _prepared(driver)))


def _prepared(driver) -> dict[str, str]:
    """The connection's prepared statements by name, asked without changing its state: in
    its open transaction, or else in autocommit (neither a BEGIN left open nor a ROLLBACK,
    after which psycopg would drop them)."""
    idle = driver.info.transaction_status == TransactionStatus.IDLE
    autocommit = driver.autocommit
    if idle:
        driver.autocommit = True
    try:
        found = driver.execute("SELECT name, statement FROM pg_prepared_statements").fetchall()
    finally:
        if idle:
            driver.autocommit = autocommit
    return {name: _first_word(text) for name, text in found}


def _parse(lines: list[str], prepared: dict[str, str]) -> list[list[str]]:
    trips: list[list[str]] = []
    current: list[str] = []
    named = dict(prepared)  # prepared statement name -> its first word
    parsed = bound = ""
    messages: list[str] = []
    for line in lines:  # a statement's text may run over several lines
        if line.startswith(("F\t", "B\t")) or not messages:
            messages.append(line)
        else:
            messages[-1] += " " + line
    for line in messages:
        parts = line.split("\t", 3)
        if len(parts) < 3:
            continue
        side, message, rest = parts[0], parts[2], parts[3] if len(parts) > 3 else ""
        if side == "F" and message == "Query":
            current.append(_first_word(rest))
        elif side == "F" and message == "Parse":  # "statement name" "text" ...
            name, _, text = rest.strip().partition(" ")
            parsed = _first_word(text)
            named[name.strip('"')] = parsed
        elif side == "F" and message == "Bind":  # "portal" "statement name" ...
            statement = rest.split('"')[3] if rest.count('"') >= 4 else ""
            bound = named.get(statement, "execute") if statement else parsed
        elif side == "F" and message == "Execute":
            current.append(bound)
        elif side == "B" and message == "ReadyForQuery":
            trips.append(current)
            current = []
    return trips


def _first_word(quoted_text: str) -> str:
    found = re.search(r"[A-Za-z]+", quoted_text)
    return found.group(0).upper() if found else ""
