"""The medication list (``legemiddelliste``, PLL "legemidler i bruk"): one per patient, and the only
way to change it, ``MedicationList.apply(command) -> (MedicationList, ListChange)``.

Every accepted command raises the list ``version`` by one and makes exactly one new immutable
``EntryVersion`` per entry it touches (author, time, reason, kind, structured diff, full
snapshot). Commands name the list version they were based on; a stale one is refused
(read-before-write, architecture invariant 2). Illegal transitions raise ``ListError``
subclasses and leave nothing changed.

Persisting append-only: store each ``ListChange`` as one row keyed by (patient, list_version)
and each ``EntryVersion`` as one row keyed by (entry_id, version), both JSON via
``model_dump(mode="json")``, never updated; ``MedicationList.replay`` rebuilds the list from
them and refuses a history with gaps. A store may also keep the current snapshot for fast reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import (
    AwareDatetime,
    Field,
    ValidationError,
    model_validator,
)

from interactions.dosage import Dosage, Use
from interactions.values import Count, PositiveCount
from medloop.domain._model import Frozen, built, given_values, replace
from medloop.domain.codes import EntryChangeKind, EntryStatus
from medloop.domain.drug_reference import DrugReference
from medloop.domain.entry import (
    DISCONTINUED_VISIBLE_FOR,
    TRACKED_FIELDS,
    Discontinuation,
    EntryEdit,
    ListEntry,
)
from medloop.domain.errors import DomainError, NotDispensable
from medloop.domain.personnel import Actor
from medloop.domain.versioning import FieldChange, diff, share_dumps

# -- errors ------------------------------------------------------------------------------------


class ListError(DomainError):
    """The medication list refuses a change."""


class StaleListVersion(ListError):
    code = "stale-list-version"


class BrokenHistory(ListError):
    code = "broken-history"


class EntryNotFound(ListError):
    code = "entry-not-found"


class EntryAlreadyExists(ListError):
    code = "entry-already-exists"


class EmptyChange(ListError):
    code = "empty-change"


class InvalidEntry(ListError):
    code = "invalid-entry"


class PrescriptionBacksAnotherEntry(ListError):
    code = "prescription-backs-another-entry"


class PrescriptionNotOnEntry(ListError, NotDispensable):
    code = "prescription-not-on-entry"


class EntryTransitionRefused(ListError):
    """The entry's status does not allow this change."""


class EntryEnteredInError(EntryTransitionRefused):
    code = "entry-entered-in-error"


class EntryDiscontinued(EntryTransitionRefused):
    code = "entry-discontinued"


class EntryAlreadyDiscontinued(EntryTransitionRefused):
    code = "entry-already-discontinued"


class EntryAlreadyOnHold(EntryTransitionRefused):
    code = "entry-already-on-hold"


class EntryNotOnHold(EntryTransitionRefused):
    code = "entry-not-on-hold"


class EntryNotActive(EntryTransitionRefused, NotDispensable):
    code = "entry-not-active"


# -- commands ----------------------------------------------------------------------------------


class _ListCommand(Frozen):
    """What every change carries: who, when and why. (The list version the caller saw is the
    loop's concern: ``medloop.loop.runner.run_command`` checks it once, before deciding.)"""

    author: Actor
    at: AwareDatetime
    reason: str | None = None


class AddEntry(_ListCommand):
    """Add a new, active entry."""

    entry_id: UUID
    drug: DrugReference
    dosage: Dosage | None = None
    use: Use
    indication: str | None = None
    start: date
    stop: date | None = None
    multidose: bool = False
    prescriber: Actor | None = None
    instituted_by: Actor | None = None
    prescription_ids: tuple[UUID, ...] = ()


class EditEntry(_ListCommand):
    """Change the editable fields of an active or on-hold entry."""

    entry_id: UUID
    edit: EntryEdit


class HoldEntry(_ListCommand):
    """Pause an active entry."""

    entry_id: UUID


class ResumeEntry(_ListCommand):
    """Resume an on-hold entry."""

    entry_id: UUID


class DiscontinueEntry(_ListCommand):
    """Discontinue an active or on-hold entry (list only: ``prescribing.discontinue`` also recalls
    the prescriptions behind it)."""

    entry_id: UUID
    discontinuation: Discontinuation


