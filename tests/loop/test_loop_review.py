"""The medication review as a command: assess the list, sign with a decision per finding, the
stops and changes applied through the list's own commands in the review's transaction, the
review stored append-only and audited, and the next review's "since last time"."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select, text

from interactions.dosage import Dosage, FixedDose, Quantity, TimeOfDay, Use
from medloop import queries
from medloop.domain.codes import EntryStatus, PrescriptionStatus
from medloop.domain.medication_list import StaleListVersion
from medloop.domain.review import (
    Decision,
    Participant,
    ReviewDecisionInvalid,
    ReviewIncomplete,
    ReviewParticipantsMissing,
)
from medloop.loop.catalogue import DrugOrder
from medloop.loop.change import EntryOrder, add_entry
from medloop.loop.prescribe import prescribe
from medloop.loop.review import ReviewSubmission, sign_review
from medloop.store import audit
from medloop.store.reviews import medication_review, reviews_of
from tests.loop.helpers import NOW, TODAY, call, demo_world, prescription_order, varenr_of

PARTICIPANTS = (
    Participant(role="doctor", name="Anja Fos Eidsvik", hpr_number="431002737"),
    Participant(role="nurse", name="Siri Sykepleier"),
    Participant(role="pharmacist", name="Per Apoteker"),
)


def regular(mg: float, times: tuple[TimeOfDay, ...] = (TimeOfDay.MORNING,)) -> Dosage:
    """``mg`` at each of ``times``."""
    return Dosage(
        use=Use.REGULAR,
        fixed=tuple(FixedDose(amount=Quantity(value=mg, unit="mg"), time_of_day=t) for t in times),
    )


THRICE = (TimeOfDay.MORNING, TimeOfDay.MIDDAY, TimeOfDay.EVENING)


def resident(engine) -> tuple[UUID, dict[str, UUID]]:
    """An 80-year-old on warfarin, ibuprofen (prescribed), oxazepam 45 mg a day and
    amitriptyline: NORGEP-NH 2, 3, 6 and 12 and STOPP C8 fire."""
    patient_id = demo_world(engine)
    ids: dict[str, UUID] = {}
    version = 0
    for name, atc, dosage in (
        ("warfarin", "B01AA03", None),
        ("oxazepam", "N05BA04", regular(15.0, THRICE)),
        ("amitriptyline", "N06AA09", regular(25.0)),
    ):
        ids[name] = uuid.uuid4()
        order = EntryOrder(
            entry_id=ids[name],
            drug=DrugOrder(varenr=varenr_of(engine, atc)),
            use=Use.REGULAR,
            dosage=dosage,
            start=TODAY,
        )
        version = _with_overrides(
            lambda overrides, order=order, version=version: add_entry(
                engine, patient_id, order, call(overrides=overrides), based_on=version
            )
        ).list_version
    order = prescription_order(varenr_of(engine, "M01AE01"))
    ids["ibuprofen"] = order.entry_id
    result = _with_overrides(
        lambda overrides: prescribe(
            engine, patient_id, order, call(overrides=overrides), based_on=version
        )
    )
    assert result.list_version == version + 1
    return patient_id, ids


def _with_overrides(run: Any) -> Any:
    from medloop.loop.runner import OverrideRequired

    try:
        return run({})
    except OverrideRequired as needed:
        return run({alert.key: "reviewed with the GP" for alert in needed.alerts})


def assessment(engine, patient_id: UUID):
    with engine.begin() as conn:
        return queries.review_assessment(conn, patient_id, TODAY)


def decisions_for(found, ids: dict[str, UUID]) -> tuple[Decision, ...]:
    """Stop ibuprofen wherever a finding names it, halve oxazepam, continue the rest."""
    made = []
    for finding in found.findings:
        named = set(finding.medications)
        if str(ids["ibuprofen"]) in named:
            made.append(
                Decision(
                    finding=finding.key,
                    action="stop",
                    entry_id=ids["ibuprofen"],
                    reason="NSAID with warfarin in an 80-year-old",
                )
            )
        elif str(ids["oxazepam"]) in named:
            made.append(
                Decision(
                    finding=finding.key,
                    action="change",
                    entry_id=ids["oxazepam"],
                    dosage=regular(10.0),
                    reason="taper",
                )
            )
        else:
            made.append(
                Decision(finding=finding.key, action="continue", reason="effect outweighs risk")
            )
    return tuple(made)


def test_assessment_finds_the_residents_criteria_on_the_list(engine) -> None:
    patient_id, ids = resident(engine)
    found, since = assessment(engine, patient_id)
    by_criterion = {f.criterion: set(f.medications) for f in found.findings}
    assert by_criterion["NORGEP-NH:12"] == {str(ids["warfarin"]), str(ids["ibuprofen"])}
    assert by_criterion["NORGEP-NH:6"] == {str(ids["oxazepam"])}
    assert by_criterion["NORGEP-NH:2"] == {str(ids["amitriptyline"])}
    assert "STOPP:C10" in by_criterion
    assert found.acb.score == 3 + 1  # amitriptyline 3, warfarin 1
    assert found.list_version == 4 and since is None
    # renal function was never recorded: the kidney criteria say so
    assert any("renal function" in m for n in found.not_assessed for m in n.missing)


def test_signing_stops_and_changes_through_the_list_in_one_transaction(engine) -> None:
    patient_id, ids = resident(engine)
    found, _ = assessment(engine, patient_id)
    review_id = uuid.uuid4()
    submission = ReviewSubmission(
        review_id=review_id, participants=PARTICIPANTS, decisions=decisions_for(found, ids)
    )
    result = sign_review(engine, patient_id, submission, call(), based_on=found.list_version)
    assert result.list_version == found.list_version + 1  # one change of the list
    assert result.response["stopped"] == [str(ids["ibuprofen"])]
    assert result.response["changed"] == [str(ids["oxazepam"])]
    assert len(result.response["recalled"]) == 1

    with engine.begin() as conn:
        state = queries.patient_state(conn, patient_id)
        [stored] = reviews_of(conn, patient_id)
    listing = state.medication_list
    assert listing.entry(ids["ibuprofen"]).status is EntryStatus.DISCONTINUED
    assert listing.entry(ids["oxazepam"]).dosage == regular(10.0)
    [prescription] = state.prescriptions_of(ids["ibuprofen"])
    assert prescription.status is PrescriptionStatus.RECALLED
    assert stored.id == review_id and stored.list_version_after == found.list_version + 1
    assert stored.assessment == found
    assert {p.role for p in stored.participants} == {"doctor", "nurse", "pharmacist"}
    with engine.connect() as conn:
        page = audit.events_for_patient(conn, str(state.patient.national_id), limit=5)
    newest = page.events[0]
    assert newest.action == "medication-list.sign-review" and newest.outcome == "ok"


def test_the_next_review_shows_what_changed_since_the_last(engine) -> None:
    patient_id, ids = resident(engine)
    found, _ = assessment(engine, patient_id)
    first = ReviewSubmission(
        review_id=uuid.uuid4(), participants=PARTICIPANTS, decisions=decisions_for(found, ids)
    )
    sign_review(engine, patient_id, first, call(), based_on=found.list_version)
    again, since = assessment(engine, patient_id)
    assert since is not None and since.previous_review_id == first.review_id
    names = {e.entry_id: e.name for e in found.entries}
    assert since.entries_removed == (names[ids["ibuprofen"]],)
    assert since.entries_changed == (names[ids["oxazepam"]],)
    assert any(label.startswith("NORGEP-NH:12 ") for label in since.findings_resolved)
    assert any(label.startswith("NORGEP-NH:6 ") for label in since.findings_resolved)
    assert since.acb_before == 4
    assert "NORGEP-NH:12" not in {f.criterion for f in again.findings}


def _unchanged(engine, patient_id: UUID, version: int) -> None:
    with engine.begin() as conn:
        state = queries.patient_state(conn, patient_id)
        assert state.medication_list.version == version
        assert reviews_of(conn, patient_id) == []


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (lambda d: d[1:], ReviewIncomplete),
        (lambda d: (*d, d[0]), ReviewDecisionInvalid),
        (
            lambda d: (
                *d,
                Decision(finding="NORGEP-NH:99|x", action="continue", reason="no such finding"),
            ),
            ReviewDecisionInvalid,
        ),
    ],
)
def test_a_review_that_cannot_be_signed_is_refused_and_changes_nothing(
    engine, change: Any, refusal: type[Exception]
) -> None:
    patient_id, ids = resident(engine)
    found, _ = assessment(engine, patient_id)
    decisions = change(decisions_for(found, ids))
    submission = ReviewSubmission(
        review_id=uuid.uuid4(), participants=PARTICIPANTS, decisions=decisions
    )
    with pytest.raises(refusal):
        sign_review(engine, patient_id, submission, call(), based_on=found.list_version)
    _unchanged(engine, patient_id, found.list_version)


def test_a_stop_and_a_change_of_one_entry_in_one_review_are_refused(engine) -> None:
    patient_id, ids = resident(engine)
    found, _ = assessment(engine, patient_id)
    decisions = list(decisions_for(found, ids))
    ibuprofen_findings = [i for i, d in enumerate(decisions) if d.entry_id == ids["ibuprofen"]]
    assert len(ibuprofen_findings) >= 2
    first = decisions[ibuprofen_findings[0]]
    decisions[ibuprofen_findings[0]] = Decision(
        finding=first.finding, action="change", entry_id=ids["ibuprofen"], dosage=regular(200.0)
    )
    submission = ReviewSubmission(
        review_id=uuid.uuid4(), participants=PARTICIPANTS, decisions=tuple(decisions)
    )
    with pytest.raises(ReviewDecisionInvalid):
        sign_review(engine, patient_id, submission, call(), based_on=found.list_version)
    _unchanged(engine, patient_id, found.list_version)


def test_a_review_without_a_doctor_or_on_a_stale_list_is_refused(engine) -> None:
    patient_id, ids = resident(engine)
    found, _ = assessment(engine, patient_id)
    decisions = decisions_for(found, ids)
    nurse_only = ReviewSubmission(
        review_id=uuid.uuid4(), participants=(PARTICIPANTS[1],), decisions=decisions
    )
    with pytest.raises(ReviewParticipantsMissing):
        sign_review(engine, patient_id, nurse_only, call(), based_on=found.list_version)
    stale = ReviewSubmission(review_id=uuid.uuid4(), participants=PARTICIPANTS, decisions=decisions)
    with pytest.raises(StaleListVersion):
        sign_review(engine, patient_id, stale, call(), based_on=found.list_version - 1)
    _unchanged(engine, patient_id, found.list_version)


def test_a_signed_review_cannot_be_updated_or_deleted(engine) -> None:
    patient_id, ids = resident(engine)
    found, _ = assessment(engine, patient_id)
    submission = ReviewSubmission(
        review_id=uuid.uuid4(), participants=PARTICIPANTS, decisions=decisions_for(found, ids)
    )
    sign_review(engine, patient_id, submission, call(), based_on=found.list_version)
    for statement in (
        "UPDATE medication_review SET list_version = 0",
        "DELETE FROM medication_review",
    ):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(select(medication_review.c.id)).scalars().all() == [
            str(submission.review_id)
        ]
    assert NOW.date() == TODAY
