"""Reconciliation (``samstemming``): a clinician compares the list with other sources and records,
for every live entry, what they concluded. There is no national "reconciled" flag; this record
is ours.

A reconciliation is made after the list changes it led to, against the list version it names;
each outcome points at the exact entry version it judged, so a later change to the entry shows
that the reconciliation no longer covers it. It does not change the list version.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from pydantic import AwareDatetime, Field

from interactions.values import Count, PositiveCount
from medloop.domain._model import Frozen
from medloop.domain.codes import EntryStatus, ReconciliationOutcome, SourceKind
from medloop.domain.entry import ListEntry
from medloop.domain.errors import DomainError
from medloop.domain.medication_list import MedicationList
from medloop.domain.personnel import Actor

# -- errors ------------------------------------------------------------------------------------


class ReconciliationError(DomainError):
    """A reconciliation record does not fit the list it reconciles."""


class ReconciliationNeedsSource(ReconciliationError):
    code = "reconciliation-needs-a-source"


class ReconciliationUnknownEntry(ReconciliationError):
    code = "reconciliation-unknown-entry"


class ReconciliationDuplicateOutcome(ReconciliationError):
    code = "reconciliation-duplicate-outcome"


class ReconciliationIncomplete(ReconciliationError):
    code = "reconciliation-incomplete"


class ReconciliationOutcomeContradictsEntry(ReconciliationError):
    code = "reconciliation-outcome-contradicts-entry"


class ReconciliationNotFound(DomainError):
    """No such reconciliation of this patient's list (also when it is another patient's)."""

    code = "reconciliation-not-found"


_LIVE_OUTCOMES = frozenset(
    {ReconciliationOutcome.CONFIRMED, ReconciliationOutcome.CHANGED, ReconciliationOutcome.ADDED}
)


class ConsultedSource(Frozen):
    """A source consulted: its kind, what exactly (e.g. "discharge letter 2024-03-01"), when."""

    kind: SourceKind
    detail: str | None = None
    consulted_at: AwareDatetime | None = None


class EntryOutcome(Frozen):
    """The clinician's conclusion about one entry."""

    entry_id: UUID
    outcome: ReconciliationOutcome
    note: str | None = None


class ReconciledEntry(Frozen):
    """An outcome recorded against the entry version it judged."""

    entry_id: UUID
    entry_version: PositiveCount
    outcome: ReconciliationOutcome
    note: str | None = None


class Reconciliation(Frozen):
    id: UUID
    patient_id: UUID
    list_version: Count
    at: AwareDatetime
    by: Actor
    sources: tuple[ConsultedSource, ...] = Field(min_length=1)
    entries: tuple[ReconciledEntry, ...]
    note: str | None = None


def reconcile(
    medication_list: MedicationList,
    *,
    id: UUID,
    at: AwareDatetime,
    by: Actor,
    sources: Iterable[ConsultedSource],
    outcomes: Iterable[EntryOutcome],
    note: str | None = None,
) -> Reconciliation:
    """The reconciliation record, refused unless it consulted a source, names only entries of
    the list once each, covers every active and on-hold entry, and each outcome fits its entry:
    confirmed / changed / added need a live entry, discontinued a discontinued one, and no
    outcome applies to an entry entered in error."""
    consulted = tuple(sources)
    if not consulted:
        raise ReconciliationNeedsSource("a reconciliation names the sources it consulted")
    recorded: list[ReconciledEntry] = []
    seen: set[UUID] = set()
    for outcome in outcomes:
        entry = medication_list.find(outcome.entry_id)
        if entry is None:
            raise ReconciliationUnknownEntry(
                f"the list has no entry {outcome.entry_id}", entry_id=outcome.entry_id
            )
        if entry.id in seen:
            raise ReconciliationDuplicateOutcome(
                f"entry {entry.id} has more than one outcome", entry_id=entry.id
            )
        seen.add(entry.id)
        _check_fits(entry, outcome.outcome)
        recorded.append(
            ReconciledEntry(
                entry_id=entry.id,
                entry_version=entry.version,
                outcome=outcome.outcome,
                note=outcome.note,
            )
        )
    missing = [e.id for e in medication_list.entries if e.status.is_live and e.id not in seen]
    if missing:
        raise ReconciliationIncomplete(
            f"{len(missing)} active or on-hold entries have no outcome", entry_ids=missing
        )
    return Reconciliation(
        id=id,
        patient_id=medication_list.patient_id,
        list_version=medication_list.version,
        at=at,
        by=by,
        sources=consulted,
        entries=tuple(recorded),
        note=note,
    )


def _check_fits(entry: ListEntry, outcome: ReconciliationOutcome) -> None:
    fits = (
        entry.status is not EntryStatus.ENTERED_IN_ERROR
        and (outcome not in _LIVE_OUTCOMES or entry.status.is_live)
        and (
            outcome is not ReconciliationOutcome.DISCONTINUED
            or entry.status is EntryStatus.DISCONTINUED
        )
    )
    if not fits:
        raise ReconciliationOutcomeContradictsEntry(
            f"outcome {outcome} does not fit entry {entry.id}, which is {entry.status}",
            entry_id=entry.id,
            outcome=outcome,
            status=entry.status,
        )
