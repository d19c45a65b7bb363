"""``attestation.stamp`` writes a row's digest out inline (issue #20): the digests it adds to the
command are ``_row_digest``'s, with and without the rows' sent JSON texts, for every attested
table's columns, moments in any zone (the same object again, another), and values orjson
refuses (the ordinary way). ``batch.insert``'s queued rows (``attestation.stamp_queued``, issue
#20 session 14) get the digests and are sent as ``stamp``'s stamped rows would be."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.types.json import Json

from medloop.store import attestation, batch
from medloop.store.transaction import PlainPostgresTransaction, transaction_memo

texts = st.text(max_size=6)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # beyond 64 bits: orjson refuses
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
MOMENTS = (
    datetime(2026, 12, 6, 12, 0, 0, 5, tzinfo=UTC),
    datetime(2026, 12, 6, 13, 0, 0, 5, tzinfo=timezone(timedelta(hours=1))),
    datetime(2026, 12, 6, 12, 0, 0, 5),
)


class _Connection:
    """What ``stamp`` reads of a connection: its dialect's name and its transaction."""

    def __init__(self, dialect: str) -> None:
        self.dialect = SimpleNamespace(name=dialect)
        self._transaction = object()


def _value(column, draw):
    kind = column.type.__class__.__name__
    if kind == "JSON":
        return draw(json_values)
    if kind == "DateTime":
        return draw(st.sampled_from(MOMENTS))
    if kind == "Date":
        return draw(st.sampled_from((date(2026, 12, 6), None)))
    if kind == "Boolean":
        return draw(st.booleans())
    if kind == "Integer":
        return draw(st.integers(min_value=-(2**40), max_value=2**40))
    return draw(st.sampled_from((str(uuid.UUID(int=7)), "text", uuid.UUID(int=9), None)))


@st.composite
def tables_and_rows(draw):
    name = draw(st.sampled_from(sorted(attestation.ATTESTED)))
    table = attestation.metadata.tables[name]
    columns = [c for c in table.columns if c.name != attestation.COMMAND_COLUMN]
    rows = [{c.name: _value(c, draw) for c in columns} for _ in range(draw(st.integers(1, 3)))]
    return table, rows


@settings(max_examples=300)
@given(found=tables_and_rows(), dialect=st.sampled_from(("postgresql", "sqlite")))
def test_stamp_adds_the_digests_row_digest_gives(found, dialect):
    table, rows = found
    encoder = attestation._encoders(dialect)[table.name]
    json_columns = batch._json_columns(table, tuple(rows[0]))
    encoded = [batch._encoded(row, json_columns) if json_columns else None for row in rows]
    conn = _Connection(dialect)
    stamped = attestation.stamp(conn, table, rows, encoded)
    command = transaction_memo(conn)[attestation._OPEN]
    assert command.digests == [attestation._row_digest(encoder, row) for row in rows]
    assert command.digests == [
        attestation._row_digest(encoder, row, texts=texts)
        for row, texts in zip(rows, encoded, strict=True)
    ]
    assert stamped == [{**row, attestation.COMMAND_COLUMN: command.command} for row in rows]


def test_stamp_writes_a_moment_it_wrote_last_and_another_alike():
    table = attestation.metadata.tables["list_change"]
    encoder = attestation._encoders("postgresql")["list_change"]
    for at in (*MOMENTS, MOMENTS[0], MOMENTS[0] + timedelta(seconds=1)):
        row = {"patient_id": "p", "list_version": 1, "at": at, "author": {"a": 1}, "reason": None}
        conn = _Connection("postgresql")
        attestation.stamp(conn, table, [row], [batch._encoded(row, {"author"})])
        digest = transaction_memo(conn)[attestation._OPEN].digests[0]
        assert digest == attestation._row_digest(encoder, row)


class _Queueing(PlainPostgresTransaction):
    """What ``batch.insert`` reads of a ``light.Light`` in a transaction with a queue."""

    def __init__(self) -> None:
        self.dialect = SimpleNamespace(name="postgresql")
        self._transaction = object()
        transaction_memo(self)[batch._PENDING] = batch._Pending()


