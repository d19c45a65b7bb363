"""Helpers for the import/export tests: a database holding a catalogue and the examples'
patient, rows counted, and the official examples rewritten to name drugs of the demo
catalogue (the real 2017 extract holds none of the examples' drugs)."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import date

from sqlalchemy import func, select

from fest.loader import import_catalogue
from medloop.domain.patient import NationalId, Patient
from medloop.loop import multidose
from medloop.loop.messages import import_message
from medloop.loop.patients import register_patient
from medloop.store import messages as stored
from medloop.store.list_changes import list_change
from medloop.store.prescriptions import prescription_version
from tests.eresept.messages import B64, XSD, config, example
from tests.loop.helpers import GP, PHARMACIST, call
from tests.reference import DEMO, real_extract

PATIENT = "21014605158"  # the official examples' patient (OTTAR KNUTSEN)
OTHER = "01019000083"
# demo-catalogue packages for the four entries of the official M25.1 (levothyroxine for
# cetirizine, simvastatin, paracetamol, phenoxymethylpenicillin: the same kind of list)
DEMO_VARENRS = ("090606", "090470", "090011", "091048")


def register(engine, national_id: str = PATIENT, birth: date = date(1946, 1, 21)) -> uuid.UUID:
    patient = Patient(
        id=uuid.uuid4(),
        national_id=NationalId(national_id),
        given_name="Ottar",
        family_name="Knutsen",
        birth_date=birth,
    )
    register_patient(engine, patient, call())
    return patient.id


def real_world(engine) -> uuid.UUID:
    import_catalogue(engine, real_extract())
    return register(engine)


def demo_world(engine) -> uuid.UUID:
    import_catalogue(engine, DEMO)
    return register(engine)


def reader_config(**kwargs):
    return config(**kwargs)


def multidose_from_2019(engine, patient_id: uuid.UUID, doctor=GP) -> None:
    """``doctor`` (the GP) the patient's multidose doctor and PHARMACIST's pharmacy the
    multidose pharmacy from 2019-01-01, before the official examples' dates."""
    multidose.set_responsibility(
        engine,
        patient_id,
        multidose.ResponsibilityOrder(
            doctor=doctor, pharmacy=PHARMACIST.organisation, valid_from=date(2019, 1, 1)
        ),
        call(),
    )


def multidose_world(engine) -> uuid.UUID:
    """The demo catalogue, the examples' patient, the official M25.1 (demo drugs) applied as
    the patient's list and ``multidose_from_2019``: ready to receive the pharmacy's M25.2."""
    patient_id = demo_world(engine)
    applied = import_message(
        engine, with_demo_drugs(example("M25.1")), source="m25.1", config=reader_config()
    )
    assert applied.result == "applied"
    multidose_from_2019(engine, patient_id)
    return patient_id


def counts(engine) -> tuple[int, int, int]:
    """Rows of received messages, list changes and prescription versions."""
    with engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (stored.received_message, list_change, prescription_version)
        )


_VARENR = re.compile(rb"<Varenr>[0-9]+</Varenr>")


def with_demo_drugs(data: bytes, varenrs=DEMO_VARENRS) -> bytes:
    """The message with the ``i``-th embedded M1 naming demo package ``varenrs[i]``."""
    pieces, last, index = [], 0, 0
    for match in B64.finditer(data):
        decoded = base64.b64decode(match.group(1))
        decoded = _VARENR.sub(b"<Varenr>" + varenrs[index].encode() + b"</Varenr>", decoded)
        pieces += [data[last : match.start(1)], base64.b64encode(decoded)]
        last = match.end(1)
        index += 1
    return b"".join(pieces) + data[last:]


def with_msg_id(data: bytes, msg_id: str) -> bytes:
    return re.sub(rb"<MsgId>[^<]*</MsgId>", f"<MsgId>{msg_id}</MsgId>".encode(), data, count=1)


# The official M25.2's envelope: sent through Reseptformidleren, in a conversation of its own.
M25_2_MSG_ID = "1de3859b-b79b-4725-8169-02ca9bd92f06"
M25_2_CONVERSATION = "438308f4-dc36-467d-b00b-16811710205d"
M25_2_QUESTION_ENTRY = uuid.UUID("c4044d55-2279-422b-9975-164661c52a8c")  # Cetimax, "fornyes?"
PHARMACY_HER_ID = "8090688"  # tests.loop.helpers.PHARMACIST's organisation


def m25_2_from_pharmacy(
    new_entry: uuid.UUID | None = None, new_prescription: uuid.UUID | None = None
) -> bytes:
    """The official M25.2 (demo drugs) as the multidose pharmacy sends it itself (its sender
    the pharmacy, HER-id ``PHARMACY_HER_ID``, not Reseptformidleren); with ``new_entry`` its
    second entry is new to the list (ids replaced, its prescription valid in 2027), so it
    proposes a new entry beside the question."""
    data = with_demo_drugs(example("M25.2"))
    data = data.replace(
        b"<OrganisationName>Reseptformidleren</OrganisationName>",
        b"<OrganisationName>Apotek 1 Ski</OrganisationName>",
        1,
    )
    data = data.replace(b"<Id>915933149</Id>", b"<Id>984997481</Id>", 1)
    data = data.replace(b"<Id>80624</Id>", f"<Id>{PHARMACY_HER_ID}</Id>".encode(), 1)
    if new_entry is not None:
        data = data.replace(b"b08e4a01-fe66-41eb-8f07-16810c2e3eb3", str(new_entry).encode())
        data = data.replace(
            b"252bc3f1-af62-4a37-9810-16810c33e84f", str(new_prescription or uuid.uuid4()).encode()
        )
        at = data.index(str(new_entry).encode())
        data = data[:at] + data[at:].replace(b"2020-07-16+02:00", b"2027-07-16+02:00", 1)
    return data


__all__ = ["XSD"]
