"""The kept cursor's per-statement shortcuts (``postgres.KeptCursor``: one converted query kept
per statement text; ``batch._named_row`` and ``batch._fetchone``): the values sent, the types
and formats they are sent with, and the rows read back are psycopg's own path's; each
shortcut falls back to psycopg's where its precondition does not hold."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg._queries import PostgresQuery
from psycopg.rows import namedtuple_row
from psycopg.types.json import Json, Jsonb
from sqlalchemy import text

from medloop.store import batch, postgres
from medloop.store.db import make_engine

pytestmark = pytest.mark.postgres

_TABLE = """CREATE TABLE kept (
    id uuid PRIMARY KEY, at timestamptz, doc jsonb, note text, n bigint, raw bytea, j json
)"""
_INSERT = (
    "INSERT INTO kept (id, at, doc, note, n, raw, j) "
    "VALUES (%(id)s, %(at)s, %(doc)s, %(note)s, %(n)s, %(raw)s, %(j)s)"
)
_READ = "SELECT id, at, doc, note, n, raw, j FROM kept WHERE id = %(id)s"
_ECHO = (
    "SELECT %(id)s AS id, %(at)s AS at, %(doc)s AS doc, %(note)s AS note, %(n)s AS n, "
    "%(raw)s AS raw, %(j)s AS j"
)


def _rows(count: int) -> list[dict]:
    """Rows of every type the store sends, None in each column in turn, the type of a value
    changing from one row to the next (an int beyond 32 and 64 bits, text and bytes)."""
    found = []
    for i in range(count):
        row = {
            "id": uuid.UUID(int=i + 1),
            "at": datetime(2026, 12, 6, 14, i % 60, i % 60, i, tzinfo=UTC) + timedelta(days=i),
            "doc": Jsonb({"i": i, "å": ["ø", None, 1.5]}),
            "note": f"note {i} å" if i % 3 else "",
            "n": (7, 2**40, -(2**31) - 1, 0)[i % 4],
            "raw": bytes([i % 256, 0, 255]) * (i % 3),
            "j": Json([i, {"k": "v"}]),
        }
        skipped = list(row)[1:][i % 6] if i % 2 else None
        if skipped is not None:
            row[skipped] = None
        found.append(row)
    return found


@pytest.fixture
def pg_engine(postgres_url):
    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text(_TABLE))
    engine.dispose()
    try:
        yield engine
    finally:
        engine.dispose()


def _driver(conn) -> psycopg.Connection:
    return conn.connection.driver_connection


def _sent(pgq) -> tuple:
    return (pgq.query, tuple(pgq.params), pgq.types, tuple(pgq.formats))


def test_the_private_psycopg_parts_the_shortcuts_rely_on_are_there():
    # psycopg is pinned (tests/store/test_postgres_begin.py); these are what KeptCursor,
    # _KeptQuery, _named_row and _fetchone read and write below its public API.
    assert {"_tx", "_order", "_want_formats", "params", "types", "formats", "query"} <= set(
        PostgresQuery.__slots__
    )
    assert {"_results", "_pos", "_make_row", "_tx", "_closed", "_pgconn"} <= set(
        psycopg.Cursor.__mro__[1].__slots__
    )
    assert callable(psycopg.Cursor._convert_query)
    assert hasattr(psycopg.pq.PGconn, "_encoding")


def test_a_kept_query_sends_what_psycopgs_conversion_sends_row_after_row(pg_engine):
    with pg_engine.connect() as conn:
        cursor = postgres.KeptCursor(_driver(conn))
        cursor._tx = psycopg.adapt.Transformer(cursor)
        for row in _rows(40):
            cursor._reset()
            kept = cursor._convert_query(_INSERT, row)
            plain = PostgresQuery(cursor._tx)
            plain.convert(_INSERT, row)
            assert _sent(kept) == _sent(plain)
        # One query object for the text, converted once, dumped again for each execution.
        assert cursor._kept_queries[_INSERT][0] is kept
        assert isinstance(kept, postgres._KeptQuery)


def test_a_kept_cursor_stores_and_reads_what_psycopgs_cursor_does(pg_engine):
    """Every row inserted and read back through the kept cursor (each statement run many times:
    prepared, and its kept query dumped again), through ``execute`` and ``execute_at_once``,
    against psycopg's own cursor on the same rows."""
    rows = _rows(24)
    found = {}
    for kind in ("plain", "kept"):
        with pg_engine.begin() as conn:
            driver = _driver(conn)
            cursor = (  # psycopg's own conversion and row maker (``Cursor`` adds the BEGIN)
                postgres.Cursor(driver, row_factory=namedtuple_row)
                if kind == "plain"
                else postgres.KeptCursor(driver, row_factory=batch._named_row)
            )
            read = []
            for row in rows[:8]:
                cursor.execute(_INSERT, row, prepare=True)
            postgres.execute_at_once(cursor, [(_INSERT, rows[8:16])])
            for row in rows[16:]:  # the same text twice in one round trip, and a read after
                postgres.execute_at_once(cursor, [(_INSERT, [row]), (_READ, [{"id": row["id"]}])])
                read.append(cursor.fetchone())
            for row in rows:
                cursor.execute(_READ, {"id": row["id"]}, prepare=True)
                read.append(cursor.fetchone())
                cursor.execute(_ECHO, row, prepare=True)
                read.append(cursor.fetchone())
            found[kind] = read
            conn.execute(text("DELETE FROM kept"))
    assert found["kept"] == found["plain"]
    assert [tuple(r._fields) for r in found["kept"]] == [tuple(r._fields) for r in found["plain"]]
    assert found["kept"][8][0] == rows[0]["id"] and found["kept"][8][3] == rows[0]["note"]


