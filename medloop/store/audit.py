"""The audit log: an append-only, tamper-evident record of every access to patient data.

Each :class:`AuditEvent` (who, in which role, for which organisation, did what to which
patient, with what outcome and why) becomes one row of ``audit_event``, written in the
caller's transaction so that it commits or rolls back together with the change it records.

Rows form hash chains, one per patient (``chain`` = the patient's national id) and one for
events that concern no patient (``chain`` = :data:`NO_PATIENT`), so that work on different
patients never waits for one another's commits.  Within a chain, sequence numbers start at 1
and have no gaps; each row stores the hash of the row before it in its chain (``prev_hash``;
the first row chains from :data:`GENESIS_HASH`) and its own ``hash``, the SHA-256 (lower-case
hex) of its canonical serialisation: the UTF-8 bytes of the compact JSON object with sorted
keys (at every depth) of every column except ``hash`` —

    action, actor, actor_role, chain, detail, occurred_at, organisation, outcome, patient,
    prev_hash, reason, request_id, seq

— with ``occurred_at`` written as UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` and absent values as
``null`` (see :func:`canonical_record`).  Changing, removing, inserting or reordering a row
therefore breaks its chain at that row, which :func:`verify` reports.  Cutting rows off the
end of a chain leaves a shorter intact chain; only the digest of the chains' heads recorded
elsewhere (``medloop audit verify`` prints it) reveals that.

The migration also installs triggers that refuse ``UPDATE`` and ``DELETE`` (and, on
PostgreSQL, ``TRUNCATE``) of ``audit_event``, so ordinary SQL cannot tamper; the chains
catch tampering that gets past them.  This module has no update or delete function.

Appends to one chain are serialised so that concurrent transactions cannot fork it:

* PostgreSQL: :func:`append` takes a transaction-level advisory lock keyed by the chain and
  only then reads the chain's tail, in a later statement (whose snapshot is taken after the
  lock was granted): one ``INSERT ... SELECT`` that reads the tail, hashes the record in SQL
  and inserts it.  A statement that reads the patient earlier in the transaction may take
  the lock instead (:func:`lock_chain_sql`, :func:`note_chain_locked`): a command's revision
  bump, an audited read's first query.  The lock is held to the end of the caller's
  transaction, so the next appender to that chain reads a tail that has been committed (or
  rolled back).  This needs READ COMMITTED (PostgreSQL's default); under REPEATABLE READ a
  stale tail makes the insert fail on the primary key rather than fork.  A command holds its
  patient's row lock anyway; only appends to the same chain wait.
* SQLite: a write transaction (``engine.execution_options(write=True).begin()``, which
  begins ``IMMEDIATE``) already holds the database's single write lock, so reading the tail
  and inserting after it cannot interleave with another writer.  :func:`append` refuses a
  connection that was not opened that way (:class:`WriteTransactionRequired`).

A read of several patients (a ward's chart) appends one record to each of their chains with
:func:`append_many`: the same records as one :func:`append` per event, in statements that do
not grow with the chains (PostgreSQL: the chains' locks in one statement, taken in ascending
key order so that two such reads cannot deadlock, then one ``INSERT ... SELECT``; SQLite: one
query of the tails and one ``executemany``).

A rolled-back append leaves no gap: the sequence number is the committed tail plus one.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    String,
    Table,
    Text,
    bindparam,
    cast,
    func,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import BIT

from fest.schema import metadata
from interactions.values import StrEnum
from medloop.domain._model import id_text
from medloop.store import attestation, batch, canonical_json
from medloop.store.columns import UUID_LENGTH
from medloop.store.db import (  # noqa: F401  (WriteTransactionRequired: raised from here)
    WriteTransactionRequired,
    require_write_transaction,
)
from medloop.store.transaction import _MEMO, transaction_memo

#: ``prev_hash`` of the first record.
GENESIS_HASH = "0" * 64

#: The chain of events that concern no patient.
NO_PATIENT = "-"

#: The columns the hash covers: all but ``hash``.
HASHED_FIELDS = (
    "chain",
    "seq",
    "occurred_at",
    "actor",
    "actor_role",
    "organisation",
    "patient",
    "action",
    "outcome",
    "request_id",
    "reason",
    "detail",
    "prev_hash",
)

#: Records fetched per query by :func:`verify`.
VERIFY_CHUNK = 5_000

#: Largest page :func:`events_for_patient` returns.
MAX_PAGE = 500


class Outcome(StrEnum):
    """How the audited action ended."""

    OK = "ok"
    REFUSED = "refused"  # not allowed, or a check stopped it
    CONFLICT = "conflict"  # a stale version or a reused idempotency key
    ERROR = "error"


_OUTCOMES: dict[str, Outcome] = {o.value: o for o in Outcome}
_OUTCOME_CLASSES = frozenset({str, Outcome})


audit_event = Table(
    "audit_event",
    metadata,
    Column("chain", String(32), primary_key=True),  # the patient's national id, or NO_PATIENT
    # BIGINT because reads are audited too.
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),  # HPR number, national id or "system"
    Column("actor_role", String(32), nullable=False),
    Column("organisation", String(64), nullable=True),  # none for a patient or the system
    Column("patient", String(32), nullable=True),  # national id; none for non-patient events
    Column("action", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("request_id", String(64), nullable=True),
    Column("reason", Text, nullable=True),  # why: tjenstlig behov (legitimate need), override …
    Column("detail", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # The patient's id (migration 0020), the shard key its chain is co-located by with the
    # patient's rows (docs/scaling.md); NULL for the system chain and for a national id no list
    # is kept for. Not hashed: a copy of what the chain already names, so every chain written
    # before it verifies as it did.
    Column("patient_id", String(UUID_LENGTH), nullable=True),
    CheckConstraint(
        "outcome IN ('ok', 'refused', 'conflict', 'error')", name="ck_audit_event_outcome"
    ),
)


class InvalidAuditEvent(ValueError):
    """An audit event is missing a required field or carries a value that cannot be stored."""


@dataclass(frozen=True)
class AuditEvent:
    """What to record: who (``actor``, ``actor_role``, ``organisation``) did what
    (``action``) to whom (``patient``), how it ended (``outcome``) and why (``reason``).

    ``occurred_at`` defaults to the moment the record is appended.  ``detail`` must be
    JSON (objects, arrays, strings, finite numbers, booleans, null).
    """

    actor: str
    actor_role: str
    action: str
    outcome: Outcome | str = Outcome.OK
    organisation: str | None = None
    patient: str | None = None
    request_id: str | None = None
    reason: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None
    #: The patient's id (``patient_id``, not hashed); found from ``patient`` when not given.
    patient_id: str | None = None


@dataclass(frozen=True)
class AuditRecord:
    """One stored, chained audit record."""

    chain: str
    seq: int
    occurred_at: datetime
    actor: str
    actor_role: str
    organisation: str | None
    patient: str | None
    action: str
    outcome: Outcome
    request_id: str | None
    reason: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {**canonical_record(vars(self)), "hash": self.hash}


Problem = Literal[
    "gap",
    "prev_hash",
    "hash",
    "rows",
    "unclaimed-rows",
    "unattested-row",
    "checkpoint",
    "checkpoint-file",
    "projection",
]

#: Problems :func:`verify` lists by default (it counts them all).
MAX_PROBLEMS = 100


@dataclass(frozen=True)
class BrokenLink:
    """A place where the log or the data it attests does not hold.

    In a chain, at record ``seq`` of ``chain``: ``gap`` (``expected``/``found`` are sequence
    numbers: a row is missing or out of place), ``prev_hash`` (the row does not point at the
    hash of the row before it: a row was removed, inserted, reordered or re-hashed), ``hash``
    (the row's content no longer matches its stored hash: a field was changed), ``rows`` (the
    rows of patient data the record's command appended are not what it committed to: one was
    changed, deleted or added under its command id; ``expected``/``found`` give the number of
    rows and their digest, ``row`` the first row found, if any).

    Outside the chains (``chain`` and ``seq`` are ``None``, ``row`` names the table and the
    primary key): ``unclaimed-rows`` (rows under a command id that no audit record claims)
    and ``unattested-row`` (a row without a command id: added by hand, or written before
    migration 0011); ``record`` (a patient's stored record is not the one the latest audit
    record that wrote it claimed; ``chain``/``seq`` name that record) and ``unattested-record``
    (no audit record claims the patient's record); ``projection`` (a charting's report
    columns — ``late``, ``scanned``, ``scan_skipped``, ``reason``, left out of its row digest —
    differ from its attested record; ``row`` names it).

    Against signed checkpoints (:mod:`medloop.audit_checkpoints`): ``checkpoint`` (record
    ``seq`` of ``chain`` was a head in the checkpoint named by ``row``, with hash
    ``expected``; ``found`` is its hash now, or says that the chain ends before it or is
    gone) and ``checkpoint-file`` (a checkpoint whose signature does not hold, that cannot be
    read, or that does not follow the one before it; ``row`` names it).
    """

    chain: str | None
    seq: int | None
    problem: Problem
    expected: str
    found: str
    row: str | None = None

    def as_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "chain": self.chain,
            "seq": self.seq,
            "problem": self.problem,
            "expected": self.expected,
            "found": self.found,
        }
        if self.row is not None:
            result["row"] = self.row
        return result


@dataclass(frozen=True)
class VerifyResult:
    """``events`` intact records in ``chains`` chains were walked before the first broken
    link (all of them when there is none); ``heads`` is the digest of the last hash of each of
    those chains as far as they were walked intact (:func:`heads_digest`;
    :data:`GENESIS_HASH` when there are none); ``broken`` is the first broken link.

    The walk goes on after a broken link: ``problems`` lists the first ``max_problems`` of
    every problem found in the chains and in the rows they attest (``problem_count`` counts
    them all); ``records`` is every record read, ``rows`` every attested row read, and
    ``chain_heads`` every chain's last record as stored: {chain: (seq, hash)}."""

    events: int
    chains: int
    heads: str
    broken: BrokenLink | None = None
    problems: tuple[BrokenLink, ...] = ()
    problem_count: int = 0
    records: int = 0
    rows: int = 0
    chain_heads: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.broken is None

    def as_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ok": self.ok,
            "events": self.events,
            "chains": self.chains,
            "heads": self.heads,
            "records": self.records,
            "rows": self.rows,
            "problem_count": self.problem_count,
            "problems": [p.as_json() for p in self.problems],
        }
        if self.broken is not None:
            result["broken"] = self.broken.as_json()
        return result


