"""The charting decision (``decide_charting``) alone: one pure call decides a charting from the
facts read before it, with every refusal in one place and in a fixed order."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from interactions.dosage import AsNeededDose, Dosage, Period, Quantity, Use
from medloop.domain.administration import (
    ChartingFacts,
    ChartingIncomplete,
    ChartRequest,
    GivenDose,
    Outcome,
    PackCode,
    PlannedDoseRequired,
    PrnLimitExceeded,
    ScannedPackUnknown,
    ScanSkipReason,
    decide_charting,
)
from medloop.domain.ward import Admission, PatientNotAdmitted, WardConfig
from tests.domain.helpers import NURSE, PARACET_PACKAGE, PATIENT_ID, T0, add, empty_list, new_id

PRN = Dosage(
    use=Use.AS_NEEDED,
    as_needed=(
        AsNeededDose(
            amount=Quantity(value=1, unit="tablett"),
            max_per_24h=Quantity(value=4, unit="tablett"),
            min_interval=Period(value=4, unit="hour"),
        ),
    ),
)
NOW = T0 + timedelta(days=1)
STAY = Admission(
    id=uuid.uuid4(),
    patient_id=PATIENT_ID,
    ward_id=uuid.uuid4(),
    organisation_id=NURSE.organisation.id,
    admitted_at=T0,
)


def _facts(entry_use: Use = Use.AS_NEEDED, **fields) -> tuple[ChartingFacts, uuid.UUID]:
    dosage = PRN if entry_use is Use.AS_NEEDED else None
    medication_list, _, entry = add(
        empty_list(), drug=PARACET_PACKAGE, dosage=dosage, use=entry_use
    )
    request = fields.pop("request", None) or ChartRequest(
        administration_id=new_id(),
        entry_id=entry.id,
        outcome=Outcome.GIVEN,
        given_at=NOW,
        dose=Quantity(value=1, unit="tablett"),
        scan_skipped=ScanSkipReason.NO_BARCODE,
    )
    values = {
        "patient_id": PATIENT_ID,
        "request": request,
        "now": NOW,
        "performer": NURSE,
        "witness": None,
        "medication_list": medication_list,
        "admission": STAY,
        "config": WardConfig(),
        **fields,
    }
    return ChartingFacts(**values), entry.id


def _decide(facts: ChartingFacts, packages=None, read_pack=None):
    return decide_charting(
        facts,
        read_pack=read_pack or (lambda code: PackCode(gtin=code)),
        packages_by_gtin=packages or {},
    )


def test_a_prn_dose_within_its_limits_is_decided_in_one_call():
    facts, entry_id = _facts(
        earlier=(GivenDose(uuid.uuid4(), NOW - timedelta(hours=1), 1, "tablett"),)
    )
    decided = _decide(facts)
    assert decided.record.outcome is Outcome.GIVEN and decided.record.entry_id == entry_id
    assert decided.record.limits_exceeded == () and not decided.late
    assert decided.record.scan_skipped is ScanSkipReason.NO_BARCODE


def test_the_shape_of_a_request_is_refused_before_the_stay_is_looked_at():
    facts, entry_id = _facts(admission=None)
    with pytest.raises(PatientNotAdmitted):
        _decide(facts)
    incomplete = ChartRequest(
        administration_id=new_id(), entry_id=entry_id, outcome=Outcome.REFUSED
    )
    facts, _ = _facts(admission=None, request=incomplete)
    with pytest.raises(ChartingIncomplete):
        _decide(facts)


def test_prn_limits_count_only_the_entrys_own_doses_in_the_dose_unit():
    facts, entry_id = _facts()
    close = NOW - timedelta(hours=1)
    others = (GivenDose(uuid.uuid4(), close, 1, "tablett"), GivenDose(entry_id, close, 5, "mg"))
    assert _decide(replace(facts, earlier=others)).record.limits_exceeded == ()
    facts = replace(facts, earlier=(GivenDose(entry_id, close, 1, "tablett"),))
    with pytest.raises(PrnLimitExceeded):
        _decide(facts)
    overridden = facts.request.model_copy(update={"limit_override": "severe pain"})
    decided = _decide(replace(facts, request=overridden))
    assert decided.record.limits_exceeded == ("min-interval",)
    assert decided.record.limit_override == "severe pain"


def test_a_regular_entry_needs_a_planned_dose_and_a_scan_resolves_through_the_index_given():
    facts, _ = _facts(entry_use=Use.REGULAR)
    with pytest.raises(PlannedDoseRequired):
        _decide(facts)
    facts, _ = _facts()
    scanned = facts.request.model_copy(update={"scan": "7040000000011", "scan_skipped": None})
    read: list[str] = []

    def reader(code: str) -> PackCode:
        read.append(code)
        return PackCode(gtin=code)

    with pytest.raises(ScannedPackUnknown):
        _decide(replace(facts, request=scanned), read_pack=reader)
    assert read == ["7040000000011"]
