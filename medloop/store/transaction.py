"""What lives as long as one database transaction: its memo of what it already read or locked,
and the refusal of a write on a connection made for reads.

Its own module so that ``db`` (engines) and ``batch`` (queued appends, installed on every
engine ``db`` makes) both build on it without importing each other.
"""

from __future__ import annotations

from sqlalchemy import Connection


def transaction_memo(conn: Connection) -> dict:
    """A dict that lives as long as ``conn``'s current transaction: what one transaction has
    already read or locked (the patient it audits, the audit chain it holds), so that later
    steps of the same transaction need not ask the database again. A new transaction on the
    same connection starts with an empty one."""
    held = conn.__dict__.get(_MEMO)
    # ``get_transaction()`` is ``_transaction`` on both connections (SQLAlchemy's and
    # ``light.Light``; tests/store/test_transaction.py): read without a Python call, as a
    # prescribe asks some 22 times.
    transaction = conn._transaction
    if held is not None and held[0] is transaction:
        return held[1]
    memo: dict = {}
    conn.__dict__[_MEMO] = (transaction, memo)
    return memo


def existing_transaction_memo(conn: Connection) -> dict | None:
    """``transaction_memo(conn)`` if this transaction has made one, else ``None``."""
    # Kept on the ``Connection`` itself (one per checkout of a pooled connection: a command's
    # or a read's), beside the transaction it belongs to: a prescribe asks for it some 25
    # times, and ``conn.info`` (the pooled connection's dict) is two properties away.
    held = conn.__dict__.get(_MEMO)
    if held is None or held[0] is not conn._transaction:  # ``get_transaction()``
        return None
    return held[1]


_MEMO = "_medloop_transaction_memo"


class PlainPostgresTransaction:
    """Marks a connection (``light.Light``) on PostgreSQL whose ``in_transaction()`` is
    ``_transaction is not None`` and whose ``connection`` is ``_fairy`` while
    ``_fairy.dbapi_connection`` is set (else the property raises): ``batch`` reads those
    attributes instead of calling the method and the property, some 17 calls a prescribe
    (tests/store/test_light_plain.py). Here so that ``batch`` needs no import of ``light``
    (which imports ``db``, which imports ``batch``)."""

    __slots__ = ()


class WriteOnReadConnection(RuntimeError):
    """A statement that writes was sent on a connection made for reads (``db.reader``)."""
