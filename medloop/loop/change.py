"""Changes of list entries: add an entry used without prescription, change an entry's dosage,
hold (``pause``) and resume, discontinue (``seponering``, recalling the prescriptions behind
the entry) and mark entered-in-error."""

from __future__ import annotations

from uuid import UUID

from pydantic import model_validator
from sqlalchemy import Engine

from interactions.dosage import Dosage, Use
from interactions.values import Day
from medloop.domain._model import Frozen
from medloop.domain.drug_reference import NonCatalogueItem
from medloop.domain.entry import Discontinuation, EntryEdit
from medloop.domain.medication_list import (
    AddEntry,
    EditEntry,
    HoldEntry,
    ListCommand,
    MedicationList,
    ResumeEntry,
)
from medloop.domain.prescribing import discontinue as discontinue_entry
from medloop.domain.prescribing import mark_in_error
from medloop.loop.catalogue import DrugOrder
from medloop.loop.errors import ReasonRequired
from medloop.loop.runner import (
    Call,
    CommandResult,
    Context,
    Decide,
    Effect,
    Screening,
    medications_of,
    run_command,
)


class EntryOrder(Frozen):
    """A new entry used without prescription: a catalogue drug or a non-catalogue item."""

    entry_id: UUID
    drug: DrugOrder | None = None
    item: NonCatalogueItem | None = None
    use: Use
    dosage: Dosage | None = None
    indication: str | None = None
    start: Day
    stop: Day | None = None

    @model_validator(mode="after")
    def _names_one_drug(self) -> EntryOrder:
        if (self.drug is None) == (self.item is None):
            raise ValueError("an entry names a catalogue drug or a non-catalogue item")
        return self


def add_entry(
    engine: Engine, patient_id: UUID, order: EntryOrder, call: Call, *, based_on: int
) -> CommandResult:
    """Add an entry without a prescription (over-the-counter, a supplement, another
    prescriber's treatment); decision support checks it like any new entry."""

    def decide(ctx: Context) -> Effect:
        drug = ctx.catalogue.resolve(order.drug) if order.drug is not None else order.item
        new_list, change = ctx.state.medication_list.apply(
            AddEntry.model_validate(
                {
                    **_header(call),
                    "entry_id": order.entry_id,
                    "drug": drug,
                    "dosage": order.dosage,
                    "use": order.use,
                    "indication": order.indication,
                    "start": order.start,
                    "stop": order.stop,
                    "instituted_by": call.actor,
                }
            )
        )
        return Effect(
            list_change=change,
            screening=Screening(tuple(medications_of(new_list)), _focus(new_list, order.entry_id)),
            response={"entry_id": str(order.entry_id)},
        )

    return run_command(
        engine,
        "add-entry",
        patient_id,
        call,
        decide,
        based_on=based_on,
        request=order.model_dump(mode="json"),
    )


def change_dosage(
    engine: Engine,
    patient_id: UUID,
    entry_id: UUID,
    dosage: Dosage,
    call: Call,
    *,
    based_on: int,
) -> CommandResult:
    """A new dosage (and with it the use) for an active or on-hold entry; checked again."""
    command = _dosage_command(entry_id, dosage, call)
    return _list_command(
        engine, "change-dosage", patient_id, call, command, based_on=based_on, screen=True
    )


def change_dosage_decision(entry_id: UUID, dosage: Dosage, call: Call) -> Decide:
    """How ``change_dosage`` decides, for a command that changes a dosage as part of its own
    change (accepting a multidose proposal)."""
    return _list_decision(_dosage_command(entry_id, dosage, call), screen=True)


def _dosage_command(entry_id: UUID, dosage: Dosage, call: Call) -> EditEntry:
    edit = EntryEdit(dosage=dosage, use=dosage.use)
    return EditEntry(**_header(call), entry_id=entry_id, edit=edit)


def hold(
    engine: Engine, patient_id: UUID, entry_id: UUID, call: Call, *, based_on: int
) -> CommandResult:
    command = HoldEntry(**_header(call), entry_id=entry_id)
    return _list_command(engine, "hold", patient_id, call, command, based_on=based_on, screen=False)


