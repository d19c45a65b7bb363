"""Pharmacy proposals (M25.2): a pharmacist of the multidose pharmacy proposes, only a
prescriber accepts or rejects (a rejection with a reason). A proposal that came in an M25.2
(``Proposal.origin``) is answered: its decision makes an answer due to the message's sender
(``answer_due``), sent as the updated M25.1."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

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
from medloop.domain.oslo import local_date
from medloop.domain.personnel import Actor


class ProposalKind(StrEnum):
    NEW_ENTRY = "new-entry"
    CHANGE_DOSAGE = "change-dosage"
    DISCONTINUE = "discontinue"
    RENEW = "renew"
    QUESTION = "question"


class MessageParty(Frozen):
    """An organisation as a message's envelope names it."""

    name: str | None = None
    her_id: str | None = None
    org_number: str | None = None


class AskedQuestion(Frozen):
    """A ``Sporsmal`` as the M25.2 asked it: the coded question (``Kode``: code, code system,
    display name), its note, when (``Tidspunkt``) and by whom (``Stiller``, a HER-id); the
    answer repeats it with its ``Svar``."""

    code: str | None = None
    system: str | None = None
    name: str | None = None
    note: str | None = None
    asked_at: str | None = None
    asked_by: str | None = None


class MessageOrigin(Frozen):
    """The received M25.2 a proposal came from: its MsgId, the conversation it belongs to
    (its ``ConversationRef/RefToConversation``, else its own MsgId: it began one), its sender
    (whom the answer goes to), the list entry it is about (``EnkeltoppforingLIB/Id``) and the
    question as asked."""

    msg_id: str
    conversation: str
    sender: MessageParty
    message_entry_id: str | None = None
    question: AskedQuestion | None = None


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
    origin: MessageOrigin | None = None
    """The M25.2 the proposal came in (``None``: proposed over the JSON API, nothing to
    answer)."""

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
    require_pharmacist_of(responsibility, proposal.proposed_by, local_date(proposal.proposed_at))
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


class ProposalAnswer(Frozen):
    """The answer due to the sender of the M25.2 a decided proposal came in: who decided what
    (with the reason or the answer to a question), the list version after the decision, and the
    conversation it continues. Sent as an M25.1 of the list at that version, under a MsgId of its
    own (one per proposal: a decision is made once)."""

    msg_id: str
    patient_id: UUID
    proposal_id: UUID
    kind: ProposalKind
    entry_id: UUID | None = None
    accepted: bool
    reason: str | None = None
    list_version: Count
    decided_at: AwareDatetime
    doctor: Actor
    origin: MessageOrigin


def answer_due(
    proposal: Proposal, decision: ProposalDecision, list_version: int
) -> ProposalAnswer | None:
    """The answer ``decision`` makes due (``None`` for a proposal that came in no message):
    ``list_version`` is the list's version after the decision (unchanged for a rejection or
    a question)."""
    if proposal.origin is None:
        return None
    entry_id = proposal.entry_id
    if entry_id is None and proposal.new_entry is not None and proposal.new_entry.get("entry_id"):
        entry_id = UUID(str(proposal.new_entry["entry_id"]))
    return ProposalAnswer(
        msg_id=str(uuid5(proposal.id, "m25.1-answer")),
        patient_id=proposal.patient_id,
        proposal_id=proposal.id,
        kind=proposal.kind,
        entry_id=entry_id,
        accepted=decision.accepted,
        reason=decision.reason,
        list_version=list_version,
        decided_at=decision.at,
        doctor=decision.by,
        origin=proposal.origin,
    )
