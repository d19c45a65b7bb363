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
from medloop.loop.patients import register_patient
from medloop.store import messages as stored
from medloop.store.list_changes import list_change
from medloop.store.prescriptions import prescription_version
from tests.eresept.messages import B64, XSD, config
from tests.loop.helpers import call
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


__all__ = ["XSD"]