@dataclass(frozen=True)
class PatientAccessPage:
    """Audit records about one patient, newest first; pass ``next_before`` as ``before``
    to get the next (older) page, ``None`` when this is the last."""

    events: list[AuditRecord]
    next_before: int | None


def append(conn: Connection, event: AuditEvent) -> AuditRecord:
    """Chain ``event`` onto its patient's audit chain in the caller's transaction and return
    the record.

    On PostgreSQL the chain's lock is taken first (unless this transaction already holds it:
    :func:`lock_chain_sql`), and then one statement reads the chain's tail, computes the
    record's hash and inserts it; the hash is recomputed here from what the statement used, so
    a difference between the two serialisations cannot go unnoticed.  On SQLite the write
    transaction already holds the lock: the tail is read and the row inserted."""
    postgres = conn.dialect.name == "postgresql"
    if not postgres:  # (it asks only SQLite's connections: a Python call saved on PostgreSQL)
        require_write_transaction(conn, "appending to the audit log")
    outcome, written, detail = _validated_written(event)
    alike = written is not None
    # The transaction's memo taken once (for the claim, the chain's lock and the patient's
    # id: four Python calls an append took it by), read inline when the connection has it.
    held = conn.__dict__.get(_MEMO)
    memo = held[1] if held is not None and held[0] is conn._transaction else transaction_memo(conn)
    claim = attestation.close_in(memo)
    if claim is not None:
        # The rows this transaction appended since the last audit record: the chain commits
        # to them (medloop.store.attestation).
        detail[attestation.DETAIL_KEY] = claim
    chain = event.patient or NO_PATIENT
    if postgres and chain not in memo.get(_LOCKED, ()):
        conn.execute(_LOCK_CHAIN, {"key": chain_lock_key(chain)})
        note_chain_locked(conn, chain)
    # Taken under the lock, so that time order follows chain order on one clock.
    values = _unchained_values(event, outcome, detail, None)
    head, middle = _canonical_parts(values, alike)
    patient_id = event.patient_id
    if not patient_id:
        # ``_patient_id``'s noted id read here; else its look-up.
        noted = (
            None if event.patient is None else memo.get(_PATIENT_IDS, _NO_IDS).get(event.patient)
        )
        patient_id = str(noted) if noted is not None else _patient_id(conn, event.patient)
    if postgres:
        # With a command's queued appends (medloop.store.batch), in their round trip.
        row = batch.execute_returning_one(
            conn,
            _APPEND_PG if patient_id is not None else _APPEND_PG_NO_PATIENT,
            {
                **values,
                "patient_id": patient_id,
                "head": head,
                "middle": middle,
                "genesis": GENESIS_HASH,
            },
            json_params=_JSON_PARAMS,
            texts=None if written is None else _detail_sent(written, claim),
        )
        values["seq"], values["prev_hash"] = row.seq, row.prev_hash
        # ``_hash_of_parts`` written out (a Python call saved an append).
        values["hash"] = hashlib.sha256(
            f"{head}{row.prev_hash}{middle}{row.seq}}}".encode()
        ).hexdigest()
        if row.hash != values["hash"]:
            raise RuntimeError(
                f"audit chain {chain!r} seq {row.seq}: the database hashed the record as "
                f"{row.hash}, this process as {values['hash']}"
            )
    else:
        tail = (
            conn.execute(_TAIL, {"chain": chain, "patient_id": patient_id})
            if patient_id is not None
            else conn.execute(_TAIL_NO_PATIENT, {"chain": chain})
        ).first()
        values["seq"], values["prev_hash"] = (
            (tail.seq + 1, tail.hash) if tail else (1, GENESIS_HASH)
        )
        values["hash"] = _hash_of_parts(head, values["prev_hash"], middle, values["seq"])
        conn.execute(audit_event.insert(), {**values, "patient_id": patient_id})
    # ``AuditRecord(**{**values, "outcome": outcome})`` made without its frozen dataclass
    # ``__init__`` (a Python call and a ``object.__setattr__`` per field): its fields set in
    # their order (tests/store/test_audit_record_made.py).
    record = _new_record(AuditRecord)
    record.__dict__.update(
        {
            "chain": values["chain"],
            "seq": values["seq"],
            "occurred_at": values["occurred_at"],
            "actor": values["actor"],
            "actor_role": values["actor_role"],
            "organisation": values["organisation"],
            "patient": values["patient"],
            "action": values["action"],
            "outcome": outcome,
            "request_id": values["request_id"],
            "reason": values["reason"],
            "detail": values["detail"],
            "prev_hash": values["prev_hash"],
            "hash": values["hash"],
        }
    )
    return record


