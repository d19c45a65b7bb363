"""Received e-prescription messages as commands: what an M25.1, M1 or M5 does to the list.

``import_message`` reads the message (``medloop.eresept``: hardened parsing, XSD, signatures),
finds the patient the envelope names and runs ONE command (``runner.run_command``) whose
decision translates the message into the domain's changes and stores the message itself
(``store.messages``) in the same transaction; a refusal stores nothing. The rules are the
domain's (``domain.messages``, ``domain.prescription``, ``domain.medication_list``); this
module only translates:

- **M25.1** (``ERM251``): each ``EnkeltoppforingLIB`` becomes an ``IncomingEntry`` (drug
  resolved by varenr, then FEST id, in the catalogue version in force; otherwise kept as an
  ``UnresolvedDrug`` with a visible notice; dosage mapped to the structured ``Dosage`` only
  where every part of it maps, else its texts are kept and ``dose_check`` says "not checked"
  and why). The list becomes a reconciliation proposal (``proposed``) stored with the message,
  or, when our list is empty and the sender is the list's responsible GP (``Rolle`` L), is
  applied as one list change with the embedded prescriptions issued (``applied``).
- **M1** (``ERM1``): a new entry with its prescription (the M1's MsgId is the prescription id),
  through decision support like ``prescribe``.
- **M5** (``ERM5``): recall of the prescription it names (``Tilbakekalling``).
- **M25.2** (``ERM252``): the multidose pharmacy's questions, dosage changes,
  discontinuations and new entries (as the prescribe order the doctor's acceptance runs), each
  a pending proposal for the multidose doctor, with where it came from (``Proposal.origin``):
  the doctor's decision (``loop.multidose``) goes out to the M25.2's sender as the updated
  M25.1 through the outbox, which an integrator marks sent (``mark_outbox_sent``).
- **M27.1** (``ERM271``, status R): the sender becomes the multidose doctor from
  ``GjelderFra`` (``domain.multidose.responsibility``).
- **M10** (``ERM10``): an external pharmacy's dispensing report (by its caller: ``AnsattId`` is
  an employee id, not an HPR number), a dispense against our
  prescription (``ReseptId``) under every closed-loop dispensing rule, recorded with the pack's
  expiry (and batch, without ``Batchnr``) absent, marked ``reported_in="M10"``; an annulling
  M10 annuls the dispense of the M10 it names. A report we cannot match is refused.
- **M25.3** (``ERM253``): the multidose pharmacy's report of what it packed, translated into
  the JSON packing report's input (``PackReport``: one bag per dosing day and intake time with
  the packed package and amount per entry, from each ``SisteUtlevering``'s first to last dose
  date and the packed dosage) and reconciled by the same decision as ``multidose
  reconcile`` (``loop.multidose.packing_reconciliation``).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Literal
from uuid import UUID

from lxml import etree
from pydantic import AwareDatetime
from sqlalchemy import Engine

from interactions.dosage import (
    AsNeededDose,
    Dosage,
    FixedDose,
    Period,
    Quantity,
    ShortDose,
    TimeOfDay,
    TimeUnit,
    Use,
)
from interactions.values import MAX_PACKAGES
from medloop.domain._model import Frozen
from medloop.domain.codes import (
    DiscontinuationReason,
    OrganisationKind,
    PersonnelRole,
    RecallReason,
)
from medloop.domain.dispense import NOT_CARRIED_BY_M10, DispenseQuantity, DispenseRequest
from medloop.domain.dispense import annul as annul_dispense
from medloop.domain.dispense import dispense as record_dispense
from medloop.domain.drug_reference import CatalogueDrug, DrugReference, UnresolvedDrug
from medloop.domain.entry import Discontinuation, EntryEdit, ListEntry
from medloop.domain.errors import DomainError
from medloop.domain.medication_list import (
    AddEntry,
    DiscontinueEntry,
    EditEntry,
    ListCommand,
    apply_all,
)
from medloop.domain.messages import (
    IncomingEntry,
    ListProposal,
    ListProposalDecision,
    MessageNotMatched,
    MessagePatientMismatch,
    MessageTypeNotImported,
    MessageWithoutAuthor,
    ReceivedMessage,
    accepted_entries,
    check_message_id,
    check_patient,
    mark_sent,
    may_apply_directly,
    propose,
)
from medloop.domain.multidose.plan import expected_doses
from medloop.domain.multidose.proposals import (
    AskedQuestion,
    MessageOrigin,
    MessageParty,
    Proposal,
    ProposalKind,
)
from medloop.domain.multidose.proposals import propose as multidose_propose
from medloop.domain.multidose.reconciliation import PackedBag, PackedLine, PackReport
from medloop.domain.multidose.responsibility import assign_responsibility, responsibility_on
from medloop.domain.patient import PatientNotFound
from medloop.domain.personnel import Actor, HealthPersonnel, Organisation
from medloop.domain.prescribing import discontinuation_recalls
from medloop.domain.prescription import (
    PrescribedQuantity,
    PrescriptionError,
    PrescriptionRequest,
    PrescriptionVersion,
    issue,
    recall,
)
from medloop.eresept import Message, ReaderConfig, read_message
from medloop.eresept import content as c
from medloop.eresept.model import MsgInfo
from medloop.loop.catalogue import Catalogue, DrugOrder
from medloop.loop.errors import UnknownDrug
from medloop.loop.multidose import load_packing_rules, packing_reconciliation
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms
from medloop.loop.runner import (
    Call,
    Context,
    Done,
    Effect,
    Screening,
    WorkContext,
    medications_of,
    run_command,
    run_work,
)
from medloop.store import multidose as multidose_store
from medloop.store import outbox
from medloop.store.db import reader
from medloop.store.messages import (
    append_decision,
    append_received,
    find_decision,
    find_received,
)
from medloop.store.patients import find_patient_id
from medloop.store.prescriptions import patients_of_prescriptions

ACTION = "eresept-import"
IMPORTED_TYPES = ("ERM251", "ERM1", "ERM5", "ERM271", "ERM252", "ERM10", "ERM253")
_NAMESPACE = uuid.UUID("6f1c3d52-8a4e-4f57-9a43-2b0b8d1c5e17")


@dataclass(frozen=True)
class Receipt:
    """What a received message got: the contract fields (``as_contract``) and the proposal."""

    message_id: str
    type: str
    patient: str | None
    result: str
    entries: int
    reasons: tuple[str, ...] = ()
    list_version: int | None = None
    proposal: ListProposal | None = None
    alerts: tuple[dict[str, Any], ...] = field(default=())

    def as_contract(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "type": self.type,
            "patient": self.patient,
            "result": self.result,
            "entries": self.entries,
            "reasons": list(self.reasons),
        }


def entries_of(message: Message) -> int:
    """The number of list entries, prescriptions or dispenses a message carries."""
    if message.lists:
        return sum(len(lib.entries) for lib in message.lists)
    if message.prescriptions:
        return len(message.prescriptions)
    if message.type == "ERM271":
        return 0  # a registration of the multidose doctor carries no entry
    return len(message.unmapped)  # M5: the prescription it recalls


def import_message(
    engine: Engine,
    data: bytes,
    *,
    source: str,
    config: ReaderConfig,
    call: Call | None = None,
    authorize: Callable[[UUID | None, str], None] | None = None,
) -> Receipt:
    """Read and import one message. Raises ``EreseptError`` for a message that is malformed,
    unsafe, schema-invalid, of a type we do not read or with an invalid signature (nothing
    stored), a ``DomainError`` when a rule refuses it (nothing stored), else returns the
    receipt (``applied``, ``proposed`` or ``duplicate``). ``call``: who imports (default: the
    message's sender); ``authorize(patient_id, type)`` is called once the patient is known
    (the API's policy, by the message's type), before anything is written."""
    message = read_message(data, source=source, config=config)
    # an M9.x answer takes effect as the message it carries, received alone
    subject = message.subject
    info = subject.msg_info
    outer = message.msg_info
    national_id = check_patient(
        info.patient.national_id if info.patient is not None else None,
        (outer.patient.national_id if outer.patient is not None else None,),
    )
    if info.type not in IMPORTED_TYPES:
        raise MessageTypeNotImported(
            f"{info.type} ({info.type_name}) messages are read and validated but not imported "
            f"yet; imported: {', '.join(IMPORTED_TYPES)}",
            type=info.type,
        )
    with reader(engine).connect() as conn:
        patient_id = find_patient_id(conn, national_id)
        if authorize is not None:
            # before "not found", so a refused caller does not learn whether a list is kept
            authorize(patient_id, info.type)
        if patient_id is None:
            raise PatientNotFound(
                "the patient the envelope names is not registered", national_id=national_id
            )
        owners = patients_of_prescriptions(conn, _prescriptions_named(subject))
        for named, owner in sorted(owners.items()):
            if owner != patient_id:
                raise MessagePatientMismatch(
                    f"prescription {named} belongs to another patient than the envelope names",
                    prescription_id=named,
                )
    call = call or Call(actor=sender_actor(info, employee=_m10_employee(subject)), at=_now())
    result = run_command(
        engine,
        ACTION,
        patient_id,
        call,
        _decision(message, data, patient_id, national_id, call),
        based_on=None,
        request={"msg_id": message.msg_id, "type": outer.type, "sha256": message.sha256},
    )
    response = result.response
    proposal = response.get("proposal")
    return Receipt(
        message_id=message.msg_id,
        type=outer.type,
        patient=national_id,
        result=response["result"],
        entries=response["entries"],
        reasons=tuple(response.get("reasons", ())),
        list_version=result.list_version,
        proposal=None if proposal is None else ListProposal.model_validate(proposal),
        # the alerts as the command answered them (JSON already: not dumped a second time)
        alerts=tuple(response["alerts"]),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _prescriptions_named(message: Message) -> list[UUID]:
    found = []
    for lib in message.lists:
        found += [p for e in lib.entries if (p := _uuid(e.prescription_id)) is not None]
    if message.type == "ERM1":
        named = _uuid(message.msg_id)
        if named is not None:
            found.append(named)
    for kept in message.unmapped:
        found += _recalled_ids(kept.xml)
    return found


def _recalled_ids(xml: str) -> list[UUID]:
    root = _kept(xml)
    return [
        found
        for el in root.iter()
        if isinstance(el.tag, str)
        and c.local(el) == "ReseptId"
        and (found := _uuid(el.text)) is not None
    ]


_KEPT_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _kept(xml: str):
    """A document the reader kept whole (``Message.unmapped``: lxml's own serialisation of
    what it parsed, hardened), parsed again the same hardened way."""
    return etree.fromstring(xml.encode("utf-8"), _KEPT_PARSER)


def _uuid(value: str | None) -> UUID | None:
    try:
        return UUID((value or "").strip())
    except ValueError:
        return None


def _sender_hpr(info: MsgInfo) -> str | None:
    """The HPR number of the professional who sent the message (in its sender organisation or
    a unit of it)."""
    org = info.sender
    while org is not None:
        if org.healthcare_professional is not None:
            return org.healthcare_professional.hpr
        org = org.organisation
    return None


def _m10_employee(message: Message) -> str | None:
    """An M10's ``AnsattId`` (the dispensing employee), when the message is an M10."""
    if message.type != "ERM10":
        return None
    found = _first_text(message, "AnsattId")
    return found.strip() if found else None


def sender_actor(info: MsgInfo, *, employee: str | None = None) -> Actor:
    """The sender of a message as the author of what it does: its professional (HPR) acting for
    its organisation (HER-id, else org number). ``employee``: an M10's ``AnsattId``, named in
    the refusal when the envelope names no professional.

    An M10's ``AnsattId`` is not taken as an HPR number: ER-M10-2013-10-08.xsd declares it a
    plain ``string`` with no documentation, and its name says "employee id" (the pharmacy's
    own number for the person who dispensed); nothing in the standard makes it an HPR number,
    and read as one it would put a dispense in the name of whoever holds that HPR number. An
    M10 whose envelope names no professional is imported by its authenticated caller (over
    HTTP, the dispensing pharmacist) or refused."""
    org = info.sender
    hcp = org.healthcare_professional
    while hcp is None and org.organisation is not None:
        org = org.organisation
        hcp = org.healthcare_professional
    sender = info.sender
    kind = (
        OrganisationKind.PHARMACY
        if info.type in ("ERM10", "ERM252", "ERM253")
        else OrganisationKind.GP_PRACTICE
    )
    role = {"LE": PersonnelRole.DOCTOR, "SP": PersonnelRole.NURSE}.get(
        (hcp.type.v if hcp is not None and hcp.type is not None else "") or "",
        PersonnelRole.PHARMACIST if kind is OrganisationKind.PHARMACY else PersonnelRole.DOCTOR,
    )
    hpr = hcp.hpr if hcp is not None else None
    if not hpr:
        raise MessageWithoutAuthor(
            "the sender names no healthcare professional with an HPR number; a change to the "
            "list needs its author (over HTTP the caller is the author)"
            + (
                f"; the M10's AnsattId {employee!r} is the pharmacy's employee id, not an HPR "
                "number"
                if employee
                else ""
            ),
        )
    name = " ".join(filter(None, [hcp.given_name, hcp.middle_name, hcp.family_name] if hcp else []))
    return Actor(
        personnel=HealthPersonnel(hpr_number=hpr, name=name or hpr, role=role),
        organisation=Organisation(
            id=sender.her_id or sender.org_number or "unknown",
            name=sender.name or "unknown",
            kind=kind,
        ),
    )


# -- the decision -------------------------------------------------------------------------------


def _decision(received: Message, data: bytes, patient_id: UUID, national_id: str, call: Call):
    """``received`` is stored (its bytes, MsgId, type) and answers for idempotency; its
    ``subject`` (the message an M9.x answer carries, else itself) takes effect."""
    message = received.subject
    info = message.msg_info

    def decide(ctx: Context) -> Effect:
        entries = entries_of(message)
        earlier = find_received(ctx.conn, received.msg_id)
        if check_message_id(received.msg_id, received.sha256, earlier):
            return Effect(
                response={
                    "result": "duplicate",
                    "entries": entries,
                    "reasons": [f"MsgId {received.msg_id} was received at {earlier.received_at}"],
                }
            )
        if info.type == "ERM251":
            effect, result, reasons, proposal = _list(ctx, message, call)
        elif info.type == "ERM1":
            effect, result, reasons, proposal = _prescription(ctx, message, call)
        elif info.type == "ERM252":
            effect, result, reasons, proposal = _pharmacy_proposals(ctx, message, call, patient_id)
        elif info.type == "ERM271":
            effect, result, reasons, proposal = _multidose_doctor(ctx, message, call, patient_id)
        elif info.type == "ERM10":
            effect, result, reasons, proposal = _dispensing_report(ctx, message, call)
        elif info.type == "ERM253":
            effect, result, reasons, proposal = _packing_report(ctx, message, call, patient_id)
        else:
            effect, result, reasons, proposal = _recall(ctx, message, call)
        if received.wrapped is not None:
            reasons = [
                f"{received.type} {received.msg_id} carries {info.type} {message.msg_id}, "
                "imported as received alone",
                *reasons,
            ]
        record = ReceivedMessage(
            msg_id=received.msg_id,
            type=received.type,
            sha256=received.sha256,
            sender_organisation=info.sender.her_id or info.sender.org_number,
            sender_name=info.sender.name,
            sender_hpr=call.actor.personnel.hpr_number,
            national_id=national_id,
            patient_id=patient_id,
            signature=_signature(received),
            result=result,
            entries=entries,
            reasons=tuple(reasons),
            received_at=call.at,
            proposal=proposal,
        )
        response = {
            **effect.response,
            "result": result,
            "entries": entries,
            "reasons": list(reasons),
            "proposal": None if proposal is None else proposal.model_dump(mode="json"),
        }
        return Effect(
            list_change=effect.list_change,
            prescription_versions=effect.prescription_versions,
            dispenses=effect.dispenses,
            annulments=effect.annulments,
            screening=effect.screening,
            response=response,
            writes=(*effect.writes, lambda conn: append_received(conn, record, data)),
        )

    return decide


def _signature(message: Message) -> str:
    if not message.signatures:
        return "none"
    return "; ".join(f"{s.where}: {s.status}" for s in message.signatures)


Decided = tuple[Effect, str, list[str], ListProposal | None]


def _list(ctx: Context, message: Message, call: Call) -> Decided:
    lib = message.lists[0]
    today = call.day
    incoming = [incoming_entry(e, ctx.catalogue, today) for e in lib.entries]
    reasons = [n for e in incoming for n in e.notices]
    responsible = next(
        (
            r.person.hpr
            for r in lib.roles
            if r.role is not None and r.role.v == "L" and r.person is not None
        ),
        None,
    )
    current = ctx.state.medication_list
    if not may_apply_directly(
        current, sender_hpr=_sender_hpr(message.msg_info), responsible_hpr=responsible
    ):
        proposal = propose(current, incoming)
        counts = ", ".join(
            f"{proposal.count(k)} {k}"
            for k in ("new", "changed", "discontinued", "unchanged", "absent")
        )
        return Effect(), "proposed", [f"waiting for a prescriber: {counts}", *reasons], proposal
    header = {"author": call.actor, "at": call.at, "reason": f"M25.1 {message.msg_id}"}
    planned = [
        (_entry_id(entry.message_entry_id, message.msg_id, index), entry, source)
        for index, (entry, source) in enumerate(zip(incoming, lib.entries, strict=True))
    ]
    prescribed = {
        entry_id
        for entry_id, entry, _ in planned
        if entry.prescription_id is not None and isinstance(entry.drug, CatalogueDrug)
    }
    # first as the message has it; a prescription our rules do not take in (validity, group
    # without repeats …) leaves its entry on the list without it, and the receipt says why
    not_taken: dict[UUID, str] = {}
    for _attempt in range(2):
        new_list, change = apply_all(
            current, _list_commands(planned, prescribed - set(not_taken), header)
        )
        # each entry as added (before a discontinuation the message carries) is prescribed
        added = {v.entry_id: v.entry for v in change.entry_versions if v.version == 1}
        versions: list[PrescriptionVersion] = []
        refused_now: dict[UUID, str] = {}
        for entry_id, entry, source in planned:
            if entry_id not in prescribed or entry_id in not_taken:
                continue
            try:
                versions += _issued(added[entry_id], ctx, entry, source, call)
            except (PrescriptionError, ValueError) as refused:
                why = refused.detail if isinstance(refused, DomainError) else str(refused)
                refused_now[entry_id] = (
                    f"prescription {entry.prescription_id} of entry {entry.message_entry_id} "
                    f"is not taken in (the entry is): {why}"
                )
        if not refused_now:
            break
        not_taken.update(refused_now)
    reasons = [*reasons, *not_taken.values()]
    medications = tuple(medications_of(new_list))
    seen = {m.id for m in medications}
    focus = tuple(str(e) for e, _, _ in planned if str(e) in seen)
    screening = Screening(medications, focus)
    return (
        Effect(list_change=change, prescription_versions=tuple(versions), screening=screening),
        "applied",
        reasons,
        None,
    )


def _list_commands(
    planned: Sequence[tuple[UUID, IncomingEntry, c.LibEntry]],
    prescribed: set[UUID],
    header: dict[str, Any],
) -> list[ListCommand]:
    """An ``AddEntry`` per incoming entry (backed by its prescription when in ``prescribed``),
    then a ``DiscontinueEntry`` per entry the message discontinues."""
    commands: list[ListCommand] = [
        AddEntry(
            **header,
            entry_id=entry_id,
            drug=entry.drug,
            dosage=entry.dosage,
            use=entry.use,
            indication=entry.indication,
            start=entry.start,
            stop=entry.stop,
            prescriber=header["author"],
            instituted_by=header["author"],
            prescription_ids=(entry.prescription_id,) if entry_id in prescribed else (),
        )
        for entry_id, entry, _ in planned
    ]
    commands += [
        DiscontinueEntry(**header, entry_id=entry_id, discontinuation=entry.discontinuation)
        for entry_id, entry, _ in planned
        if entry.discontinuation is not None
    ]
    return commands


def _issued(
    entry, ctx: Context, incoming: IncomingEntry, source: c.LibEntry, call: Call
) -> list[PrescriptionVersion]:
    doc = source.prescription
    issued = _date(source.last_changed) or incoming.start
    request = _request(incoming.prescription_id, doc, issued, incoming.prescription_expires, ctx)
    if request.expires is not None and request.expires < issued:
        issued = request.expires
        request = request.model_copy(update={"issued": issued})
    prescription, version = issue(
        entry, ctx.state.medication_list.patient_id, request, at=call.at, by=call.actor
    )
    if incoming.discontinuation is None:
        return [version]
    # discontinued in the message: its prescription is recalled with it (reason Seponering)
    _, recalled = recall(
        prescription,
        RecallReason.DISCONTINUATION,
        at=call.at,
        by=call.actor,
        note=incoming.discontinuation.note,
    )
    return [version, recalled]


def _request(
    prescription_id: UUID | None,
    doc: c.ReseptDokLegemiddel | None,
    issued: date,
    expires: date | None,
    ctx: Context,
) -> PrescriptionRequest:
    quantity = _number(doc.quantity if doc else None) or 1.0
    return PrescriptionRequest(
        id=prescription_id,
        issued=issued,
        quantity=PrescribedQuantity(packages=quantity),
        repeats=(doc.repeats or 0) if doc else 0,
        reserved_against_substitution=bool(
            doc and doc.substitution_reserved and doc.substitution_reserved.v == "1"
        ),
        reimbursed=bool(doc and doc.reimbursement_basis and doc.reimbursement_basis.v),
        expires=expires,
        product_validity=(),
    )


def _prescription(ctx: Context, message: Message, call: Call) -> Decided:
    resept = message.prescriptions[0]
    prescription_id = _uuid(message.msg_id)
    if prescription_id is None:
        raise MessageNotMatched(
            f"an M1's MsgId is its prescription id (a UUID), not {message.msg_id!r}",
            msg_id=message.msg_id,
        )
    fs = resept.document.forskrivning if resept.document else None
    drug = _drug(fs.drug if fs else None, ctx.catalogue)
    resolved = isinstance(drug, CatalogueDrug)
    today = call.day
    use, dosage, start, stop, check, notices = map_dosage(fs, today)
    issued = _date(resept.issued) or today
    entry_id = _entry_id(None, message.msg_id, 0)
    new_list, change = ctx.state.medication_list.apply(
        AddEntry(
            author=call.actor,
            at=call.at,
            reason=f"M1 {message.msg_id}",
            entry_id=entry_id,
            drug=drug,
            dosage=dosage,
            use=use,
            indication=fs.use_area if fs else None,
            start=_date(resept.issued) or start,
            stop=stop,
            multidose=bool(resept.multidose_prescription),
            prescriber=call.actor,
            instituted_by=call.actor,
            prescription_ids=(prescription_id,) if resolved else (),
        )
    )
    reasons = [] if check == "checked" else [f"dose checks {check}"]
    versions: tuple[PrescriptionVersion, ...] = ()
    if isinstance(drug, CatalogueDrug):
        request = _request(prescription_id, resept.document, issued, _date(resept.expires), ctx)
        request = request.model_copy(update={"product_validity": ctx.catalogue.validity_of(drug)})
        _, version = issue(
            new_list.entry(entry_id), new_list.patient_id, request, at=call.at, by=call.actor
        )
        versions = (version,)
    else:
        reasons = [
            drug.notice,
            f"kept as an unresolved entry {entry_id}; prescription {prescription_id} is not "
            "dispensable here until its drug is in the catalogue",
            *reasons,
        ]
    return (
        Effect(
            list_change=change,
            prescription_versions=versions,
            screening=Screening(
                tuple(medications_of(new_list)), (str(entry_id),) if resolved else ()
            ),
            response={"entry_id": str(entry_id), "prescription_id": str(prescription_id)},
        ),
        "applied",
        reasons + notices,
        None,
    )


_RECALL_REASONS = {r.value: r for r in RecallReason}


def _recall(ctx: Context, message: Message, call: Call) -> Decided:
    named = [p for kept in message.unmapped for p in _recalled_ids(kept.xml)]
    reason_code = _first_code(message, "Arsak")
    note = _first_text(message, "Merknad")
    if not named:
        raise MessageNotMatched("the recall names no prescription (ReseptId)")
    prescription_id = named[0]
    found = ctx.state.prescriptions.get(prescription_id)
    if found is None:
        raise MessageNotMatched(
            f"there is no prescription {prescription_id} for this patient to recall",
            prescription_id=prescription_id,
        )
    _, version = recall(
        found,
        _RECALL_REASONS.get(reason_code or "", RecallReason.OTHER),
        at=call.at,
        by=call.actor,
        note=note,
    )
    return (
        Effect(prescription_versions=(version,), response={"prescription_id": str(found.id)}),
        "applied",
        [],
        None,
    )


def _pharmacy_proposals(ctx: Context, message: Message, call: Call, patient_id: UUID) -> Decided:
    """M25.2: the multidose pharmacy's proposals, each pending for the multidose doctor
    (``domain.multidose.proposals``): a question (``Sporsmal``) about an entry, a dosage change,
    a discontinuation, or a new entry; entries as they are on our list propose nothing."""
    lib = message.lists[0]
    current = ctx.state.medication_list
    today = call.day
    incoming = [incoming_entry(e, ctx.catalogue, today) for e in lib.entries]
    compared = propose(current, incoming).entries
    responsible = responsibility_on(
        multidose_store.responsibility_history(ctx.conn, patient_id), today
    )
    records: list[Proposal] = []
    reasons: list[str] = []
    info = message.msg_info
    sender = MessageParty(
        name=info.sender.name, her_id=info.sender.her_id, org_number=info.sender.org_number
    )
    conversation = (
        info.conversation_ref.ref_to_conversation if info.conversation_ref else message.msg_id
    )

    def proposed(source: c.LibEntry, asked: AskedQuestion | None = None, **fields) -> None:
        # where it came from: whom the doctor's decision answers, in which conversation
        origin = MessageOrigin(
            msg_id=message.msg_id,
            conversation=conversation,
            sender=sender,
            message_entry_id=source.id,
            question=asked,
        )
        record = Proposal(
            id=uuid.uuid5(_NAMESPACE, f"{message.msg_id}/proposal/{len(records)}"),
            patient_id=patient_id,
            proposed_at=call.at,
            proposed_by=call.actor,
            origin=origin,
            **fields,
        )
        records.append(multidose_propose(responsible, record, current))

    for source, found in zip(lib.entries, compared, strict=False):
        entry = found.incoming
        if entry is None:
            continue
        for question in source.questions:
            asked = (question.code.dn or question.code.v) if question.code else None
            text = " — ".join(filter(None, [asked, question.note])) or "question"
            if found.entry_id is None:
                reasons.append(f"question on entry {source.id}, which is not on the list: {text}")
                continue
            proposed(
                source,
                AskedQuestion(
                    code=question.code.v if question.code else None,
                    system=question.code.s if question.code else None,
                    name=question.code.dn if question.code else None,
                    note=question.note,
                    asked_at=question.time,
                    asked_by=question.asked_by,
                ),
                kind=ProposalKind.QUESTION,
                entry_id=found.entry_id,
                question=text,
                note=f"M25.2 {message.msg_id}",
            )
        if found.kind == "changed" and "dosage" in found.changes and entry.dosage is not None:
            proposed(
                source,
                kind=ProposalKind.CHANGE_DOSAGE,
                entry_id=found.entry_id,
                dosage=entry.dosage,
            )
        elif found.kind == "discontinued" and found.entry_id is not None:
            proposed(
                source,
                kind=ProposalKind.DISCONTINUE,
                entry_id=found.entry_id,
                discontinuation=entry.discontinuation,
            )
        elif found.kind == "new":
            if not isinstance(entry.drug, CatalogueDrug):
                reasons.append(
                    f"entry {source.id} is new to the list but its drug is not in the catalogue "
                    f"in force: not proposed ({entry.drug.name})"
                )
                continue
            index = len(records)
            order = PrescribeOrder(
                entry_id=_entry_id(entry.message_entry_id, message.msg_id, index),
                drug=DrugOrder(varenr=entry.drug.varenr)
                if entry.drug.varenr
                else DrugOrder(fest_id=entry.drug.fest_id),
                use=entry.use,
                dosage=entry.dosage,
                indication=entry.indication,
                start=entry.start,
                stop=entry.stop,
                multidose=True,
                terms=PrescriptionTerms(
                    prescription_id=entry.prescription_id
                    or uuid.uuid5(_NAMESPACE, f"{message.msg_id}/prescription/{index}"),
                    quantity=PrescribedQuantity(packages=entry.packages or 1.0),
                    repeats=entry.repeats,
                    reserved_against_substitution=entry.reserved_against_substitution,
                    reimbursed=entry.reimbursed,
                    expires=entry.prescription_expires,
                ),
            )
            proposed(
                source,
                kind=ProposalKind.NEW_ENTRY,
                new_entry=order.model_dump(mode="json"),
                note=f"M25.2 {message.msg_id}: new entry {source.id}",
            )
    if not records:
        raise MessageNotMatched(
            "the M25.2 proposes nothing this list can take: no question, dosage change, "
            "discontinuation of an entry on it or new entry in the catalogue",
            reasons=reasons,
        )
    reasons.insert(0, f"{len(records)} proposal(s) waiting for the multidose doctor")
    return (
        Effect(
            writes=tuple(
                (lambda conn, r=record: multidose_store.append_proposal(conn, r))
                for record in records
            ),
            response={"proposals": [str(r.id) for r in records]},
        ),
        "proposed",
        reasons,
        None,
    )


def _packing_report(ctx: Context, message: Message, call: Call, patient_id: UUID) -> Decided:
    """M25.3: what the multidose pharmacy packed, as the packing report ``multidose reconcile``
    takes (``PackReport``), reconciled by the same decision. The period is the patient's
    packing period holding the first dosing day (``Pakkeinfo/ForsteDoseringsdato``, else the
    earliest ``DatoForsteDose``). Each entry's ``SisteUtlevering`` becomes lines in the bags of
    each day from its first to its last dose date (within the period) and each intake time of
    the packed dosage (its M1's structured ``Dosering``, mapped as for M25.1), with the
    dispensed package (``UtleveringB64``'s ``Varenr``, else the M1's) and the dose amount, named
    to our entry (by its id, else its prescription id)."""
    lib = message.lists[0]
    packing = lib.packing
    starts = [_date(p.first_dose) for e in lib.entries for p in e.packed]
    first = _date(packing.first_day if packing else None) or min(
        (d for d in starts if d is not None), default=None
    )
    if first is None:
        raise MessageNotMatched("the M25.3 reports no packed dose (no SisteUtlevering dates)")
    period = next(
        (
            p
            for p in multidose_store.periods_of(ctx.conn, patient_id)
            if p.first_day <= first <= p.last_day
        ),
        None,
    )
    if period is None:
        raise MessageNotMatched(
            f"the M25.3 reports packing from {first.isoformat()}, in no packing period of this "
            "patient; open the period first",
            first_day=first,
        )
    current = ctx.state.medication_list
    by_id = {str(e.id): e for e in current.entries}
    by_prescription = {str(p): e for e in current.entries for p in e.prescription_ids}
    rules = load_packing_rules()
    reasons: list[str] = []
    bags: dict[tuple[date, str], list[PackedLine]] = {}
    for index, source in enumerate(lib.entries):
        ours = by_id.get((source.id or "").strip()) or by_prescription.get(
            (source.prescription_id or "").strip()
        )
        fs = source.prescription.forskrivning if source.prescription else None
        use, dosage, _, _, check, _ = map_dosage(fs, call.day)
        for packed in source.packed:
            why = packed.repacking_reason
            if why is not None:
                reasons.append(f"entry {source.id}: repacked ({why.dn or why.v})")
            dispensed = packed.dispensed.forskrivning if packed.dispensed else None
            varenr = (dispensed.drug.varenr if dispensed and dispensed.drug else None) or (
                fs.drug.varenr if fs and fs.drug else None
            )
            start, end = _date(packed.first_dose), _date(packed.last_dose)
            if varenr is None or dosage is None or not dosage.fixed or start is None:
                reasons.append(
                    f"entry {source.id}: packed without a varenr or a structured dosage "
                    f"({check}); not in the bags"
                )
                continue
            drug = ctx.catalogue.resolve(DrugOrder(varenr=varenr))
            as_packed = ListEntry(
                id=ours.id if ours is not None else _entry_id(None, message.msg_id, index),
                version=1,
                drug=drug,
                dosage=dosage,
                use=use,
                start=start,
                stop=end,
                multidose=True,
                changed_at=call.at,
            )
            days = [d for d in period.days if start <= d and (end is None or d <= end)]
            for (day, intake, _), amount in expected_doses([as_packed], days, rules).items():
                bags.setdefault((day, intake), []).append(
                    PackedLine(
                        varenr=varenr,
                        quantity=amount,
                        entry_id=ours.id if ours is not None else None,
                    )
                )
    if packing is not None and packing.order_deadline:
        said = _moment(packing.order_deadline)
        if said is not None and said != period.order_deadline:
            reasons.append(
                f"the M25.3's order deadline {packing.order_deadline} differs from the "
                f"period's {period.order_deadline.isoformat()}"
            )
    report = PackReport(
        report_id=uuid.uuid5(_NAMESPACE, f"{message.msg_id}/packing"),
        period_id=period.id,
        bags=tuple(
            PackedBag(day=day, intake=intake, lines=tuple(lines))
            for (day, intake), lines in sorted(bags.items())
        ),
    )
    effect = packing_reconciliation(ctx, patient_id, report, call, rules)
    counts = effect.response.get("counts", {})
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no lines"
    reasons.insert(
        0,
        f"packing report {report.report_id} for period {period.first_day}–{period.last_day}: "
        f"{summary}; {effect.response.get('discrepancies', 0)} discrepancy(ies)",
    )
    return effect, "applied", reasons, None


def m10_dispense_id(msg_id: str) -> UUID:
    """The id of the dispense an M10 reports: derived from its MsgId (an annulling M10 names the
    annulled one by its MsgId, ``AnnulleringsId``)."""
    return uuid.uuid5(_NAMESPACE, f"{msg_id.strip()}/dispense")


def _dispensing_report(ctx: Context, message: Message, call: Call) -> Decided:
    """M10: an external pharmacy's dispensing report (``Utlevering``) recorded as a dispense
    against our prescription (``ReseptId``), with every closed-loop rule of
    ``domain.dispense.dispense`` (the prescription backs an active entry, is not recalled,
    expired or fully dispensed, the package is the prescribed one or a valid substitute, the
    quantity within what remains). The M10 carries no expiry (and the batch only as
    ``Batchnr``): the dispense is recorded with them absent and ``reported_in="M10"``. An
    annulment (``Annullering`` true) annuls the dispense of the M10 its ``AnnulleringsId`` names.
    A report we cannot match is refused with the reason; nothing is recorded."""
    report = _kept(message.unmapped[0].xml) if message.unmapped else None
    if report is None or c.local(report) != "Utleveringsrapport":
        raise MessageNotMatched("the M10 carries no Utleveringsrapport")
    found = {
        c.local(el): el
        for el in report.iter()
        if isinstance(el.tag, str)
        and c.local(el)
        in {
            "Utlevering",
            "ReseptId",
            "Utleveringsdato",
            "Annullering",
            "Avsluttet",
            "ByttereservasjonKunde",
            "AnnulleringsId",
            "Batchnr",
            "ReseptDokLegemiddel",
            "ReseptDokHandelsvare",
            "Kanselleringskode",
        }
    }

    def text(name: str) -> str | None:
        el = found.get(name)
        return el.text.strip() if el is not None and el.text and el.text.strip() else None

    named = text("ReseptId")
    prescription_id = _uuid(named)
    if prescription_id is None:
        raise MessageNotMatched(
            f"the M10's ReseptId {named!r} is not a prescription id of ours (a UUID)",
            prescription_id=named,
        )
    prescription = ctx.state.prescriptions.get(prescription_id)
    if prescription is None:
        raise MessageNotMatched(
            f"the M10 reports a dispense of prescription {prescription_id}, which is not one of "
            "this patient's prescriptions here; nothing is recorded",
            prescription_id=prescription_id,
        )
    if text("Annullering") in ("true", "1"):
        return _m10_annulment(ctx, message, call, prescription_id, text("AnnulleringsId"))
    if "Kanselleringskode" in found:
        raise MessageNotMatched(
            "the M10 is a cancellation (Kanselleringskode): it reports no dispense",
            prescription_id=prescription_id,
        )
    document = found.get("ReseptDokLegemiddel")
    if document is None:
        raise MessageNotMatched(
            "the M10 names no dispensed package (ReseptDokLegemiddel with Varenr); goods "
            "(ReseptDokHandelsvare) are not dispensed against our prescriptions",
            prescription_id=prescription_id,
        )
    varenr = next(
        (
            el.text.strip()
            for el in document.iter()
            if isinstance(el.tag, str) and c.local(el) == "Varenr" and el.text
        ),
        None,
    )
    amount = next(
        (el.text for el in document if isinstance(el.tag, str) and c.local(el) == "Antall"), None
    )
    packages = _number(amount)
    if varenr is None or packages is None:
        raise MessageNotMatched(
            f"the M10's ReseptDokLegemiddel needs a Varenr and a positive Antall "
            f"(has {varenr!r}, {amount!r})",
            prescription_id=prescription_id,
        )
    dispensed_on = _date(text("Utleveringsdato"))
    assert dispensed_on is not None  # xs:date, schema-valid
    entry = ctx.state.medication_list.entry(prescription.entry_id)
    finished = found.get("Avsluttet")
    outcome = record_dispense(
        prescription,
        entry,
        ctx.catalogue.package(varenr),
        ctx.catalogue.substitution_groups,
        ctx.state.dispenses_of(prescription.id),
        DispenseRequest(
            id=m10_dispense_id(message.msg_id),
            dispensed_on=dispensed_on,
            quantity=DispenseQuantity(packages=packages),
            batch=text("Batchnr"),
            expiry=None,
            patient_refused_substitution=text("ByttereservasjonKunde") in ("true", "1"),
            finished=finished is not None and finished.get("V") == "1",
            reported_in="M10",
        ),
        at=call.at,
        by=call.actor,
    )
    record = outcome.dispense
    employee = _m10_employee(message)
    reasons = [
        f"dispense {record.id} of {packages:g} package(s) {record.package.name} ({varenr}) on "
        f"{dispensed_on.isoformat()} against prescription {prescription_id}",
        *(f"{name} {NOT_CARRIED_BY_M10}" for name in record.not_carried),
        *(
            [f"dispensed by the pharmacy's employee {employee} (AnsattId, not an HPR number)"]
            if employee
            else []
        ),
    ]
    return (
        Effect(
            dispenses=(record,),
            prescription_versions=(
                () if outcome.prescription_version is None else (outcome.prescription_version,)
            ),
            response={
                "dispense_id": str(record.id),
                "prescription_id": str(prescription_id),
                "prescription_status": outcome.prescription.status.value,
            },
        ),
        "applied",
        reasons,
        None,
    )


def _m10_annulment(
    ctx: Context, message: Message, call: Call, prescription_id: UUID, annulled: str | None
) -> Decided:
    if not annulled:
        raise MessageNotMatched(
            "the M10 annuls (Annullering true) but names no AnnulleringsId (the MsgId of the "
            "M10 it annuls)",
            prescription_id=prescription_id,
        )
    dispense_id = m10_dispense_id(annulled)
    dispenses = ctx.state.dispenses_of(prescription_id)
    earlier = next((d for d in dispenses if d.id == dispense_id), None)
    if earlier is None:
        raise MessageNotMatched(
            f"the M10 annuls the dispense of M10 {annulled}, which is not recorded against "
            f"prescription {prescription_id}",
            prescription_id=prescription_id,
            annulled=annulled,
        )
    outcome = annul_dispense(
        earlier,
        ctx.state.prescriptions[prescription_id],
        dispenses,
        reason=f"annulled by M10 {message.msg_id}",
        at=call.at,
        by=call.actor,
    )
    assert outcome.dispense.annulment is not None
    return (
        Effect(
            annulments=((dispense_id, outcome.dispense.annulment),),
            prescription_versions=(
                () if outcome.prescription_version is None else (outcome.prescription_version,)
            ),
            response={"dispense_id": str(dispense_id), "prescription_id": str(prescription_id)},
        ),
        "applied",
        [f"dispense {dispense_id} (M10 {annulled}) annulled"],
        None,
    )


def _multidose_doctor(ctx: Context, message: Message, call: Call, patient_id: UUID) -> Decided:
    """M27.1 (status R, registration): the sender becomes the patient's multidose doctor from
    ``GjelderFra``, the pharmacy kept (a first registration without one is refused by the
    domain: it names both)."""
    status = _first_code(message, "Status")
    if status != "R":
        raise MessageNotMatched(
            f"only a registration (Status R) of the multidose doctor is imported, not {status!r}",
            status=status,
        )
    valid_from = _date(_first_text(message, "GjelderFra")) or call.day
    record = assign_responsibility(
        multidose_store.current_responsibility(ctx.conn, patient_id),
        patient_id,
        doctor=sender_actor(message.msg_info),
        pharmacy=None,
        valid_from=valid_from,
        valid_to=None,
        at=call.at,
        by=call.actor,
        reason=f"M27.1 {message.msg_id}",
    )
    return (
        Effect(
            writes=(lambda conn: multidose_store.append_responsibility(conn, record),),
            response={"responsibility_version": record.version},
        ),
        "applied",
        [f"multidose doctor {record.doctor.personnel.hpr_number} from {valid_from.isoformat()}"],
        None,
    )


def _first_code(message: Message, name: str) -> str | None:
    for kept in message.unmapped:
        for el in _kept(kept.xml).iter():
            if isinstance(el.tag, str) and c.local(el) == name:
                return el.get("V")
    return None


def _first_text(message: Message, name: str) -> str | None:
    for kept in message.unmapped:
        for el in _kept(kept.xml).iter():
            if isinstance(el.tag, str) and c.local(el) == name:
                return el.text
    return None


def _entry_id(given: str | None, msg_id: str, index: int) -> UUID:
    found = _uuid(given)
    return found if found is not None else uuid.uuid5(_NAMESPACE, f"{msg_id}/{index}")


# -- translation of one entry -------------------------------------------------------------------


_DISCONTINUATION = {r.value: r for r in DiscontinuationReason}


def incoming_entry(entry: c.LibEntry, catalogue: Catalogue, today: date) -> IncomingEntry:
    """One ``EnkeltoppforingLIB`` as an ``IncomingEntry`` (drug, dosage, dates, seponering)."""
    fs = entry.prescription.forskrivning if entry.prescription else None
    drug = _drug(fs.drug if fs else None, catalogue, fallback=_entry_text(entry))
    use, dosage, start, stop, check, notices = map_dosage(fs, today)
    start = _date(entry.start_date) or start
    if stop is not None and stop < start:
        stop = None
    discontinuation = None
    if entry.discontinued is not None:
        at = _moment(entry.discontinued.time) or _moment(entry.last_changed)
        discontinuation = Discontinuation(
            at=at or _midnight(today),
            reason=_DISCONTINUATION.get(
                (entry.discontinued.reason.v if entry.discontinued.reason else "") or "",
                DiscontinuationReason.OTHER,
            ),
            note=entry.discontinued.note,
        )
    if isinstance(drug, UnresolvedDrug):
        notices = [drug.notice, *notices]
    if check != "checked":
        notices = [*notices, f"entry {entry.id}: dose checks {check}"]
    doc = entry.prescription
    return IncomingEntry(
        packages=_number(doc.quantity) if doc else None,
        repeats=(doc.repeats or 0) if doc else 0,
        reserved_against_substitution=bool(
            doc and doc.substitution_reserved and doc.substitution_reserved.v == "1"
        ),
        reimbursed=bool(doc and doc.reimbursement_basis and doc.reimbursement_basis.v),
        prescription_issued=_date(entry.last_changed),
        message_entry_id=entry.id,
        prescription_id=_uuid(entry.prescription_id),
        drug=drug,
        use=use,
        dosage=dosage,
        indication=fs.use_area if fs else None,
        start=start,
        stop=stop,
        prescription_expires=_date(entry.prescription_expires),
        discontinuation=discontinuation,
        dose_check=check,
        notices=tuple(notices),
    )


def _entry_text(entry: c.LibEntry) -> str:
    return f"entry {entry.id}" if entry.id else "an entry without id"


def _drug(
    ref: c.DrugReference | None, catalogue: Catalogue, fallback: str = "the prescription"
) -> DrugReference:
    """The drug by varenr, then FEST id, in ``catalogue``; else an ``UnresolvedDrug``."""
    if ref is not None:
        for order in (
            DrugOrder(varenr=ref.varenr) if ref.varenr else None,
            DrugOrder(fest_id=ref.fest_id) if ref.fest_id else None,
        ):
            if order is None:
                continue
            try:
                return catalogue.resolve(order)
            except UnknownDrug:
                continue
    name = (ref.name_form_strength or ref.trade_name) if ref is not None else None
    name = name or (ref.atc.dn if ref is not None and ref.atc else None) or "unnamed drug"
    said = []
    if ref is not None:
        said = [
            f"{label} {value}"
            for label, value in (
                ("varenr", ref.varenr),
                ("FEST id", ref.fest_id),
                ("ATC", ref.atc.v if ref.atc else None),
            )
            if value
        ]
    where = f" ({', '.join(said)})" if said else ""
    return UnresolvedDrug(
        name=name,
        text=ref.kind if ref is not None else None,
        fest_id=ref.fest_id if ref is not None else None,
        varenr=ref.varenr if ref is not None else None,
        atc=ref.atc.v if ref is not None and ref.atc else None,
        prescription_group=(
            ref.prescription_group.v if ref is not None and ref.prescription_group else None
        ),
        catalogue_version=catalogue.version,
        notice=f"not checked: {name}{where} of {fallback} is not in FEST catalogue version "
        f"{catalogue.version}; decision support does not cover it",
    )


_USE = {"1": Use.REGULAR, "2": Use.COURSE, "3": Use.AS_NEEDED}
_TIME_UNITS = {
    "min": TimeUnit.MINUTE,
    "minutt": TimeUnit.MINUTE,
    "t": TimeUnit.HOUR,
    "h": TimeUnit.HOUR,
    "time": TimeUnit.HOUR,
    "døgn": TimeUnit.DAY,
    "d": TimeUnit.DAY,
    "dag": TimeUnit.DAY,
    "uke": TimeUnit.WEEK,
    "wk": TimeUnit.WEEK,
    "måned": TimeUnit.MONTH,
    "mnd": TimeUnit.MONTH,
}


class _NotFaithful(Exception):
    pass


def map_dosage(
    fs: c.Forskrivning | None, today: date
) -> tuple[Use, Dosage | None, date, date | None, str, list[str]]:
    """(use, dosage, start, stop, dose check, notices): the structured dosage where every part
    of ``Dosering`` maps faithfully; otherwise a dosage of the texts only (``DosVeiledEnkel``,
    ``Kortdose``) and the dose check "not checked: <why>"."""
    notices: list[str] = []
    if fs is None:
        return Use.REGULAR, None, today, None, "not checked: no prescription document", notices
    use = _USE.get((fs.use.v if fs.use else "") or "")
    if use is None:
        use = Use.AS_NEEDED if any(d.as_needed for d in fs.dosages) else Use.REGULAR
        notices.append(f"no Bruk given: taken as {use.value}")
    short = None
    if fs.short_dose is not None and fs.short_dose.v:
        short = ShortDose(code=fs.short_dose.v, text=fs.short_dose.ot or fs.short_dose.dn)
    text = fs.dosage_text
    start = today
    stop = None
    if len(fs.dosages) == 1:
        start = _date(fs.dosages[0].start) or today
        stop = _date(fs.dosages[0].end)
    try:
        fixed, as_needed = _structure(fs.dosages)
        dosage = Dosage(use=use, fixed=fixed, as_needed=as_needed, short_dose=short, text=text)
        if not fixed and not as_needed:
            check = "not checked: no structured dosage (Dosering) in the message"
            if short is None and not text:
                return use, None, start, stop, check, notices
        else:
            check = "checked"
        return use, dosage, start, stop, check, notices
    except (_NotFaithful, ValueError) as why:
        dosage = Dosage(use=use, short_dose=short, text=text)
        return use, dosage, start, stop, f"not checked: {why}", notices


def _structure(
    dosages: Sequence[c.Dosage],
) -> tuple[tuple[FixedDose, ...], tuple[AsNeededDose, ...]]:
    if len(dosages) > 1:
        raise _NotFaithful(f"{len(dosages)} dosage periods; the list keeps one structured dosage")
    if not dosages:
        return (), ()
    dosage = dosages[0]
    if dosage.unmapped:
        raise _NotFaithful(f"Dosering holds {dosage.unmapped[0].path.rsplit('/', 1)[-1]}")
    fixed = []
    for dose in dosage.fixed:
        if dose.unmapped:
            raise _NotFaithful(
                f"DoseFastTidspunkt holds {dose.unmapped[0].path.rsplit('/', 1)[-1]}"
            )
        interval = _period(dose.interval)
        if interval is not None and interval.unit is TimeUnit.DAY and interval.value == 1:
            interval = None
        fixed.append(
            FixedDose(
                amount=_quantity(dose.amount),
                time_of_day=_time_of_day(dose.time_of_day),
                clock_time=_clock(dose.clock_time),
                exact=bool(dose.exact),
                interval=interval,
            )
        )
    as_needed = []
    for dose in dosage.as_needed:
        if dose.unmapped or dose.interval is not None:
            raise _NotFaithful("DoseEtterBehov holds parts the structured dosage does not keep")
        as_needed.append(
            AsNeededDose(
                amount=_quantity(dose.amount),
                max_per_24h=_quantity(dose.max_per_day) if dose.max_per_day else None,
                max_per_period=_quantity(dose.max_per_period) if dose.max_per_period else None,
                period=_period(dose.period),
                min_interval=_period(dose.min_interval),
            )
        )
    return tuple(fixed), tuple(as_needed)


def _quantity(q: c.Quantity | None) -> Quantity:
    value = _number(q.v if q else None)
    if q is None or value is None or not q.u:
        raise _NotFaithful("a dose amount without a number and a unit")
    return Quantity(value=value, unit=q.u)


def _period(q: c.Quantity | None) -> Period | None:
    if q is None:
        return None
    value = _number(q.v)
    unit = _TIME_UNITS.get((q.u or "").strip().lower())
    if value is None or unit is None:
        raise _NotFaithful(f"the time unit {q.u!r} is not one the structured dosage knows")
    return Period(value=value, unit=unit)


def _time_of_day(code: c.Coded | None) -> TimeOfDay | None:
    if code is None or not code.v:
        return None
    if code.v not in {"1", "2", "3", "4", "5", "6"}:
        raise _NotFaithful(f"Tidsomrade {code.v!r} is not a time of day the dosage knows")
    return TimeOfDay.from_code(code.v)


def _clock(value: str | None) -> time | None:
    if not value:
        return None
    try:
        return time.fromisoformat(value.strip()[:8])
    except ValueError:
        raise _NotFaithful(f"Klokkeslett {value!r} is not a clock time") from None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip().replace(",", "."))
    except ValueError:
        return None
    # what the domain cannot hold (not finite, not positive, beyond MAX_PACKAGES) is not a number
    return number if math.isfinite(number) and 0 < number <= MAX_PACKAGES else None


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _moment(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        found = datetime.fromisoformat(value.strip())
    except ValueError:
        day = _date(value)
        return None if day is None else _midnight(day)
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# -- a prescriber's decision on a received list ---------------------------------------------------


def accept_list_proposal(
    engine: Engine,
    patient_id: UUID,
    msg_id: str,
    call: Call,
    *,
    entries: Sequence[str] | None = None,
    based_on: int,
):
    """Take in a received list's proposal, whole (``entries=None``: every new, changed and
    discontinued entry) or entry by entry (the message's entry ids): new entries are added
    (with their prescription, when its drug resolved), changed ones edited, discontinued ones
    discontinued with their prescriptions recalled, in one list change, checked by decision
    support like any change. The decision is stored; a proposal is decided once."""

    def decide(ctx: Context) -> Effect:
        state = ctx.state
        chosen = accepted_entries(
            find_received(ctx.conn, msg_id),
            find_decision(ctx.conn, patient_id, msg_id),
            state.medication_list.version,
            entries,
        )
        header = {"author": call.actor, "at": call.at, "reason": call.reason}
        commands: list[ListCommand] = []
        versions: list[PrescriptionVersion] = []
        new_ids: list[tuple[UUID, IncomingEntry]] = []
        for index, proposed in enumerate(chosen):
            incoming = proposed.incoming
            assert incoming is not None
            if proposed.kind == "new":
                entry_id = _entry_id(incoming.message_entry_id, msg_id, index)
                backed = (
                    (incoming.prescription_id,)
                    if incoming.prescription_id is not None
                    and isinstance(incoming.drug, CatalogueDrug)
                    and incoming.prescription_id not in state.prescriptions
                    else ()
                )
                commands.append(
                    AddEntry(
                        **header,
                        entry_id=entry_id,
                        drug=incoming.drug,
                        dosage=incoming.dosage,
                        use=incoming.use,
                        indication=incoming.indication,
                        start=incoming.start,
                        stop=incoming.stop,
                        prescriber=call.actor,
                        instituted_by=call.actor,
                        prescription_ids=backed,
                    )
                )
                if backed:
                    new_ids.append((entry_id, incoming))
            elif proposed.kind == "changed" and proposed.entry_id is not None:
                edit = {
                    name: getattr(incoming, name)
                    for name in ("drug", "dosage", "use", "indication", "start", "stop")
                    if name in proposed.changes
                }
                commands.append(
                    EditEntry(**header, entry_id=proposed.entry_id, edit=EntryEdit(**edit))
                )
            elif proposed.kind == "discontinued" and proposed.entry_id is not None:
                discontinuation = incoming.discontinuation
                assert discontinuation is not None
                commands.append(
                    DiscontinueEntry(
                        **header, entry_id=proposed.entry_id, discontinuation=discontinuation
                    )
                )
                versions += [
                    version
                    for _, version in discontinuation_recalls(
                        state.medication_list,
                        proposed.entry_id,
                        state.prescriptions_of(proposed.entry_id),
                        note=discontinuation.note,
                        at=call.at,
                        by=call.actor,
                    )
                ]
        decision = ListProposalDecision(
            msg_id=msg_id,
            patient_id=patient_id,
            accepted=tuple(p.incoming.message_entry_id or "" for p in chosen if p.incoming),
            based_on=state.medication_list.version,
            at=call.at,
            by=call.actor,
            reason=call.reason,
        )
        write = (lambda conn: append_decision(conn, decision),)
        if not commands:
            return Effect(response={"accepted": 0}, writes=write)
        new_list, change = apply_all(state.medication_list, commands)
        for entry_id, incoming in new_ids:
            request = PrescriptionRequest(
                id=incoming.prescription_id,
                issued=min(
                    incoming.prescription_issued or incoming.start,
                    incoming.prescription_expires or date.max,
                ),
                quantity=PrescribedQuantity(packages=incoming.packages or 1.0),
                repeats=incoming.repeats,
                reserved_against_substitution=incoming.reserved_against_substitution,
                reimbursed=incoming.reimbursed,
                expires=incoming.prescription_expires,
            )
            _, version = issue(
                new_list.entry(entry_id), patient_id, request, at=call.at, by=call.actor
            )
            versions.append(version)
        medications = tuple(medications_of(new_list))
        seen = {m.id for m in medications}
        focus = tuple(str(v.entry_id) for v in change.entry_versions if str(v.entry_id) in seen)
        return Effect(
            list_change=change,
            prescription_versions=tuple(versions),
            screening=Screening(medications, focus),
            response={"accepted": len(chosen), "msg_id": msg_id},
            writes=write,
        )

    return run_command(
        engine,
        "eresept-accept-proposal",
        patient_id,
        call,
        decide,
        based_on=based_on,
        request={"msg_id": msg_id, "entries": None if entries is None else list(entries)},
    )


# -- the outbox: an integrator marks an answer sent ------------------------------------------------


class OutboxSentResponse(Frozen):
    """What marking an outbox message sent answers (and a retry reads back)."""

    msg_id: str
    state: Literal["sent"]
    sent_at: AwareDatetime


def mark_outbox_sent(
    engine: Engine, patient_id: UUID, msg_id: str, call: Call
) -> Mapping[str, Any]:
    """An integrator of the organisation that sends message ``msg_id`` of the outbox (the
    multidose doctor's answer to an M25.2) marks it sent: its state goes from ``ready`` to
    ``sent``, once (``domain.messages.mark_sent``); audited, idempotent with the call's key.
    Not a change of the list: ``run_work`` on the patient."""

    def work(ctx: WorkContext) -> Done:
        found = outbox.find_message(ctx.conn, patient_id, msg_id)
        sent = mark_sent(found, msg_id, at=call.at, by=call.actor)
        outbox.append_sent(ctx.conn, sent)
        return Done(response={"msg_id": msg_id, "state": "sent", "sent_at": sent.at.isoformat()})

    return run_work(
        engine,
        "eresept-outbox-sent",
        work,
        call=call,
        patient_id=patient_id,
        request={"msg_id": msg_id},
        replayed_as=OutboxSentResponse,
    )
