"""Recording a reconciliation (``samstemming``): the clinician's outcome for every live entry
after comparing the list with other sources. It does not change the list version; a stale
``based_on`` is refused like any other write."""

from __future__ import annotations

from uuid import UUID

from pydantic import Field
from sqlalchemy import Engine

from interactions.values import MAX_ITEMS
from medloop.domain._model import Frozen
from medloop.domain.reconciliation import ConsultedSource, EntryOutcome, reconcile
from medloop.loop.runner import Call, CommandResult, Context, Effect, run_command


class ReconciliationOrder(Frozen):
    reconciliation_id: UUID
    sources: tuple[ConsultedSource, ...] = Field(max_length=MAX_ITEMS)
    outcomes: tuple[EntryOutcome, ...] = Field(max_length=MAX_ITEMS)
    note: str | None = None


def record_reconciliation(
    engine: Engine, patient_id: UUID, order: ReconciliationOrder, call: Call, *, based_on: int
) -> CommandResult:
    """Store the reconciliation of the list at ``based_on``; refused unless it covers every
    active and on-hold entry with an outcome that fits it."""

    def decide(ctx: Context) -> Effect:
        record = reconcile(
            ctx.state.medication_list,
            id=order.reconciliation_id,
            at=call.at,
            by=call.actor,
            sources=order.sources,
            outcomes=order.outcomes,
            note=order.note,
        )
        return Effect(
            reconciliation=record, response={"reconciliation_id": str(order.reconciliation_id)}
        )

    return run_command(
        engine,
        "reconcile",
        patient_id,
        call,
        decide,
        based_on=based_on,
        request=order.model_dump(mode="json"),
    )
