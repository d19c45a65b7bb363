"""Acknowledging an alert (``VarselHandtert``, FEST implementation guide §8.3): once handled
for a patient, the alert with that key is not raised again for that patient."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Engine

from medloop.loop.errors import ReasonRequired
from medloop.loop.runner import Call, CommandResult, Context, Effect, run_command


def acknowledge(engine: Engine, patient_id: UUID, alert_key: str, call: Call) -> CommandResult:
    """Record ``alert_key`` as handled for the patient, with ``call.reason``."""

    def decide(ctx: Context) -> Effect:
        reason = (call.reason or "").strip()
        if not reason:
            raise ReasonRequired("acknowledging an alert needs a reason", alert_key=alert_key)
        return Effect(handled={alert_key: reason}, response={"alert_key": alert_key})

    return run_command(
        engine,
        "acknowledge-alert",
        patient_id,
        call,
        decide,
        based_on=None,
        request={"alert_key": alert_key, "reason": call.reason},
    )
