"""Reconciliation (samstemming) records against the list."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from medloop.domain.codes import DiscontinuationReason, ReconciliationOutcome, SourceKind
from medloop.domain.entry import Discontinuation
from medloop.domain.medication_list import (
    DiscontinueEntry,
    MarkEnteredInError,
    MedicationList,
)
from medloop.domain.reconciliation import (
    ConsultedSource,
    EntryOutcome,
    ReconciliationDuplicateOutcome,
    ReconciliationIncomplete,
    ReconciliationNeedsSource,
    ReconciliationOutcomeContradictsEntry,
    ReconciliationUnknownEntry,
    reconcile,
)
from tests.domain.helpers import DOCTOR, FISH_OIL, T0, add, empty_list, new_id

LATER = T0 + timedelta(hours=1)
SOURCES = (
    ConsultedSource(kind=SourceKind.PATIENT, detail="samtale med pasient"),
    ConsultedSource(kind=SourceKind.PRESCRIPTION_BROKER, consulted_at=T0),
)
CONFIRMED = ReconciliationOutcome.CONFIRMED


def a_list() -> tuple[MedicationList, Any, Any, Any, Any]:
    """A list with an active, a second active, a discontinued and an entered-in-error entry."""
    medication_list, _, statin = add(empty_list())
    medication_list, _, fish_oil = add(medication_list, drug=FISH_OIL, dosage=None)
    medication_list, _, stopped = add(medication_list)
    medication_list, _, wrong = add(medication_list)
    medication_list, _ = medication_list.apply(
        DiscontinueEntry(
            author=DOCTOR,
            at=T0,
            entry_id=stopped.id,
            discontinuation=Discontinuation(at=T0, reason=DiscontinuationReason.PATIENT_STOPPED),
        )
    )
    medication_list, _ = medication_list.apply(
        MarkEnteredInError(author=DOCTOR, at=T0, entry_id=wrong.id, reason="feil pasient")
    )
    return medication_list, statin, fish_oil, stopped, wrong


def record(medication_list: MedicationList, outcomes: list[EntryOutcome], **fields: Any) -> Any:
    values: dict[str, Any] = {
        "id": new_id(),
        "at": LATER,
        "by": DOCTOR,
        "sources": SOURCES,
        "outcomes": outcomes,
    }
    values.update(fields)
    return reconcile(medication_list, **values)


def test_a_reconciliation_records_who_when_which_sources_and_each_entrys_version() -> None:
    medication_list, statin, fish_oil, stopped, _ = a_list()
    result = record(
        medication_list,
        [
            EntryOutcome(entry_id=statin.id, outcome=CONFIRMED),
            EntryOutcome(
                entry_id=fish_oil.id,
                outcome=ReconciliationOutcome.NOT_IN_USE,
                note="sluttet i fjor",
            ),
            EntryOutcome(entry_id=stopped.id, outcome=ReconciliationOutcome.DISCONTINUED),
        ],
    )
    assert (result.by, result.at, result.sources, result.list_version) == (
        DOCTOR,
        LATER,
        SOURCES,
        medication_list.version,
    )
    assert [(e.entry_id, e.entry_version, e.outcome) for e in result.entries] == [
        (statin.id, 1, CONFIRMED),
        (fish_oil.id, 1, ReconciliationOutcome.NOT_IN_USE),
        (stopped.id, 2, ReconciliationOutcome.DISCONTINUED),
    ]


def test_a_reconciliation_must_cover_every_active_and_on_hold_entry() -> None:
    medication_list, statin, fish_oil, _, _ = a_list()
    with pytest.raises(ReconciliationIncomplete) as caught:
        record(medication_list, [EntryOutcome(entry_id=statin.id, outcome=CONFIRMED)])
    assert caught.value.context["entry_ids"] == [str(fish_oil.id)]


def test_a_reconciliation_names_at_least_one_source() -> None:
    medication_list, statin, fish_oil, _, _ = a_list()
    with pytest.raises(ReconciliationNeedsSource):
        record(medication_list, [], sources=())


def test_a_reconciliation_names_only_entries_of_the_list_once_each() -> None:
    medication_list, statin, fish_oil, _, _ = a_list()
    both = [EntryOutcome(entry_id=e.id, outcome=CONFIRMED) for e in (statin, fish_oil)]
    with pytest.raises(ReconciliationUnknownEntry):
        record(medication_list, [*both, EntryOutcome(entry_id=new_id(), outcome=CONFIRMED)])
    with pytest.raises(ReconciliationDuplicateOutcome):
        record(medication_list, [*both, both[0]])


@pytest.mark.parametrize(
    ("which", "outcome"),
    [
        ("stopped", ReconciliationOutcome.CONFIRMED),
        ("stopped", ReconciliationOutcome.ADDED),
        ("statin", ReconciliationOutcome.DISCONTINUED),
        ("wrong", ReconciliationOutcome.NOT_IN_USE),
        ("wrong", ReconciliationOutcome.CONFIRMED),
    ],
)
def test_an_outcome_that_contradicts_the_entrys_status_is_refused(
    which: str, outcome: ReconciliationOutcome
) -> None:
    medication_list, statin, fish_oil, stopped, wrong = a_list()
    entries = {"statin": statin, "stopped": stopped, "wrong": wrong}
    outcomes = {statin.id: CONFIRMED, fish_oil.id: CONFIRMED, entries[which].id: outcome}
    with pytest.raises(ReconciliationOutcomeContradictsEntry):
        record(medication_list, [EntryOutcome(entry_id=k, outcome=v) for k, v in outcomes.items()])
