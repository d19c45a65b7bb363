"""``Caller.command_call``: a client's commands are by one ``Actor`` object per principal
(``deps.actor_of``, issue #20), the same value ``Principal.actor`` gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError, model_validator

from interactions.values import MAX_TEXT
from medloop.api import deps
from medloop.api.auth import Principal, Role
from medloop.loop.runner import Call
from tests.built_models import assert_same_model


class _Moment(datetime):
    """A datetime subclass: validated, never built."""


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


# -- the Call built from checked parts (issue #20) ----------------------------------------------

_TEXTS = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="ascii"), max_size=40),
    st.sampled_from(["", "\x00", "\ud800", "é", "x" * MAX_TEXT, "x" * (MAX_TEXT + 1)]),
)
_MOMENTS = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), None])),
    st.sampled_from(
        [
            datetime(2026, 12, 6, 9, 0, tzinfo=UTC),
            datetime(1, 1, 1, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, tzinfo=UTC),
            datetime(2026, 12, 6, 9, 0),
            datetime(2026, 12, 6, 9, 0, tzinfo=UTC),
            _Moment(2026, 12, 6, 9, 0, tzinfo=UTC),
        ]
    ),
)


def _same(built: Any, validated: Any) -> None:
    assert_same_model(built, validated)
    assert built.at.utcoffset() == validated.at.utcoffset()


def _outcome(make: Any) -> Any:
    try:
        return make()
    except ValidationError as error:
        return ("refused", error.errors(include_url=False, include_context=False), str(error))


@settings(max_examples=400, deadline=None)
@given(
    at=_MOMENTS,
    request_id=_TEXTS,
    reason=_TEXTS,
    overrides=st.one_of(
        st.none(),
        st.just({}),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    ),
    override_every=_TEXTS,
    key=_TEXTS,
)
def test_a_call_is_the_call_validating_its_parts_gives(
    at: datetime,
    request_id: str | None,
    reason: str | None,
    overrides: dict[str, str] | None,
    override_every: str | None,
    key: str | None,
) -> None:
    principal = _principal()
    caller = deps.Caller(None, principal, request_id, at)  # type: ignore[arg-type]
    made = _outcome(
        lambda: caller.call(
            reason=reason, overrides=overrides, idempotency_key=key, override_every=override_every
        )
    )
    validated = _outcome(
        lambda: Call(
            actor=principal.actor,
            at=at,
            reason=reason,
            overrides=overrides or {},
            override_every=override_every,
            idempotency_key=key,
            request_id=request_id,
        )
    )
    if isinstance(validated, tuple):
        assert made == validated
    else:
        _same(made, validated)


def test_an_ordinary_call_is_built_not_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert deps._CALL_BUILT
    built: list[Any] = []
    real = deps.constructed
    monkeypatch.setattr(deps, "constructed", lambda cls, **v: built.append(cls) or real(cls, **v))
    call = _call(_principal())  # overrides given: validated
    assert built == []
    caller = deps.Caller(None, _principal(), "request-1", datetime(2026, 12, 6, 9, tzinfo=UTC))  # type: ignore[arg-type]
    call = caller.command_call(SimpleNamespace(reason="why", overrides={}), "k1")
    assert built == [Call]
    assert call.overrides == {} and call.idempotency_key == "k1" and call.reason == "why"


def test_a_call_of_another_shape_is_never_built() -> None:
    class Wider(Call):
        note: str | None = None

    class Checked(Call):
        @model_validator(mode="after")
        def _check(self) -> Any:
            return self

    class Stripped(Call):
        model_config = {**Call.model_config, "str_strip_whitespace": True}

    assert deps._call_built(Call)
    assert not deps._call_built(Wider)
    assert not deps._call_built(Checked)
    assert not deps._call_built(Stripped)


@pytest.mark.parametrize(
    ("at", "day"),
    [
        # winter (UTC+1): 23:30 UTC on Sunday 6 December is 00:30 on Monday in Oslo
        (datetime(2026, 12, 6, 23, 30, tzinfo=UTC), "2026-12-07"),
        (datetime(2026, 12, 6, 22, 30, tzinfo=UTC), "2026-12-06"),
    ],
)
def test_a_requests_day_is_the_oslo_day_of_its_moment(at, day):
    caller = deps.Caller(None, _principal(), "request-1", at)  # type: ignore[arg-type]
    assert caller.day.isoformat() == day
    body = SimpleNamespace(reason=None, overrides={})
    assert caller.command_call(body, None).day == caller.day
