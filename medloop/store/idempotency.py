"""Idempotency keys: a retried request returns the first result and has no second effect.

A client sends an ``Idempotency-Key`` with a POST; the command runs its effect through
:func:`run_once` with a scope (who and which command, e.g. ``"hpr:1234567/dispense"``),
that key and the fingerprint of the request (:func:`request_fingerprint`).  The key's row in
``idempotency_key`` (primary key ``(scope, key)``) is written in the caller's transaction:

1. a claim row (status ``pending``) is inserted, with ``ON CONFLICT DO NOTHING``;
2. if the claim was inserted, ``compute()`` runs and its JSON response is stored with the
   row (status ``completed``) — all inside a savepoint, so a ``compute`` that raises leaves
   neither a claim nor any of its own writes behind, and the key stays free for a retry even
   if the caller goes on to commit (an audit record of the refusal, say);
3. if the key was already there, its stored response is returned without calling
   ``compute`` (``replayed=True``) — or, if it was stored for a different request,
   :class:`IdempotencyKeyReused` is raised.

Concurrent first calls with the same key have exactly one effect because of the primary key.
On PostgreSQL the second insert waits on the first transaction's uncommitted row; when that
commits, the second sees the stored response (READ COMMITTED takes a new snapshot per
statement), and when it rolls back, the second claims the key itself.  On SQLite writers are
serialised by the write transaction (``engine.execution_options(write=True).begin()``), so
the second call starts after the first has committed or rolled back.

The status is ``completed`` in every committed row; ``pending`` is only ever seen by the
transaction that holds the claim, i.e. when ``compute`` re-enters :func:`run_once` with its
own key (:class:`IdempotentRequestInProgress`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    String,
    Table,
    and_,
    bindparam,
    delete,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from fest.schema import metadata
from interactions.values import StrEnum
from medloop.domain._model import id_text
from medloop.store import batch, canonical_json
from medloop.store.columns import UUID_LENGTH
from medloop.store.db import require_write_transaction

MAX_KEY_LENGTH = 200
MAX_SCOPE_LENGTH = 200


class KeyStatus(StrEnum):
    PENDING = "pending"  # claimed by a transaction that is computing the response
    COMPLETED = "completed"


idempotency_key = Table(
    "idempotency_key",
    metadata,
    Column("scope", String(MAX_SCOPE_LENGTH), primary_key=True),
    Column("key", String(MAX_KEY_LENGTH), primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # SHA-256 of the canonical request
    Column("status", String(16), nullable=False),
    Column("response", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The patient whose command claimed the key (migration 0020): the key is claimed in the
    # command's transaction, so it lives on the patient's shard (docs/scaling.md). NULL for a
    # claim that is no patient's (a CDS client token's jti, work of no patient).
    Column("patient_id", String(UUID_LENGTH), nullable=True),
    CheckConstraint("status IN ('pending', 'completed')", name="ck_idempotency_key_status"),
)


class IdempotencyError(Exception):
    """Base of the idempotency errors; each carries the scope and key."""

    def __init__(self, scope: str, key: str, message: str) -> None:
        super().__init__(message)
        self.scope = scope
        self.key = key


class IdempotencyKeyReused(IdempotencyError):
    """The key was first used for a different request (HTTP 422 in the IETF draft)."""

    def __init__(self, scope: str, key: str) -> None:
        message = f"idempotency key {key!r} was already used for a different request in {scope!r}"
        super().__init__(scope, key, message)


class IdempotentRequestInProgress(IdempotencyError):
    """The key is claimed by a request that has not finished (HTTP 409 in the IETF draft)."""

    def __init__(self, scope: str, key: str) -> None:
        message = f"the request with idempotency key {key!r} in {scope!r} is still in progress"
        super().__init__(scope, key, message)


class InvalidIdempotencyKey(IdempotencyError):
    """The key, scope or fingerprint is empty, too long or malformed (HTTP 400)."""


@dataclass(frozen=True)
class IdempotentResult:
    """The response of the request; ``replayed`` when it was stored by an earlier call."""

    response: dict[str, Any]
    replayed: bool


def request_fingerprint(request: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of ``request`` as compact JSON with sorted keys (the canonical JSON,
    ``store.canonical_json``)."""
    return hashlib.sha256(canonical_json.fast_dumps(request)).hexdigest()


