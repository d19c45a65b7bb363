"""Operations that change the list and prescriptions together, so the rules that join them
cannot be skipped: prescribing for an entry, renewal (``fornying``) and discontinuation
(``seponering``) with the recalls they imply.

Each returns everything the command layer must persist in one transaction: the new list and its
``ListChange``, and the new prescription versions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from pydantic import AwareDatetime

from medloop.domain.codes import PrescriptionStatus, RecallReason
from medloop.domain.entry import Discontinuation, EntryEdit
from medloop.domain.medication_list import (
    DiscontinueEntry,
    LinkPrescription,
    ListChange,
    MarkEnteredInError,
    MedicationList,
    PrescriptionNotOnEntry,
    RenewPrescription,
)
from medloop.domain.personnel import Actor
from medloop.domain.prescription import (
    Prescription,
    PrescriptionLocked,
    PrescriptionRequest,
    PrescriptionVersion,
    Transition,
    check_transition,
    issue,
    recall,
)
from medloop.domain.validity import DEFAULT_VALIDITY, ValidityPolicy


@dataclass(frozen=True, slots=True)
class Prescribed:
    medication_list: MedicationList
    list_change: ListChange
    prescription: Prescription
    prescription_version: PrescriptionVersion


@dataclass(frozen=True, slots=True)
class Renewed:
    """The renewal and, when the old prescription was still dispensable, its recall."""

    medication_list: MedicationList
    list_change: ListChange
    prescription: Prescription
    prescription_version: PrescriptionVersion
    recalled: Transition | None


@dataclass(frozen=True, slots=True)
class Discontinued:
    medication_list: MedicationList
    list_change: ListChange
    recalled: tuple[Transition, ...]


def prescribe(
    medication_list: MedicationList,
    entry_id: UUID,
    request: PrescriptionRequest,
    *,
    at: AwareDatetime,
    by: Actor,
    reason: str | None = None,
    policy: ValidityPolicy = DEFAULT_VALIDITY,
) -> Prescribed:
    """Issue a prescription for a live entry and let it back the entry."""
    entry = medication_list.entry(entry_id)
    prescription, version = issue(
        entry, medication_list.patient_id, request, at=at, by=by, policy=policy
    )
    new_list, change = medication_list.apply(
        LinkPrescription(
            author=by,
            at=at,
            reason=reason,
            entry_id=entry_id,
            prescription_id=prescription.id,
        )
    )
    return Prescribed(new_list, change, prescription, version)


def renew(
    medication_list: MedicationList,
    old: Prescription,
    request: PrescriptionRequest,
    *,
    change: EntryEdit | None = None,
    at: AwareDatetime,
    by: Actor,
    reason: str | None = None,
    policy: ValidityPolicy = DEFAULT_VALIDITY,
) -> Renewed:
    """Renew ``old``: a new prescription backs its entry instead (after applying ``change`` to
    the entry, for a renewal with change), and ``old`` is recalled with reason 1 renewal or 3
    renewal with change when it is still dispensable. Fully dispensed and expired prescriptions
    need no recall; recalled ones cannot be renewed, nor ones a pharmacy is dispensing."""
    if old.status in (PrescriptionStatus.RECALLED, PrescriptionStatus.BEING_DISPENSED):
        check_transition(old, PrescriptionStatus.RECALLED)
    new_list, list_change = medication_list.apply(
        RenewPrescription(
            author=by,
            at=at,
            reason=reason,
            entry_id=old.entry_id,
            old_prescription_id=old.id,
            new_prescription_id=request.id,
            edit=change,
        )
    )
    prescription, version = issue(
        new_list.entry(old.entry_id), new_list.patient_id, request, at=at, by=by, policy=policy
    )
    recalled = None
    if old.status is PrescriptionStatus.DISPENSABLE:
        why = RecallReason.RENEWAL if change is None else RecallReason.RENEWAL_WITH_CHANGE
        recalled = recall(old, why, at=at, by=by, note=reason, replaced_by=prescription.id)
    return Renewed(new_list, list_change, prescription, version, recalled)


def discontinue(
    medication_list: MedicationList,
    entry_id: UUID,
    discontinuation: Discontinuation,
    prescriptions: Iterable[Prescription],
    *,
    at: AwareDatetime,
    by: Actor,
    reason: str | None = None,
) -> Discontinued:
    """Discontinue an entry and recall (reason 2 discontinuation) every dispensable prescription
    behind it. ``prescriptions`` must be all of the entry's; the whole discontinuation is refused
    while a pharmacy is dispensing one of them (a recall of a locked prescription is refused
    nationally too)."""
    given = _all_recallable(medication_list, entry_id, prescriptions)
    new_list, change = medication_list.apply(
        DiscontinueEntry(
            author=by,
            at=at,
            reason=reason,
            entry_id=entry_id,
            discontinuation=discontinuation,
        )
    )
    recalled = _recall_dispensable(
        given, RecallReason.DISCONTINUATION, at=at, by=by, note=discontinuation.note
    )
    return Discontinued(new_list, change, recalled)


def mark_in_error(
    medication_list: MedicationList,
    entry_id: UUID,
    prescriptions: Iterable[Prescription],
    *,
    at: AwareDatetime,
    by: Actor,
    reason: str,
) -> Discontinued:
    """Mark an entry as entered in error and recall (reason 4 other, the note saying why) every
    dispensable prescription behind it: a prescription for a mistake must not be dispensed.
    Refused, like a discontinuation, while a pharmacy is dispensing one of them."""
    given = _all_recallable(medication_list, entry_id, prescriptions)
    new_list, change = medication_list.apply(
        MarkEnteredInError(author=by, at=at, reason=reason, entry_id=entry_id)
    )
    recalled = _recall_dispensable(
        given, RecallReason.OTHER, at=at, by=by, note=f"entry entered in error: {reason}"
    )
    return Discontinued(new_list, change, recalled)


def _all_recallable(
    medication_list: MedicationList, entry_id: UUID, prescriptions: Iterable[Prescription]
) -> dict[UUID, Prescription]:
    """``prescriptions``, checked to be all of the entry's and none locked by a pharmacy."""
    entry = medication_list.entry(entry_id)
    given = {p.id: p for p in prescriptions}
    for prescription in given.values():
        if prescription.entry_id != entry_id or prescription.id not in entry.prescription_ids:
            raise PrescriptionNotOnEntry(
                f"prescription {prescription.id} does not back entry {entry_id}",
                prescription_id=prescription.id,
                entry_id=entry_id,
            )
    missing = [p for p in entry.prescription_ids if p not in given]
    if missing:
        raise ValueError(f"the entry's change needs every prescription of it; missing {missing}")
    for prescription in given.values():
        if prescription.status is PrescriptionStatus.BEING_DISPENSED:
            raise PrescriptionLocked(
                f"prescription {prescription.id} is being dispensed by pharmacy "
                f"{prescription.locked_by}; it cannot be recalled now",
                prescription_id=prescription.id,
                pharmacy_id=prescription.locked_by,
            )
    return given


def _recall_dispensable(
    given: dict[UUID, Prescription],
    why: RecallReason,
    *,
    at: AwareDatetime,
    by: Actor,
    note: str | None,
) -> tuple[Transition, ...]:
    return tuple(
        recall(p, why, at=at, by=by, note=note)
        for p in given.values()
        if p.status is PrescriptionStatus.DISPENSABLE
    )


def discontinuation_recalls(
    medication_list: MedicationList,
    entry_id: UUID,
    prescriptions: Iterable[Prescription],
    *,
    at: AwareDatetime,
    by: Actor,
    note: str | None = None,
) -> tuple[Transition, ...]:
    """The recalls a discontinuation of ``entry_id`` makes (as ``discontinue`` does), for a
    change that discontinues as part of a larger list change (a received list taken in)."""
    given = _all_recallable(medication_list, entry_id, prescriptions)
    return _recall_dispensable(given, RecallReason.DISCONTINUATION, at=at, by=by, note=note)