class MarkEnteredInError(_ListCommand):
    """Mark an entry as a mistake; it is kept, never shown as in use, and never changes again."""

    entry_id: UUID
    reason: str = Field(min_length=1)


class LinkPrescription(_ListCommand):
    """Let a prescription back an entry."""

    entry_id: UUID
    prescription_id: UUID


class RenewPrescription(_ListCommand):
    """Replace the prescription behind an entry by its renewal, with an optional edit of the
    entry for a renewal with change."""

    entry_id: UUID
    old_prescription_id: UUID
    new_prescription_id: UUID
    edit: EntryEdit | None = None


ListCommand = (
    AddEntry
    | EditEntry
    | HoldEntry
    | ResumeEntry
    | DiscontinueEntry
    | MarkEnteredInError
    | LinkPrescription
    | RenewPrescription
)

# -- records -----------------------------------------------------------------------------------


class EntryVersion(Frozen):
    """One immutable version of one entry: the snapshot after the change and what changed."""

    entry_id: UUID
    version: PositiveCount
    list_version: PositiveCount
    kind: EntryChangeKind
    at: AwareDatetime
    author: Actor
    reason: str | None = None
    diff: tuple[FieldChange, ...]
    entry: ListEntry


share_dumps(EntryVersion, "author")


class ListChange(Frozen):
    """One accepted change of the list: the new list version and the entry versions it made."""

    patient_id: UUID
    list_version: PositiveCount
    at: AwareDatetime
    author: Actor
    reason: str | None = None
    entry_versions: tuple[EntryVersion, ...] = Field(min_length=1)

    @property
    def based_on(self) -> int:
        return self.list_version - 1


# -- the list ----------------------------------------------------------------------------------


