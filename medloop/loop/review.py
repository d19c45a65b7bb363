"""The medication review: assess the list against the review criteria (a read), and sign a
review with a decision per finding (a command). Stops and dosage changes decided in the review
are the list's ordinary commands (``domain.prescribing.discontinue``, ``EditEntry``), applied in
the review's own transaction: the review, the list change, the recalled prescriptions, decision
support on the changed entries and the audit record commit together or not at all."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from pydantic import Field
from sqlalchemy import Connection, Engine

from interactions import Medication
from interactions.dosage import Dosage
from interactions.review import ReviewResult, review
from interactions.values import MAX_ITEMS, Text
from medloop.domain._model import Frozen
from medloop.domain.codes import EntryStatus
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.entry import Discontinuation, EntryEdit
from medloop.domain.medication_list import EditEntry, ListChange, MedicationList, as_one_change
from medloop.domain.prescribing import discontinue
from medloop.domain.prescription import PrescriptionVersion
from medloop.domain.review import (
    AcbRecord,
    Assessment,
    Decision,
    FindingSource,
    Indicators,
    MedicationReview,
    NotAssessedItem,
    Participant,
    ReviewedEntry,
    ReviewFinding,
    SinceLast,
    check_decisions,
    entry_decisions,
    signed_participants,
    since_last,
)
from medloop.domain.state import PatientState
from medloop.loop.catalogue import Catalogue
from medloop.loop.runner import (
    Call,
    CommandResult,
    Context,
    Effect,
    Screening,
    medications_of,
    run_command,
)
from medloop.settings import renal_max_age_days
from medloop.store.reviews import append_review, latest_review


class ReviewSubmission(Frozen):
    """What the prescriber signs: the review's id, who took part, a decision per finding."""

    review_id: UUID
    participants: tuple[Participant, ...] = Field(min_length=1, max_length=20)
    decisions: tuple[Decision, ...] = Field(default=(), max_length=MAX_ITEMS)
    note: Text | None = None


# -- assessing -------------------------------------------------------------------------------


def _reviewed(medication_list: MedicationList, today: date) -> list[tuple[Any, Medication]]:
    """The entries a review looks at: active catalogue entries not stopped before ``today``."""
    found = []
    for entry in medication_list.entries:
        if entry.status is not EntryStatus.ACTIVE or not isinstance(entry.drug, CatalogueDrug):
            continue
        if entry.stop is not None and entry.stop < today:
            continue
        medication = Medication(
            id=str(entry.id),
            drug=entry.drug.resolved,
            dosage=entry.dosage,
            start=entry.start,
            stop=entry.stop,
            indication=entry.indication,
        )
        found.append((entry, medication))
    return found


def dosage_text(dosage: Dosage | None) -> str | None:
    """A short reading of a structured dosage for the review document."""
    if dosage is None:
        return None
    if dosage.text:
        return dosage.text
    parts = []
    for fixed in dosage.fixed:
        when = fixed.time_of_day.value if fixed.time_of_day is not None else None
        every = (
            f"every {fixed.interval.value:g} {fixed.interval.unit.value}"
            if fixed.interval is not None
            else None
        )
        parts.append(
            " ".join(p for p in (f"{fixed.amount.value:g} {fixed.amount.unit}", when, every) if p)
        )
    for prn in dosage.as_needed:
        most = (
            f", at most {prn.max_per_24h.value:g} {prn.max_per_24h.unit} a day"
            if prn.max_per_24h is not None
            else ""
        )
        parts.append(f"{prn.amount.value:g} {prn.amount.unit} as needed{most}")
    if not parts and dosage.short_dose is not None:
        parts.append(dosage.short_dose.text or dosage.short_dose.code)
    return f"{dosage.use.value}: " + "; ".join(parts) if parts else dosage.use.value


def assess(catalogue: Catalogue, state: PatientState, today: date) -> Assessment:
    """The review criteria on the patient's list as it is, with the patient's recorded facts
    (age from the birth date, the latest kidney function and its date)."""
    pairs = _reviewed(state.medication_list, today)
    patient = state.patient.for_checks(today)
    result = review(
        [m for _, m in pairs],
        patient,
        today=today,
        renal_max_age_days=renal_max_age_days(),
        dose_rules=catalogue.knowledge.dose_rules,
        uses={m.id: entry.use.value for entry, m in pairs},
    )
    renal = patient.renal
    return _assessment(
        result,
        state.medication_list.version,
        [
            ReviewedEntry(
                entry_id=entry.id,
                name=entry.drug.resolved.name[:200],
                atc=entry.drug.resolved.atc,
                use=entry.use.value,
                dosage=dosage_text(entry.dosage),
                start=entry.start,
            )
            for entry, _ in pairs
        ],
        None
        if renal is None
        else f"{'eGFR' if renal.kind == 'egfr' else 'CrCl'} {renal.value:g} ml/min "
        f"measured {renal.measured.isoformat()}",
    )


