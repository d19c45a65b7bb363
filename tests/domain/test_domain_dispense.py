"""Dispensing: the closed-loop ``check_dispensable`` rules, partial dispensing, repeats and
annulment arithmetic."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from interactions.catalogue import Package, SubstitutionGroup
from interactions.dosage import Quantity
from medloop.domain.codes import (
    DiscontinuationReason,
    PrescriptionChangeKind,
    PrescriptionStatus,
    RecallReason,
)
from medloop.domain.dispense import (
    PACKAGES,
    AnnulmentByAnotherPharmacy,
    Dispense,
    DispenseAlreadyAnnulled,
    DispenseNotOnPrescription,
    DispenseOutcome,
    DispenseQuantity,
    DispenseRequest,
    PackageNotSubstitutable,
    PackExpired,
    QuantityExceedsRemaining,
    QuantityUnitMismatch,
    SubstitutionGroupNotValid,
    SubstitutionReserved,
    annul,
    check_dispensable,
    dispense,
    tally,
)
from medloop.domain.entry import Discontinuation, EntryEdit, ListEntry
from medloop.domain.errors import NotDispensable
from medloop.domain.medication_list import (
    DiscontinueEntry,
    EditEntry,
    EntryNotActive,
    HoldEntry,
    PrescriptionNotOnEntry,
)
from medloop.domain.prescription import (
    PrescribedQuantity,
    Prescription,
    PrescriptionExpired,
    PrescriptionFullyDispensed,
    PrescriptionLocked,
    PrescriptionRecalled,
    lock,
    recall,
)
from tests.domain.helpers import (
    D0,
    DOCTOR,
    ENDED_GROUP,
    GROUPS,
    NURSE,
    OTHER_PHARMACIST,
    OTHER_PHARMACY,
    PARACET,
    PHARMACIST,
    PHARMACY,
    SERTRALIN,
    SERTRALIN_GENERIC,
    SERTRALIN_PACKAGE,
    SIMVA_GROUP,
    SIMVA_KRKA,
    SIMVA_LATE,
    SIMVA_LEFT,
    T0,
    ZOCOR_28,
    ZOCOR_98,
    ZOCOR_BRAND,
    new_id,
    prescribed,
)

LATER = T0 + timedelta(hours=2)
HUNDRED_TABLETS = PrescribedQuantity(amount=Quantity(value=100, unit="tablett"))


def packages(n: float, amount: Quantity | None = None) -> DispenseQuantity:
    return DispenseQuantity(packages=n, amount=amount)


def check(
    prescription: Prescription,
    entry: ListEntry,
    package: Package = ZOCOR_98,
    *,
    on: date = D0,
    already: tuple[Dispense, ...] = (),
    quantity: DispenseQuantity | None = None,
    **kwargs: Any,
) -> Any:
    return check_dispensable(
        prescription,
        entry,
        package,
        GROUPS,
        on,
        already,
        quantity=quantity or packages(1),
        **kwargs,
    )


def hand_out(
    prescription: Prescription,
    entry: ListEntry,
    already: tuple[Dispense, ...] = (),
    *,
    package: Package = ZOCOR_98,
    quantity: DispenseQuantity | None = None,
    by: Any = PHARMACIST,
    **request_fields: Any,
) -> DispenseOutcome:
    values: dict[str, Any] = {
        "id": new_id(),
        "dispensed_on": D0,
        "quantity": quantity or packages(1),
        "batch": "AB1234",
        "expiry": date(2026, 5, 31),
    }
    values.update(request_fields)
    return dispense(
        prescription, entry, package, GROUPS, already, DispenseRequest(**values), at=LATER, by=by
    )


# -- which package ------------------------------------------------------------------------------


def test_the_prescribed_package_is_dispensable_without_substitution() -> None:
    _, entry, prescription = prescribed()
    verdict = check(prescription, entry, ZOCOR_98)
    assert (verdict.substituted, verdict.substitution_group, verdict.remaining_after) == (
        False,
        None,
        0,
    )


def test_any_package_of_a_prescribed_brand_is_no_substitution() -> None:
    _, entry, prescription = prescribed(ZOCOR_BRAND)
    assert check(prescription, entry, ZOCOR_28).substituted is False


@pytest.mark.parametrize("package", [SIMVA_KRKA, ZOCOR_28], ids=["generic", "other pack size"])
def test_a_package_in_the_same_substitution_group_valid_on_the_date_is_a_substitution(
    package: Package,
) -> None:
    _, entry, prescription = prescribed()
    verdict = check(prescription, entry, package)
    assert verdict.substituted is True
    assert verdict.substitution_group == SIMVA_GROUP


@pytest.mark.parametrize(
    ("package", "message"),
    [(SIMVA_LEFT, "valid … to 2023-06-30"), (SIMVA_LATE, "valid 2025-01-01 to …")],
    ids=["membership ended", "membership not begun"],
)
def test_a_package_outside_its_group_membership_on_the_date_is_not_dispensable(
    package: Package, message: str
) -> None:
    _, entry, prescription = prescribed()
    with pytest.raises(SubstitutionGroupNotValid, match=message):
        check(prescription, entry, package)


def test_a_substitution_group_that_expired_before_the_dispensing_date_refuses_it() -> None:
    _, entry, prescription = prescribed(SERTRALIN_PACKAGE)
    with pytest.raises(SubstitutionGroupNotValid, match="valid 2010-01-01 to 2023-12-31"):
        check(prescription, entry, SERTRALIN_GENERIC)
    on_last_day = check(prescription, entry, SERTRALIN_GENERIC, on=date(2023, 12, 31))
    assert on_last_day.substitution_group == ENDED_GROUP
    assert check(prescription, entry, SERTRALIN).substituted is False


def test_a_substitution_group_missing_from_the_catalogue_in_force_refuses_substitution() -> None:
    _, entry, prescription = prescribed()
    with pytest.raises(SubstitutionGroupNotValid, match="not in the catalogue"):
        check_dispensable(prescription, entry, SIMVA_KRKA, (), D0, (), quantity=packages(1))


def test_reserved_against_substitution_allows_only_the_prescribed_package() -> None:
    _, entry, prescription = prescribed(reserved_against_substitution=True)
    with pytest.raises(SubstitutionReserved):
        check(prescription, entry, SIMVA_KRKA)
    assert check(prescription, entry, ZOCOR_98).substituted is False


def test_a_package_of_another_drug_is_not_substitutable() -> None:
    _, entry, prescription = prescribed()
    with pytest.raises(PackageNotSubstitutable):
        check(prescription, entry, PARACET)


def test_the_prescription_not_the_edited_entry_decides_what_may_be_dispensed() -> None:
    medication_list, entry, prescription = prescribed()
    edited, _ = medication_list.apply(
        EditEntry(
            author=DOCTOR, at=LATER, entry_id=entry.id, edit=EntryEdit(drug=SERTRALIN_PACKAGE)
        )
    )
    assert check(prescription, edited.entry(entry.id), ZOCOR_98).substituted is False
    with pytest.raises(PackageNotSubstitutable):
        check(prescription, edited.entry(entry.id), SERTRALIN)


# -- which prescription and entry --------------------------------------------------------------


def test_a_recalled_prescription_is_not_dispensable() -> None:
    _, entry, prescription = prescribed()
    recalled, _ = recall(prescription, RecallReason.OTHER, at=LATER, by=DOCTOR)
    with pytest.raises(PrescriptionRecalled):
        check(recalled, entry)


def test_a_prescription_is_not_dispensable_after_its_last_valid_day() -> None:
    _, entry, prescription = prescribed()
    check(prescription, entry, on=prescription.expires)
    with pytest.raises(PrescriptionExpired):
        check(prescription, entry, on=prescription.expires + timedelta(days=1))


def test_a_fully_dispensed_prescription_is_not_dispensable() -> None:
    _, entry, prescription = prescribed()
    done = hand_out(prescription, entry)
    assert done.prescription.status is PrescriptionStatus.FULLY_DISPENSED
    with pytest.raises(PrescriptionFullyDispensed):
        check(done.prescription, entry, already=(done.dispense,))


def test_a_prescription_locked_by_another_pharmacy_is_not_dispensable_there() -> None:
    _, entry, prescription = prescribed()
    locked, _ = lock(prescription, PHARMACY, on=D0, at=LATER, by=PHARMACIST)
    with pytest.raises(PrescriptionLocked):
        check(locked, entry, pharmacy=OTHER_PHARMACY)
    assert check(locked, entry, pharmacy=PHARMACY).substituted is False


def test_an_entry_on_hold_or_discontinued_is_not_dispensed_against() -> None:
    medication_list, entry, prescription = prescribed()
    held, _ = medication_list.apply(HoldEntry(author=DOCTOR, at=LATER, entry_id=entry.id))
    with pytest.raises(EntryNotActive, match="on-hold"):
        check(prescription, held.entry(entry.id))
    stopped, _ = medication_list.apply(
        DiscontinueEntry(
            author=DOCTOR,
            at=LATER,
            entry_id=entry.id,
            discontinuation=Discontinuation(at=LATER, reason=DiscontinuationReason.OTHER),
        )
    )
    with pytest.raises(EntryNotActive, match="discontinued"):
        check(prescription, stopped.entry(entry.id))


def test_a_prescription_is_only_dispensed_against_the_entry_it_backs() -> None:
    _, entry, _ = prescribed()
    _, _, stranger = prescribed()
    with pytest.raises(PrescriptionNotOnEntry):
        check(stranger, entry)


def test_every_dispensing_refusal_is_a_not_dispensable_error() -> None:
    _, entry, prescription = prescribed(reserved_against_substitution=True)
    refusals = [
        lambda: check(prescription, entry, SIMVA_KRKA),
        lambda: check(prescription, entry, quantity=packages(2)),
        lambda: check(prescription, entry, on=date(2030, 1, 1)),
    ]
    for attempt in refusals:
        with pytest.raises(NotDispensable):
            attempt()


# -- how much -----------------------------------------------------------------------------------


def test_dispensing_more_than_remains_is_refused() -> None:
    _, entry, prescription = prescribed(quantity=PrescribedQuantity(packages=2))
    first = hand_out(prescription, entry)
    with pytest.raises(QuantityExceedsRemaining) as caught:
        check(first.prescription, entry, already=(first.dispense,), quantity=packages(2))
    assert caught.value.context == {
        "prescription_id": str(prescription.id),
        "asked": 2,
        "remaining": 1,
        "unit": PACKAGES,
    }


def test_partial_dispensing_keeps_the_prescription_open() -> None:
    _, entry, prescription = prescribed(quantity=PrescribedQuantity(packages=3))
    first = hand_out(prescription, entry)
    assert first.prescription.status is PrescriptionStatus.DISPENSABLE
    assert first.prescription_version is None
    assert tally(prescription, (first.dispense,)).remaining == 2
    second = hand_out(first.prescription, entry, (first.dispense,), quantity=packages(2))
    assert second.prescription.status is PrescriptionStatus.FULLY_DISPENSED
    assert second.prescription_version is not None
    assert second.prescription_version.kind is PrescriptionChangeKind.FULLY_DISPENSED


def test_a_partial_dispense_releases_the_pharmacys_lock() -> None:
    _, entry, prescription = prescribed(quantity=PrescribedQuantity(packages=3))
    locked, _ = lock(prescription, PHARMACY, on=D0, at=LATER, by=PHARMACIST)
    partial = hand_out(locked, entry)
    assert (partial.prescription.status, partial.prescription.locked_by) == (
        PrescriptionStatus.DISPENSABLE,
        None,
    )
    assert partial.prescription_version is not None
    assert partial.prescription_version.kind is PrescriptionChangeKind.PARTIALLY_DISPENSED
    with pytest.raises(PrescriptionLocked):
        hand_out(locked, entry, by=OTHER_PHARMACIST)


def test_repeats_are_counted_in_rounds_of_the_prescribed_quantity() -> None:
    _, entry, prescription = prescribed(quantity=PrescribedQuantity(packages=2), repeats=2)
    dispensed: tuple[Dispense, ...] = ()
    current = prescription
    seen = []
    for n in (2, 1, 1, 2):
        outcome = hand_out(current, entry, dispensed, quantity=packages(n))
        current, dispensed = outcome.prescription, (*dispensed, outcome.dispense)
        counted = tally(prescription, dispensed)
        seen.append(
            (
                counted.dispensed,
                counted.rounds_started,
                counted.repeats_used,
                counted.repeats_left,
                current.status.value,
            )
        )
    assert seen == [
        (2, 1, 0, 2, "E"),
        (3, 2, 1, 1, "E"),
        (4, 2, 1, 1, "E"),
        (6, 3, 2, 0, "R"),
    ]


def test_the_pharmacy_may_finish_a_prescription_before_all_of_it_is_dispensed() -> None:
    _, entry, prescription = prescribed(quantity=PrescribedQuantity(packages=3))
    outcome = hand_out(prescription, entry, finished=True)
    assert outcome.prescription.status is PrescriptionStatus.FULLY_DISPENSED
    assert tally(prescription, (outcome.dispense,)).remaining == 2


def test_an_amount_is_counted_in_the_prescribed_unit_across_spellings_and_scales() -> None:
    _, entry, tablets = prescribed(quantity=HUNDRED_TABLETS)
    outcome = hand_out(tablets, entry, quantity=packages(1, Quantity(value=98, unit="tabletter")))
    assert tally(tablets, (outcome.dispense,)).remaining == pytest.approx(2)
    _, entry, grams = prescribed(quantity=PrescribedQuantity(amount=Quantity(value=10, unit="g")))
    outcome = hand_out(grams, entry, quantity=packages(1, Quantity(value=5000, unit="mg")))
    assert tally(grams, (outcome.dispense,)).remaining == pytest.approx(5)


@pytest.mark.parametrize(
    "amount", [None, Quantity(value=100, unit="mg"), Quantity(value=2, unit="kapsler")]
)
def test_a_dispensed_amount_that_cannot_be_counted_in_the_prescribed_unit_is_refused(
    amount: Quantity | None,
) -> None:
    _, entry, prescription = prescribed(quantity=HUNDRED_TABLETS)
    with pytest.raises(QuantityUnitMismatch):
        check(prescription, entry, quantity=packages(1, amount))


def test_an_expired_pack_is_not_handed_out() -> None:
    _, entry, prescription = prescribed()
    with pytest.raises(PackExpired):
        hand_out(prescription, entry, expiry=D0 - timedelta(days=1))


def test_a_dispense_records_what_was_handed_out_by_whom() -> None:
    _, entry, prescription = prescribed()
    outcome = hand_out(prescription, entry, package=SIMVA_KRKA, patient_refused_substitution=False)
    record = outcome.dispense
    assert (record.package.package_id, record.package.varenr) == ("ID_SIMVA_KRKA", "123456")
    assert (record.pharmacy, record.pharmacist) == (PHARMACY, PHARMACIST.personnel)
    assert record.substituted is True
    assert (record.prescription_id, record.entry_id, record.batch) == (
        prescription.id,
        entry.id,
        "AB1234",
    )
    assert Dispense.model_validate_json(record.model_dump_json()) == record


def test_only_a_pharmacist_at_a_pharmacy_dispenses() -> None:
    _, entry, prescription = prescribed()
    with pytest.raises(ValidationError, match="not a pharmacy"):
        hand_out(prescription, entry, by=NURSE)


def test_a_tally_refuses_dispenses_of_another_prescription() -> None:
    _, entry, prescription = prescribed()
    _, other_entry, other = prescribed()
    stray = hand_out(other, other_entry).dispense
    with pytest.raises(DispenseNotOnPrescription):
        tally(prescription, (stray,))


# -- annulment ----------------------------------------------------------------------------------


def test_annulling_the_finishing_dispense_reopens_the_prescription() -> None:
    _, entry, prescription = prescribed(quantity=PrescribedQuantity(packages=2))
    first = hand_out(prescription, entry)
    second = hand_out(first.prescription, entry, (first.dispense,))
    assert second.prescription.status is PrescriptionStatus.FULLY_DISPENSED
    all_dispenses = (first.dispense, second.dispense)
    undone = annul(
        second.dispense,
        second.prescription,
        all_dispenses,
        reason="feil pakning",
        at=LATER,
        by=PHARMACIST,
    )
    assert undone.dispense.annulment is not None and not undone.dispense.counts
    assert undone.prescription.status is PrescriptionStatus.DISPENSABLE
    assert undone.prescription_version is not None
    assert undone.prescription_version.kind is PrescriptionChangeKind.REOPENED
    assert tally(prescription, (first.dispense, undone.dispense)).remaining == 1
    again = hand_out(undone.prescription, entry, (first.dispense, undone.dispense))
    assert again.prescription.status is PrescriptionStatus.FULLY_DISPENSED


def test_annulling_a_partial_dispense_restores_what_remains() -> None:
    _, entry, prescription = prescribed(quantity=PrescribedQuantity(packages=3))
    first = hand_out(prescription, entry, quantity=packages(2))
    undone = annul(
        first.dispense,
        first.prescription,
        (first.dispense,),
        reason="feil",
        at=LATER,
        by=PHARMACIST,
    )
    assert undone.prescription_version is None
    assert tally(prescription, (undone.dispense,)).remaining == 3


def test_a_dispense_cannot_be_annulled_twice() -> None:
    _, entry, prescription = prescribed()
    first = hand_out(prescription, entry)
    undone = annul(
        first.dispense,
        first.prescription,
        (first.dispense,),
        reason="feil",
        at=LATER,
        by=PHARMACIST,
    )
    with pytest.raises(DispenseAlreadyAnnulled):
        annul(
            undone.dispense,
            undone.prescription,
            (undone.dispense,),
            reason="igjen",
            at=LATER,
            by=PHARMACIST,
        )


def test_only_the_dispensing_pharmacy_annuls_its_dispense() -> None:
    _, entry, prescription = prescribed()
    first = hand_out(prescription, entry)
    with pytest.raises(AnnulmentByAnotherPharmacy):
        annul(
            first.dispense,
            first.prescription,
            (first.dispense,),
            reason="feil",
            at=LATER,
            by=OTHER_PHARMACIST,
        )


def test_a_dispense_is_annulled_only_against_its_own_prescription() -> None:
    _, entry, prescription = prescribed()
    _, other_entry, other = prescribed()
    stray = hand_out(other, other_entry).dispense
    with pytest.raises(DispenseNotOnPrescription):
        annul(stray, prescription, (), reason="feil", at=LATER, by=PHARMACIST)


def test_annulment_leaves_a_recalled_prescription_recalled() -> None:
    _, entry, prescription = prescribed(quantity=PrescribedQuantity(packages=2))
    first = hand_out(prescription, entry)
    recalled, _ = recall(first.prescription, RecallReason.DISCONTINUATION, at=LATER, by=DOCTOR)
    undone = annul(
        first.dispense, recalled, (first.dispense,), reason="feil", at=LATER, by=PHARMACIST
    )
    assert (undone.prescription.status, undone.prescription_version) == (
        PrescriptionStatus.RECALLED,
        None,
    )


def test_the_outcome_names_the_group_a_substitution_was_made_within_with_its_remark() -> None:
    # The remark (MerknadTilByttbarhet) must reach decision support: the group rides along.
    restricted = SubstitutionGroup(
        id=SIMVA_GROUP.id,
        code=SIMVA_GROUP.code,
        description=SIMVA_GROUP.description,
        restricted=True,
        restriction_text="Begrenset bytte",
        valid_from=SIMVA_GROUP.valid_from,
        valid_to=None,
    )
    _, entry, prescription = prescribed()
    substituted = dispense(
        prescription,
        entry,
        SIMVA_KRKA,
        (restricted,),
        (),
        DispenseRequest(
            id=new_id(),
            dispensed_on=D0,
            quantity=packages(1),
            batch="AB1234",
            expiry=date(2026, 5, 31),
        ),
        at=LATER,
        by=PHARMACIST,
    )
    assert substituted.dispense.substituted is True
    assert substituted.substitution_group == restricted
    assert hand_out(prescription, entry).substitution_group is None