class MedicationList(Frozen):
    """A patient's list: its version and the current version of every entry ever added."""

    patient_id: UUID
    version: Count = 0
    entries: tuple[ListEntry, ...] = ()

    @model_validator(mode="after")
    def _holds_its_invariants(self) -> MedicationList:
        ids = [entry.id for entry in self.entries]
        if len(set(ids)) != len(ids):
            raise ValueError("an entry appears twice")
        backed: set[UUID] = set()
        for entry in self.entries:
            if entry.status.is_live:
                if backed & set(entry.prescription_ids):
                    raise ValueError("a prescription backs two live entries")
                backed.update(entry.prescription_ids)
        return self

    @classmethod
    def empty(cls, patient_id: UUID) -> MedicationList:
        return cls(patient_id=patient_id)

    def find(self, entry_id: UUID) -> ListEntry | None:
        if type(entry_id) is UUID:
            # By the ids' numbers: ``UUID.__eq__`` is a Python call per entry (every command
            # looks entries up on the whole list; issue #20).
            wanted = entry_id.int
            return next((entry for entry in self.entries if entry.id.int == wanted), None)
        return next((entry for entry in self.entries if entry.id == entry_id), None)

    def entry(self, entry_id: UUID) -> ListEntry:
        found = self.find(entry_id)
        if found is None:
            raise EntryNotFound(f"the list has no entry {entry_id}", entry_id=entry_id)
        return found

    def entry_backed_by(self, prescription_id: UUID) -> ListEntry | None:
        """The live (active or on-hold) entry the prescription backs, if any."""
        if type(prescription_id) is UUID:  # by the ids' numbers (see ``find``)
            wanted = prescription_id.int
            for entry in self.entries:
                for backing in entry.prescription_ids:
                    if backing.int == wanted and entry.status.is_live:
                        return entry
            return None
        return next(
            (e for e in self.entries if e.status.is_live and prescription_id in e.prescription_ids),
            None,
        )

    def current_view(
        self, now: datetime, keep_discontinued: timedelta = DISCONTINUED_VISIBLE_FOR
    ) -> tuple[ListEntry, ...]:
        """The current list: active and on-hold entries, and entries discontinued within
        ``keep_discontinued``; entered-in-error entries never."""
        return tuple(entry for entry in self.entries if entry.visible_at(now, keep_discontinued))

    def in_use(self, on: date) -> tuple[ListEntry, ...]:
        """The entries the patient is meant to take on day ``on``."""
        return tuple(entry for entry in self.entries if entry.in_use(on))

    def apply(self, command: ListCommand) -> tuple[MedicationList, ListChange]:
        """The list after ``command`` and the record of the change; raises a ``ListError`` when
        the command names an unknown entry or is not allowed in the entry's status. The change
        is the list's next version (the runner has checked that the caller saw this one)."""
        kind, before, after = self._decide(command)
        changes = diff(before, after, TRACKED_FIELDS)
        if not changes:
            raise EmptyChange(f"the change leaves entry {after.id} as it is", entry_id=after.id)
        self._check_prescriptions_back_one_entry(after)
        list_version = self.version + 1
        entries = (
            (*self.entries, after)
            if before is None
            else tuple(after if entry.id == after.id else entry for entry in self.entries)
        )
        reason = command.reason
        # Every value below is validated already (the command, the entry ``_decide`` built and
        # validated, the diff of it): the records are built without validating them again.
        # The dicts are written in the records' declared field order (``built`` takes them as
        # they are; issue #20).
        version = built(
            EntryVersion,
            {
                "entry_id": after.id,
                "version": after.version,
                "list_version": list_version,
                "kind": kind,
                "at": command.at,
                "author": command.author,
                "reason": reason,
                "diff": changes,
                "entry": after,
            },
        )
        change = built(
            ListChange,
            {
                "patient_id": self.patient_id,
                "list_version": list_version,
                "at": command.at,
                "author": command.author,
                "reason": reason,
                "entry_versions": (version,),
            },
        )
        # The checks above are the list's invariants for this one change (an added id is new;
        # the changed entry's prescriptions back no other live entry), so the other entries
        # need not be validated again: ``model_construct``'s instance, without its walk over
        # the fields (every one is given).
        new_list = built(
            MedicationList,
            {"patient_id": self.patient_id, "version": list_version, "entries": entries},
        )
        if len(_APPLIED) >= _APPLIED_KEPT:
            _APPLIED.clear()
        # The change and this list are kept beside the change's id (see ``followed_by``).
        _APPLIED[id(change)] = (change, self, new_list)
        return new_list, change

    def followed_by(self, change: ListChange) -> MedicationList:
        """The list after ``change``, which ``apply`` made from this very list (so it holds
        the invariants ``apply`` checks), without validating every entry again; stored
        changes are replayed with ``replay``, which does. The list ``apply`` made with the
        change when it was made from this list object (the same value: ``apply``'s entries
        are this list's with the changed one replaced in place or added last, as below; the
        state after a command is advanced by the change its decision just made; issue #20)."""
        known = _APPLIED.get(id(change))
        if known is not None and known[0] is change and known[1] is self:
            return known[2]
        return self._followed_by(change)

    def _followed_by(self, change: ListChange) -> MedicationList:
        if change.patient_id != self.patient_id or change.list_version != self.version + 1:
            raise BrokenHistory(
                f"list version {change.list_version} does not follow {self.version}",
                list_version=change.list_version,
            )
        entries = {entry.id: entry for entry in self.entries}
        for version in change.entry_versions:
            entries[version.entry_id] = version.entry
        return built(
            MedicationList,
            {
                "patient_id": self.patient_id,
                "version": change.list_version,
                "entries": tuple(entries.values()),
            },
        )

    @classmethod
    def replay(cls, patient_id: UUID, changes: Iterable[ListChange]) -> MedicationList:
        """The list rebuilt from its stored changes, in order; raises ``BrokenHistory`` on a
        missing, repeated or out-of-order list or entry version."""
        current = cls.empty(patient_id)
        for change in changes:
            if change.patient_id != patient_id or change.list_version != current.version + 1:
                raise BrokenHistory(
                    f"list version {change.list_version} does not follow {current.version}",
                    list_version=change.list_version,
                )
            entries = {entry.id: entry for entry in current.entries}
            for version in change.entry_versions:
                previous = entries.get(version.entry_id)
                expected = 1 if previous is None else previous.version + 1
                if (
                    version.version != expected
                    or version.entry.version != expected
                    or version.entry.id != version.entry_id
                    or version.list_version != change.list_version
                ):
                    raise BrokenHistory(
                        f"entry {version.entry_id} version {version.version} "
                        f"does not follow version {expected - 1}",
                        entry_id=version.entry_id,
                        list_version=change.list_version,
                    )
                entries[version.entry_id] = version.entry
            try:
                current = cls(
                    patient_id=patient_id,
                    version=change.list_version,
                    entries=tuple(entries.values()),
                )
            except ValidationError as error:
                raise BrokenHistory(
                    f"list version {change.list_version} breaks an invariant: {error}",
                    list_version=change.list_version,
                ) from error
        return current

    # -- deciding one command ------------------------------------------------------------------

    def _decide(self, command: ListCommand) -> tuple[EntryChangeKind, ListEntry | None, ListEntry]:
        if isinstance(command, AddEntry):
            return EntryChangeKind.ADDED, None, self._added(command)
        before = self.entry(command.entry_id)
        if isinstance(command, MarkEnteredInError):
            _refuse_if_entered_in_error(before)
            after = _next(before, command, status=EntryStatus.ENTERED_IN_ERROR)
            return EntryChangeKind.ENTERED_IN_ERROR, before, after
        if isinstance(command, DiscontinueEntry):
            _refuse_if_entered_in_error(before)
            if before.status is EntryStatus.DISCONTINUED:
                raise EntryAlreadyDiscontinued(
                    f"entry {before.id} is already discontinued", entry_id=before.id
                )
            after = _next(
                before,
                command,
                status=EntryStatus.DISCONTINUED,
                discontinuation=command.discontinuation,
            )
            return EntryChangeKind.DISCONTINUED, before, after
        _refuse_unless_live(before)
        if isinstance(command, HoldEntry):
            if before.status is EntryStatus.ON_HOLD:
                raise EntryAlreadyOnHold(
                    f"entry {before.id} is already on hold", entry_id=before.id
                )
            after = _next(before, command, status=EntryStatus.ON_HOLD)
            return EntryChangeKind.PUT_ON_HOLD, before, after
        if isinstance(command, ResumeEntry):
            if before.status is not EntryStatus.ON_HOLD:
                raise EntryNotOnHold(f"entry {before.id} is not on hold", entry_id=before.id)
            after = _next(before, command, status=EntryStatus.ACTIVE)
            return EntryChangeKind.RESUMED, before, after
        if isinstance(command, EditEntry):
            return EntryChangeKind.EDITED, before, _next(before, command, **command.edit.changes())
        if isinstance(command, LinkPrescription):
            ids = before.prescription_ids
            if command.prescription_id in ids:
                raise EmptyChange(
                    f"prescription {command.prescription_id} already backs entry {before.id}",
                    entry_id=before.id,
                    prescription_id=command.prescription_id,
                )
            after = _next(before, command, prescription_ids=(*ids, command.prescription_id))
            return EntryChangeKind.PRESCRIPTION_LINKED, before, after
        return EntryChangeKind.PRESCRIPTION_RENEWED, before, _renewed(before, command)

    def _added(self, command: AddEntry) -> ListEntry:
        if self.find(command.entry_id) is not None:
            raise EntryAlreadyExists(
                f"the list already has entry {command.entry_id}", entry_id=command.entry_id
            )
        fields = {
            "id": command.entry_id,
            "version": 1,
            "drug": command.drug,
            "dosage": command.dosage,
            "use": command.use,
            "indication": command.indication,
            "start": command.start,
            "stop": command.stop,
            "multidose": command.multidose,
            "prescriber": command.prescriber,
            "instituted_by": command.instituted_by,
            "prescription_ids": command.prescription_ids,
            "changed_at": command.at,
        }
        if type(command) is AddEntry:
            # A validated ``AddEntry``'s values are of the entry's own field types (the same
            # annotations, the same configuration): the entry is built from them without
            # validating them again, and only its own check runs (issue #20). When that check
            # refuses, validation gives the error, as before.
            entry = given_values(ListEntry, _ADDED_FIELDS, fields)
            try:
                return entry._is_consistent()
            except ValueError:
                pass
        return _build(**fields)

    def _check_prescriptions_back_one_entry(self, entry: ListEntry) -> None:
        if not entry.status.is_live:
            return
        for prescription_id in entry.prescription_ids:
            other = self.entry_backed_by(prescription_id)
            if other is not None and other.id != entry.id:
                raise PrescriptionBacksAnotherEntry(
                    f"prescription {prescription_id} already backs entry {other.id}",
                    prescription_id=prescription_id,
                    entry_id=other.id,
                )


