"""National e-prescription messages over HTTP: receive one (``application/xml``) and answer
with its receipt; a patient's list as an M25.1 and a prescription as an M1, for authorised
callers. Under the same policy and audit as the rest of the API: receiving is a write to the
list (``list.write``; an M25.2 from a multidose pharmacy ``multidose.write``) by the
authenticated caller, the exports are audited reads
(``list.read``) whose sender is the caller. The outbox (the multidose doctor's answers to
M25.2 proposals, as M25.1s) is read (``list.read``) and marked sent (``list.write``) by the
organisation that sends it, the deciding doctor's; another organisation sees none of it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Path, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from interactions.values import MAX_REASON, MODEL_CONFIG, text
from medloop import queries
from medloop.api.deps import Caller, CallerDep, IdempotencyKey, IfMatch, command_answer, render
from medloop.api.policy import Action
from medloop.api.problems import NotFound, responses
from medloop.api.responses import JSONResponse
from medloop.api.routing import BlockingRoute
from medloop.api.schemas import CommandResponse, Reason
from medloop.domain.messages import OutboxMessage
from medloop.eresept import ReaderConfig
from medloop.loop.messages import accept_list_proposal, import_message, mark_outbox_sent

router = APIRouter(tags=["e-prescription messages"], route_class=BlockingRoute)
XML = "application/xml"
MsgId = Annotated[str, Path(min_length=1, max_length=200)]
"""A message's MsgId in a path: what the message said it was, stored as at most 200 characters."""
PHARMACY_TYPES = frozenset({"ERM252", "ERM253"})
"""Messages a multidose pharmacy sends (``multidose.write``); the others write the list."""
DISPENSING_TYPES = frozenset({"ERM10"})
"""Messages a dispensing pharmacy sends (``dispensing.write``)."""


def _action(type_code: str) -> Action:
    if type_code in DISPENSING_TYPES:
        return Action.DISPENSE
    return Action.MULTIDOSE_WRITE if type_code in PHARMACY_TYPES else Action.LIST_WRITE


