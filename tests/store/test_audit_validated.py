"""``audit._validated_written`` reads the event's fields as attributes (issue #20, session 14):
each required field and each text field of ``_TEXT_FIELDS`` is still checked, with the same
refusal, and ``append``'s values are ``_unchained_values``'."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from medloop.store import audit
from medloop.store.db import writer


def _event(**changes):
    fields = {
        "actor": "9144889",
        "actor_role": "doctor",
        "action": "list.read",
        "organisation": "org",
        "patient": "p",
        "request_id": "r",
        "reason": "why",
        "detail": {"a": [1, "b"]},
    }
    return audit.AuditEvent(**{**fields, **changes})


@pytest.mark.parametrize("name", ["actor", "actor_role", "action"])
@pytest.mark.parametrize("empty", ["", None])
def test_each_required_field_is_asked_for_by_name(name, empty):
    with pytest.raises(audit.InvalidAuditEvent, match=f"an audit event needs {name}$"):
        audit._validated_written(_event(**{name: empty}))


@pytest.mark.parametrize("name", audit._TEXT_FIELDS)
def test_a_lone_surrogate_in_each_text_field_is_refused_by_name(name):
    with pytest.raises(audit.InvalidAuditEvent, match=f"^{name} is not valid Unicode text"):
        audit._validated_written(_event(**{name: "x\ud800"}))


@pytest.mark.parametrize("at", [None, datetime(2026, 12, 6, 13, 0, tzinfo=UTC)])
def test_append_records_the_values_unchained_values_gives(engine, at):
    """``append`` records the values ``_unchained_values`` gives (the moment its own when the
    event names none), on both databases."""
    event = _event(patient=None, occurred_at=at)
    outcome, _written, detail = audit._validated_written(event)
    before = datetime.now(UTC)
    with writer(engine).begin() as conn:
        record = audit.append(conn, event)
    values = audit._unchained_values(event, outcome, detail, record.occurred_at)
    assert list(values) == [
        "chain",
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
    ]
    for name, value in values.items():
        assert getattr(record, name) == value, name
    assert record.occurred_at == at if at is not None else record.occurred_at >= before