def _refuse_if_entered_in_error(entry: ListEntry) -> None:
    if entry.status is EntryStatus.ENTERED_IN_ERROR:
        raise EntryEnteredInError(
            f"entry {entry.id} was entered in error and cannot change", entry_id=entry.id
        )


def _refuse_unless_live(entry: ListEntry) -> None:
    _refuse_if_entered_in_error(entry)
    if entry.status is EntryStatus.DISCONTINUED:
        raise EntryDiscontinued(
            f"entry {entry.id} is discontinued; add a new entry instead", entry_id=entry.id
        )


def _renewed(before: ListEntry, command: RenewPrescription) -> ListEntry:
    if command.old_prescription_id not in before.prescription_ids:
        raise PrescriptionNotOnEntry(
            f"prescription {command.old_prescription_id} does not back entry {before.id}",
            prescription_id=command.old_prescription_id,
            entry_id=before.id,
        )
    ids = tuple(
        command.new_prescription_id if p == command.old_prescription_id else p
        for p in before.prescription_ids
    )
    edits = {} if command.edit is None else command.edit.changes()
    return _next(before, command, prescription_ids=ids, **edits)


def _next(before: ListEntry, command: _ListCommand, **changes: Any) -> ListEntry:
    try:
        return replace(before, version=before.version + 1, changed_at=command.at, **changes)
    except ValidationError as error:
        raise InvalidEntry(_summary(error), entry_id=before.id) from error


