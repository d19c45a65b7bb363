"""The medication list: entry transitions, versions and diffs, stale writes, prescription
backing, replay, and the current-list view."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from interactions.dosage import AsNeededDose, Dosage, Quantity, Use
from interactions.drugs import ReferenceKind, ResolvedDrug
from medloop.domain.codes import DiscontinuationReason, EntryChangeKind, EntryStatus
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.entry import Discontinuation, EntryEdit
from medloop.domain.medication_list import (
    BrokenHistory,
    DiscontinueEntry,
    EditEntry,
    EmptyChange,
    EntryAlreadyDiscontinued,
    EntryAlreadyExists,
    EntryAlreadyOnHold,
    EntryDiscontinued,
    EntryEnteredInError,
    EntryNotFound,
    EntryNotOnHold,
    HoldEntry,
    InvalidEntry,
    LinkPrescription,
    ListChange,
    MarkEnteredInError,
    MedicationList,
    PrescriptionBacksAnotherEntry,
    ResumeEntry,
)
from tests.domain.helpers import (
    D0,
    DOCTOR,
    EVENING,
    FISH_OIL,
    NURSE,
    PATIENT_ID,
    T0,
    ZOCOR_BRAND,
    add,
    empty_list,
    new_id,
)

LATER = T0 + timedelta(hours=1)


def stop_now() -> Discontinuation:
    return Discontinuation(at=LATER, reason=DiscontinuationReason.TREATMENT_ENDED, note="ferdig")


def command(kind: str, medication_list: MedicationList, entry_id: UUID) -> Any:
    common: dict[str, Any] = {
        "author": DOCTOR,
        "at": LATER,
        "entry_id": entry_id,
    }
    if kind == "edit":
        return EditEntry(edit=EntryEdit(indication="Hjertebeskyttende"), **common)
    if kind == "hold":
        return HoldEntry(**common)
    if kind == "resume":
        return ResumeEntry(**common)
    if kind == "discontinue":
        return DiscontinueEntry(discontinuation=stop_now(), **common)
    if kind == "entered-in-error":
        return MarkEnteredInError(reason="feil pasient", **common)
    if kind == "link":
        return LinkPrescription(prescription_id=new_id(), **common)
    raise AssertionError(kind)


def in_status(status: EntryStatus) -> tuple[MedicationList, UUID]:
    medication_list, _, entry = add(empty_list())
    path = {
        EntryStatus.ACTIVE: [],
        EntryStatus.ON_HOLD: ["hold"],
        EntryStatus.DISCONTINUED: ["discontinue"],
        EntryStatus.ENTERED_IN_ERROR: ["entered-in-error"],
    }[status]
    for kind in path:
        medication_list, _ = medication_list.apply(command(kind, medication_list, entry.id))
    assert medication_list.entry(entry.id).status is status
    return medication_list, entry.id


ACTIVE, ON_HOLD, DISCONTINUED, IN_ERROR = (
    EntryStatus.ACTIVE,
    EntryStatus.ON_HOLD,
    EntryStatus.DISCONTINUED,
    EntryStatus.ENTERED_IN_ERROR,
)

# (status before, change) -> status after, or the error that refuses the change.
TRANSITIONS: dict[tuple[EntryStatus, str], EntryStatus | type[Exception]] = {
    (ACTIVE, "edit"): ACTIVE,
    (ACTIVE, "hold"): ON_HOLD,
    (ACTIVE, "resume"): EntryNotOnHold,
    (ACTIVE, "discontinue"): DISCONTINUED,
    (ACTIVE, "entered-in-error"): IN_ERROR,
    (ACTIVE, "link"): ACTIVE,
    (ON_HOLD, "edit"): ON_HOLD,
    (ON_HOLD, "hold"): EntryAlreadyOnHold,
    (ON_HOLD, "resume"): ACTIVE,
    (ON_HOLD, "discontinue"): DISCONTINUED,
    (ON_HOLD, "entered-in-error"): IN_ERROR,
    (ON_HOLD, "link"): ON_HOLD,
    (DISCONTINUED, "edit"): EntryDiscontinued,
    (DISCONTINUED, "hold"): EntryDiscontinued,
    (DISCONTINUED, "resume"): EntryDiscontinued,
    (DISCONTINUED, "discontinue"): EntryAlreadyDiscontinued,
    (DISCONTINUED, "entered-in-error"): IN_ERROR,
    (DISCONTINUED, "link"): EntryDiscontinued,
    **{
        (IN_ERROR, kind): EntryEnteredInError
        for kind in ("edit", "hold", "resume", "discontinue", "entered-in-error", "link")
    },
}


@pytest.mark.parametrize(("status", "kind"), list(TRANSITIONS))
def test_every_entry_transition_is_allowed_or_refused_as_the_table_says(
    status: EntryStatus, kind: str
) -> None:
    medication_list, entry_id = in_status(status)
    expected = TRANSITIONS[(status, kind)]
    if isinstance(expected, EntryStatus):
        new_list, change = medication_list.apply(command(kind, medication_list, entry_id))
        assert new_list.entry(entry_id).status is expected
        assert change.list_version == medication_list.version + 1
    else:
        with pytest.raises(expected) as caught:
            medication_list.apply(command(kind, medication_list, entry_id))
        assert caught.value.context["entry_id"] == str(entry_id)


def test_resuming_a_discontinued_entry_is_refused() -> None:
    medication_list, entry_id = in_status(DISCONTINUED)
    with pytest.raises(EntryDiscontinued, match="discontinued; add a new entry"):
        medication_list.apply(command("resume", medication_list, entry_id))


def test_changing_an_entered_in_error_entry_is_refused() -> None:
    medication_list, entry_id = in_status(IN_ERROR)
    with pytest.raises(EntryEnteredInError) as caught:
        medication_list.apply(command("edit", medication_list, entry_id))
    assert caught.value.code == "entry-entered-in-error"


def test_discontinuing_twice_is_refused() -> None:
    medication_list, entry_id = in_status(DISCONTINUED)
    with pytest.raises(EntryAlreadyDiscontinued):
        medication_list.apply(command("discontinue", medication_list, entry_id))


def test_marking_an_entry_entered_in_error_needs_a_reason() -> None:
    with pytest.raises(ValidationError):
        MarkEnteredInError(author=DOCTOR, at=T0, entry_id=new_id(), reason="")


def test_a_discontinued_entry_records_the_coded_reason_and_keeps_it_when_marked_in_error() -> None:
    medication_list, entry_id = in_status(DISCONTINUED)
    entry = medication_list.entry(entry_id)
    assert entry.discontinuation is not None
    assert entry.discontinuation.reason.value == "A"
    in_error, _ = medication_list.apply(command("entered-in-error", medication_list, entry_id))
    assert in_error.entry(entry_id).discontinuation == entry.discontinuation


def test_every_change_raises_the_list_version_by_one_and_makes_one_entry_version() -> None:
    medication_list, first, entry = add(empty_list())
    assert (medication_list.version, first.list_version, entry.version) == (1, 1, 1)
    assert first.entry_versions[0].kind is EntryChangeKind.ADDED
    held, change = medication_list.apply(command("hold", medication_list, entry.id))
    (version,) = change.entry_versions
    assert held.version == 2 and version.list_version == 2
    assert version.version == 2 and version.entry == held.entry(entry.id)
    assert version.kind is EntryChangeKind.PUT_ON_HOLD
    assert (version.author, version.at) == (DOCTOR, LATER)
    assert medication_list.entry(entry.id).status is ACTIVE  # the old list is untouched


def test_an_edit_records_a_diff_of_exactly_the_changed_fields_as_json() -> None:
    medication_list, _, entry = add(empty_list())
    edited, change = medication_list.apply(
        EditEntry(
            author=NURSE,
            at=LATER,
            reason="ny dosering etter kontroll",
            entry_id=entry.id,
            edit=EntryEdit(stop=date(2024, 6, 1), indication="Hjertebeskyttende"),
        )
    )
    (version,) = change.entry_versions
    assert {c.field: (c.before, c.after) for c in version.diff} == {
        "indication": ("Kolesterolsenkende", "Hjertebeskyttende"),
        "stop": (None, "2024-06-01"),
    }
    assert version.reason == "ny dosering etter kontroll"
    assert edited.entry(entry.id).changed_at == LATER


def test_the_first_version_records_every_field_it_sets() -> None:
    _, change, entry = add(empty_list())
    fields = {c.field for c in change.entry_versions[0].diff}
    assert {"drug", "dosage", "use", "start", "status", "multidose", "prescription_ids"} <= fields
    assert all(c.before is None for c in change.entry_versions[0].diff)
    assert entry.drug == change.entry_versions[0].entry.drug


def test_an_edit_means_the_same_after_a_round_trip_through_json() -> None:
    edit = EditEntry(
        author=DOCTOR, at=LATER, entry_id=new_id(), edit=EntryEdit(stop=None, indication="Ny")
    )
    again = EditEntry.model_validate_json(edit.model_dump_json())
    assert again == edit
    assert again.edit.changes() == {"stop": None, "indication": "Ny"}


def test_changing_the_drug_records_the_new_reference_and_its_catalogue_version() -> None:
    medication_list, _, entry = add(empty_list())
    newer_brand = ZOCOR_BRAND.model_copy(update={"catalogue_version": 4})
    _, change = medication_list.apply(
        EditEntry(author=DOCTOR, at=LATER, entry_id=entry.id, edit=EntryEdit(drug=newer_brand))
    )
    (field_change,) = change.entry_versions[0].diff
    assert field_change.field == "drug"
    assert isinstance(field_change.before, dict) and isinstance(field_change.after, dict)
    assert (field_change.before["catalogue_version"], field_change.after["catalogue_version"]) == (
        3,
        4,
    )
    assert field_change.after["resolved"]["reference_kind"] == "product"


def test_an_edit_that_changes_nothing_is_refused() -> None:
    medication_list, _, entry = add(empty_list())
    with pytest.raises(EmptyChange):
        medication_list.apply(
            EditEntry(
                author=DOCTOR,
                at=LATER,
                entry_id=entry.id,
                edit=EntryEdit(indication=entry.indication),
            )
        )


def test_an_explicit_none_clears_a_field_and_an_absent_field_stays() -> None:
    medication_list, _, entry = add(empty_list(), stop=date(2024, 4, 1))
    edited, _ = medication_list.apply(
        EditEntry(author=DOCTOR, at=LATER, entry_id=entry.id, edit=EntryEdit(stop=None))
    )
    assert edited.entry(entry.id).stop is None
    assert edited.entry(entry.id).indication == entry.indication


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (EntryEdit(stop=date(2024, 2, 1)), "before start"),
        (EntryEdit(use=Use.AS_NEEDED), "the dosage is for use regular"),
        (EntryEdit(use=None), "use"),
    ],
)
def test_an_edit_that_would_make_an_invalid_entry_is_refused(edit: EntryEdit, message: str) -> None:
    medication_list, _, entry = add(empty_list())
    with pytest.raises(InvalidEntry, match=message):
        medication_list.apply(EditEntry(author=DOCTOR, at=LATER, entry_id=entry.id, edit=edit))


def test_changing_use_together_with_a_matching_dosage_is_accepted() -> None:
    medication_list, _, entry = add(empty_list())
    prn = Dosage(
        use=Use.AS_NEEDED,
        as_needed=(
            AsNeededDose(
                amount=Quantity(value=1, unit="tablett"),
                max_per_24h=Quantity(value=3, unit="tablett"),
            ),
        ),
    )
    edited, _ = medication_list.apply(
        EditEntry(
            author=DOCTOR,
            at=LATER,
            entry_id=entry.id,
            edit=EntryEdit(use=Use.AS_NEEDED, dosage=prn),
        )
    )
    assert edited.entry(entry.id).dosage == prn


def test_adding_an_entry_with_an_existing_id_is_refused() -> None:
    medication_list, _, entry = add(empty_list())
    with pytest.raises(EntryAlreadyExists):
        add(medication_list, entry_id=entry.id)


def test_a_change_to_an_unknown_entry_is_refused() -> None:
    with pytest.raises(EntryNotFound):
        empty_list().apply(command("hold", empty_list(), new_id()))


def test_an_entry_records_the_catalogue_version_its_drug_was_resolved_against() -> None:
    _, _, entry = add(empty_list(), drug=ZOCOR_BRAND)
    assert isinstance(entry.drug, CatalogueDrug)
    assert entry.drug.catalogue_version == 3
    assert entry.drug.resolved.substitution_group_ids == ("SG_SIMVA20",)


def test_a_non_catalogue_item_is_a_name_and_free_text() -> None:
    _, _, entry = add(empty_list(), drug=FISH_OIL, dosage=None)
    assert entry.drug == FISH_OIL
    assert entry.prescription_ids == ()


def test_an_entry_cannot_name_a_bare_substance() -> None:
    substance = ResolvedDrug(ReferenceKind.SUBSTANCE, "ID_SUB", "simvastatin")
    with pytest.raises(ValidationError, match="not a substance"):
        CatalogueDrug(resolved=substance, catalogue_version=1)


def test_the_same_prescription_may_not_back_two_active_entries() -> None:
    prescription_id = new_id()
    medication_list, _, first = add(empty_list(), prescription_ids=(prescription_id,))
    with pytest.raises(PrescriptionBacksAnotherEntry) as caught:
        add(medication_list, prescription_ids=(prescription_id,))
    assert caught.value.context["entry_id"] == str(first.id)
    medication_list, _, second = add(medication_list)
    with pytest.raises(PrescriptionBacksAnotherEntry):
        medication_list.apply(
            LinkPrescription(
                author=DOCTOR, at=LATER, entry_id=second.id, prescription_id=prescription_id
            )
        )


def test_an_on_hold_entry_keeps_its_prescription_to_itself() -> None:
    prescription_id = new_id()
    medication_list, _, first = add(empty_list(), prescription_ids=(prescription_id,))
    medication_list, _ = medication_list.apply(command("hold", medication_list, first.id))
    with pytest.raises(PrescriptionBacksAnotherEntry):
        add(medication_list, prescription_ids=(prescription_id,))


@pytest.mark.parametrize("kind", ["discontinue", "entered-in-error"])
def test_a_prescription_is_free_again_once_its_entry_is_no_longer_live(kind: str) -> None:
    prescription_id = new_id()
    medication_list, _, first = add(empty_list(), prescription_ids=(prescription_id,))
    medication_list, _ = medication_list.apply(command(kind, medication_list, first.id))
    medication_list, _, second = add(medication_list, prescription_ids=(prescription_id,))
    assert medication_list.entry_backed_by(prescription_id) == second


def test_linking_a_prescription_twice_to_the_same_entry_is_an_empty_change() -> None:
    prescription_id = new_id()
    medication_list, _, entry = add(empty_list(), prescription_ids=(prescription_id,))
    with pytest.raises(EmptyChange):
        medication_list.apply(
            LinkPrescription(
                author=DOCTOR, at=LATER, entry_id=entry.id, prescription_id=prescription_id
            )
        )


def history() -> tuple[MedicationList, list[ListChange]]:
    changes: list[ListChange] = []
    medication_list, change, first = add(empty_list())
    changes.append(change)
    medication_list, change, second = add(medication_list, drug=FISH_OIL, dosage=None)
    changes.append(change)
    for kind, entry_id in (("hold", first.id), ("edit", second.id), ("discontinue", second.id)):
        medication_list, change = medication_list.apply(command(kind, medication_list, entry_id))
        changes.append(change)
    return medication_list, changes


def test_replaying_the_stored_changes_rebuilds_the_list() -> None:
    medication_list, changes = history()
    stored = [change.model_dump_json() for change in changes]
    loaded = [ListChange.model_validate_json(row) for row in stored]
    assert loaded == changes
    assert MedicationList.replay(PATIENT_ID, loaded) == medication_list


@pytest.mark.parametrize(
    "tamper",
    [
        lambda changes: changes[:2] + changes[3:],  # a lost list version
        lambda changes: [changes[0], changes[0], *changes[1:]],  # a repeated one
        lambda changes: [changes[1], changes[0], *changes[2:]],  # out of order
    ],
)
def test_replay_refuses_a_history_with_a_gap_or_a_repeat(
    tamper: Callable[[list[ListChange]], list[ListChange]],
) -> None:
    _, changes = history()
    with pytest.raises(BrokenHistory):
        MedicationList.replay(PATIENT_ID, tamper(changes))


def test_replay_refuses_a_lost_entry_version() -> None:
    _, changes = history()
    first_hold = changes[2]
    skipped_version = first_hold.model_copy(
        update={"entry_versions": (first_hold.entry_versions[0].model_copy(update={"version": 3}),)}
    )
    with pytest.raises(BrokenHistory, match="does not follow version 1"):
        MedicationList.replay(PATIENT_ID, [*changes[:2], skipped_version, *changes[3:]])


def discontinued_at(days_ago: float) -> MedicationList:
    medication_list, _, entry = add(empty_list())
    medication_list, _ = medication_list.apply(
        DiscontinueEntry(
            author=DOCTOR,
            at=T0,
            entry_id=entry.id,
            discontinuation=Discontinuation(
                at=T0 - timedelta(days=days_ago), reason=DiscontinuationReason.LACK_OF_EFFECT
            ),
        )
    )
    return medication_list


@pytest.mark.parametrize(
    ("days_ago", "shown"),
    [(0, True), (89, True), (90, True), (90.01, False), (91, False), (-3, True)],
)
def test_a_discontinued_entry_stays_in_the_current_list_for_90_days(
    days_ago: float, shown: bool
) -> None:
    assert bool(discontinued_at(days_ago).current_view(T0)) is shown


def test_the_current_list_shows_active_and_on_hold_entries_never_entered_in_error_ones() -> None:
    medication_list, _, active = add(empty_list())
    medication_list, _, held = add(medication_list)
    medication_list, _, wrong = add(medication_list)
    medication_list, _ = medication_list.apply(command("hold", medication_list, held.id))
    mistake = command("entered-in-error", medication_list, wrong.id)
    medication_list, _ = medication_list.apply(mistake)
    shown = [entry.id for entry in medication_list.current_view(T0 + timedelta(days=1000))]
    assert shown == [active.id, held.id]
    assert [entry.id for entry in medication_list.in_use(D0)] == [active.id]


def test_the_retention_of_discontinued_entries_is_configurable() -> None:
    medication_list = discontinued_at(100)
    assert medication_list.current_view(T0) == ()
    assert len(medication_list.current_view(T0, keep_discontinued=timedelta(days=180))) == 1


@pytest.mark.parametrize(
    ("start", "stop", "on", "in_use"),
    [
        (date(2024, 3, 10), None, date(2024, 3, 9), False),  # starts in the future
        (date(2024, 3, 10), None, date(2024, 3, 10), True),
        (date(2024, 3, 1), date(2024, 3, 7), date(2024, 3, 7), True),  # course, last day
        (date(2024, 3, 1), date(2024, 3, 7), date(2024, 3, 8), False),
    ],
)
def test_an_active_entry_is_in_use_between_its_start_and_stop_days(
    start: date, stop: date | None, on: date, in_use: bool
) -> None:
    _, _, entry = add(empty_list(), start=start, stop=stop)
    assert entry.in_use(on) is in_use


def test_an_entered_in_error_entry_never_counts_as_in_use() -> None:
    medication_list, entry_id = in_status(IN_ERROR)
    entry = medication_list.entry(entry_id)
    assert not any(entry.in_use(D0 + timedelta(days=n)) for n in range(-5, 400, 7))
    assert medication_list.in_use(D0) == ()
    assert medication_list.current_view(T0) == ()


def test_list_values_are_immutable() -> None:
    medication_list, _, entry = add(empty_list())
    with pytest.raises(ValidationError):
        medication_list.version = 7  # type: ignore[misc]
    with pytest.raises(ValidationError):
        entry.status = EntryStatus.DISCONTINUED  # type: ignore[misc]


def test_an_entry_round_trips_through_json_with_its_dosage_and_drug() -> None:
    _, _, entry = add(empty_list(), dosage=EVENING)
    assert type(entry).model_validate_json(entry.model_dump_json()) == entry


class _AnotherUuid(UUID):
    """A UUID of another type: looked up by ``==``, the way every id was before issue #20."""


def test_entries_are_found_by_their_ids_numbers_as_by_equal_ids():
    medication_list, _, first = add(empty_list(), prescription_ids=(uuid4(),))
    medication_list, _, second = add(medication_list, prescription_ids=(uuid4(), uuid4()))
    for entry in (first, second):
        assert medication_list.find(entry.id) is entry
        assert medication_list.find(_AnotherUuid(str(entry.id))) is entry
        for prescription_id in entry.prescription_ids:
            assert medication_list.entry_backed_by(prescription_id) is entry
            assert medication_list.entry_backed_by(_AnotherUuid(str(prescription_id))) is entry
    unknown = uuid4()
    assert medication_list.find(unknown) is None
    assert medication_list.entry_backed_by(unknown) is None
