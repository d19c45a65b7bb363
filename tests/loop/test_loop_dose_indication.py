"""A list entry's recorded indication reaches the dose check (issue #22): subcutaneous
methotrexate is held to the rheumatoid-arthritis limit when the entry says ICPC-2 L88, and an
entry without a coded indication is "not checked" above that limit instead of passing silently."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from interactions import Kind, Patient, check
from interactions.alerts import DoseDetail, DoseNotCheckedDetail
from interactions.dosage import Use, Weekday
from interactions.drugs import ReferenceKind, ResolvedDrug
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.entry import ListEntry
from medloop.domain.medication_list import MedicationList
from medloop.loop.runner import medications_of
from tests.interactions.dose_helpers import ADULT, doses
from tests.interactions.helpers import knowledge

TODAY = date(2026, 12, 5)
METHOTREXATE_SC = ResolvedDrug(
    reference_kind=ReferenceKind.PACKAGE,
    reference_id="ID_METHOTREXATE_SC",
    name="Metotreksat injeksjonsvæske",
    atc="L04AX03",
    atc_codes=("L04AX03",),
    route_codes=("62",),
)


def listed(indication: str | None, weekly_mg: float) -> MedicationList:
    patient_id = uuid.uuid4()
    entry = ListEntry(
        id=uuid.uuid4(),
        version=1,
        drug=CatalogueDrug(resolved=METHOTREXATE_SC, catalogue_version=1),
        dosage=doses(weekly_mg, weekday=Weekday.MONDAY),
        use=Use.REGULAR,
        indication=indication,
        start=TODAY,
        changed_at=datetime(2026, 12, 5, 8, tzinfo=UTC),
    )
    return MedicationList(patient_id=patient_id, version=1, entries=(entry,))


def dose_results(medication_list: MedicationList, patient: Patient = ADULT) -> set[tuple]:
    medications = medications_of(medication_list)
    alerts = check(knowledge(), medications, patient=patient, today=TODAY)
    found: set[tuple] = set()
    for alert in alerts:
        if alert.kind is Kind.DOSE and isinstance(alert.detail, DoseDetail):
            found.add((alert.detail.rule_id, alert.detail.measure))
        elif alert.kind is Kind.DOSE_NOT_CHECKED and isinstance(alert.detail, DoseNotCheckedDetail):
            found.add((alert.detail.rule_id, alert.detail.reason_code))
    return found


def test_the_entry_indication_is_passed_to_the_checked_medication() -> None:
    [medication] = medications_of(listed("L88 Revmatoid artritt", 15))
    assert medication.indication == "L88 Revmatoid artritt"


def test_a_listed_rheumatoid_arthritis_entry_is_held_to_25_mg_a_week() -> None:
    assert dose_results(listed("L88 Revmatoid artritt", 25)) == set()
    assert dose_results(listed("L88 Revmatoid artritt", 27.5)) == {
        ("methotrexate-subcutaneous-l88", "single"),
        ("methotrexate-subcutaneous-l88", "weekly"),
    }


def test_a_listed_psoriasis_entry_keeps_the_general_30_mg_limit() -> None:
    assert dose_results(listed("S91 Psoriasis", 30)) == set()
    assert ("methotrexate-subcutaneous", "weekly") in dose_results(listed("S91 Psoriasis", 32.5))


def test_a_listed_entry_without_a_coded_indication_is_not_checked_above_25_mg() -> None:
    assert dose_results(listed("Leddgikt", 25)) == set()
    assert dose_results(listed(None, 27.5)) == {
        ("methotrexate-subcutaneous-l88", "indication-unknown")
    }
