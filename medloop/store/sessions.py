"""Web page sessions (``medloop.pages``): who is signed in, kept server-side.

The browser holds only a random session id (32 bytes, URL-safe) in an HttpOnly cookie; the
table keeps its SHA-256 digest (a copy of the table cannot be replayed as cookies), the claims
the session carries — exactly those of an API bearer token (``sub``, ``role``, ``org``,
``org_name``, ``name``, ``ward_admin``: ``medloop.api.auth.principal_from_claims`` reads them)
—, the session's CSRF token, and when it was created and expires.

- ``start`` creates a NEW session at every sign-in (a session id is never reused or carried
  over from before the sign-in: no session fixation) and deletes the expired ones.
- ``keep`` keeps a row under an id the caller drew (random and secret: an OAuth ``state``), for
  a pending request that is found again by what comes back (``medloop.pages.witness``: each
  witness step-up by its own ``state``); never a sign-in session, whose id ``start`` draws.
- ``find`` answers the live session of an id, or ``None`` (unknown, signed out, expired).
- ``end`` deletes the session (sign-out): the cookie is worthless from then on, in every
  process, because every request looks the session up.
- ``take`` deletes and answers a live row in the caller's transaction, once: a one-use row (a
  witness's grant for one charting, ``medloop.pages.nurse``) is consumed by the charting
  command's own transaction, so two chartings cannot both use it.
- ``take_alone`` is ``take`` in a transaction of its own (an OIDC callback's pending request).
- ``digest`` names a session without its id (a grant is bound to the session it was made for).

No patient data lives here, so these writes are not commands (``medloop.loop``) and carry no
audit record of a patient; the sign-in itself is logged by the pages.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)

from fest.schema import metadata
from medloop.store.db import reader, writer

page_session = Table(
    "page_session",
    metadata,
    Column("id_digest", String(64), primary_key=True),  # SHA-256 hex of the cookie's id
    Column("claims", Text, nullable=False),  # JSON: the claims of an API bearer token
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)


@dataclass(frozen=True)
class PageSession:
    """A live session: its claims, its CSRF token and when it ends."""

    claims: dict[str, Any]
    csrf_token: str
    created_at: datetime
    expires_at: datetime


def digest(session_id: str) -> str:
    """The SHA-256 hex the table keys a session id by."""
    return _digest(session_id)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def start(
    engine: Engine, claims: dict[str, Any], *, now: datetime, expires_at: datetime
) -> tuple[str, PageSession]:
    """A new session for ``claims``: (the id for the cookie, the session)."""
    session_id = secrets.token_urlsafe(32)
    return session_id, keep(engine, session_id, claims, now=now, expires_at=expires_at)


def keep(
    engine: Engine, key: str, claims: dict[str, Any], *, now: datetime, expires_at: datetime
) -> PageSession:
    """A new row for ``claims`` under ``key``, an id the caller drew at random (``find``,
    ``end`` and ``take`` name it by that key); the expired rows are deleted."""
    if not key or len(key) > 200:
        raise ValueError("a page session key is 1 to 200 characters")
    session = PageSession(dict(claims), secrets.token_urlsafe(32), now, expires_at)
    with writer(engine).begin() as conn:
        conn.execute(delete(page_session).where(page_session.c.expires_at <= now))
        conn.execute(
            insert(page_session).values(
                id_digest=_digest(key),
                claims=json.dumps(session.claims, sort_keys=True),
                csrf_token=session.csrf_token,
                created_at=now,
                expires_at=expires_at,
            )
        )
    return session


def find(engine: Engine, session_id: str | None, *, now: datetime) -> PageSession | None:
    """The live session of ``session_id``; ``None`` when there is none (or it expired)."""
    if not session_id or len(session_id) > 200:
        return None
    with reader(engine).connect() as conn:
        row = conn.execute(
            select(page_session).where(page_session.c.id_digest == _digest(session_id))
        ).first()
    if row is None:
        return None
    expires_at = _aware(row.expires_at)
    if expires_at <= now:
        return None
    return PageSession(json.loads(row.claims), row.csrf_token, _aware(row.created_at), expires_at)


def end(engine: Engine, session_id: str | None) -> None:
    """Sign out: the session of ``session_id`` no longer exists (nothing when there is none)."""
    if not session_id or len(session_id) > 200:
        return
    with writer(engine).begin() as conn:
        conn.execute(delete(page_session).where(page_session.c.id_digest == _digest(session_id)))


def take(conn: Connection, session_id: str | None, *, now: datetime) -> PageSession | None:
    """Delete the live row of ``session_id`` in ``conn``'s transaction and answer it; ``None``
    when there is none (unknown, expired, or already taken: only one caller's delete counts)."""
    if not session_id or len(session_id) > 200:
        return None
    key = _digest(session_id)
    row = conn.execute(select(page_session).where(page_session.c.id_digest == key)).first()
    if row is None or _aware(row.expires_at) <= now:
        return None
    deleted = conn.execute(delete(page_session).where(page_session.c.id_digest == key))
    if deleted.rowcount != 1:
        return None
    return PageSession(
        json.loads(row.claims), row.csrf_token, _aware(row.created_at), _aware(row.expires_at)
    )


def take_alone(engine: Engine, session_id: str | None, *, now: datetime) -> PageSession | None:
    """``take`` in a transaction of its own (a pending OIDC request, used once: of two callbacks
    with the same answer, one finds it)."""
    with writer(engine).begin() as conn:
        return take(conn, session_id, now=now)


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; they were stored in UTC."""
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
