"""Pharmacy proposals (M25.2): a pharmacist of the multidose pharmacy proposes, only a
prescriber accepts or rejects (a rejection with a reason)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import AwareDatetime, model_validator

from interactions.dosage import Dosage
from interactions.values import Count
from medloop.domain._model import Frozen
from medloop.domain.entry import Discontinuation
from medloop.domain.medication_list import MedicationList
from medloop.domain.multidose.errors import (
    InvalidProposal,
    ProposalAlreadyDecided,
    ProposalNotFound,
)
from medloop.domain.multidose.responsibility import (
    Responsibility,
    require_pharmacist_of,
    require_prescriber,
)
from medloop.domain.personnel import Actor


class ProposalKind(StrEnum):
    NEW_ENTRY = "new-entry"
    CHANGE_DOSAGE = "change-dosage"
    DISCONTINUE = "discontinue"
    RENEW = "renew"
    QUESTION = "question"


class Proposal(Frozen):
    """A pharmacy's proposal: a new entry (``new_entry``: a prescribe order), a dosage change,
    a discontinuation, a renewal (``renewal``: a renew order) or a question. Orders are kept as
    JSON so the domain does not depend on the command layer that validates them."""

    id: UUID
    patient_id: UUID
    kind: ProposalKind
    proposed_at: AwareDatetime
    proposed_by: Actor
    note: str | None = None
    entry_id: UUID | None = None
    dosage: Dosage | None = None
    discontinuation: Discontinuation | None = None
    new_entry: dict[str, Any] | None = None
    renewal: dict[str, Any] | None = None
    question: str | None = None

    @model_validator(mode="after")
    def _has_what_its_kind_needs(self) -> Proposal:
        needs = {
            ProposalKind.NEW_ENTRY: ("new_entry",),
            ProposalKind.CHANGE_DOSAGE: ("entry_id", "dosage"),
            ProposalKind.DISCONTINUE: ("entry_id", "discontinuation"),
            ProposalKind.RENEW: ("renewal",),
            ProposalKind.QUESTION: ("question",),
        }[self.kind]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} proposal needs {', '.join(missing)}")
        return self


class ProposalDecision(Frozen):
    proposal_id: UUID
    accepted: bool
    at: AwareDatetime
    by: Actor
    reason: str | None = None
    list_version: Count | None = None
    result: dict[str, Any] = {}


def propose(
    responsibility: Responsibility | None, proposal: Proposal, entries: MedicationList
) -> Proposal:
    """A proposal may come only from a pharmacist of the multidose pharmacy and must name an
    entry of the list when it is about one."""
    require_pharmacist_of(responsibility, proposal.proposed_by, proposal.proposed_at.date())
    if proposal.entry_id is not None and entries.find(proposal.entry_id) is None:
        raise InvalidProposal(
            f"the list has no entry {proposal.entry_id}", entry_id=proposal.entry_id
        )
    return proposal


def decide_proposal(
    proposal: Proposal | None,
    decided: ProposalDecision | None,
    *,
    proposal_id: UUID,
    accepted: bool,
    at: datetime,
    by: Actor,
    reason: str | None,
) -> ProposalDecision:
    """Only a prescriber decides, once; a rejection gives a reason."""
    require_prescriber(by)
    if proposal is None:
        raise ProposalNotFound(f"there is no proposal {proposal_id}", proposal_id=proposal_id)
    if decided is not None:
        raise ProposalAlreadyDecided(
            f"proposal {proposal_id} was already "
            f"{'accepted' if decided.accepted else 'rejected'} at {decided.at.isoformat()}",
            proposal_id=proposal_id,
        )
    if not accepted and not (reason or "").strip():
        raise InvalidProposal("a rejection needs a reason", proposal_id=proposal_id)
    return ProposalDecision(proposal_id=proposal_id, accepted=accepted, at=at, by=by, reason=reason)