class ProposedEntryView(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["new", "changed", "discontinued", "unchanged", "absent"]
    entry_id: UUID | None = None
    message_entry_id: str | None = None
    prescription_id: UUID | None = None
    drug: str | None = None
    dose_check: str | None = None
    changes: list[str] = []


class MessageReceipt(BaseModel):
    """What a received message got. ``result``: ``applied`` (the list changed), ``proposed``
    (an M25.1 waiting for a prescriber, with ``proposal``), ``duplicate`` (this MsgId was
    received before with the same bytes: no second effect); a refusal is a problem document."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    type: str
    patient: str | None
    result: Literal["applied", "proposed", "duplicate"]
    entries: int
    reasons: list[str]
    list_version: int | None = None
    proposal: list[ProposedEntryView] | None = None


@router.post(
    "/eresept/messages",
    response_model=MessageReceipt,
    responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
    operation_id="receiveMessage",
    summary="Receive an e-prescription message (M25.1, M1, M5, M10, …) and answer its receipt",
)
def receive_message(
    caller: CallerDep,
    message: Annotated[
        bytes,
        Body(
            media_type=XML,
            description="One MsgHead message, as the national prescription intermediary "
            "would carry it",
        ),
    ],
) -> JSONResponse:
    receipt = import_message(
        caller.engine,
        message,
        source="request body",
        config=ReaderConfig.from_env(),
        call=caller.call(),
        authorize=lambda patient_id, type_code: caller.authorize(_action(type_code), patient_id),
    )
    body = MessageReceipt(
        **receipt.as_contract(),
        list_version=receipt.list_version,
        proposal=None
        if receipt.proposal is None
        else [
            ProposedEntryView(
                kind=e.kind,
                entry_id=e.entry_id,
                message_entry_id=e.incoming.message_entry_id if e.incoming else None,
                prescription_id=e.incoming.prescription_id if e.incoming else None,
                drug=e.incoming.drug.name if e.incoming else None,
                dose_check=e.incoming.dose_check if e.incoming else None,
                changes=list(e.changes),
            )
            for e in receipt.proposal.entries
        ],
    )
    return JSONResponse(body.model_dump(mode="json"))


_XML_READ = {
    200: {"content": {XML: {"schema": {"type": "string"}}}},
    **responses(401, 403, 404, 422, 503),
}
"""What an audited read answering with a message's XML bytes documents."""


@router.get(
    "/patients/{patient_id}/list/m25.1",
    response_class=Response,
    responses=_XML_READ,
    operation_id="readListMessage",
    summary="The patient's current list as an M25.1 message from the caller",
)
def list_as_m251(caller: CallerDep, patient_id: UUID) -> Response:
    caller.authorize(Action.LIST_READ, patient_id)
    actor = caller.principal.actor
    msg_id = str(uuid.uuid4())
    data = caller.read(
        patient_id,
        "eresept-m251",
        lambda conn: queries.list_as_m25_1(conn, patient_id, actor, msg_id=msg_id, at=caller.at),
    )
    return Response(data, media_type=XML)


@router.get(
    "/patients/{patient_id}/prescriptions/{prescription_id}/m1",
    response_class=Response,
    responses=_XML_READ,
    operation_id="readPrescriptionMessage",
    summary="One prescription as an M1 message from the caller",
)
def prescription_as_m1(caller: CallerDep, patient_id: UUID, prescription_id: UUID) -> Response:
    caller.authorize(Action.LIST_READ, patient_id)
    actor = caller.principal.actor
    data = caller.read(
        patient_id,
        "eresept-m1",
        lambda conn: queries.prescription_as_m1(
            conn, patient_id, prescription_id, actor, at=caller.at
        ),
    )
    return Response(data, media_type=XML)


class AcceptProposal(BaseModel):
    """Which entries of a received list to take in: the message's entry ids, or none given
    (``null``) for every new, changed and discontinued entry of the proposal."""

    model_config = MODEL_CONFIG

    entries: list[Annotated[str, text(200, 1)]] | None = Field(default=None, max_length=500)
    reason: Annotated[str, text(MAX_REASON)] | None = Reason


@router.post(
    "/patients/{patient_id}/eresept/proposals/{msg_id}/accept",
    response_model=CommandResponse,
    responses={**responses(400, 401, 403, 404, 409, 412, 422, 428, 503), **command_answer()},
    operation_id="acceptListProposal",
    summary="Take in a received list's proposal, whole or entry by entry (If-Match)",
)
def accept_proposal(
    caller: CallerDep,
    patient_id: UUID,
    msg_id: MsgId,
    body: AcceptProposal,
    based_on: IfMatch,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    result = accept_list_proposal(
        caller.engine,
        patient_id,
        msg_id,
        caller.call(reason=body.reason, idempotency_key=key),
        entries=body.entries,
        based_on=based_on,
    )
    return render(result)


@router.get(
    "/patients/{patient_id}/eresept/messages/{msg_id}",
    response_class=Response,
    responses=_XML_READ,
    operation_id="readReceivedMessage",
    summary="A message received for the patient, byte for byte as it came",
)
def received_message(
    caller: CallerDep,
    patient_id: UUID,
    msg_id: MsgId,
) -> Response:
    return _message_bytes(
        caller,
        patient_id,
        "eresept-received",
        lambda conn: queries.received_message(conn, patient_id, msg_id),
    )


def _message_bytes(
    caller: Caller, patient_id: UUID, label: str, read: Callable[[Connection], bytes]
) -> Response:
    """A stored message's bytes as XML, for a caller who may read the patient's list; a
    message ``read`` does not find (``MessageNotFound``) answers 404."""
    caller.authorize(Action.LIST_READ, patient_id)
    try:
        data = caller.read(patient_id, label, read)
    except queries.MessageNotFound as missing:
        raise NotFound(str(missing)) from None
    return Response(data, media_type=XML)


# -- the outbox: the multidose doctor's answers to M25.2 proposals ---------------------------------


class OutboxReceiver(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str | None = None
    her_id: str | None = None
    org_number: str | None = None


class OutboxMessageView(BaseModel):
    """A message to send: the M25.1 answering a proposal of an M25.2 (``in_reply_to``; its
    ``conversation``) to the M25.2's sender (``receiver``), with the decision, the list version
    it shows, the SHA-256 and size of its bytes (``GET …/outbox/{msg_id}``) and its ``state``:
    ``ready`` until an integrator marks it ``sent``."""

    model_config = ConfigDict(frozen=True)

    msg_id: str
    type: str
    state: Literal["ready", "sent"]
    created_at: datetime
    sent_at: datetime | None = None
    sha256: str
    size: int
    proposal_id: UUID
    kind: str
    decision: Literal["accepted", "rejected"]
    reason: str | None = None
    list_version: int
    in_reply_to: str
    conversation: str
    receiver: OutboxReceiver


class OutboxList(BaseModel):
    model_config = ConfigDict(frozen=True)

    messages: list[OutboxMessageView]


def _outbox_view(message: OutboxMessage) -> OutboxMessageView:
    answer = message.answer
    origin = answer.origin
    return OutboxMessageView(
        msg_id=message.msg_id,
        type=message.type,
        state=message.state,
        created_at=message.created_at,
        sent_at=None if message.sent is None else message.sent.at,
        sha256=message.sha256,
        size=message.size,
        proposal_id=answer.proposal_id,
        kind=answer.kind.value,
        decision="accepted" if answer.accepted else "rejected",
        reason=answer.reason,
        list_version=answer.list_version,
        in_reply_to=origin.msg_id,
        conversation=origin.conversation,
        receiver=OutboxReceiver(**origin.sender.model_dump()),
    )


@router.get(
    "/patients/{patient_id}/eresept/outbox",
    response_model=OutboxList,
    responses=responses(401, 403, 404, 422, 503),
    operation_id="readOutbox",
    summary="The messages the caller's organisation is to send for the patient (answers to "
    "M25.2 proposals), ready or sent",
)
def read_outbox(caller: CallerDep, patient_id: UUID) -> JSONResponse:
    caller.authorize(Action.LIST_READ, patient_id)
    organisation = caller.principal.actor.organisation.id
    found = caller.read(
        patient_id, "eresept-outbox", lambda conn: queries.outbox(conn, patient_id, organisation)
    )
    body = OutboxList(messages=[_outbox_view(m) for m in found])
    return JSONResponse(body.model_dump(mode="json"))


@router.get(
    "/patients/{patient_id}/eresept/outbox/{msg_id}",
    response_class=Response,
    responses=_XML_READ,
    operation_id="readOutboxMessage",
    summary="One message to send, byte for byte as stored (its SHA-256 is the listed one)",
)
def read_outbox_message(
    caller: CallerDep,
    patient_id: UUID,
    msg_id: MsgId,
) -> Response:
    return _message_bytes(
        caller,
        patient_id,
        "eresept-outbox-message",
        lambda conn: queries.outbox_message(
            conn, patient_id, msg_id, caller.principal.actor.organisation.id
        ),
    )


class OutboxSent(BaseModel):
    model_config = ConfigDict(frozen=True)

    msg_id: str
    state: Literal["sent"]
    sent_at: datetime


@router.post(
    "/patients/{patient_id}/eresept/outbox/{msg_id}/sent",
    response_model=OutboxSent,
    responses=responses(400, 401, 403, 404, 409, 422, 503),
    operation_id="markOutboxSent",
    summary="Mark a message of the outbox sent (an integrator of the sending organisation; "
    "once; Idempotency-Key)",
)
def mark_outbox_message_sent(
    caller: CallerDep,
    patient_id: UUID,
    msg_id: MsgId,
    key: IdempotencyKey,
) -> JSONResponse:
    caller.authorize(Action.LIST_WRITE, patient_id)
    result = mark_outbox_sent(caller.engine, patient_id, msg_id, caller.call(idempotency_key=key))
    return JSONResponse(OutboxSent.model_validate(dict(result)).model_dump(mode="json"))
