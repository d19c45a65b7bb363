"""E-prescription messages over HTTP: receive (application/xml) → receipt; a list as M25.1 and
a prescription as M1, under the policy; refusals as problem documents, nothing stored."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date

from medloop import queries
from medloop.eresept import read_message
from medloop.loop import multidose
from tests.api.helpers import (
    GP_TOKEN,
    NURSE_TOKEN,
    PHARMACIST_TOKEN,
    Token,
    auth,
    prescribe_body,
)
from tests.eresept.importing import (
    M25_2_MSG_ID,
    OTHER,
    PHARMACY_HER_ID,
    counts,
    m25_2_from_pharmacy,
    multidose_from_2019,
    reader_config,
    register,
    with_demo_drugs,
)
from tests.eresept.messages import example, needs_shared
from tests.loop.helpers import GP, SIMVASTATIN_NORDKYST, call

pytestmark = needs_shared

RECALLED = "f63b9535-5160-4972-b923-168114660619"


def _receive(world, data: bytes, token: str = GP_TOKEN):
    return world.client.post(
        "/eresept/messages",
        content=data,
        headers=auth(token, **{"Content-Type": "application/xml"}),
    )


def test_a_list_received_over_http_is_applied_and_answered_with_its_receipt(world):
    answer = _receive(world, with_demo_drugs(example("M25.1")))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["type"], body["patient"], body["result"], body["entries"]) == (
        "ERM251",
        "21014605158",
        "applied",
        4,
    )
    assert body["message_id"] == "36638174-088b-498c-9908-168116c13f53"
    again = _receive(world, with_demo_drugs(example("M25.1")))
    assert again.status_code == 200 and again.json()["result"] == "duplicate"


def test_the_list_and_a_prescription_come_back_as_schema_valid_messages_from_the_caller(world):
    _receive(world, with_demo_drugs(example("M25.1")))
    listed = world.get(f"/patients/{world.patient_id}/list/m25.1")
    assert listed.status_code == 200 and listed.headers["content-type"].startswith(
        "application/xml"
    )
    message = read_message(listed.content, source="m25.1", config=reader_config())
    assert message.type == "ERM251"
    assert message.msg_info.sender.healthcare_professional.hpr == GP.personnel.hpr_number
    (lib,) = message.lists
    # the entry discontinued in 2019 is past the current list's 90 days
    assert len(lib.entries) == 3
    assert all(d.validation == "valid" for d in message.documents)
    m1 = world.get(f"/patients/{world.patient_id}/prescriptions/{RECALLED}/m1")
    assert m1.status_code == 200, m1.text
    prescription = read_message(m1.content, source="m1", config=reader_config())
    assert prescription.type == "ERM1" and prescription.msg_id == RECALLED


def test_a_malformed_message_is_a_problem_with_its_line_and_nothing_is_stored(world):
    before = counts(world.engine)
    data = example("M25.1")
    answer = _receive(world, data[: len(data) // 2])
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["code"] == "message-unreadable"
    assert body["problems"][0]["line"] is not None
    assert counts(world.engine) == before


def test_a_caller_the_policy_refuses_gets_403_and_nothing_is_stored(world):
    before = counts(world.engine)
    answer = _receive(world, with_demo_drugs(example("M25.1")), token=NURSE_TOKEN)
    assert answer.status_code == 403
    assert counts(world.engine) == before


def test_an_unknown_prescription_as_m1_is_404(world):
    answer = world.get(f"/patients/{world.patient_id}/prescriptions/{uuid.uuid4()}/m1")
    assert answer.status_code == 404


def test_a_received_list_proposal_is_taken_in_over_http_with_if_match(world):
    prescribed = world.write(
        f"/patients/{world.patient_id}/prescriptions", prescribe_body(SIMVASTATIN_NORDKYST)
    )
    assert prescribed.status_code == 201, prescribed.text
    received = _receive(world, with_demo_drugs(example("M25.1"))).json()
    assert received["result"] == "proposed"
    kinds = sorted(e["kind"] for e in received["proposal"])
    assert kinds.count("new") == 3 and kinds.count("absent") == 1
    path = f"/patients/{world.patient_id}/eresept/proposals/{received['message_id']}/accept"
    without = world.post(path, {"entries": None})
    assert without.status_code == 428
    accepted = world.write(path, {"entries": None, "reason": "samstemt med fastlegen"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["accepted"] == 3
    again = world.write(path, {"entries": None})
    assert again.status_code == 409 and again.json()["code"] == "list-proposal-already-decided"


def test_an_m25_2_is_a_multidose_pharmacy_write_not_a_prescriber_one(world):
    _receive(world, with_demo_drugs(example("M25.1")))
    before = counts(world.engine)
    as_gp = _receive(world, with_demo_drugs(example("M25.2")))
    assert as_gp.status_code == 403
    # a pharmacist of a pharmacy that is not the patient's multidose pharmacy: the policy
    not_yet = _receive(world, with_demo_drugs(example("M25.2")), token=PHARMACIST_TOKEN)
    assert not_yet.status_code == 403
    assert counts(world.engine) == before
    multidose_from_2019(world.engine, world.patient_id)
    proposed = _receive(world, with_demo_drugs(example("M25.2")), token=PHARMACIST_TOKEN)
    assert proposed.status_code == 200, proposed.text
    assert (proposed.json()["type"], proposed.json()["result"]) == ("ERM252", "proposed")


def test_a_received_message_can_be_shown_byte_for_byte_and_only_for_its_patient(world):
    data = with_demo_drugs(example("M25.1"))
    receipt = _receive(world, data).json()
    shown = world.get(f"/patients/{world.patient_id}/eresept/messages/{receipt['message_id']}")
    assert shown.status_code == 200 and shown.content == data
    assert shown.headers["content-type"].startswith("application/xml")
    missing = world.get(f"/patients/{world.patient_id}/eresept/messages/no-such-message")
    assert missing.status_code == 404
    other = register(world.engine, OTHER, birth=date(1990, 1, 1))
    elsewhere = world.get(f"/patients/{other}/eresept/messages/{receipt['message_id']}")
    assert elsewhere.status_code == 404


def test_an_m10_is_a_dispensing_write_of_a_pharmacist_and_records_the_dispense(world):
    from tests.eresept.dispensing import FIRST, m10

    _receive(world, with_demo_drugs(example("M25.1")))
    before = counts(world.engine)
    as_gp = _receive(world, m10())
    assert as_gp.status_code == 403
    assert counts(world.engine) == before
    answer = _receive(world, m10(), token=PHARMACIST_TOKEN)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["type"], answer.json()["result"]) == ("ERM10", "applied")
    with world.engine.connect() as conn:
        (recorded,) = queries.patient_state(conn, world.patient_id).dispenses_of(FIRST)
    assert recorded.reported_in == "M10" and recorded.expiry is None
    unmatched = _receive(world, m10(uuid.uuid4()), token=PHARMACIST_TOKEN)
    assert unmatched.status_code == 422
    assert unmatched.json()["type"].endswith("message-not-matched")


OTHER_PRACTICE_GP = Token("gp", "7777777", "8099999", name="Ola Lege", organisation_name="Annet")


def test_the_doctors_answer_to_an_m25_2_is_read_and_marked_sent_by_the_doctors_organisation(
    world,
):
    _receive(world, with_demo_drugs(example("M25.1")))
    multidose_from_2019(world.engine, world.patient_id)
    proposed = _receive(world, m25_2_from_pharmacy(), token=PHARMACIST_TOKEN)
    assert proposed.status_code == 200, proposed.text
    with world.engine.connect() as conn:
        (question,) = multidose.pending_proposals(conn, world.patient_id)
    multidose.reject_proposal(
        world.engine, world.patient_id, question.id, call(GP, reason="ikke nå")
    )
    outbox = f"/patients/{world.patient_id}/eresept/outbox"

    listed = world.get(outbox)
    assert listed.status_code == 200, listed.text
    (message,) = listed.json()["messages"]
    assert (message["state"], message["decision"], message["in_reply_to"]) == (
        "ready",
        "rejected",
        M25_2_MSG_ID,
    )
    assert message["receiver"]["her_id"] == PHARMACY_HER_ID
    shown = world.get(f"{outbox}/{message['msg_id']}")
    assert shown.status_code == 200 and shown.headers["content-type"].startswith("application/xml")
    assert hashlib.sha256(shown.content).hexdigest() == message["sha256"]

    assert world.get(outbox, token=OTHER_PRACTICE_GP).json()["messages"] == []
    assert world.get(f"{outbox}/{message['msg_id']}", token=OTHER_PRACTICE_GP).status_code == 404
    elsewhere = world.post(f"{outbox}/{message['msg_id']}/sent", {}, token=OTHER_PRACTICE_GP)
    assert elsewhere.status_code == 404
    assert elsewhere.json()["code"] == "outbox-message-not-found"
    assert world.get(outbox, token=NURSE_TOKEN).status_code == 403

    sent = world.post(f"{outbox}/{message['msg_id']}/sent", {})
    assert sent.status_code == 200, sent.text
    assert sent.json()["state"] == "sent"
    again = world.post(f"{outbox}/{message['msg_id']}/sent", {})
    assert again.status_code == 409 and again.json()["code"] == "outbox-message-already-sent"
    (marked,) = world.get(outbox).json()["messages"]
    assert marked["state"] == "sent" and marked["sent_at"] is not None