class _Recording(postgres.KeptCursor):
    """A kept cursor that notes each query object it hands out."""

    __slots__ = ()
    made: list = []

    def _convert_query(self, query, params=None):
        self.made.append(super()._convert_query(query, params))
        return self.made[-1]


def test_one_round_trip_gives_each_use_of_a_statement_its_own_query(pg_engine):
    with pg_engine.begin() as conn:
        cursor = _Recording(_driver(conn))
        made = cursor.made
        made.clear()
        first, second = _rows(2)
        postgres.execute_at_once(
            cursor, [(_INSERT, [first]), (_READ, [{"id": first["id"]}]), (_INSERT, [second])]
        )
        assert len(made) == 3
        assert made[0] is not made[2]  # the second use in the trip: a query of its own
        assert made[0].params[0] != made[2].params[0]  # each kept what it sent
        kept = cursor._kept_queries[_INSERT][0]
        assert kept is made[2]  # the later one is kept for the next execution
        # The next execution of a statement takes its kept query again.
        cursor.execute(_READ, {"id": second["id"]}, prepare=True)
        assert made[-1] is made[1]
        assert cursor.fetchone()[0] == second["id"]
        postgres.execute_at_once(cursor, [(_INSERT, _rows(4)[2:])])
        assert made[-1] is kept  # one conversion for both rows, the kept one
        assert conn.execute(text("SELECT count(*) FROM kept")).scalar_one() == 4


def test_a_missing_parameter_is_psycopgs_error_and_the_next_statement_converts_anew(pg_engine):
    with pg_engine.begin() as conn:
        driver = _driver(conn)
        row = _rows(1)[0]
        cursor = postgres.KeptCursor(driver)
        cursor.execute(_ECHO, row, prepare=True)
        kept = cursor._kept_queries[_ECHO][0]
        missing = {k: v for k, v in row.items() if k not in ("n", "note")}
        with pytest.raises(psycopg.ProgrammingError) as raised:
            cursor.execute(_ECHO, missing, prepare=True)
        with pytest.raises(psycopg.ProgrammingError) as expected:
            psycopg.Cursor(driver).execute(_ECHO, missing)
        assert str(raised.value) == str(expected.value) == "query parameter missing: n, note"
        # The same text again: psycopg keeps the Transformer for it, and so the query.
        cursor.execute(_ECHO, row, prepare=True)
        assert cursor._kept_queries[_ECHO][0] is kept
        assert cursor.fetchone()[3] == row["note"]
        # Another text that fails to convert: a new Transformer, the kept query converted again.
        with pytest.raises(psycopg.ProgrammingError):
            cursor.execute(_READ, {}, prepare=True)
        cursor.execute(_ECHO, row, prepare=True)
        assert cursor._kept_queries[_ECHO][0] is not kept
        assert cursor._kept_queries[_ECHO][0]._tx is cursor._tx is not kept._tx
        assert cursor.fetchone()[3] == row["note"]


