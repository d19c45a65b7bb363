"""Received e-prescription messages (M25.1, M1, M5, M10 …) as the list sees them: the record
kept of each one, the rules about message ids, and the reconciliation proposal an incoming
list (M25.1) becomes.

The reading of the XML is ``medloop.eresept`` (no rules there); the translation of a message
into commands is ``medloop.loop.messages``; what is decided about it is here:

- a MsgId names one message: the same id with the same bytes is a duplicate (one effect), with
  other bytes it is refused;
- the message's document must be about the patient its envelope names;
- an incoming list is compared with ours entry by entry (matched by entry id, then by
  prescription id): new, changed, discontinued (``Seponering``), unchanged, and our live
  entries the incoming list does not carry (absent);
- an incoming list may be applied directly only when our list has no entries at all and the
  sender is the patient's responsible GP (``Rolle`` L) for that list;
- a message medloop sends (the outbox: the answer to an M25.2) is marked sent once, by the
  organisation that sends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from interactions.dosage import Dosage, Use
from interactions.values import Count, Packages
from medloop.domain._model import Frozen
from medloop.domain.drug_reference import CatalogueDrug, DrugReference
from medloop.domain.entry import Discontinuation, ListEntry
from medloop.domain.errors import DomainError
from medloop.domain.medication_list import MedicationList
from medloop.domain.multidose.proposals import ProposalAnswer
from medloop.domain.personnel import Actor

# -- errors ------------------------------------------------------------------------------------


class MessageError(DomainError):
    """A received message is refused by a rule about messages."""


class MessageIdReused(MessageError):
    code = "message-id-reused"


class MessagePatientMismatch(MessageError):
    code = "message-patient-mismatch"


class MessageWithoutPatient(MessageError):
    code = "message-without-patient"


class MessageWithoutAuthor(MessageError):
    code = "message-without-author"


class MessageTypeNotImported(MessageError):
    code = "message-type-not-imported"


class MessageNotMatched(MessageError):
    code = "message-not-matched"


class ProposalNotFound(MessageError):
    code = "list-proposal-not-found"


class ProposalAlreadyDecided(MessageError):
    code = "list-proposal-already-decided"


class ProposalStale(MessageError):
    code = "list-proposal-stale"


class ProposalUnknownEntry(MessageError):
    code = "list-proposal-unknown-entry"


class OutboxMessageNotFound(MessageError):
    """No message to send under this MsgId for this patient and organisation."""

    code = "outbox-message-not-found"


class OutboxMessageAlreadySent(MessageError):
    code = "outbox-message-already-sent"


# -- what is kept of a message ------------------------------------------------------------------

Result = Literal["applied", "proposed", "duplicate", "refused"]
EntryKind = Literal["new", "changed", "discontinued", "unchanged", "absent"]


class IncomingEntry(Frozen):
    """One ``EnkeltoppforingLIB`` of an incoming list, translated: its ids as the message gives
    them, the drug (resolved against the catalogue in force, or unresolved), the dosage as far
    as it maps faithfully (``dose_check`` says "checked" or "not checked: <why>"), and its
    discontinuation when the message carries one."""

    message_entry_id: str | None = None
    prescription_id: UUID | None = None
    drug: DrugReference
    use: Use
    dosage: Dosage | None = None
    indication: str | None = None
    start: date
    stop: date | None = None
    prescription_expires: date | None = None
    discontinuation: Discontinuation | None = None
    dose_check: str = "checked"
    notices: tuple[str, ...] = ()
    # the embedded prescription's terms, to issue it when the entry is taken in
    packages: Packages | None = None
    repeats: Count = 0
    reserved_against_substitution: bool = False
    reimbursed: bool = False
    prescription_issued: date | None = None


class ProposedEntry(Frozen):
    """What the incoming entry would do to our list: ``entry_id`` is our entry it matched
    (``None`` for a new one), ``changes`` the fields that differ."""

    kind: EntryKind
    entry_id: UUID | None = None
    incoming: IncomingEntry | None = None
    changes: tuple[str, ...] = ()


class ListProposal(Frozen):
    """The reconciliation proposal an incoming list becomes, against list ``list_version``."""

    list_version: Count
    entries: tuple[ProposedEntry, ...] = Field(default=())

    def count(self, kind: EntryKind) -> int:
        return sum(1 for e in self.entries if e.kind == kind)


class ReceivedMessage(Frozen):
    """The record of a received message (its original bytes are stored beside it)."""

    msg_id: str = Field(min_length=1, max_length=200)
    type: str
    sha256: str = Field(min_length=64, max_length=64)
    sender_organisation: str | None = None
    sender_name: str | None = None
    sender_hpr: str | None = None
    national_id: str | None = None
    patient_id: UUID | None = None
    signature: str
    result: Literal["applied", "proposed"]
    entries: Count
    reasons: tuple[str, ...] = ()
    received_at: AwareDatetime
    proposal: ListProposal | None = None


class ListProposalDecision(Frozen):
    """A prescriber's decision on a received list: which of its entries were taken in (by the
    message's entry id), against which list version, by whom, when."""

    msg_id: str
    patient_id: UUID
    accepted: tuple[str, ...]
    based_on: Count
    at: AwareDatetime
    by: Actor
    reason: str | None = None