_new_record = object.__new__


def _detail_sent(written: bytes, claim: dict[str, Any] | None) -> dict[str, bytes] | None:
    """The stored ``detail``'s JSON as ``store.batch`` writes it (``orjson.dumps``), made from
    the text at hand: ``written``, orjson's canonical text of the detail (which is what it
    writes of the detail read back from it: the keys in that text's order), and the claim
    added as the last key (``append``); ``None`` (batch encodes the detail) when the claim is
    not orjson's to write."""
    if claim is None:
        return {"detail": written}
    try:
        member = _CLAIM_KEY + orjson.dumps(claim, option=orjson.OPT_NON_STR_KEYS) + b"}"
    except TypeError:
        return None
    return {"detail": written[:-1] + (b"," + member if len(written) > 2 else member)}


_CLAIM_KEY = orjson.dumps(attestation.DETAIL_KEY) + b":"


def _unchained_values(
    event: AuditEvent, outcome: Outcome, detail: dict[str, Any], now: datetime | None
) -> dict[str, Any]:
    """A record's column values but those its chain's tail decides (``seq``, ``prev_hash``,
    ``hash``); ``now`` when the event names no time (``None``: the clock's time, read here)."""
    occurred_at = event.occurred_at
    return {
        "chain": event.patient or NO_PATIENT,
        "occurred_at": (
            _utc(occurred_at) if occurred_at else now if now is not None else datetime.now(UTC)
        ),
        "actor": event.actor,
        "actor_role": event.actor_role,
        "organisation": event.organisation,
        "patient": event.patient,
        "action": event.action,
        "outcome": outcome.value,
        "request_id": event.request_id,
        "reason": event.reason,
        "detail": detail,
    }


def append_many(conn: Connection, events: Sequence[AuditEvent]) -> list[AuditRecord]:
    """Chain each of ``events`` onto its chain in the caller's transaction and return the
    records, in the order of ``events``: the records :func:`append` would write called once per
    event in that order (the same sequence numbers, previous hashes and hashes; the claim of the
    rows the transaction appended since its last audit record goes to the first record, as the
    first ``append`` would close it), in a number of statements that does not grow with the
    events — for a read of a ward's residents, one record per resident.

    On PostgreSQL one statement takes the locks of every chain this transaction does not hold
    yet, in ascending order of their keys (so two appenders to overlapping sets of chains
    cannot deadlock); then one ``INSERT ... SELECT`` reads every chain's tail (a ``LATERAL``
    subquery per chain, by chain and patient id), hashes the records in SQL and inserts them,
    and each hash is recomputed here, as :func:`append` does. On SQLite one query reads the
    tails and one ``executemany`` inserts the records. A chain named by several events gets
    one such round per occurrence (the second after the first's insert)."""
    require_write_transaction(conn, "appending to the audit log")
    if not events:
        return []
    # All of them before anything is written.
    checked = [_validated(event)[:2] for event in events]
    claim = attestation.close(conn)
    if claim is not None:
        checked[0][1][attestation.DETAIL_KEY] = claim
    chains = [event.patient or NO_PATIENT for event in events]
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        held = transaction_memo(conn).get(_LOCKED, set())
        keys = sorted({chain_lock_key(chain) for chain in chains if chain not in held})
        if keys:
            conn.execute(_LOCK_CHAINS, {"keys": keys})
        for chain in chains:
            note_chain_locked(conn, chain)
    rounds: list[list[int]] = []  # the k-th round holds the k-th event of each chain
    seen: dict[str, int] = {}
    for index, chain in enumerate(chains):
        occurrence = seen[chain] = seen.get(chain, -1) + 1
        if occurrence == len(rounds):
            rounds.append([])
        rounds[occurrence].append(index)
    records: list[AuditRecord | None] = [None] * len(events)
    for indexes in rounds:
        now = datetime.now(UTC)  # under the locks, as append's
        pending = [
            _Chaining(
                index,
                _unchained_values(events[index], *checked[index], now),
                _patient_id_of(conn, events[index]),
            )
            for index in indexes
        ]
        for start in range(0, len(pending), _MANY_CHUNK):
            chunk = pending[start : start + _MANY_CHUNK]
            (_chain_many_pg if postgres else _chain_many_sqlite)(conn, chunk)
        for found in pending:
            records[found.index] = AuditRecord(
                **{**found.values, "outcome": checked[found.index][0]}
            )
    return [record for record in records if record is not None]


