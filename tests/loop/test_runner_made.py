"""The frozen dataclass values a command makes on its hot path without their generated
``__init__`` (issue #20: ``object.__new__`` and the fields put in ``__dict__``) are the values
their constructors make: ``Context``, ``Effect``, ``Screening`` and ``CommandResult`` in the
runner and in prescribe, the audit record's ``AuditEvent``, and ``store.patients.Locked`` —
equal, every field present in the class's order (a field added to a class and not to its
fast path shows here), frozen, and with the constructor's defaults. On both databases, with
and without alerts, with and without an idempotency key."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest

from medloop.loop import runner
from medloop.loop.prescribe import prescribe_decision
from medloop.store import audit, light
from medloop.store.patients import Locked, lock_for_command
from tests.loop.helpers import KLARITROMYCIN, SIMVASTATIN_28, call, demo_world, prescription_order


def _as_constructed(value: Any) -> Any:
    """``value`` made again by its class's constructor from its fields; checks they agree."""
    cls = type(value)
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    names = [f.name for f in dataclasses.fields(cls)]
    assert list(vars(value)) == names  # every field, in the class's order, nothing else
    made = cls(**{name: vars(value)[name] for name in names})
    assert value == made and repr(value) == repr(made)
    assert list(vars(made)) == list(vars(value))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, names[0], None)
    return made


def _run_prescribe(engine, monkeypatch, drug: str, based_on: int, patient_id, **call_fields):
    seen: dict[str, list[Any]] = {"contexts": [], "effects": [], "events": []}
    appended = audit.append

    def append(conn, event):
        seen["events"].append(event)
        return appended(conn, event)

    monkeypatch.setattr(audit, "append", append)
    order = prescription_order(drug)
    the_call = call(**call_fields)
    inner = prescribe_decision(order, the_call)

    def decide(ctx):
        seen["contexts"].append(ctx)
        effect = inner(ctx)
        seen["effects"].append(effect)
        return effect

    result = runner.run_command(
        engine,
        "prescribe",
        patient_id,
        the_call,
        decide,
        based_on=based_on,
        request=order.__pydantic_serializer__.to_python(order, mode="json"),
    )
    monkeypatch.setattr(audit, "append", appended)
    return result, seen


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "idempotency-key"])
def test_a_commands_values_made_lean_equal_their_constructors(engine, monkeypatch, keyed):
    patient_id = demo_world(engine)
    for based_on, drug, fields in (
        (0, SIMVASTATIN_28, {}),
        # Klaritromycin with simvastatin raises an alert that needs an override.
        (1, KLARITROMYCIN, {"overrides": {}, "override_every": "known and accepted"}),
    ):
        if keyed:
            fields = {**fields, "idempotency_key": str(uuid.uuid4())}
        result, seen = _run_prescribe(engine, monkeypatch, drug, based_on, patient_id, **fields)
        _as_constructed(result)
        assert result.list_version == based_on + 1 and not result.replayed
        (context,) = seen["contexts"]
        made = _as_constructed(context)
        assert made.call is context.call and made.state is context.state
        (effect,) = seen["effects"]
        _as_constructed(effect)
        _as_constructed(effect.screening)
        # The fields prescribe leaves alone hold the constructor's defaults.
        assert effect == runner.Effect(
            list_change=effect.list_change,
            prescription_versions=effect.prescription_versions,
            screening=effect.screening,
            response=effect.response,
        )
        assert effect.handled == {} and effect.handled is not runner.Effect().handled
        (event,) = seen["events"]
        _as_constructed(event)
        assert event == runner._event(
            event.action, call(**fields), event.patient, audit.Outcome.OK, event.detail
        )
        assert event.outcome is audit.Outcome.OK
    overriding = [a.key for a in result.alerts if a.requires_override]
    assert overriding and result.response["overridden"] == sorted(overriding)


def test_a_locked_patient_made_lean_equals_its_constructor(engine):
    patient_id = demo_world(engine)
    with light.begin(engine) as conn:
        locked = lock_for_command(conn, patient_id)
        assert type(locked) is Locked
        made = _as_constructed(locked)  # before ``record`` is asked (a cached property)
        assert locked.record == made.record
        assert locked.record_is_text is True and type(locked.ever_admitted) is bool
        assert lock_for_command(conn, uuid.uuid4()) is None