def _assessment(
    result: ReviewResult, list_version: int, entries: list[ReviewedEntry], renal: str | None
) -> Assessment:
    return Assessment(
        list_version=list_version,
        entries=tuple(entries),
        findings=tuple(
            ReviewFinding(
                criterion=f.criterion,
                set=f.set,
                medications=f.medications,
                summary=f.summary,
                detail=f.detail,
                source=FindingSource.model_validate(
                    {k: v for k, v in f.source.items() if k in FindingSource.model_fields}
                ),
            )
            for f in result.findings
        ),
        not_assessed=tuple(
            NotAssessedItem(
                criterion=n.criterion,
                set=n.set,
                summary=n.summary,
                missing=n.missing,
                medications=n.medications,
            )
            for n in result.not_assessed
        ),
        acb=AcbRecord(score=result.acb.score, medications=result.acb.medications),
        indicators=Indicators(
            psychotropics=result.indicators["psychotropics"].regular,
            antipsychotics=result.indicators["antipsychotics"].regular,
            fall_risk=result.indicators["fall_risk"].regular,
        ),
        renal=renal,
    )


def current_review(
    conn: Connection, catalogue: Catalogue, state: PatientState, today: date
) -> tuple[Assessment, SinceLast | None]:
    """The assessment a review meeting starts from, and what changed since the last review."""
    assessment = assess(catalogue, state, today)
    previous = latest_review(conn, state.patient.id)
    return assessment, None if previous is None else since_last(previous, assessment)


# -- signing ---------------------------------------------------------------------------------


def sign_review(
    engine: Engine,
    patient_id: UUID,
    submission: ReviewSubmission,
    call: Call,
    *,
    based_on: int,
) -> CommandResult:
    """Sign a review of the list at version ``based_on``: every finding decided, the stops and
    dosage changes applied as one change of the list, the review stored."""

    def decide(ctx: Context) -> Effect:
        today = call.day
        assessment = assess(ctx.catalogue, ctx.state, today)
        participants = signed_participants(submission.participants, call.actor)
        check_decisions(assessment, submission.decisions, participants)
        medication_list = ctx.state.medication_list
        changes: list[ListChange] = []
        recalled: list[PrescriptionVersion] = []
        changed: list[str] = []
        stopped: list[str] = []
        for decision in entry_decisions(submission.decisions):
            assert decision.entry_id is not None
            reason = f"medication review {submission.review_id}: {decision.finding}"
            if decision.action == "stop":
                done = discontinue(
                    medication_list,
                    decision.entry_id,
                    Discontinuation(
                        at=call.at, reason=decision.discontinuation_reason, note=decision.reason
                    ),
                    ctx.state.prescriptions_of(decision.entry_id),
                    at=call.at,
                    by=call.actor,
                    reason=reason,
                )
                medication_list = done.medication_list
                changes.append(done.list_change)
                recalled.extend(version for _, version in done.recalled)
                stopped.append(str(decision.entry_id))
            else:
                assert decision.dosage is not None
                medication_list, change = medication_list.apply(
                    EditEntry(
                        author=call.actor,
                        at=call.at,
                        reason=reason,
                        entry_id=decision.entry_id,
                        edit=EntryEdit(dosage=decision.dosage, use=decision.dosage.use),
                    )
                )
                changes.append(change)
                changed.append(str(decision.entry_id))
        list_change = as_one_change(changes)
        previous = latest_review(ctx.conn, patient_id)
        record = MedicationReview(
            id=submission.review_id,
            patient_id=patient_id,
            signed_at=call.at,
            signed_by=call.actor,
            participants=participants,
            assessment=assessment,
            decisions=submission.decisions,
            list_version_after=assessment.list_version
            if list_change is None
            else list_change.list_version,
            since_last=None if previous is None else since_last(previous, assessment),
            note=submission.note,
        )
        return Effect(
            list_change=list_change,
            prescription_versions=tuple(recalled),
            screening=Screening(tuple(medications_of(medication_list)), tuple(changed))
            if changed
            else None,
            writes=(lambda conn: append_review(conn, record),),
            response={
                "review_id": str(submission.review_id),
                "findings": len(assessment.findings),
                "stopped": stopped,
                "changed": changed,
                "recalled": [str(v.prescription_id) for v in recalled],
            },
        )

    return run_command(
        engine,
        "sign-review",
        patient_id,
        call,
        decide,
        based_on=based_on,
        request=submission.model_dump(mode="json"),
    )