def _patient_id_of(conn: Connection, event: AuditEvent) -> str | None:
    found = event.patient_id or _patient_id(conn, event.patient)
    return None if found is None else str(found)


@dataclass
class _Chaining:
    """One record of :func:`append_many` on its way: its place among the events, its column
    values (the chained ones filled in once its chain's tail is known) and its patient's id."""

    index: int
    values: dict[str, Any]
    patient_id: str | None


def _chain_many_pg(conn: Connection, pending: Sequence[_Chaining]) -> None:
    """Insert ``pending`` (one record per chain) after their chains' tails, hashed in SQL, and
    check each hash against this process's."""
    parts = [_canonical_parts(p.values) for p in pending]
    records = [
        {
            **p.values,
            "occurred_at": p.values["occurred_at"].isoformat(),
            "patient_id": p.patient_id,
            "head": head,
            "middle": middle,
        }
        for p, (head, middle) in zip(pending, parts, strict=True)
    ]
    rows = {
        row.chain: row
        for row in conn.execute(
            _APPEND_MANY_PG, {"records": _records_json(records), "genesis": GENESIS_HASH}
        )
    }
    for p, (head, middle) in zip(pending, parts, strict=True):
        row = rows[p.values["chain"]]
        p.values["seq"], p.values["prev_hash"] = row.seq, row.prev_hash
        p.values["hash"] = _hash_of_parts(head, row.prev_hash, middle, row.seq)
        if row.hash != p.values["hash"]:
            raise RuntimeError(
                f"audit chain {row.chain!r} seq {row.seq}: the database hashed the record as "
                f"{row.hash}, this process as {p.values['hash']}"
            )


def _chain_many_sqlite(conn: Connection, pending: Sequence[_Chaining]) -> None:
    """Read the tails of ``pending``'s chains (one record per chain) in one query, chain the
    records after them and insert them in one ``executemany``."""
    tails = {
        row.chain: (row.seq, row.hash)
        for row in conn.execute(
            _tails_sqlite(len(pending)),
            {
                name: value
                for n, p in enumerate(pending)
                for name, value in ((f"c{n}", p.values["chain"]), (f"p{n}", p.patient_id))
            },
        )
    }
    for p in pending:
        seq, prev_hash = tails.get(p.values["chain"], (0, GENESIS_HASH))
        p.values["seq"], p.values["prev_hash"] = seq + 1, prev_hash
        head, middle = _canonical_parts(p.values)
        p.values["hash"] = _hash_of_parts(head, prev_hash, middle, seq + 1)
    conn.execute(audit_event.insert(), [{**p.values, "patient_id": p.patient_id} for p in pending])


def _records_json(records: list[dict[str, Any]]) -> str:
    # As the JSON column's value is written by ``append`` (medloop.store.batch): compact, keys
    # in the dict's order; integers beyond 64 bits, which orjson refuses, through json.
    try:
        return orjson.dumps(records).decode()
    except TypeError:
        return json.dumps(records, ensure_ascii=False, separators=(",", ":"))


_TAILS_SQLITE: dict[int, Any] = {}


def _tails_sqlite(count: int) -> Any:
    """The query of the tails of ``count`` chains (``:c<n>``, patient id ``:p<n>``; ``IS``
    also matches the system chain's NULL): each chain's last record found by the primary key,
    as :data:`_TAIL` finds one."""
    found = _TAILS_SQLITE.get(count)
    if found is None:
        wanted = ", ".join(f"(:c{n}, :p{n})" for n in range(count))
        found = _TAILS_SQLITE[count] = text(
            f"""
            WITH wanted(chain, patient_id) AS (VALUES {wanted})
            SELECT wanted.chain AS chain, a.seq AS seq, a.hash AS hash
            FROM wanted JOIN audit_event AS a ON a.chain = wanted.chain AND a.seq = (
                SELECT b.seq FROM audit_event AS b
                WHERE b.chain = wanted.chain AND b.patient_id IS wanted.patient_id
                ORDER BY b.seq DESC LIMIT 1
            )
            """
        )
    return found


#: Records per statement of :func:`append_many` (SQLite's bound parameters are limited).
_MANY_CHUNK = 500

#: Locks the chains whose keys ``:keys`` lists, in the order listed (``unnest`` yields an
#: array's elements in order, and the lock is taken as each row is produced).
_LOCK_CHAINS = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS BIGINT[])) AS k")

