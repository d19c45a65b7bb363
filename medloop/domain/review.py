"""The medication review (legemiddelgjennomgang) as a document: the list at a version, every
finding of the review criteria with its criterion and source, the prescriber's decision per
finding (continue with a reason, change the dosage, stop), who took part, and what changed
since the previous review. Signed once and stored append-only.

The criteria are evaluated by ``interactions.review`` (decision support); this module decides
whether a set of decisions may be signed (``sign``) and compares two reviews (``since_last``).
The changes and stops themselves are the list's ordinary commands, applied by the loop in the
same transaction as the review.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from interactions.dosage import Dosage
from interactions.values import MAX_ITEMS, Code, Count, Name, Reason, Text
from medloop.domain._model import Frozen
from medloop.domain.codes import DiscontinuationReason
from medloop.domain.errors import DomainError
from medloop.domain.personnel import Actor

# -- errors ----------------------------------------------------------------------------------


class ReviewError(DomainError):
    """A review that cannot be signed as it stands."""

    code = "review-invalid"


class ReviewIncomplete(ReviewError):
    code = "review-incomplete"


class ReviewDecisionInvalid(ReviewError):
    code = "review-decision-invalid"


class ReviewParticipantsMissing(ReviewError):
    code = "review-participants-missing"


class ReviewSignerNotParticipant(ReviewParticipantsMissing):
    """The doctors named carry HPR numbers other than the signer's."""

    code = "review-signer-not-participant"


class ReviewNotFound(DomainError):
    code = "review-not-found"


# -- values ----------------------------------------------------------------------------------

Items = Field(default=(), max_length=MAX_ITEMS)
Role = Literal["doctor", "nurse", "pharmacist"]
DecisionAction = Literal["continue", "change", "stop"]


class Participant(Frozen):
    """Someone who took part in the review meeting."""

    role: Role
    name: Name
    hpr_number: Annotated[str, Field(pattern=r"^[0-9]{1,9}$")] | None = None


class FindingSource(Frozen):
    publication: Text
    citation: Text
    url: Text
    verified: bool
    reviewed: bool
    note: Text | None = None
    section: Text | None = None


class ReviewFinding(Frozen):
    """One finding as the review recorded it; ``medications`` are entry ids."""

    criterion: Code
    set: Code
    medications: tuple[Code, ...] = Items
    summary: Text
    detail: Text
    source: FindingSource

    @property
    def key(self) -> str:
        """The finding's name in decisions: criterion and entries, ``NORGEP-NH:6|<entry id>``."""
        return f"{self.criterion}|{','.join(self.medications)}"


class NotAssessedItem(Frozen):
    criterion: Text
    set: Code
    summary: Text
    missing: tuple[Text, ...] = Items
    medications: tuple[Code, ...] = Items


class ReviewedEntry(Frozen):
    """An entry of the list as it was reviewed."""

    entry_id: UUID
    name: Name
    atc: Code | None = None
    use: Code
    dosage: Text | None = None
    start: date


class AcbRecord(Frozen):
    score: Count
    medications: tuple[Code, ...] = Items


class Indicators(Frozen):
    psychotropics: tuple[Code, ...] = Items
    antipsychotics: tuple[Code, ...] = Items
    fall_risk: tuple[Code, ...] = Items


class Assessment(Frozen):
    """What the criteria found on one version of the list (before any decision)."""

    list_version: Count
    entries: tuple[ReviewedEntry, ...] = Items
    findings: tuple[ReviewFinding, ...] = Items
    not_assessed: tuple[NotAssessedItem, ...] = Items
    acb: AcbRecord
    indicators: Indicators
    renal: Text | None = None


class Decision(Frozen):
    """The prescriber's decision on one finding (named by its ``key``). ``continue`` needs a
    reason; ``change`` names the entry and its new dosage; ``stop`` the entry (and the coded
    discontinuation reason, ``X`` other by default)."""

    finding: Annotated[str, Field(min_length=1, max_length=1_000)]
    action: DecisionAction
    reason: Reason | None = None
    entry_id: UUID | None = None
    dosage: Dosage | None = None
    discontinuation_reason: DiscontinuationReason = DiscontinuationReason.OTHER

    @model_validator(mode="after")
    def _has_what_its_action_needs(self) -> Decision:
        if self.action == "continue" and not (self.reason or "").strip():
            raise ValueError("continuing despite a finding needs a reason")
        if self.action in ("change", "stop") and self.entry_id is None:
            raise ValueError(f"'{self.action}' names the entry (entry_id)")
        if self.action == "change" and self.dosage is None:
            raise ValueError("'change' gives the new dosage")
        if self.action != "change" and self.dosage is not None:
            raise ValueError("only 'change' gives a dosage")
        return self


class SinceLast(Frozen):
    """What changed since the previous signed review."""

    previous_review_id: UUID
    previous_signed_at: AwareDatetime
    previous_list_version: Count
    entries_added: tuple[Name, ...] = Items
    entries_removed: tuple[Name, ...] = Items
    entries_changed: tuple[Name, ...] = Items
    findings_new: tuple[Text, ...] = Items
    findings_resolved: tuple[Text, ...] = Items
    acb_before: Count


class MedicationReview(Frozen):
    """A signed review: the assessment of the list at ``assessment.list_version``, the
    decisions, who took part, who signed, and the list version after its changes."""

    id: UUID
    patient_id: UUID
    signed_at: AwareDatetime
    signed_by: Actor
    participants: tuple[Participant, ...] = Field(min_length=1, max_length=20)
    assessment: Assessment
    decisions: tuple[Decision, ...] = Items
    list_version_after: Count
    since_last: SinceLast | None = None
    note: Text | None = None


