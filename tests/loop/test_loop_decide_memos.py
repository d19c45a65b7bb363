"""What the deciding side keeps between commands (issue #20) gives what it would compute afresh:
an entry's ``Medication`` (kept per entry object) with or without a replaced drug, a drug's
decision-support profile found by the object or by an equal value, and a patient's
prescriptions in the order of their ids' text (what the store reads back) after ``advanced``."""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, datetime, timedelta

from interactions.drugs import ReferenceKind
from medloop.domain.codes import DiscontinuationReason
from medloop.domain.entry import Discontinuation
from medloop.domain.medication_list import DiscontinueEntry
from medloop.domain.prescription import issue
from medloop.domain.state import PatientState
from medloop.loop.runner import medications_of
from tests.domain.helpers import (
    DOCTOR,
    PATIENT_ID,
    T0,
    ZOCOR_PACKAGE,
    add,
    drug,
    empty_list,
    request,
    resolved,
)
from tests.interactions.helpers import knowledge

OTHER = drug(resolved(ReferenceKind.PACKAGE, "ID_OTHER", "Other tab", "C10AA05"), varenr="123456")


def test_a_kept_medication_is_the_one_made_afresh_and_a_replaced_drug_is_not_taken_from_it():
    medication_list, _, entry = add(empty_list())
    first = medications_of(medication_list)
    again = medications_of(medication_list)
    assert again == first
    [replaced] = medications_of(medication_list, {entry.id: OTHER})
    assert replaced.drug == OTHER.resolved
    assert [m.drug for m in medications_of(medication_list)] == [ZOCOR_PACKAGE.resolved]


def test_a_new_version_of_an_entry_gets_its_own_medication():
    medication_list, _, entry = add(empty_list())
    [before] = medications_of(medication_list)
    assert before.stop is None
    ended = T0 + timedelta(days=3)
    stopped, _ = medication_list.apply(
        DiscontinueEntry(
            author=DOCTOR,
            at=ended,
            entry_id=entry.id,
            discontinuation=Discontinuation(at=ended, reason=DiscontinuationReason.TREATMENT_ENDED),
        )
    )
    [after] = medications_of(stopped)
    assert after.stop == ended.date()


def test_a_drug_s_profile_is_the_same_found_by_the_object_or_by_an_equal_value():
    found = knowledge()
    drug_value = ZOCOR_PACKAGE.resolved
    equal = dataclasses.replace(drug_value)
    assert equal is not drug_value and equal == drug_value
    assert found.profile(drug_value) == found.profile(equal) == found.profile(drug_value)


def test_prescriptions_advanced_keep_the_order_of_their_ids_text():
    ids = [uuid.UUID(int=random.Random(seed).getrandbits(128)) for seed in range(40)]
    assert sorted(ids, key=lambda u: u.int) == sorted(ids, key=str)
    medication_list, change, entry = add(empty_list())
    state = PatientState(
        patient=None,  # type: ignore[arg-type]  # not read by advanced
        medication_list=empty_list(),
        changes=(),
        prescriptions={},
        prescription_history={},
        dispenses=(),
        handled=(),
    )
    state = state.advanced(
        list_change=change,
        prescription_versions=(),
        dispenses=(),
        annulments=(),
        handled=(),
        recorded_at=datetime(2026, 12, 5, tzinfo=UTC),
    )
    for prescription_id in ids[:12]:
        _, version = issue(entry, PATIENT_ID, request(id=prescription_id), at=T0, by=DOCTOR)
        state = state.advanced(
            list_change=None,
            prescription_versions=(version,),
            dispenses=(),
            annulments=(),
            handled=(),
            recorded_at=T0,
        )
    assert list(state.prescription_history) == sorted(ids[:12], key=str)
    assert list(state.prescriptions) == sorted(ids[:12], key=str)