def resume(
    engine: Engine, patient_id: UUID, entry_id: UUID, call: Call, *, based_on: int
) -> CommandResult:
    """Resume an on-hold entry; checked again, since it is taken again."""
    command = ResumeEntry(**_header(call), entry_id=entry_id)
    return _list_command(
        engine, "resume", patient_id, call, command, based_on=based_on, screen=True
    )


def mark_entered_in_error(
    engine: Engine, patient_id: UUID, entry_id: UUID, call: Call, *, based_on: int
) -> CommandResult:
    """Mark an entry as a mistake (``call.reason`` says why); it is kept but never counts, and
    every dispensable prescription behind it is recalled."""

    def decide(ctx: Context) -> Effect:
        if not (call.reason or "").strip():
            raise ReasonRequired(
                "marking an entry as entered in error needs a reason", entry_id=entry_id
            )
        state = ctx.state
        done = mark_in_error(
            state.medication_list,
            entry_id,
            state.prescriptions_of(entry_id),
            at=call.at,
            by=call.actor,
            reason=call.reason or "",
        )
        recalled = tuple(version for _, version in done.recalled)
        return Effect(
            list_change=done.list_change,
            prescription_versions=recalled,
            response={
                "entry_id": str(entry_id),
                "recalled": [str(v.prescription_id) for v in recalled],
            },
        )

    return run_command(
        engine,
        "entered-in-error",
        patient_id,
        call,
        decide,
        based_on=based_on,
        request={"entry_id": str(entry_id)},
    )


def discontinue(
    engine: Engine,
    patient_id: UUID,
    entry_id: UUID,
    discontinuation: Discontinuation,
    call: Call,
    *,
    based_on: int,
) -> CommandResult:
    """Discontinue an entry and recall every dispensable prescription behind it."""
    request = {
        "entry_id": str(entry_id),
        "discontinuation": discontinuation.model_dump(mode="json"),
    }
    decide = discontinue_decision(entry_id, discontinuation, call)
    return run_command(
        engine, "discontinue", patient_id, call, decide, based_on=based_on, request=request
    )


def discontinue_decision(entry_id: UUID, discontinuation: Discontinuation, call: Call) -> Decide:
    """How ``discontinue`` decides, for a command that discontinues as part of its own
    change."""

    def decide(ctx: Context) -> Effect:
        state = ctx.state
        done = discontinue_entry(
            state.medication_list,
            entry_id,
            discontinuation,
            state.prescriptions_of(entry_id),
            at=call.at,
            by=call.actor,
            reason=call.reason,
        )
        recalled = tuple(version for _, version in done.recalled)
        return Effect(
            list_change=done.list_change,
            prescription_versions=recalled,
            response={
                "entry_id": str(entry_id),
                "recalled": [str(v.prescription_id) for v in recalled],
            },
        )

    return decide


def _list_command(
    engine: Engine,
    action: str,
    patient_id: UUID,
    call: Call,
    command: ListCommand,
    *,
    based_on: int,
    screen: bool,
) -> CommandResult:
    request = command.model_dump(mode="json", exclude={"author", "at", "reason"})
    return run_command(
        engine,
        action,
        patient_id,
        call,
        _list_decision(command, screen=screen),
        based_on=based_on,
        request=request,
    )


def _list_decision(command: ListCommand, *, screen: bool) -> Decide:
    def decide(ctx: Context) -> Effect:
        new_list, change = ctx.state.medication_list.apply(command)
        entry_id = change.entry_versions[0].entry_id
        screening = (
            Screening(tuple(medications_of(new_list)), _focus(new_list, entry_id))
            if screen
            else None
        )
        return Effect(list_change=change, screening=screening, response={"entry_id": str(entry_id)})

    return decide


def _header(call: Call) -> dict[str, object]:
    return {"author": call.actor, "at": call.at, "reason": call.reason}


def _focus(medication_list: MedicationList, entry_id: UUID) -> tuple[str, ...]:
    """The changed entry, when decision support sees it (a non-catalogue item it does not)."""
    seen = {m.id for m in medications_of(medication_list)}
    return (str(entry_id),) if str(entry_id) in seen else ()
