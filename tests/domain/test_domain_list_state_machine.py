"""Random sequences of list changes against a simple model of what must be accepted or refused,
checking the list's invariants after every step: the version strictly increases, history is
append-only and replays to the list, a prescription backs at most one live entry, and an
entered-in-error entry never counts as in use."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule

from interactions.dosage import Use
from medloop.domain.codes import DiscontinuationReason, EntryStatus
from medloop.domain.entry import TRACKED_FIELDS, Discontinuation, EntryEdit
from medloop.domain.errors import DomainError
from medloop.domain.medication_list import (
    AddEntry,
    DiscontinueEntry,
    EditEntry,
    EmptyChange,
    EntryAlreadyDiscontinued,
    EntryAlreadyOnHold,
    EntryDiscontinued,
    EntryEnteredInError,
    EntryNotOnHold,
    EntryVersion,
    HoldEntry,
    InvalidEntry,
    LinkPrescription,
    ListChange,
    MarkEnteredInError,
    MedicationList,
    PrescriptionBacksAnotherEntry,
    PrescriptionNotOnEntry,
    RenewPrescription,
    ResumeEntry,
)
from medloop.domain.versioning import diff
from tests.domain.helpers import D0, DOCTOR, EVENING, PATIENT_ID, T0, ZOCOR_PACKAGE, empty_list

ACTIVE, ON_HOLD, DISCONTINUED, IN_ERROR = (
    EntryStatus.ACTIVE,
    EntryStatus.ON_HOLD,
    EntryStatus.DISCONTINUED,
    EntryStatus.ENTERED_IN_ERROR,
)
# A small pool, so random changes often try to reuse a prescription.
PRESCRIPTIONS = tuple(UUID(int=n) for n in range(1, 6))
INDICATIONS = ("Kolesterolsenkende", "Hjertebeskyttende", "Forebyggende")


@dataclass
class ModelEntry:
    status: EntryStatus = ACTIVE
    prescriptions: list[UUID] = field(default_factory=list)
    indication: str = INDICATIONS[0]


def refusal_for_status(status: EntryStatus, change: str) -> type[DomainError] | None:
    """The error a status refuses ``change`` with, or ``None`` when the status allows it."""
    if status is IN_ERROR:
        return EntryEnteredInError
    if change == "entered-in-error":
        return None
    if change == "discontinue":
        return EntryAlreadyDiscontinued if status is DISCONTINUED else None
    if status is DISCONTINUED:
        return EntryDiscontinued
    if change == "hold" and status is ON_HOLD:
        return EntryAlreadyOnHold
    if change == "resume" and status is ACTIVE:
        return EntryNotOnHold
    return None


class ListMachine(RuleBasedStateMachine):
    entries = Bundle("entries")

    def __init__(self) -> None:
        super().__init__()
        self.medication_list = empty_list()
        self.changes: list[ListChange] = []
        self.versions: list[EntryVersion] = []
        self.recorded_json: list[str] = []
        self.model: dict[UUID, ModelEntry] = {}
        self.step = 0

    # -- helpers -------------------------------------------------------------------------------

    def _common(self, entry_id: UUID | None = None) -> dict[str, Any]:
        self.step += 1
        common: dict[str, Any] = {
            "author": DOCTOR,
            "at": T0 + timedelta(minutes=self.step),
        }
        if entry_id is not None:
            common["entry_id"] = entry_id
        return common

    def _backs_live_other(self, prescription_id: UUID, entry_id: UUID | None) -> bool:
        return any(
            other_id != entry_id and other.status.is_live and prescription_id in other.prescriptions
            for other_id, other in self.model.items()
        )

    def _apply(self, command: Any, expected_error: type[DomainError] | None) -> bool:
        before = self.medication_list
        try:
            new_list, change = before.apply(command)
        except DomainError as error:
            assert type(error) is expected_error, (error, expected_error)
            assert self.medication_list is before
            return False
        assert expected_error is None, f"expected {expected_error.__name__}"
        assert new_list.version == before.version + 1 == change.list_version
        self.medication_list = new_list
        self.changes.append(change)
        for version in change.entry_versions:
            self.versions.append(version)
            self.recorded_json.append(version.model_dump_json())
        return True

    # -- rules ---------------------------------------------------------------------------------

    @rule(
        target=entries,
        prescriptions=st.lists(st.sampled_from(PRESCRIPTIONS), max_size=2, unique=True),
        entry_id=st.uuids(version=4),
    )
    def add_entry(self, prescriptions: list[UUID], entry_id: UUID) -> Any:
        conflict = any(self._backs_live_other(p, None) for p in prescriptions)
        command = AddEntry(
            **self._common(),
            entry_id=entry_id,
            drug=ZOCOR_PACKAGE,
            dosage=EVENING,
            use=Use.REGULAR,
            indication=INDICATIONS[0],
            start=D0,
            prescription_ids=tuple(prescriptions),
        )
        if self._apply(command, PrescriptionBacksAnotherEntry if conflict else None):
            self.model[entry_id] = ModelEntry(prescriptions=list(prescriptions))
            return entry_id
        return multiple()

    @rule(entry_id=entries, indication=st.sampled_from(INDICATIONS))
    def edit(self, entry_id: UUID, indication: str) -> None:
        entry = self.model[entry_id]
        expected = refusal_for_status(entry.status, "edit")
        if expected is None and indication == entry.indication:
            expected = EmptyChange
        command = EditEntry(**self._common(entry_id), edit=EntryEdit(indication=indication))
        if self._apply(command, expected):
            entry.indication = indication

    @rule(entry_id=entries)
    def hold(self, entry_id: UUID) -> None:
        entry = self.model[entry_id]
        expected = refusal_for_status(entry.status, "hold")
        if self._apply(HoldEntry(**self._common(entry_id)), expected):
            entry.status = ON_HOLD

    @rule(entry_id=entries)
    def resume(self, entry_id: UUID) -> None:
        entry = self.model[entry_id]
        expected = refusal_for_status(entry.status, "resume")
        if self._apply(ResumeEntry(**self._common(entry_id)), expected):
            entry.status = ACTIVE

    @rule(entry_id=entries, reason=st.sampled_from(list(DiscontinuationReason)))
    def discontinue(self, entry_id: UUID, reason: DiscontinuationReason) -> None:
        entry = self.model[entry_id]
        common = self._common(entry_id)
        command = DiscontinueEntry(
            **common, discontinuation=Discontinuation(at=common["at"], reason=reason)
        )
        if self._apply(command, refusal_for_status(entry.status, "discontinue")):
            entry.status = DISCONTINUED

    @rule(entry_id=entries)
    def enter_in_error(self, entry_id: UUID) -> None:
        entry = self.model[entry_id]
        command = MarkEnteredInError(**self._common(entry_id), reason="feil pasient")
        if self._apply(command, refusal_for_status(entry.status, "entered-in-error")):
            entry.status = IN_ERROR

    @rule(entry_id=entries, prescription_id=st.sampled_from(PRESCRIPTIONS))
    def link(self, entry_id: UUID, prescription_id: UUID) -> None:
        entry = self.model[entry_id]
        expected = refusal_for_status(entry.status, "link")
        if expected is None and prescription_id in entry.prescriptions:
            expected = EmptyChange
        if expected is None and self._backs_live_other(prescription_id, entry_id):
            expected = PrescriptionBacksAnotherEntry
        command = LinkPrescription(**self._common(entry_id), prescription_id=prescription_id)
        if self._apply(command, expected):
            entry.prescriptions.append(prescription_id)

    @rule(entry_id=entries, new=st.sampled_from(PRESCRIPTIONS), data=st.data())
    def renew(self, entry_id: UUID, new: UUID, data: st.DataObject) -> None:
        entry = self.model[entry_id]
        # Mostly renew a prescription the entry has, sometimes one it does not.
        own = st.sampled_from(entry.prescriptions or PRESCRIPTIONS)
        old = data.draw(own | st.sampled_from(PRESCRIPTIONS))
        expected = refusal_for_status(entry.status, "renew")
        if expected is None:
            if old not in entry.prescriptions:
                expected = PrescriptionNotOnEntry
            elif new == old:
                expected = EmptyChange
            elif new in entry.prescriptions:
                expected = InvalidEntry  # the entry would name the prescription twice
            elif self._backs_live_other(new, entry_id):
                expected = PrescriptionBacksAnotherEntry
        command = RenewPrescription(
            **self._common(entry_id), old_prescription_id=old, new_prescription_id=new
        )
        if self._apply(command, expected):
            entry.prescriptions = [new if p == old else p for p in entry.prescriptions]

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def list_version_strictly_increases(self) -> None:
        assert [change.list_version for change in self.changes] == list(
            range(1, len(self.changes) + 1)
        )
        assert self.medication_list.version == len(self.changes)

    @invariant()
    def history_is_append_only_and_replays_to_the_list(self) -> None:
        assert [v.model_dump_json() for v in self.versions] == self.recorded_json
        assert MedicationList.replay(PATIENT_ID, self.changes) == self.medication_list
        previous: dict[UUID, Any] = {}
        for version in self.versions:
            before = previous.get(version.entry_id)
            assert version.version == (1 if before is None else before.version + 1)
            assert version.diff == diff(before, version.entry, TRACKED_FIELDS)
            previous[version.entry_id] = version.entry
        assert previous == {entry.id: entry for entry in self.medication_list.entries}

    @invariant()
    def the_list_matches_the_model(self) -> None:
        actual = {e.id: (e.status, list(e.prescription_ids)) for e in self.medication_list.entries}
        assert actual == {
            entry_id: (entry.status, entry.prescriptions) for entry_id, entry in self.model.items()
        }

    @invariant()
    def at_most_one_live_entry_per_prescription(self) -> None:
        live = [
            p for e in self.medication_list.entries if e.status.is_live for p in e.prescription_ids
        ]
        assert len(live) == len(set(live))

    @invariant()
    def an_entered_in_error_entry_never_counts_as_in_use(self) -> None:
        now = T0 + timedelta(minutes=self.step)
        shown = {entry.id for entry in self.medication_list.current_view(now)}
        for entry in self.medication_list.entries:
            if entry.status is IN_ERROR:
                assert not entry.in_use(D0) and not entry.in_use(now.date())
                assert entry.id not in shown
                assert entry not in self.medication_list.in_use(D0)


ListMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_random_list_changes_keep_the_lists_invariants = ListMachine.TestCase