# As _APPEND_PG, for many chains at once: the records come as one JSON array (the columns and
# the two parts of each record's canonical serialisation around what its tail decides), and
# each chain's tail is read by a LATERAL subquery routed by the chain's patient id (IS NOT
# DISTINCT FROM: the system chain's is NULL). The statement runs after the one that took the
# chains' locks, so its snapshot sees their committed tails.
_APPEND_MANY_PG = text(
    """
    INSERT INTO audit_event (chain, seq, occurred_at, actor, actor_role, organisation, patient,
                             action, outcome, request_id, reason, detail, prev_hash, hash,
                             patient_id)
    SELECT r.chain, n.seq, r.occurred_at, r.actor, r.actor_role, r.organisation, r.patient,
           r.action, r.outcome, r.request_id, r.reason, r.detail, n.prev_hash,
           encode(sha256(convert_to(r.head || n.prev_hash || r.middle || n.seq::text || '}',
                                    'UTF8')), 'hex'),
           r.patient_id
    FROM json_to_recordset(CAST(:records AS json)) AS r(
        chain text, occurred_at timestamptz, actor text, actor_role text, organisation text,
        patient text, action text, outcome text, request_id text, reason text, detail json,
        patient_id text, head text, middle text
    )
    CROSS JOIN LATERAL (
        SELECT coalesce(last.seq, 0) + 1 AS seq, coalesce(last.hash, :genesis) AS prev_hash
        FROM (SELECT 1) AS one
        LEFT JOIN LATERAL (
            SELECT seq, hash FROM audit_event
            WHERE chain = r.chain AND patient_id IS NOT DISTINCT FROM r.patient_id
            ORDER BY seq DESC LIMIT 1
        ) AS last ON true
    ) AS n
    RETURNING chain, seq, prev_hash, hash
    """
)


def note_patient(conn: Connection, national_id: str, patient_id: Any) -> None:
    """Record that this transaction read the patient with ``national_id`` (``patient_id``), so
    that its audit records carry the id without asking the database (``append``)."""
    transaction_memo(conn).setdefault(_PATIENT_IDS, {})[str(national_id)] = id_text(patient_id)


def note_locked_patient(
    memo: dict, national_id: str, patient_id: Any, *, chain_locked: bool
) -> None:
    """``note_patient`` and, when ``chain_locked``, ``note_chain_locked`` in one call, on the
    transaction's ``memo`` (``transaction_memo(conn)``) the caller has at hand."""
    if chain_locked:
        memo.setdefault(_LOCKED, set()).add(national_id)
    memo.setdefault(_PATIENT_IDS, {})[str(national_id)] = id_text(patient_id)


def _patient_id(conn: Connection, national_id: str | None) -> str | None:
    """The id of the patient whose chain ``national_id`` is: noted by the transaction, else
    looked up by national id (``None`` when no list is kept for that person)."""
    if national_id is None:
        return None
    noted = transaction_memo(conn).get(_PATIENT_IDS, {}).get(national_id)
    if noted is not None:
        return str(noted)
    patient = metadata.tables["patient"]
    found = conn.execute(
        select(patient.c.id).where(patient.c.national_id == national_id)
    ).scalar_one_or_none()
    if found is not None:
        note_patient(conn, national_id, found)
    return None if found is None else str(found)


_PATIENT_IDS = "audit.patient_ids"
_NO_IDS: dict[str, str] = {}


def lock_chain_sql(national_id: Any) -> Any:
    """A SQL expression (PostgreSQL) that takes the advisory lock of the chain of the patient
    whose national id is ``national_id`` (a column): a statement that reads the patient can
    take the chain's lock in the same round trip. The caller then calls
    :func:`note_chain_locked`."""
    return func.pg_advisory_xact_lock(chain_lock_key_sql(national_id))


def chain_lock_key_sql(chain: Any) -> Any:
    """:func:`chain_lock_key` computed by PostgreSQL for ``chain`` (a column or value)."""
    digest = func.encode(
        func.sha256(func.convert_to(literal(_LOCK_PREFIX) + chain, literal("UTF8"))),
        literal("hex"),
    )
    return cast(cast(literal("x") + func.left(digest, 16), BIT(64)), BigInteger)


def note_chain_locked(conn: Connection, chain: str) -> None:
    """Record that this transaction holds ``chain``'s lock (it is held until it ends)."""
    transaction_memo(conn).setdefault(_LOCKED, set()).add(chain)


_LOCKED = "audit.locked_chains"
_JSON_PARAMS = frozenset({"detail"})
_LOCK_PREFIX = "medloop.audit_event:"
_LOCK_CHAIN = text("SELECT pg_advisory_xact_lock(:key)")
_TAIL = (
    select(audit_event.c.seq, audit_event.c.hash)
    .where(audit_event.c.chain == bindparam("chain"))
    .where(audit_event.c.patient_id == bindparam("patient_id"))
    .order_by(audit_event.c.seq.desc())
    .limit(1)
)
_TAIL_NO_PATIENT = (
    select(audit_event.c.seq, audit_event.c.hash)
    .where(audit_event.c.chain == bindparam("chain"))
    .where(audit_event.c.patient_id.is_(None))
    .order_by(audit_event.c.seq.desc())
    .limit(1)
)
# The statement's snapshot is taken when it starts, after the chain's lock was taken by an
# earlier statement of the transaction: the tail it reads is the committed one.
_APPEND_PG_TEXT = """
    INSERT INTO audit_event (chain, seq, occurred_at, actor, actor_role, organisation, patient,
                             action, outcome, request_id, reason, detail, prev_hash, hash,
                             patient_id)
    SELECT :chain, n.seq, :occurred_at, :actor, :actor_role, :organisation, :patient, :action,
           :outcome, :request_id, :reason, :detail, n.prev_hash,
           encode(sha256(convert_to(:head || n.prev_hash || :middle || n.seq::text || '}',
                                    'UTF8')), 'hex'),
           :patient_id
    FROM (
        SELECT coalesce(last.seq, 0) + 1 AS seq, coalesce(last.hash, :genesis) AS prev_hash
        FROM (SELECT 1) AS one
        LEFT JOIN LATERAL (
            SELECT seq, hash FROM audit_event WHERE {tail} ORDER BY seq DESC LIMIT 1
        ) AS last ON true
    ) AS n
    RETURNING seq, prev_hash, hash
    """


def _append_pg(tail: str) -> Any:
    return text(_APPEND_PG_TEXT.replace("{tail}", tail)).bindparams(
        bindparam("occurred_at", type_=DateTime(timezone=True)),
        bindparam("detail", type_=JSON),
    )


