"""A patient's state as the loop decides on it: the patient, the medication list and its
changes, prescriptions with their history, dispenses, the alerts raised and those handled.

The store loads it (``medloop.store.patient_state``) and caches it
(``medloop.store.state_cache``); ``PatientState.advanced`` is how one command's appends change
it, so a command need not read back what it wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from interactions import HandledAlert
from medloop.domain.dispense import Annulment, Dispense
from medloop.domain.medication_list import ListChange, MedicationList
from medloop.domain.patient import Patient
from medloop.domain.prescription import Prescription, PrescriptionVersion


@dataclass(frozen=True)
class StoredAlert:
    """An alert as stored for the patient, in the order raised: the command that raised it,
    the list version, when, the ``Alert`` as JSON and the override that let the command
    through, if any."""

    key: str
    action: str
    list_version: int
    raised_at: datetime
    record: dict[str, Any]
    override_by: dict[str, Any] | None = None
    override_reason: str | None = None


@dataclass(frozen=True)
class PatientState:
    """Everything the loop knows about one patient, as domain values."""

    patient: Patient
    medication_list: MedicationList
    changes: tuple[ListChange, ...]
    prescriptions: dict[UUID, Prescription]
    prescription_history: dict[UUID, tuple[PrescriptionVersion, ...]]
    dispenses: tuple[Dispense, ...]
    handled: tuple[HandledAlert, ...]
    dispense_recorded_at: dict[UUID, datetime] = field(default_factory=dict, compare=False)
    """When each dispense was recorded: with ``dispensed_on`` and the id, the dispenses' order."""
    alerts: tuple[StoredAlert, ...] = ()
    """Every alert raised for the patient, oldest first (open alerts and overrides on record
    are read from here)."""

    def dispenses_of(self, prescription_id: UUID) -> tuple[Dispense, ...]:
        return tuple(d for d in self.dispenses if d.prescription_id == prescription_id)

    def prescriptions_of(self, entry_id: UUID) -> tuple[Prescription, ...]:
        entry = self.medication_list.entry(entry_id)
        return tuple(self.prescriptions[p] for p in entry.prescription_ids)

    def advanced(
        self,
        *,
        list_change: ListChange | None,
        prescription_versions: Sequence[PrescriptionVersion],
        dispenses: Sequence[Dispense],
        annulments: Sequence[tuple[UUID, Annulment]],
        handled: Sequence[HandledAlert],
        recorded_at: datetime,
        alerts: Sequence[StoredAlert] = (),
        patient: Patient | None = None,
    ) -> PatientState:
        """This state with one command's appends applied, exactly as the store's
        ``load_patient_state`` would read it back after they commit (the loop tests compare the
        two after every command)."""
        changes = self.changes
        medication_list = self.medication_list
        if list_change is not None:
            changes = (*changes, list_change)
            medication_list = medication_list.followed_by(list_change)
        history = (
            dict(self.prescription_history) if prescription_versions else self.prescription_history
        )
        added = 0
        for version in prescription_versions:
            earlier = history.get(version.prescription_id)
            if earlier is None:
                added += 1
            history[version.prescription_id] = (*(earlier or ()), version)
        if added:
            # By the id's text, as the store reads them (``ORDER BY prescription_id``): a UUID's
            # text is its 128-bit number in fixed-width lower-case hex with the dashes at fixed
            # places, so ordering by the number is the same order without writing each id out
            # (a prescribe issued one more id; only a new id changes the order).
            history = _in_order(history, added)
        if dispenses or annulments:
            recorded = dict(self.dispense_recorded_at)
            annulled = dict(annulments)
            found = []
            for record in (*self.dispenses, *dispenses):
                recorded.setdefault(record.id, _utc(recorded_at))
                if record.id in annulled:
                    record = record.model_copy(update={"annulment": annulled[record.id]})
                found.append(record)
            found.sort(key=lambda d: (d.dispensed_on, recorded[d.id], str(d.id)))
            kept_dispenses = tuple(found)
        else:
            # Nothing dispensed or annulled: the dispenses and their moments as they were (the
            # state's values are never changed, so the next state may share them; issue #20).
            recorded, kept_dispenses = self.dispense_recorded_at, self.dispenses
        known = {h.key for h in self.handled}
        merged = [*self.handled, *(h for h in handled if h.key not in known)]
        return PatientState(
            patient=self.patient if patient is None else patient,
            medication_list=medication_list,
            changes=changes,
            prescriptions=(
                {p: versions[-1].prescription for p, versions in history.items()}
                if prescription_versions
                else self.prescriptions
            ),
            prescription_history=history,
            dispenses=kept_dispenses,
            handled=tuple(sorted(merged, key=lambda h: h.key)),
            dispense_recorded_at=recorded,
            alerts=(*self.alerts, *alerts) if alerts else self.alerts,
        )


def _uuid_number(item: tuple[UUID, Any]) -> int:
    return item[0].int


def _in_order(history: dict[UUID, Any], added: int) -> dict[UUID, Any]:
    """``dict(sorted(history.items(), key=_uuid_number))`` for a new dict ``history`` whose
    keys are in that order but for the ``added`` keys inserted last: the same dict, key for key
    in the same order, made by taking off its end (``popitem`` takes the last key, without
    hashing it) the added keys and the keys above the lowest of them, and putting those back in
    order. Only the keys that move are hashed again (a ``UUID``'s hash is a Python call; the
    whole history was hashed again on every prescribe; issue #20)."""
    moved = [history.popitem() for _ in range(added)]
    lowest = min(key.int for key, _ in moved)
    while history and next(reversed(history)).int > lowest:
        moved.append(history.popitem())
    moved.sort(key=_uuid_number)
    for key, value in moved:
        history[key] = value
    return history


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