# -- the rules ----------------------------------------------------------------------------------


ACTIONABLE: frozenset[str] = frozenset({"new", "changed", "discontinued"})


def accepted_entries(
    received: ReceivedMessage | None,
    decided: ListProposalDecision | None,
    list_version: int,
    chosen: Sequence[str] | None,
) -> tuple[ProposedEntry, ...]:
    """The proposal's entries a prescriber takes in: ``chosen`` (message entry ids) or, when
    ``None``, every new, changed and discontinued one. Refused when there is no such
    proposal, it was decided already, or the list changed since it was made (import the list
    again for a fresh proposal)."""
    if received is None or received.proposal is None:
        raise ProposalNotFound("no list proposal was received under this MsgId")
    if decided is not None:
        raise ProposalAlreadyDecided(
            f"the proposal {received.msg_id} was decided at {decided.at.isoformat()}",
            msg_id=received.msg_id,
        )
    proposal = received.proposal
    if proposal.list_version != list_version:
        raise ProposalStale(
            f"the proposal compares list version {proposal.list_version}; the list is at "
            f"{list_version}: receive the list again for a current proposal",
            proposal_version=proposal.list_version,
            current_version=list_version,
        )
    # a discontinued entry we never had changes nothing: not actionable
    actionable = [
        e
        for e in proposal.entries
        if e.kind in ACTIONABLE
        and e.incoming is not None
        and (e.kind != "discontinued" or e.entry_id is not None)
    ]
    if chosen is None:
        return tuple(actionable)
    by_id = {e.incoming.message_entry_id: e for e in actionable if e.incoming is not None}
    unknown = [c for c in chosen if c not in by_id]
    if unknown:
        raise ProposalUnknownEntry(
            "the proposal has no new, changed or discontinued entry with these ids",
            entry_ids=unknown,
        )
    return tuple(by_id[c] for c in dict.fromkeys(chosen))


def check_message_id(msg_id: str, sha256: str, earlier: ReceivedMessage | None) -> bool:
    """Whether the message is a duplicate of ``earlier`` (the message stored under the same
    MsgId); refused when that one had other bytes: a MsgId names one message."""
    if earlier is None:
        return False
    if earlier.sha256 != sha256:
        raise MessageIdReused(
            f"MsgId {msg_id} was already received with other content "
            f"(SHA-256 {earlier.sha256}); a MsgId names one message",
            msg_id=msg_id,
            earlier_sha256=earlier.sha256,
            sha256=sha256,
        )
    return True


def check_patient(envelope: str | None, documents: Sequence[str | None]) -> str:
    """The patient's national id: the envelope's, which every document that names a patient
    must repeat."""
    if not envelope:
        raise MessageWithoutPatient("the envelope names no patient (MsgInfo/Patient FNR/DNR)")
    for named in documents:
        if named is not None and named != envelope:
            raise MessagePatientMismatch(
                "the document is about another patient than the envelope names",
                envelope=envelope,
                document=named,
            )
    return envelope


def may_apply_directly(
    medication_list: MedicationList, *, sender_hpr: str | None, responsible_hpr: str | None
) -> bool:
    """An incoming list replaces nothing when ours has no entries at all; it is applied
    directly only then, and only from the list's responsible GP (``Rolle`` L) as sender."""
    return (
        not medication_list.entries
        and sender_hpr is not None
        and responsible_hpr is not None
        and sender_hpr == responsible_hpr
    )