# A patient's chain is read by its patient_id too, so that the statement routes to the
# patient's shard (docs/scaling.md): every record of a chain that names a patient carries the
# patient's id, since a national id is audited only once it is the patient's. The system chain
# (and a national id no list is kept for) has none.
_APPEND_PG = _append_pg("chain = :chain AND patient_id = :patient_id")
_APPEND_PG_NO_PATIENT = _append_pg("chain = :chain AND patient_id IS NULL")


def _canonical_parts(values: Mapping[str, Any], alike: bool = False) -> tuple[str, str]:
    """The canonical serialisation of a record (see :func:`canonical_record`) cut around the
    two values only the chain's tail decides: everything up to ``prev_hash``'s value, and
    everything between it and ``seq``'s value. With sorted keys, ``prev_hash`` comes after
    ``patient`` and before ``reason``; ``seq`` is the last key. ``alike``: orjson wrote the
    record's ``detail`` (but its claim) as the canonical JSON (``_validated``)."""
    fields = canonical_record({**values, "seq": 0, "prev_hash": ""})
    # ``alike``: orjson wrote ``detail``'s canonical JSON (``_validated``); the claim added
    # to it is strings and integers. When the other fields are strings too, orjson
    # writes the same text (canonical_json.dumps_alike); else the standard library's way.
    # (One loop for the two parts and that check, not two comprehensions and a loop: a
    # comprehension is a Python call of its own.)
    before: dict[str, Any] = {}
    between: dict[str, Any] = {}
    text_only = alike
    for k, v in fields.items():
        if text_only and v is not None and v.__class__ is not str and k not in _NOT_TEXT:
            text_only = False
        if k < "prev_hash":
            before[k] = v
        elif "prev_hash" < k < "seq":
            between[k] = v
    write = canonical_json.dumps_alike if text_only else canonical_json.dumps
    head = write(before)[:-1] + ',"prev_hash":"'
    middle = '",' + write(between)[1:-1] + ',"seq":'
    return head, middle


_NOT_TEXT = frozenset({"detail", "seq"})


def _hash_of_parts(head: str, prev_hash: str, middle: str, seq: int) -> str:
    return hashlib.sha256(f"{head}{prev_hash}{middle}{seq}}}".encode()).hexdigest()


