"""Prescriptions: validity rules, repeats, status transitions (7408), and prescribing, renewal
and discontinuation across the list."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from medloop.domain.codes import (
    DiscontinuationReason,
    EntryChangeKind,
    EntryStatus,
    PrescriptionChangeKind,
    PrescriptionStatus,
    RecallReason,
)
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.entry import Discontinuation, EntryEdit
from medloop.domain.medication_list import DiscontinueEntry, HoldEntry, PrescriptionNotOnEntry
from medloop.domain.personnel import NotAPharmacy
from medloop.domain.prescribing import discontinue, prescribe, renew
from medloop.domain.prescription import (
    ALLOWED_TRANSITIONS,
    EntryNotPrescribable,
    ExpiryBeforeIssue,
    NonCatalogueItemNotPrescribable,
    Prescription,
    PrescriptionExpired,
    PrescriptionFullyDispensed,
    PrescriptionLocked,
    PrescriptionRecalled,
    PrescriptionRequest,
    PrescriptionStillValid,
    PrescriptionTransitionRefused,
    Recall,
    RepeatsNotAllowed,
    ValidityTooLong,
    check_transition,
    expire,
    issue,
    lock,
    recall,
    unlock,
)
from medloop.domain.validity import (
    AtcValidityRule,
    InvalidDuration,
    IsoDuration,
    ValidityPolicy,
    expiry_date,
    max_validity,
)
from tests.domain.helpers import (
    APOCILLIN,
    CONTRACEPTIVE,
    D0,
    DIAZEPAM,
    DOCTOR,
    FISH_OIL,
    NURSING_HOME,
    OTHER_PHARMACY,
    OXYCODONE,
    PARACET_PACKAGE,
    PATIENT_ID,
    PHARMACIST,
    PHARMACY,
    T0,
    ZOCOR_PACKAGE,
    add,
    empty_list,
    prescribed,
    request,
)

E, U, R, T, F = (
    PrescriptionStatus.DISPENSABLE,
    PrescriptionStatus.BEING_DISPENSED,
    PrescriptionStatus.FULLY_DISPENSED,
    PrescriptionStatus.RECALLED,
    PrescriptionStatus.EXPIRED,
)
LATER = T0 + timedelta(hours=1)


def issued(drug: CatalogueDrug, **fields: Any) -> Prescription:
    _, _, entry = add(empty_list(), drug=drug, dosage=None)
    prescription, _ = issue(entry, PATIENT_ID, request(**fields), at=T0, by=DOCTOR)
    return prescription


# -- validity ----------------------------------------------------------------------------------


def test_a_prescription_is_valid_for_one_year_by_default_as_in_the_official_m1_example() -> None:
    prescription = issued(PARACET_PACKAGE, issued=date(2019, 7, 17))
    assert prescription.expires == date(2020, 7, 16)
    assert prescription.valid_on(date(2020, 7, 16)) and not prescription.valid_on(date(2020, 7, 17))


def test_antibiotic_prescription_expires_after_10_days_unless_reimbursed() -> None:
    assert issued(APOCILLIN, issued=date(2024, 3, 1)).expires == date(2024, 3, 10)
    reimbursed = issued(APOCILLIN, issued=date(2024, 3, 1), reimbursed=True)
    assert reimbursed.expires == date(2025, 2, 28)


def test_antibiotic_rule_ignores_the_catalogues_ten_days_when_reimbursed() -> None:
    validity = max_validity(APOCILLIN, reimbursed=True, product_validity=("P10D",), issued=D0)
    assert (str(validity.duration), validity.basis) == ("P1Y", "atc:J01:reimbursed")


def test_hormonal_contraceptive_prescription_is_valid_for_3_years() -> None:
    prescription = issued(CONTRACEPTIVE, issued=date(2024, 3, 1), product_validity=("P1Y",))
    assert prescription.expires == date(2027, 2, 28)


def test_product_specific_validity_from_the_catalogue_applies() -> None:
    assert issued(PARACET_PACKAGE, issued=date(2024, 3, 1), product_validity=("P6M",)).expires == (
        date(2024, 8, 31)
    )


def test_of_several_catalogue_validities_the_shortest_applies() -> None:
    validity = max_validity(
        PARACET_PACKAGE, reimbursed=False, product_validity=("P1Y", "P90D"), issued=D0
    )
    assert (str(validity.duration), validity.basis) == ("P90D", "catalogue")


def test_validity_rules_are_configurable() -> None:
    policy = ValidityPolicy(atc_rules=(AtcValidityRule(atc="G03A", duration=IsoDuration(years=2)),))
    contraceptive = max_validity(CONTRACEPTIVE, reimbursed=False, issued=D0, policy=policy)
    antibiotic = max_validity(APOCILLIN, reimbursed=False, issued=D0, policy=policy)
    assert (str(contraceptive.duration), contraceptive.basis) == ("P2Y", "atc:G03A")
    assert (str(antibiotic.duration), antibiotic.basis) == ("P1Y", "default")


def test_a_prescriber_may_shorten_the_validity_but_not_lengthen_it() -> None:
    assert issued(PARACET_PACKAGE, expires=date(2024, 4, 1)).expires == date(2024, 4, 1)
    with pytest.raises(ValidityTooLong) as caught:
        issued(APOCILLIN, issued=date(2024, 3, 1), expires=date(2024, 3, 11))
    assert caught.value.context["longest"] == "2024-03-10"
    assert caught.value.context["basis"] == "atc:J01"


def test_an_expiry_before_the_issue_date_is_refused() -> None:
    with pytest.raises(ExpiryBeforeIssue):
        issued(PARACET_PACKAGE, issued=date(2024, 3, 1), expires=date(2024, 2, 29))


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("P1Y", date(2024, 2, 29), date(2025, 2, 28)),
        ("P1M", date(2024, 1, 31), date(2024, 2, 29)),
        ("P10D", date(2024, 12, 25), date(2025, 1, 4)),
        ("P2W", date(2024, 3, 1), date(2024, 3, 15)),
        ("p3y", date(2024, 3, 1), date(2027, 3, 1)),
    ],
)
def test_iso_durations_add_whole_calendar_units(text: str, start: date, end: date) -> None:
    duration = IsoDuration.parse(text)
    assert duration.after(start) == end
    assert expiry_date(start, duration) == end - timedelta(days=1)
    assert IsoDuration.parse(str(duration)) == duration


@pytest.mark.parametrize("text", ["P", "PT1H", "P1.5Y", "1Y", "P1YT2H", "P0D", ""])
def test_a_duration_that_is_not_a_whole_positive_number_of_days_is_refused(text: str) -> None:
    with pytest.raises(InvalidDuration):
        IsoDuration.parse(text)


def test_an_unreadable_catalogue_validity_is_refused_rather_than_guessed() -> None:
    with pytest.raises(InvalidDuration):
        issued(PARACET_PACKAGE, product_validity=("one year",))


# -- repeats -----------------------------------------------------------------------------------


@pytest.mark.parametrize("drug", [OXYCODONE, DIAZEPAM], ids=["group A", "group B"])
def test_prescription_groups_a_and_b_allow_no_repeats(drug: CatalogueDrug) -> None:
    with pytest.raises(RepeatsNotAllowed):
        issued(drug, repeats=1)
    assert issued(drug, repeats=0).repeats == 0


def test_prescription_group_c_allows_repeats() -> None:
    prescription = issued(ZOCOR_PACKAGE, repeats=3)
    assert (prescription.repeats, prescription.rounds) == (3, 4)


def test_a_prescription_value_with_repeats_in_group_a_cannot_exist() -> None:
    prescription = issued(OXYCODONE)
    with pytest.raises(ValidationError, match="no repeats"):
        Prescription.model_validate({**dict(prescription), "repeats": 2})


# -- issuing -----------------------------------------------------------------------------------


def test_issuing_records_version_one_with_the_drug_copied_from_the_entry() -> None:
    _, _, entry = add(empty_list(), drug=ZOCOR_PACKAGE)
    prescription, version = issue(entry, PATIENT_ID, request(), at=T0, by=DOCTOR)
    assert prescription.drug == entry.drug
    assert (prescription.status, prescription.version, prescription.entry_id) == (E, 1, entry.id)
    assert (version.kind, version.from_status, version.to_status) == (
        PrescriptionChangeKind.ISSUED,
        None,
        E,
    )
    assert {change.field for change in version.diff} >= {"drug", "expires", "quantity", "status"}


def test_a_discontinued_entry_cannot_be_prescribed() -> None:
    medication_list, _, entry = add(empty_list())
    medication_list, _ = medication_list.apply(
        DiscontinueEntry(
            author=DOCTOR,
            at=T0,
            entry_id=entry.id,
            discontinuation=Discontinuation(at=T0, reason=DiscontinuationReason.OTHER),
        )
    )
    with pytest.raises(EntryNotPrescribable):
        issue(medication_list.entry(entry.id), PATIENT_ID, request(), at=T0, by=DOCTOR)


def test_an_on_hold_entry_can_be_prescribed() -> None:
    medication_list, _, entry = add(empty_list())
    medication_list, _ = medication_list.apply(HoldEntry(author=DOCTOR, at=T0, entry_id=entry.id))
    held = medication_list.entry(entry.id)
    prescription, _ = issue(held, PATIENT_ID, request(), at=T0, by=DOCTOR)
    assert prescription.status is E


def test_a_non_catalogue_item_cannot_be_prescribed() -> None:
    _, _, entry = add(empty_list(), drug=FISH_OIL, dosage=None)
    with pytest.raises(NonCatalogueItemNotPrescribable):
        issue(entry, PATIENT_ID, request(), at=T0, by=DOCTOR)


def test_a_prescribed_quantity_is_packages_or_an_amount_not_both() -> None:
    with pytest.raises(ValidationError):
        request(quantity={"packages": 1, "amount": {"value": 100, "unit": "tablett"}})
    with pytest.raises(ValidationError):
        request(quantity={})


# -- status transitions ------------------------------------------------------------------------


def in_status(status: PrescriptionStatus) -> Prescription:
    prescription = issued(ZOCOR_PACKAGE)
    fields: dict[str, Any] = {**dict(prescription), "status": status}
    if status is U:
        fields["locked_by"] = PHARMACY.id
    if status is T:
        fields["recall"] = Recall(reason=RecallReason.OTHER, at=T0, by=DOCTOR)
    return Prescription.model_validate(fields)


def refusal(current: PrescriptionStatus, to: PrescriptionStatus) -> type[Exception]:
    if current is T:
        return PrescriptionRecalled
    if current is F:
        return PrescriptionExpired
    if current is R:
        return PrescriptionFullyDispensed
    if current is U:
        return PrescriptionLocked
    return PrescriptionTransitionRefused


ALLOWED = {(E, U), (E, R), (E, T), (E, F), (U, E), (U, R), (R, E)}


def test_the_transition_table_is_the_documented_one() -> None:
    assert {(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets} == ALLOWED


@pytest.mark.parametrize("current", list(PrescriptionStatus))
@pytest.mark.parametrize("to", list(PrescriptionStatus))
def test_every_prescription_status_transition_is_allowed_or_refused_precisely(
    current: PrescriptionStatus, to: PrescriptionStatus
) -> None:
    prescription = in_status(current)
    if (current, to) in ALLOWED:
        check_transition(prescription, to)
    else:
        with pytest.raises(refusal(current, to)) as caught:
            check_transition(prescription, to)
        assert type(caught.value) is refusal(current, to)
        assert caught.value.context["status"] == current.value


def test_locking_holds_the_prescription_for_one_pharmacy() -> None:
    locked, version = lock(in_status(E), PHARMACY, on=D0, at=LATER, by=PHARMACIST)
    assert (locked.status, locked.locked_by, locked.version) == (U, PHARMACY.id, 2)
    assert (version.kind, version.from_status, version.to_status) == (
        PrescriptionChangeKind.LOCKED,
        E,
        U,
    )
    assert {change.field for change in version.diff} == {"status", "locked_by"}
    with pytest.raises(PrescriptionLocked):
        lock(locked, OTHER_PHARMACY, on=D0, at=LATER, by=PHARMACIST)


def test_an_expired_prescription_cannot_be_locked() -> None:
    prescription = in_status(E)
    with pytest.raises(PrescriptionExpired):
        lock(
            prescription,
            PHARMACY,
            on=prescription.expires + timedelta(days=1),
            at=LATER,
            by=PHARMACIST,
        )


def test_only_a_pharmacy_can_lock_a_prescription() -> None:
    with pytest.raises(NotAPharmacy):
        lock(in_status(E), NURSING_HOME, on=D0, at=LATER, by=PHARMACIST)


def test_only_the_pharmacy_holding_the_lock_can_release_it() -> None:
    locked = in_status(U)
    with pytest.raises(PrescriptionLocked):
        unlock(locked, OTHER_PHARMACY, at=LATER, by=PHARMACIST)
    unlocked, version = unlock(locked, PHARMACY, at=LATER, by=PHARMACIST)
    assert (unlocked.status, unlocked.locked_by, version.kind) == (
        E,
        None,
        PrescriptionChangeKind.UNLOCKED,
    )
    with pytest.raises(PrescriptionTransitionRefused):
        unlock(unlocked, PHARMACY, at=LATER, by=PHARMACIST)
    with pytest.raises(PrescriptionTransitionRefused, match="not locked"):
        unlock(in_status(R), PHARMACY, at=LATER, by=PHARMACIST)


def test_recalling_records_the_coded_reason() -> None:
    recalled, version = recall(
        in_status(E), RecallReason.OTHER, at=LATER, by=DOCTOR, note="Ikke oppgitt"
    )
    assert recalled.status is T
    assert recalled.recall == Recall(
        reason=RecallReason.OTHER, at=LATER, by=DOCTOR, note="Ikke oppgitt"
    )
    assert (version.kind, version.note) == (PrescriptionChangeKind.RECALLED, "Ikke oppgitt")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (U, PrescriptionLocked),
        (T, PrescriptionRecalled),
        (R, PrescriptionFullyDispensed),
        (F, PrescriptionExpired),
    ],
)
def test_only_a_dispensable_prescription_can_be_recalled(
    status: PrescriptionStatus, error: type[Exception]
) -> None:
    with pytest.raises(error):
        recall(in_status(status), RecallReason.OTHER, at=LATER, by=DOCTOR)


def test_a_prescription_expires_only_after_its_last_valid_day_and_by_no_one() -> None:
    prescription = in_status(E)
    with pytest.raises(PrescriptionStillValid):
        expire(prescription, on=prescription.expires, at=LATER)
    expired, version = expire(prescription, on=prescription.expires + timedelta(days=1), at=LATER)
    assert (expired.status, version.author) == (F, None)
    assert version.kind is PrescriptionChangeKind.EXPIRED


# -- prescribing, renewal and discontinuation across the list ----------------------------------


def test_prescribing_links_the_prescription_to_its_entry_in_a_new_list_version() -> None:
    medication_list, _, entry = add(empty_list())
    result = prescribe(medication_list, entry.id, request(), at=LATER, by=DOCTOR)
    assert result.medication_list.version == 2
    assert result.medication_list.entry(entry.id).prescription_ids == (result.prescription.id,)
    (version,) = result.list_change.entry_versions
    assert version.kind is EntryChangeKind.PRESCRIPTION_LINKED
    assert result.prescription.entry_id == entry.id


def test_renewal_is_a_new_prescription_and_a_recall_of_the_old_for_renewal() -> None:
    medication_list, entry, old = prescribed()
    renewal = request(issued=date(2024, 9, 1))
    result = renew(medication_list, old, renewal, at=LATER, by=DOCTOR)
    assert result.medication_list.entry(entry.id).prescription_ids == (renewal.id,)
    assert result.recalled is not None
    recalled, _ = result.recalled
    assert recalled.recall is not None
    assert (recalled.status, recalled.recall.reason, recalled.recall.replaced_by) == (
        T,
        RecallReason.RENEWAL,
        renewal.id,
    )
    assert result.list_change.entry_versions[0].kind is EntryChangeKind.PRESCRIPTION_RENEWED


def test_renewal_with_change_edits_the_entry_and_recalls_with_reason_3() -> None:
    medication_list, entry, old = prescribed()
    result = renew(
        medication_list,
        old,
        request(),
        change=EntryEdit(indication="Ny indikasjon"),
        at=LATER,
        by=DOCTOR,
    )
    assert result.medication_list.entry(entry.id).indication == "Ny indikasjon"
    assert {c.field for c in result.list_change.entry_versions[0].diff} == {
        "indication",
        "prescription_ids",
    }
    assert result.recalled is not None
    assert result.recalled[0].recall is not None
    assert result.recalled[0].recall.reason is RecallReason.RENEWAL_WITH_CHANGE


def test_renewing_a_fully_dispensed_prescription_needs_no_recall() -> None:
    medication_list, _, old = prescribed()
    done = Prescription.model_validate({**dict(old), "status": R})
    result = renew(medication_list, done, request(), at=LATER, by=DOCTOR)
    assert result.recalled is None


@pytest.mark.parametrize(("status", "error"), [(U, PrescriptionLocked), (T, PrescriptionRecalled)])
def test_a_recalled_or_locked_prescription_cannot_be_renewed(
    status: PrescriptionStatus, error: type[Exception]
) -> None:
    medication_list, _, old = prescribed()
    fields: dict[str, Any] = {**dict(old), "status": status}
    fields.update(
        {"locked_by": PHARMACY.id}
        if status is U
        else {"recall": Recall(reason=RecallReason.OTHER, at=T0, by=DOCTOR)}
    )
    with pytest.raises(error):
        renew(medication_list, Prescription.model_validate(fields), request(), at=LATER, by=DOCTOR)


STOP = Discontinuation(at=LATER, reason=DiscontinuationReason.DRUG_REACTION, note="Muskelsmerter")


def test_discontinuing_an_entry_recalls_its_dispensable_prescriptions() -> None:
    medication_list, entry, prescription = prescribed()
    result = discontinue(medication_list, entry.id, STOP, [prescription], at=LATER, by=DOCTOR)
    assert result.medication_list.entry(entry.id).status is EntryStatus.DISCONTINUED
    ((recalled, version),) = result.recalled
    assert recalled.recall is not None
    assert (recalled.status, recalled.recall.reason, recalled.recall.note) == (
        T,
        RecallReason.DISCONTINUATION,
        "Muskelsmerter",
    )
    assert version.kind is PrescriptionChangeKind.RECALLED


def test_discontinuing_skips_prescriptions_that_are_already_finished() -> None:
    medication_list, entry, prescription = prescribed()
    done = Prescription.model_validate({**dict(prescription), "status": R})
    result = discontinue(medication_list, entry.id, STOP, [done], at=LATER, by=DOCTOR)
    assert result.recalled == ()


def test_discontinuing_is_refused_while_a_pharmacy_is_dispensing_its_prescription() -> None:
    medication_list, entry, prescription = prescribed()
    locked, _ = lock(prescription, PHARMACY, on=D0, at=LATER, by=PHARMACIST)
    with pytest.raises(PrescriptionLocked) as caught:
        discontinue(medication_list, entry.id, STOP, [locked], at=LATER, by=DOCTOR)
    assert caught.value.context["pharmacy_id"] == PHARMACY.id


def test_discontinuing_needs_every_prescription_of_the_entry_and_only_those() -> None:
    medication_list, entry, _ = prescribed()
    with pytest.raises(ValueError, match="missing"):
        discontinue(medication_list, entry.id, STOP, [], at=LATER, by=DOCTOR)
    _, _, stranger = prescribed()
    with pytest.raises(PrescriptionNotOnEntry):
        discontinue(medication_list, entry.id, STOP, [stranger], at=LATER, by=DOCTOR)


def test_a_prescription_round_trips_through_json() -> None:
    prescription = in_status(T)
    assert Prescription.model_validate_json(prescription.model_dump_json()) == prescription
    assert PrescriptionRequest.model_validate_json(request().model_dump_json()).issued == D0