def test_what_the_kept_query_does_not_take_goes_psycopgs_way(pg_engine):
    with pg_engine.begin() as conn:
        driver = _driver(conn)
        cursor = postgres.KeptCursor(driver)
        # Positional parameters: psycopg's query, not kept.
        cursor.execute("SELECT %s::int + %s", (1, 2))
        assert cursor.fetchone() == (3,)
        assert type(cursor._query) is PostgresQuery and not cursor._kept_queries
        # A sequence for named placeholders: psycopg's TypeError, from the kept query too.
        cursor.execute("SELECT %(a)s::int", {"a": 1})
        with pytest.raises(TypeError) as raised:
            cursor._kept_queries["SELECT %(a)s::int"][0].dump([1])
        with pytest.raises(TypeError) as expected:
            psycopg.Cursor(driver).execute("SELECT %(a)s::int", [1])
        assert str(raised.value) == str(expected.value)
        # No placeholders, and no parameters.
        cursor.execute("SELECT 5", {})
        assert cursor.fetchone() == (5,)
        cursor.execute("SELECT 6")
        assert cursor.fetchone() == (6,)


def test_a_new_transformer_gets_a_query_of_its_own(pg_engine):
    with pg_engine.begin() as conn:
        cursor = postgres.KeptCursor(_driver(conn))
        row = _rows(1)[0]
        cursor.execute(_ECHO, row, prepare=True)
        kept = cursor._kept_queries[_ECHO][0]
        cursor._tx = psycopg.adapt.Transformer(cursor)
        cursor._reset()
        pgq = cursor._convert_query(_ECHO, row)
        assert pgq is not kept and pgq._tx is cursor._tx


def test_the_row_class_is_psycopgs_and_follows_the_columns(pg_engine):
    with pg_engine.begin() as conn:
        driver = _driver(conn)
        cursor = postgres.KeptCursor(driver, row_factory=batch._named_row)
        plain = psycopg.Cursor(driver, row_factory=namedtuple_row)
        for sql in ("SELECT 1 AS a, 'x' AS b", "SELECT 2 AS a, 'y' AS c", 'SELECT 3 AS "a b"'):
            cursor.execute(sql, {}, prepare=True)
            plain.execute(sql, {}, prepare=True)
            row, expected = cursor.fetchone(), plain.fetchone()
            assert row == expected and row._fields == expected._fields
            assert type(row) is type(expected)  # psycopg's own class for those names
        # Same names again: the same maker; a command's result: psycopg's (no rows).
        cursor.execute("SELECT 4 AS a, 'z' AS b", {})
        assert cursor._make_row is batch._ROW_MAKERS[(driver.pgconn._encoding, b"a", b"b")]
        cursor.execute("INSERT INTO kept (id) VALUES (%(id)s)", {"id": uuid.uuid4()})
        assert cursor._make_row is namedtuple_row(cursor)


def test_first_rows_fetch_is_fetchones(pg_engine):
    with pg_engine.begin() as conn:
        driver = _driver(conn)
        cursor = postgres.KeptCursor(driver, row_factory=batch._named_row)
        cursor.execute("SELECT x, now() AS t FROM generate_series(1, 2) x", {}, prepare=True)
        assert tuple(batch._fetchone(cursor))[0] == 1
        assert tuple(batch._fetchone(cursor))[0] == 2
        assert batch._fetchone(cursor) is None
        cursor.execute("SELECT 1 WHERE false", {}, prepare=True)
        assert batch._fetchone(cursor) is None
        cursor.execute("INSERT INTO kept (id) VALUES (%(id)s)", {"id": uuid.uuid4()})
        with pytest.raises(psycopg.ProgrammingError, match="didn't produce records"):
            batch._fetchone(cursor)
        cursor.execute("SELECT 1", {})
        cursor.close()
        with pytest.raises(psycopg.InterfaceError, match="closed"):
            batch._fetchone(cursor)


