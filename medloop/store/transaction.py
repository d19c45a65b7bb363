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
    same pooled connection starts with an empty one."""
    memo = existing_transaction_memo(conn)
    if memo is None:
        memo = {}
        conn.info[_MEMO] = (conn.get_transaction(), memo)
    return memo


def existing_transaction_memo(conn: Connection) -> dict | None:
    """``transaction_memo(conn)`` if this transaction has made one, else ``None``."""
    held = conn.info.get(_MEMO)
    if held is None or held[0] is not conn.get_transaction():
        return None
    return held[1]


_MEMO = "medloop.transaction_memo"


class WriteOnReadConnection(RuntimeError):
    """A statement that writes was sent on a connection made for reads (``db.reader``)."""