_ADDED_FIELDS = {
    "id",
    "version",
    "drug",
    "dosage",
    "use",
    "indication",
    "start",
    "stop",
    "multidose",
    "prescriber",
    "instituted_by",
    "prescription_ids",
    "changed_at",
}
"""The fields an added entry is given (the rest take their defaults): its fields-set, shared by
every entry ``_added`` builds without validating (never changed)."""


def _build(**fields: Any) -> ListEntry:
    try:
        return ListEntry.model_validate(fields)
    except ValidationError as error:
        raise InvalidEntry(_summary(error), entry_id=fields["id"]) from error


def _summary(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'entry'}: {e['msg']}" for e in error.errors()
    )


def as_one_change(changes: Sequence[ListChange]) -> ListChange | None:
    """Changes made one after another (each on the list the one before left) as ONE change of
    the list: the first's version, moment, author and reason, with every entry version of them
    numbered that version, in the order the store reads a change's entry versions back (entry
    id, then version), so a list or state built from it is the one loaded again. ``None`` when
    there is no change. Used for a received list applied as a whole (``apply_all``) and a
    medication review's decisions (``loop.review``)."""
    if not changes:
        return None
    first = changes[0]
    ordered = sorted(
        (version for change in changes for version in change.entry_versions),
        key=lambda v: (str(v.entry_id), v.version),
    )
    return first.model_copy(
        update={
            "entry_versions": tuple(
                v.model_copy(update={"list_version": first.list_version}) for v in ordered
            )
        }
    )


def apply_all(
    medication_list: MedicationList, commands: Sequence[ListCommand]
) -> tuple[MedicationList, ListChange]:
    """The list after every command in order, as ONE change (``as_one_change``: the list's next
    version, by the first command's author at its moment) holding each command's entry version:
    a received list applied as a whole is one version of ours."""
    current = medication_list
    changes: list[ListChange] = []
    for command in commands:
        current, change = current.apply(command)
        changes.append(change)
    change = as_one_change(changes)
    if change is None:
        raise ValueError("apply_all needs at least one command")
    return medication_list.followed_by(change), change


_APPLIED: dict[int, tuple[ListChange, MedicationList, MedicationList]] = {}
"""The lists ``MedicationList.apply`` made, by the change's id: the change, the list it was
applied to and the list after it (``followed_by``). At most ``_APPLIED_KEPT``."""
_APPLIED_KEPT = 64
