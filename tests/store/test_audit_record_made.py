"""``audit.append`` makes the record it returns without ``AuditRecord``'s frozen dataclass
``__init__`` (issue #20): it is the record the constructor makes of the same values — equal, the
same fields in the same order (``vars``), as frozen, its ``as_json`` the same — and it is the
stored row."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from medloop.store.audit import AuditRecord, Outcome, append, audit_event
from tests.store.helpers import an_event, writer


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"outcome": Outcome.REFUSED, "reason": "why", "detail": {"a": [1, 2], "b": None}},
        {"outcome": "conflict", "organisation": None, "request_id": None},
        {"patient": None, "occurred_at": datetime(2026, 12, 6, 12, 0, tzinfo=UTC)},
    ],
)
def test_the_record_append_returns_is_the_one_its_constructor_makes(engine, fields):
    with writer(engine).begin() as conn:
        records = [append(conn, an_event(n, **fields)) for n in range(2)]
    with engine.connect() as conn:
        rows = (
            conn.execute(select(audit_event).order_by(audit_event.c.chain, audit_event.c.seq))
            .mappings()
            .all()
        )
    names = [f.name for f in dataclasses.fields(AuditRecord)]
    for record in records:
        made = AuditRecord(**{name: getattr(record, name) for name in names})
        assert record == made
        assert list(vars(record)) == list(vars(made)) == names
        assert vars(record) == vars(made)
        assert record.as_json() == made.as_json()
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.hash = "changed"  # type: ignore[misc]
        assert type(record.outcome) is Outcome
    stored = {(row["chain"], row["seq"]): row for row in rows}
    for record in records:
        row = stored[(record.chain, record.seq)]
        assert (row["hash"], row["prev_hash"], row["action"]) == (
            record.hash,
            record.prev_hash,
            record.action,
        )