# -- decisions -------------------------------------------------------------------------------


def signed_participants(
    participants: tuple[Participant, ...], signer: Actor
) -> tuple[Participant, ...]:
    """The participants as the review records them: the signing doctor is the signer, by HPR.

    A doctor participant carrying the signer's HPR number is the signer. Otherwise the first
    doctor named without an HPR number is taken to be the signer and is recorded with the
    signer's HPR number (a form or client that names the doctor by name alone). A review whose
    doctors all carry other HPR numbers — or names no doctor — is refused: the one who signs
    took part."""
    hpr = signer.personnel.hpr_number
    doctors = [i for i, p in enumerate(participants) if p.role == "doctor"]
    if not doctors:
        raise ReviewParticipantsMissing(
            "a review is signed by the doctor who took part: name a participant with role doctor"
        )
    if any(participants[i].hpr_number == hpr for i in doctors):
        return participants
    unnumbered = [i for i in doctors if participants[i].hpr_number is None]
    if not unnumbered:
        raise ReviewSignerNotParticipant(
            f"the signing doctor (HPR {hpr}) is not among the participants: the doctors named "
            "carry other HPR numbers",
            hpr_number=hpr,
        )
    first = unnumbered[0]
    return tuple(
        p.model_copy(update={"hpr_number": hpr}) if i == first else p
        for i, p in enumerate(participants)
    )


def check_decisions(
    assessment: Assessment, decisions: tuple[Decision, ...], participants: tuple[Participant, ...]
) -> None:
    """Refuse a review that cannot be signed: a finding without a decision or with two, a
    decision on no finding, a change or stop of an entry the finding does not name, one entry
    stopped and changed (or changed two ways), or no doctor among the participants."""
    if not any(p.role == "doctor" for p in participants):
        raise ReviewParticipantsMissing(
            "a review is signed by the doctor who took part: name a participant with role doctor"
        )
    keys = {finding.key: finding for finding in assessment.findings}
    unknown = sorted({d.finding for d in decisions} - set(keys))
    if unknown:
        raise ReviewDecisionInvalid(
            f"decisions on findings this review does not have: {', '.join(unknown)}",
            findings=tuple(unknown),
        )
    counted = Counter(d.finding for d in decisions)
    twice = sorted(key for key, n in counted.items() if n > 1)
    if twice:
        raise ReviewDecisionInvalid(
            f"more than one decision on: {', '.join(twice)}", findings=tuple(twice)
        )
    undecided = sorted(set(keys) - set(counted))
    if undecided:
        raise ReviewIncomplete(
            f"{len(undecided)} finding(s) have no decision: {', '.join(undecided)}",
            findings=tuple(undecided),
        )
    chosen: dict[UUID, set[str]] = {}
    for decision in decisions:
        if decision.entry_id is None:
            continue
        if str(decision.entry_id) not in keys[decision.finding].medications:
            raise ReviewDecisionInvalid(
                f"finding {decision.finding} does not name entry {decision.entry_id}",
                finding=decision.finding,
                entry_id=decision.entry_id,
            )
        chosen.setdefault(decision.entry_id, set()).add(_what(decision))
    split = sorted(str(entry) for entry, whats in chosen.items() if len(whats) > 1)
    if split:
        raise ReviewDecisionInvalid(
            f"entries with different changes or stops in one review: {', '.join(split)}; "
            "decide each entry one way",
            entries=tuple(split),
        )


def entry_decisions(decisions: tuple[Decision, ...]) -> tuple[Decision, ...]:
    """The decisions that change or stop an entry, one per entry (several findings may name the
    same stop or change: it is made once), in the order given."""
    seen: set[UUID] = set()
    found = []
    for decision in decisions:
        if decision.entry_id is not None and decision.entry_id not in seen:
            seen.add(decision.entry_id)
            found.append(decision)
    return tuple(found)


def _what(decision: Decision) -> str:
    dosage = "" if decision.dosage is None else decision.dosage.model_dump_json()
    return f"{decision.action}:{dosage}"


def since_last(previous: MedicationReview, current: Assessment) -> SinceLast:
    """What changed between ``previous`` (as signed, with its decisions applied) and the list
    assessed now: entries, findings (by criterion and drug names) and the ACB score."""
    before = {e.entry_id: e for e in previous.assessment.entries}
    stopped = {d.entry_id for d in previous.decisions if d.action == "stop"}
    now = {e.entry_id: e for e in current.entries}
    names_before = {str(e.entry_id): e.name for e in previous.assessment.entries}
    names_now = {str(e.entry_id): e.name for e in current.entries}

    def labels(findings: tuple[ReviewFinding, ...], names: dict[str, str]) -> set[str]:
        return {
            f"{f.criterion} ({', '.join(names.get(m, m) for m in f.medications)})" for f in findings
        }

    old_findings = labels(previous.assessment.findings, names_before)
    new_findings = labels(current.findings, names_now)
    return SinceLast(
        previous_review_id=previous.id,
        previous_signed_at=previous.signed_at,
        previous_list_version=previous.assessment.list_version,
        entries_added=tuple(sorted(now[i].name for i in set(now) - set(before))),
        entries_removed=tuple(
            sorted(before[i].name for i in set(before) - set(now) | (stopped & set(before)))
        ),
        entries_changed=tuple(
            sorted(
                now[i].name
                for i in set(now) & set(before)
                if i not in stopped and now[i].dosage != before[i].dosage
            )
        ),
        findings_new=tuple(sorted(new_findings - old_findings)),
        findings_resolved=tuple(sorted(old_findings - new_findings)),
        acb_before=previous.assessment.acb.score,
    )