def _sent(statement):
    sql, rows = statement
    return sql, [
        {k: (("json", v.obj) if isinstance(v, Json) else v) for k, v in row.items()} for row in rows
    ]


@settings(max_examples=300)
@given(found=tables_and_rows())
def test_a_queued_insert_sends_and_digests_what_stamp_gives(found):
    """``batch.insert``'s queued rows of an attested table (``attestation.stamp_queued``):
    the same digests as ``stamp`` adds, and the same statement and rows as made from
    ``stamp``'s stamped rows (keys in order, the command's id, the JSON texts as sent)."""
    table, rows = found
    conn = _Queueing()
    batch.insert(conn, table, rows)
    memo = transaction_memo(conn)
    command = memo[attestation._OPEN]
    (statement,) = memo[batch._PENDING].statements
    json_columns = batch._json_columns(table, tuple(rows[0]))
    encoded = [batch._encoded(row, json_columns) for row in rows]
    other = _Connection("postgresql")
    stamped = attestation.stamp(other, table, rows, encoded)
    assert command.digests == transaction_memo(other)[attestation._OPEN].digests
    stamped = [{**row, attestation.COMMAND_COLUMN: command.command} for row in stamped]
    sql = batch._insert_sql(table, tuple(stamped[0]))[0]
    expected = []
    for row, texts in zip(stamped, encoded, strict=True):
        if texts is None:
            expected.append(batch._adapted(row, json_columns))
        else:
            expected.append({**row, **{c: Json(t) for c, t in texts.items()}})
    assert _sent(statement) == _sent((sql, expected))
    for row, texts, sent in zip(rows, encoded, statement[1], strict=True):
        for c in json_columns:  # what psycopg's dumper writes of each JSON value
            wrapped = sent[c]
            assert wrapped.dumps(wrapped.obj) == (texts[c] if texts else batch._dumps(row[c]))


def test_queued_rows_with_other_keys_than_the_first_take_stamps_way():
    table = attestation.metadata.tables["list_change"]
    first = {"patient_id": "p", "list_version": 1, "at": MOMENTS[0], "author": {"a": 1}}
    rows = [first, {**first, "list_version": 2, "reason": "why"}]
    conn = _Queueing()
    batch.insert(conn, table, rows)
    command = transaction_memo(conn)[attestation._OPEN]
    encoder = attestation._encoders("postgresql")["list_change"]
    assert command.digests == [attestation._row_digest(encoder, row) for row in rows]
    assert not batch._same_keys(rows) and batch._same_keys([first, dict(first)])


def _bound_as_it_was(statement, params, json_params, texts):
    sql, own = batch._compiled(statement)
    if texts:
        adapted = batch._adapted(params, json_params - texts.keys())
        return sql, [{**own, **adapted, **batch._as_sent(texts)}]
    return sql, [{**own, **batch._adapted(params, json_params)}]


def _plain(bound):
    sql, (params,) = bound
    return sql, [
        (k, ("json", v.obj, v.dumps) if isinstance(v, Json) else v) for k, v in params.items()
    ]


@settings(max_examples=300)
@given(
    values=st.dictionaries(st.sampled_from(["a", "b", "response", "status"]), json_values),
    json_params=st.frozensets(st.sampled_from(["a", "response", "x"])),
    sent=st.frozensets(st.sampled_from(["a", "response", "y"])),
)
def test_bound_gives_the_keys_values_and_order_it_gave(values, json_params, sent):
    """``batch._bound`` without ``_adapted`` / ``_as_sent`` (session 14): the same SQL and
    parameters, in the same order, with the statement's own values, for statements with and
    without them (a ``LIMIT``), with texts for some, all or none of the JSON parameters."""
    from sqlalchemy import bindparam, select

    from medloop.store import idempotency

    texts = dict.fromkeys(sent, b'"t"') or None
    table = attestation.metadata.tables["list_change"]
    own = select(table.c.reason).where(table.c.reason == bindparam("a")).limit(3)
    for statement in (idempotency._COMPLETE, own):
        params = {"b_scope": "s", "b_key": "k", "b_patient_id": None, **values}
        got = batch._bound(statement, params, json_params, texts)
        assert _plain(got) == _plain(_bound_as_it_was(statement, params, json_params, texts))
