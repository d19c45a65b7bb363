"""``Caller.command_call``: a client's commands are by one ``Actor`` object per principal
(``deps.actor_of``, issue #20), the same value ``Principal.actor`` gives."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from medloop.api import deps
from medloop.api.auth import Principal, Role


def _principal(subject: str = "431002737") -> Principal:
    return Principal(
        role=Role.GP,
        subject=subject,
        organisation="8095068",
        name="Anja Fos Eidsvik",
        organisation_name="Fjordbyen legekontor",
    )


def _call(principal: Principal, key: str | None = None):
    caller = deps.Caller(None, principal, "request-1", datetime(2026, 12, 6, 9, 0, tzinfo=UTC))  # type: ignore[arg-type]
    return caller.command_call(SimpleNamespace(reason="why", overrides={"a": "b"}), key)


def test_one_principals_commands_share_one_actor_equal_to_its_own() -> None:
    principal = _principal()
    first, second = _call(principal, "k1"), _call(principal, "k2")
    assert first.actor is second.actor
    assert first.actor == principal.actor
    assert first.actor.model_dump() == principal.actor.model_dump()
    assert (first.reason, first.overrides, first.idempotency_key) == ("why", {"a": "b"}, "k1")
    assert second.request_id == "request-1"


def test_another_principal_gets_its_own_actor() -> None:
    one, other = _principal(), _principal("5551234")
    assert _call(one).actor.personnel.hpr_number == "431002737"
    assert _call(other).actor.personnel.hpr_number == "5551234"
    # An equal principal that is another object (another token) is made its own, equal, actor.
    twin = _principal()
    assert _call(twin).actor == _call(one).actor


def test_a_principal_without_a_valid_actor_is_refused_every_time() -> None:
    bad = _principal("not-digits")
    for _ in range(2):
        with pytest.raises(ValidationError):
            _call(bad)


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deps, "_ACTORS", {})
    monkeypatch.setattr(deps, "_ACTORS_KEPT", 3)
    kept = [_principal(str(1000 + n)) for n in range(7)]
    for principal in kept:
        assert _call(principal).actor.personnel.hpr_number == principal.subject
        assert len(deps._ACTORS) <= 3