def run_once(
    conn: Connection,
    scope: str,
    key: str,
    fingerprint: str,
    compute: Callable[[], Mapping[str, Any]],
    *,
    savepoint: bool = True,
    patient_id: UUID | None = None,
) -> IdempotentResult:
    """Run ``compute`` once per ``(scope, key)`` in the caller's transaction and store its
    response; a repeat with the same ``fingerprint`` gets that response back.

    The claim and ``compute``'s writes run in a savepoint, so that a failing ``compute``
    frees the key and undoes its writes even if the caller goes on and commits. A caller
    whose transaction always ends with the failure (a command: it rolls back) may pass
    ``savepoint=False`` and save the savepoint's two round trips. ``patient_id``: the patient
    the claim is about, stored with the key, and every statement on the key filters by it (its
    shard key, docs/scaling.md); ``None`` for a claim that is no patient's."""
    # ``_check``'s usual case inline (a Python call saved a command); anything else to it.
    if not (
        key
        and len(key) <= MAX_KEY_LENGTH
        and scope
        and len(scope) <= MAX_SCOPE_LENGTH
        and len(fingerprint) == 64
        and not fingerprint.strip("0123456789abcdef")
    ):
        _check(scope, key, fingerprint)
    require_write_transaction(conn, "using an idempotency key")
    pid = None if patient_id is None else id_text(patient_id)
    # (No ``nullcontext()`` without a savepoint: its three Python calls a command.)
    if savepoint:
        with conn.begin_nested():
            done = _claimed(conn, scope, key, fingerprint, compute, pid)
    else:
        done = _claimed(conn, scope, key, fingerprint, compute, pid)
    if done is not None:
        return done
    # A replay (or a refusal): the stored request, asked for only now (building the
    # statement on every call cost a first call more than the claim's own driver work). A key
    # of the same scope claimed for another patient is not found here: the claim above then
    # failed on the primary key (scope, key), and the request is refused as a reuse.
    this_key = and_(idempotency_key.c.scope == scope, idempotency_key.c.key == key)
    patient_key = (
        idempotency_key.c.patient_id.is_(None)
        if pid is None
        else idempotency_key.c.patient_id == pid
    )
    stored = conn.execute(select(idempotency_key).where(this_key, patient_key)).one_or_none()
    if stored is None and pid is not None:
        # A key claimed before migration 0020 whose response named no patient has none.
        stored = conn.execute(
            select(idempotency_key).where(this_key, idempotency_key.c.patient_id.is_(None))
        ).one_or_none()
    if stored is None:
        raise IdempotencyKeyReused(scope, key)
    if stored.fingerprint != fingerprint:
        raise IdempotencyKeyReused(scope, key)
    if stored.status != KeyStatus.COMPLETED:
        raise IdempotentRequestInProgress(scope, key)
    return IdempotentResult(stored.response, replayed=True)


def _claimed(
    conn: Connection,
    scope: str,
    key: str,
    fingerprint: str,
    compute: Callable[[], Mapping[str, Any]],
    pid: str | None,
) -> IdempotentResult | None:
    """``run_once``'s claim of the key, and when claimed, ``compute``'s response stored;
    ``None`` when the key was claimed before."""
    claimed = batch.first_row(
        conn,
        _CLAIM[conn.dialect.name],
        {
            "scope": scope,
            "key": key,
            "fingerprint": fingerprint,
            "status": KeyStatus.PENDING.value,
            "created_at": datetime.now(UTC),
            "patient_id": pid,
        },
    )
    if claimed is None:
        return None
    response, text = _as_stored(scope, compute())
    # Queued with a command's other appends, when it batches them; the response's
    # JSON as written for the round trip (when it is what batch would write).
    batch.execute(
        conn,
        _COMPLETE if pid is not None else _COMPLETE_NO_PATIENT,
        {
            "b_scope": scope,
            "b_key": key,
            "b_patient_id": pid,
            "status": KeyStatus.COMPLETED.value,
            "response": response,
        },
        json_params=_RESPONSE,
        texts=None if text is None else {"response": text},
    )
    return IdempotentResult(response, replayed=False)


_COMPLETE = (
    idempotency_key.update()
    .where(idempotency_key.c.scope == bindparam("b_scope"))
    .where(idempotency_key.c.key == bindparam("b_key"))
    .where(idempotency_key.c.patient_id == bindparam("b_patient_id"))
    .values(status=bindparam("status"), response=bindparam("response"))
)
_COMPLETE_NO_PATIENT = (
    idempotency_key.update()
    .where(idempotency_key.c.scope == bindparam("b_scope"))
    .where(idempotency_key.c.key == bindparam("b_key"))
    .where(idempotency_key.c.patient_id.is_(None))
    .values(status=bindparam("status"), response=bindparam("response"))
)
_RESPONSE = frozenset({"response"})


def _as_stored(scope: str, response: Mapping[str, Any]) -> tuple[dict[str, Any], bytes | None]:
    """What a replay will return: ``response`` after a JSON round trip (tuples become lists);
    and, when orjson wrote the round trip's text, that text: what ``store.batch`` writes of the
    value read back (``canonical_json.round_trip_written``), else ``None``."""
    try:
        # (``round_trip_written`` written out: its text as ``str`` is not needed here.)
        value = dict(response)
        found = canonical_json.written_and_loaded(value)
        if found is not None:
            written, stored = found
        else:
            stored, written = json.loads(canonical_json.dumps(value)), None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the response computed in {scope!r} is not JSON: {exc}") from None
    return stored, written


def _claim(dialect: Any) -> Any:
    return (
        dialect.insert(idempotency_key)
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .values(
            {
                c: bindparam(c)
                for c in ("scope", "key", "fingerprint", "status", "created_at", "patient_id")
            }
        )
        .returning(idempotency_key.c.key)
    )


# The key's claim, made once per dialect.
_CLAIM = {"sqlite": _claim(sqlite), "postgresql": _claim(postgresql)}


def _check(scope: str, key: str, fingerprint: str) -> None:
    problem = None
    if not key or len(key) > MAX_KEY_LENGTH:
        problem = f"an idempotency key has 1 to {MAX_KEY_LENGTH} characters"
    elif not scope or len(scope) > MAX_SCOPE_LENGTH:
        problem = f"an idempotency scope has 1 to {MAX_SCOPE_LENGTH} characters"
    elif len(fingerprint) != 64 or fingerprint.strip("0123456789abcdef"):
        problem = "a request fingerprint is a lower-case hex SHA-256"
    if problem is not None:
        raise InvalidIdempotencyKey(scope, key, problem)


def forget_before(conn: Connection, scope: str, before: datetime) -> None:
    """Delete the keys of ``scope`` claimed before ``before`` (one-time claims kept only as
    long as a replay could be presented: a CDS client token's ``jti``)."""
    conn.execute(
        delete(idempotency_key).where(
            and_(idempotency_key.c.scope == scope, idempotency_key.c.created_at < before)
        )
    )