def chain_lock_key(chain: str) -> int:
    """Key of the PostgreSQL advisory lock that serialises appends to ``chain``: the first
    eight bytes of SHA-256("medloop.audit_event:" + chain), as a signed 64-bit integer."""
    digest = hashlib.sha256(f"{_LOCK_PREFIX}{chain}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def heads_digest(heads: Mapping[str, str]) -> str:
    """SHA-256 of the canonical JSON of {chain: hash of its last record}; the digest of no
    chains is :data:`GENESIS_HASH`."""
    if not heads:
        return GENESIS_HASH
    return hashlib.sha256(canonical_json.dumps(dict(heads)).encode()).hexdigest()


class _Problems:
    """The problems found so far: the first ``limit`` kept, all counted."""

    def __init__(self, limit: int) -> None:
        self.limit, self.kept, self.count = limit, [], 0

    def add(self, problem: BrokenLink) -> None:
        self.count += 1
        if len(self.kept) < self.limit:
            self.kept.append(problem)


def verify(
    conn: Connection,
    chunk: int = VERIFY_CHUNK,
    *,
    max_problems: int = MAX_PROBLEMS,
    rows: bool = True,
    anchors: Mapping[tuple[str, int], Sequence[tuple[str, str]]] | None = None,
    checkpoint_problems: Sequence[str] = (),
) -> VerifyResult:
    """Walk every chain in sequence order, then every row of patient data against the audit
    record that claims it (:mod:`medloop.store.attestation`), and report every problem (the
    first ``max_problems`` of them, all counted).

    Reads ``chunk`` records per query and streams the data tables, so memory grows with the
    number of chains and of commands that appended rows, not with the rows.  Run it in one
    transaction for a snapshot; appends that commit meanwhile only extend the chains.

    ``rows=False`` checks the chains only. ``anchors`` ((chain, seq) -> [(hash, checkpoint
    name)], :func:`medloop.audit_checkpoints.anchors_of`) are records that must still be there
    with those hashes; ``checkpoint_problems`` are reported as ``checkpoint-file`` problems.
    """
    if max_problems < 1:
        raise ValueError(f"max_problems must be at least 1, not {max_problems}")
    problems = _Problems(max_problems)
    for note in checkpoint_problems:
        problems.add(
            BrokenLink(
                None,
                None,
                "checkpoint-file",
                "a signed checkpoint",
                note.partition(": ")[2] or note,
                note.partition(": ")[0],
            )
        )
    anchors = anchors or {}
    heads: dict[str, tuple[int, str]] = {}
    intact: tuple[int, dict[str, str]] | None = None  # events and heads before the first break
    claims: dict[str, tuple[str, int, int, str]] = {}  # command -> chain, seq, rows, digest
    record_claims: dict[str, tuple[str, int, str]] = {}  # patient id -> chain, seq, digest
    chain, expected_seq, last_hash, records = None, 1, GENESIS_HASH, 0
    # Raw column values, not AuditRecords: a tampered row must reach the hash comparison
    # whatever it holds.
    for row in _rows_in_order(conn, chunk):
        if row["chain"] != chain:
            chain, expected_seq, last_hash = row["chain"], 1, GENESIS_HASH
        broken = _broken_link(row, expected_seq, last_hash)
        if broken is not None:
            problems.add(broken)
            if intact is None:
                intact = (records, {c: h for c, (_s, h) in heads.items()})
        # Go on from the row as stored: each later problem is reported where it is.
        expected_seq, last_hash, records = row["seq"] + 1, row["hash"], records + 1
        heads[chain] = (row["seq"], last_hash)
        for pinned, name in anchors.get((chain, row["seq"]), ()):
            if pinned != row["hash"]:
                problems.add(BrokenLink(chain, row["seq"], "checkpoint", pinned, row["hash"], name))
        detail = row["detail"]
        claim = detail.get(attestation.DETAIL_KEY) if isinstance(detail, dict) else None
        if isinstance(claim, dict) and isinstance(claim.get("command"), str):
            claims[claim["command"]] = (chain, row["seq"], claim.get("rows"), claim.get("digest"))
            if isinstance(claim.get("records"), dict):
                # Chains are walked in sequence order: the latest claim of a record wins.
                for patient_id, digest in claim["records"].items():
                    record_claims[patient_id] = (chain, row["seq"], digest)
    for (chain, seq), pins in sorted(anchors.items()):
        if heads.get(chain, (0, ""))[0] >= seq:
            continue  # met during the walk
        found = f"the chain ends at {heads[chain][0]}" if chain in heads else "no such chain"
        for pinned, name in pins:
            problems.add(BrokenLink(chain, seq, "checkpoint", pinned, found, name))
    if (anchors or checkpoint_problems) and intact is None and problems.count:
        intact = (records, {c: h for c, (_s, h) in heads.items()})
    if rows:
        rows = _verify_rows(conn, claims, problems)
        _verify_records(conn, record_claims, problems)
        _verify_projections(conn, problems)
    else:
        rows = 0
    if intact is None and problems.count:
        intact = (records, {c: h for c, (_s, h) in heads.items()})
    if intact is None:
        events, intact_heads = records, {c: h for c, (_s, h) in heads.items()}
    else:
        events, intact_heads = intact
    return VerifyResult(
        events,
        len(intact_heads),
        heads_digest(intact_heads),
        problems.kept[0] if problems.kept else None,
        tuple(problems.kept),
        problems.count,
        records,
        rows,
        heads,
    )


def _verify_projections(conn: Connection, problems: _Problems) -> None:
    """Columns copied out of an attested record and left out of the row digest (a charting's
    report columns, migration 0017) must still say what the record says."""
    from medloop.store.administration import projection_mismatches  # noqa: PLC0415

    count, ids = projection_mismatches(conn, problems.limit)
    for found in ids:
        problems.add(
            BrokenLink(
                None,
                None,
                "projection",
                "late, scanned, scan_skipped and reason as the record says",
                "columns that differ from the record",
                f"administration {found}",
            )
        )
    problems.count += count - len(ids)  # beyond the limit: counted, not listed


def _verify_records(
    conn: Connection, claims: dict[str, tuple[str, int, str]], problems: _Problems
) -> None:
    """Check every patient's stored record against the latest audit record that claimed it
    (the registration, or the last command that recorded a fact)."""
    for patient_id, digest in attestation.stored_records(conn):
        claim = claims.get(patient_id)
        if claim is None:
            problems.add(
                BrokenLink(
                    None,
                    None,
                    "unattested-record",
                    "an audit record claiming the record",
                    digest,
                    f"patient {patient_id}",
                )
            )
        elif claim[2] != digest:
            problems.add(
                BrokenLink(
                    claim[0],
                    claim[1],
                    "record",
                    claim[2],
                    digest,
                    f"patient {patient_id}",
                )
            )


def _verify_rows(
    conn: Connection, claims: dict[str, tuple[str, int, int, str]], problems: _Problems
) -> int:
    """Check every attested row against the claims of the audit records; returns the number of
    rows read."""
    rows = 0
    for stored in attestation.stored_commands(conn):
        rows += stored.rows
        claim = claims.pop(stored.command, None)
        found = f"{stored.rows} rows, digest {stored.digest}"
        if claim is None:
            problems.add(
                BrokenLink(
                    None,
                    None,
                    "unclaimed-rows",
                    f"an audit record claiming command {stored.command}",
                    found,
                    stored.first,
                )
            )
        elif (claim[2], claim[3]) != (stored.rows, stored.digest):
            problems.add(
                BrokenLink(
                    claim[0],
                    claim[1],
                    "rows",
                    f"{claim[2]} rows, digest {claim[3]}",
                    found,
                    stored.first,
                )
            )
    for chain, seq, count, digest in claims.values():  # claimed, but no row is left
        if count != 0:
            problems.add(
                BrokenLink(
                    chain,
                    seq,
                    "rows",
                    f"{count} rows, digest {digest}",
                    "0 rows",
                )
            )
    unstamped, first = attestation.unstamped_rows(conn, problems.limit)
    for found_row in first:
        problems.add(
            BrokenLink(
                None,
                None,
                "unattested-row",
                "a command id",
                "none",
                f"{found_row.table} {found_row.key}",
            )
        )
    problems.count += unstamped - len(first)
    return rows + unstamped


def _broken_link(row: Mapping[str, Any], expected_seq: int, last_hash: str) -> BrokenLink | None:
    seq, chain = row["seq"], row["chain"]
    if seq != expected_seq:
        return BrokenLink(chain, seq, "gap", str(expected_seq), str(seq))
    if row["prev_hash"] != last_hash:
        return BrokenLink(chain, seq, "prev_hash", last_hash, row["prev_hash"])
    recomputed = record_hash(row)
    if recomputed != row["hash"]:
        return BrokenLink(chain, seq, "hash", recomputed, row["hash"])
    return None


def events_for_patient(
    conn: Connection,
    patient: str,
    *,
    limit: int = 50,
    before: int | None = None,
    patient_id: Any = None,
) -> PatientAccessPage:
    """Who did what with ``patient``'s data (actor, role, organisation, action, when, why),
    newest first, ``limit`` records per page; ``before`` is the previous page's
    ``next_before``. ``patient_id``, the patient's id, routes the read by patient."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
    query = select(audit_event).where(audit_event.c.chain == patient)
    if patient_id is not None:
        query = query.where(audit_event.c.patient_id == str(patient_id))
    if before is not None:
        query = query.where(audit_event.c.seq < before)
    rows = conn.execute(query.order_by(audit_event.c.seq.desc()).limit(limit + 1)).all()
    events = [_record(row) for row in rows[:limit]]
    return PatientAccessPage(events, events[-1].seq if len(rows) > limit else None)


def canonical_record(values: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed fields (every column but ``hash``) of a record's column ``values`` as JSON
    values."""
    # (``itemgetter`` and ``zip``, not a comprehension: no Python call; the same keys in order.)
    fields = dict(zip(HASHED_FIELDS, _HASHED_VALUES(values), strict=True))
    occurred_at = fields["occurred_at"]
    if occurred_at.tzinfo is not None:
        occurred_at = occurred_at.astimezone(UTC).replace(tzinfo=None)
    fields["occurred_at"] = occurred_at.isoformat(timespec="microseconds") + "Z"
    fields["outcome"] = str(fields["outcome"])
    return fields


_HASHED_VALUES = operator.itemgetter(*HASHED_FIELDS)


def record_hash(values: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical serialisation of a record's column ``values``."""
    return hashlib.sha256(canonical_json.dumps(canonical_record(values)).encode()).hexdigest()


def _validated(event: AuditEvent) -> tuple[Outcome, dict[str, Any], bool]:
    """The event's outcome and its detail as stored (read back from its canonical JSON), and
    whether orjson wrote that JSON (``canonical_json.round_trip``: ``_canonical_parts`` may
    write the record with it)."""
    outcome, written, detail = _validated_written(event)
    return outcome, detail, written is not None


def _validated_written(event: AuditEvent) -> tuple[Outcome, bytes | None, dict[str, Any]]:
    """``_validated`` with, in place of ``alike``, orjson's canonical JSON of the detail
    (UTF-8) when orjson wrote it (``canonical_json.round_trip_written``), else ``None``."""
    # (The three read as attributes, not by ``getattr`` in a loop: the same checks in order.)
    if not event.actor:
        raise InvalidAuditEvent("an audit event needs actor")
    if not event.actor_role:
        raise InvalidAuditEvent("an audit event needs actor_role")
    if not event.action:
        raise InvalidAuditEvent("an audit event needs action")
    given = event.outcome
    # A member or its text found by a dict look-up (``Outcome(...)`` is two Python calls);
    # anything else, and a refusal, the enum's own way.
    outcome = _OUTCOMES.get(given) if given.__class__ in _OUTCOME_CLASSES else None
    try:
        if outcome is None:
            outcome = Outcome(given)
    except ValueError:
        allowed = ", ".join(o.value for o in Outcome)
        raise InvalidAuditEvent(f"outcome {event.outcome!r} is not one of {allowed}") from None
    if attestation.DETAIL_KEY in event.detail:
        raise InvalidAuditEvent(
            f"detail key {attestation.DETAIL_KEY!r} is reserved for the rows the command appended"
        )
    if event.occurred_at is not None and event.occurred_at.tzinfo is None:
        raise InvalidAuditEvent("occurred_at must carry a time zone")
    try:
        # Store exactly what is hashed: the JSON round trip turns tuples into lists and
        # non-string keys into strings, as reading the row back would.
        # (``canonical_json.round_trip_written`` written out: orjson's text, when it is the
        # canonical one, is UTF-8 already (orjson refuses a lone surrogate), taken as it is
        # instead of decoded here to be encoded again below.)
        value = dict(event.detail)
        found = canonical_json.written_and_loaded(value)
        if found is not None:
            written, detail = found
            encoded = None
        else:
            encoded = canonical_json.dumps(value)
            detail, written = json.loads(encoded), None
    except (TypeError, ValueError) as exc:
        raise InvalidAuditEvent(f"detail is not JSON: {exc}") from None
    try:
        # Hashing encodes to UTF-8: a lone surrogate would fail there, after the change.
        # (``encoded`` is the detail's canonical JSON: the text the hash encodes.)
        if encoded is not None:
            encoded.encode()
        # (The fields of ``_TEXT_FIELDS`` read as attributes: the dict of them is made only for
        # the refusal.)
        for value in (
            event.actor,
            event.actor_role,
            event.organisation,
            event.patient,
            event.action,
            event.request_id,
            event.reason,
        ):
            if isinstance(value, str):
                value.encode()
    except UnicodeEncodeError:
        texts = {name: getattr(event, name) for name in _TEXT_FIELDS}
        unencodable = [
            n
            for n, v in {**texts, "detail": canonical_json.dumps(detail)}.items()
            if v is not None and not _encodes(v)
        ]
        raise InvalidAuditEvent(
            f"{', '.join(unencodable)} is not valid Unicode text (a lone surrogate)"
        ) from None
    return outcome, written, detail


_TEXT_FIELDS = ("actor", "actor_role", "organisation", "patient", "action", "request_id", "reason")


def _encodes(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


_VERIFIED_COLUMNS = (*HASHED_FIELDS, "hash")


def _rows_in_order(conn: Connection, chunk: int) -> Iterator[dict[str, Any]]:
    # ``detail`` as text, parsed here: SQLAlchemy's JSON result handling costs more than
    # the hashing.
    columns = [
        cast(audit_event.c.detail, Text) if name == "detail" else audit_event.c[name]
        for name in _VERIFIED_COLUMNS
    ]
    order = (audit_event.c.chain, audit_event.c.seq)
    after: tuple[str, int] | None = None
    while True:
        query = select(*columns)
        if after is not None:
            query = query.where(tuple_(*order) > tuple_(literal(after[0]), literal(after[1])))
        rows = conn.execute(query.order_by(*order).limit(chunk)).all()
        for row in rows:
            values = dict(zip(_VERIFIED_COLUMNS, row, strict=True))
            values["detail"] = _json_or_text(values["detail"])
            yield values
        if len(rows) < chunk:
            return
        after = (rows[-1].chain, rows[-1].seq)


def _json_or_text(stored: str) -> Any:
    # Text that is not JSON (SQLite does not check) hashes as a string: a broken link.
    try:
        return json.loads(stored)
    except ValueError:
        return stored


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        chain=row.chain,
        seq=row.seq,
        occurred_at=_utc(row.occurred_at),
        actor=row.actor,
        actor_role=row.actor_role,
        organisation=row.organisation,
        patient=row.patient,
        action=row.action,
        outcome=Outcome(row.outcome),
        request_id=row.request_id,
        reason=row.reason,
        detail=row.detail,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _utc(moment: datetime) -> datetime:
    # SQLite hands back the naive UTC wall-clock time that was stored.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