def propose(medication_list: MedicationList, incoming: Sequence[IncomingEntry]) -> ListProposal:
    """Compare an incoming list with ours: each incoming entry matched to our entry by id, then
    by prescription id; unmatched ones are new; our live entries left unmatched are absent."""
    by_id = {str(e.id): e for e in medication_list.entries}
    by_prescription = {p: e for e in medication_list.entries for p in e.prescription_ids}
    matched: set[UUID] = set()
    proposed: list[ProposedEntry] = []
    for entry in incoming:
        ours = by_id.get((entry.message_entry_id or "").lower())
        if ours is None and entry.prescription_id is not None:
            ours = by_prescription.get(entry.prescription_id)
        if ours is None:
            kind: EntryKind = "discontinued" if entry.discontinuation is not None else "new"
            proposed.append(ProposedEntry(kind=kind, incoming=entry))
            continue
        matched.add(ours.id)
        if entry.discontinuation is not None:
            kind = "unchanged" if ours.discontinuation is not None else "discontinued"
            proposed.append(ProposedEntry(kind=kind, entry_id=ours.id, incoming=entry))
            continue
        changes = _differences(ours, entry)
        proposed.append(
            ProposedEntry(
                kind="changed" if changes else "unchanged",
                entry_id=ours.id,
                incoming=entry,
                changes=changes,
            )
        )
    for ours in medication_list.entries:
        if ours.status.is_live and ours.id not in matched:
            proposed.append(ProposedEntry(kind="absent", entry_id=ours.id))
    return ListProposal(list_version=medication_list.version, entries=tuple(proposed))


def _drug_key(drug: DrugReference) -> tuple[str, str | None]:
    if isinstance(drug, CatalogueDrug):
        return ("catalogue", drug.fest_id)
    return (drug.source, drug.name)


def _differences(ours: ListEntry, incoming: IncomingEntry) -> tuple[str, ...]:
    changes = []
    if _drug_key(ours.drug) != _drug_key(incoming.drug):
        changes.append("drug")
    if ours.use is not incoming.use:
        changes.append("use")
    if ours.dosage != incoming.dosage:
        changes.append("dosage")
    if (ours.indication or None) != (incoming.indication or None):
        changes.append("indication")
    if ours.start != incoming.start:
        changes.append("start")
    if ours.stop != incoming.stop:
        changes.append("stop")
    return tuple(changes)


# -- messages sent (the outbox) -------------------------------------------------------------------


class MessageSent(Frozen):
    """An integrator's mark that a message of the outbox went out."""

    msg_id: str = Field(min_length=1, max_length=200)
    patient_id: UUID
    at: AwareDatetime
    by: Actor


class OutboxMessage(Frozen):
    """A message medloop sends, as stored: the answer to a proposal that came in an M25.2 (an
    M25.1, ``type`` ERM251), the SHA-256 and size of its bytes (stored beside it), and its mark
    of having been sent. ``state``: ``ready`` until an integrator marks it ``sent``."""

    msg_id: str = Field(min_length=1, max_length=200)
    patient_id: UUID
    type: str
    sha256: str = Field(min_length=64, max_length=64)
    size: Count
    created_at: AwareDatetime
    answer: ProposalAnswer
    sent: MessageSent | None = None

    @property
    def state(self) -> Literal["ready", "sent"]:
        return "ready" if self.sent is None else "sent"

    def sent_from(self, organisation_id: str) -> bool:
        """Whether organisation ``organisation_id`` sends it (the deciding doctor's: only it
        reads the message and marks it sent)."""
        return self.answer.doctor.organisation.id == organisation_id


def mark_sent(found: OutboxMessage | None, msg_id: str, *, at: datetime, by: Actor) -> MessageSent:
    """The mark that ``found`` went out: only the organisation that sends it (the deciding
    doctor's) sees it, and it is sent once."""
    if found is None or not found.sent_from(by.organisation.id):
        raise OutboxMessageNotFound(
            f"there is no message {msg_id} of organisation {by.organisation.id} to send for "
            "this patient",
            msg_id=msg_id,
        )
    if found.sent is not None:
        raise OutboxMessageAlreadySent(
            f"message {msg_id} was marked sent at {found.sent.at.isoformat()}", msg_id=msg_id
        )
    return MessageSent(msg_id=msg_id, patient_id=found.patient_id, at=at, by=by)