def test_a_timestamptz_reads_the_same_in_another_session_timezone(pg_engine):
    """The kept query's dumpers are the Transformer's, made once: a moment sent with an offset
    is stored as the instant it names, whatever zone it was written in."""
    with pg_engine.begin() as conn:
        cursor = postgres.KeptCursor(_driver(conn))
        moments = [
            datetime(2026, 12, 6, 15, 0, tzinfo=timezone(timedelta(hours=h))) for h in (0, 1, -5)
        ]
        for at in moments:
            cursor.execute("SELECT %(at)s::timestamptz", {"at": at}, prepare=True)
            assert cursor.fetchone()[0] == at


_VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    # Text as PostgreSQL holds it: no NUL and no lone surrogate, which psycopg refuses to send.
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8),
    st.binary(max_size=4),
    st.booleans(),
    st.uuids(),
    st.datetimes(timezones=st.just(UTC)),
    st.builds(Json, st.lists(st.integers(), max_size=3)),
    st.builds(Jsonb, st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
)
_TEXTS = (
    "SELECT %(a)s",  # one placeholder: the values taken by ``map``
    "SELECT %(a)s, %(b)s, %(c)s",  # an itemgetter of the names
    "SELECT %(b)s, %(a)s, %(b)s",  # a name twice, out of order
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.fixed_dictionaries(dict.fromkeys("abc", _VALUES)), min_size=1, max_size=8))
def test_a_kept_query_dumps_what_psycopgs_conversion_dumps_for_any_values(pg_engine, rows):
    """The kept path (values by an itemgetter or by ``map``, the types tuple kept while the
    same) sends each row's parameters, types and formats as a fresh conversion does, the
    values' types changing from one execution to the next; a missing name raises psycopg's
    error and the next row goes on."""
    with pg_engine.connect() as conn:
        cursor = postgres.KeptCursor(_driver(conn))
        cursor._tx = psycopg.adapt.Transformer(cursor)
        for query in _TEXTS:
            for row in rows:
                cursor._reset()
                kept = cursor._convert_query(query, row)
                plain = PostgresQuery(cursor._tx)
                plain.convert(query, row)
                assert _sent(kept) == _sent(plain)
                assert kept.types == plain.types and type(kept.types) is type(plain.types)
            cursor._reset()
            with pytest.raises(psycopg.ProgrammingError) as raised:
                cursor._convert_query(query, {"c": 1})
            with pytest.raises(psycopg.ProgrammingError) as expected:
                PostgresQuery(cursor._tx).convert(query, {"c": 1})
            assert str(raised.value) == str(expected.value)
            assert cursor._kept_queries[query][0] is kept


def test_a_kept_query_keeps_its_types_tuple_while_the_types_are_the_same(pg_engine):
    """The types tuple (half of the prepared-statement cache's key) is the same object while
    the dumped types are the same, and follows them when they change."""
    with pg_engine.connect() as conn:
        cursor = postgres.KeptCursor(_driver(conn))
        cursor._tx = psycopg.adapt.Transformer(cursor)
        row = {"a": 1, "b": "x", "c": Json([1])}
        cursor._reset()
        kept = cursor._convert_query(_TEXTS[1], row)
        first = kept.types
        cursor._reset()
        assert cursor._convert_query(_TEXTS[1], dict(row, b="y")).types is first
        cursor._reset()
        changed = cursor._convert_query(_TEXTS[1], dict(row, a=2**40)).types
        assert changed != first and changed == cursor._tx.types
        assert kept._values is not None and cursor._kept_queries[_TEXTS[1]][0] is kept
