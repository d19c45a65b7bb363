"""The import's speed-ups change no result: the official examples and a generated 20-entry M25.1
(the benchmark's message: 20 embedded M1s, prescriptions issued, decision support) imported in
a fixed sequence store exactly what the code before the speed-ups stored — every list change
and entry version, prescription and version, alert, received message (its record and the
SHA-256 of its original), audit record — and answer with the same receipts. The expectation
(``data/import_unchanged.json``) was recorded by the unchanged import (issue #17, h5-impspeed);
SQLite and PostgreSQL both meet it.

After a deliberate change to what an import stores, record it again and review the diff:
``.venv/bin/python -m tests.eresept.test_import_unchanged --record``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fest.loader import import_catalogue
from fest.schema import metadata
from interactions.dosage import Dosage, FixedDose, Quantity, TimeOfDay, Use
from medloop.domain.entry import ListEntry
from medloop.domain.patient import NationalId, Patient
from medloop.domain.prescription import PrescribedQuantity, PrescriptionRequest, issue
from medloop.eresept_export import m25_1
from medloop.loop import messages as loop_messages
from medloop.loop.catalogue import DrugOrder, catalogue_in_force
from medloop.loop.messages import Receipt, import_message
from medloop.loop.patients import register_patient
from medloop.store import audit
from medloop.store.attestation import COMMAND_COLUMN, DETAIL_KEY
from tests.eresept.importing import OTHER, PATIENT, reader_config, with_demo_drugs, with_msg_id
from tests.eresept.messages import example, needs_shared
from tests.loop.helpers import GP, NOW, call
from tests.reference import DEMO

pytestmark = needs_shared

DATA = Path(__file__).resolve().parent / "data"
EXPECTED = DATA / "import_unchanged.json"
TWENTY = DATA / "m25_1-20-entries.xml"

_IDS = uuid.UUID("0b6f3c1e-5d0a-4f7e-9a51-7c2d1e6b8a40")
FIRST_PATIENT = uuid.uuid5(_IDS, "patient/official")
SECOND_PATIENT = uuid.uuid5(_IDS, "patient/generated")

# demo-catalogue packages that together raise no alert needing an override (the benchmark's
# greedy choice, bench/eresept.py ``choose_drugs``)
TWENTY_VARENRS = (
    "090011",
    "090028",
    "090045",
    "090062",
    "090079",
    "090096",
    "090113",
    "090130",
    "090147",
    "090164",
    "090181",
    "090198",
    "090215",
    "090249",
    "090266",
    "090283",
    "090300",
    "090317",
    "090334",
    "090351",
)


def _patient(patient_id: uuid.UUID, national_id: str, family_name: str) -> Patient:
    nid = NationalId(national_id)
    return Patient(
        id=patient_id,
        national_id=nid,
        given_name="Ottar",
        family_name=family_name,
        birth_date=nid.birth_date,
    )


def twenty_entry_list(engine) -> bytes:
    """The generated message as the benchmark builds it (``TWENTY_VARENRS``, one tablet each
    morning, a prescription each), with fixed ids, for the second patient, from ``GP``."""
    with engine.connect() as conn:
        catalogue = catalogue_in_force(conn)
    patient = _patient(SECOND_PATIENT, OTHER, "Generert")
    entries, prescriptions = [], {}
    for index, varenr in enumerate(TWENTY_VARENRS):
        entry = ListEntry(
            id=uuid.uuid5(_IDS, f"entry/{index}"),
            version=1,
            drug=catalogue.resolve(DrugOrder(varenr=varenr)),
            use=Use.REGULAR,
            dosage=Dosage(
                use=Use.REGULAR,
                fixed=(
                    FixedDose(
                        amount=Quantity(value=1, unit="tablett"), time_of_day=TimeOfDay.MORNING
                    ),
                ),
                text="1 tablett om morgenen",
            ),
            start=date(2026, 11, 1),
            prescriber=GP,
            changed_at=NOW,
        )
        prescription, _ = issue(
            entry,
            patient.id,
            PrescriptionRequest(
                id=uuid.uuid5(_IDS, f"prescription/{index}"),
                issued=date(2026, 11, 1),
                quantity=PrescribedQuantity(packages=1),
            ),
            at=NOW,
            by=GP,
        )
        prescriptions[prescription.id] = prescription
        entries.append(entry.model_copy(update={"prescription_ids": (prescription.id,)}))
    msg_id = str(uuid.uuid5(_IDS, "message/twenty"))
    return m25_1(patient, entries, prescriptions, sender=GP, msg_id=msg_id, at=NOW)


def _sequence() -> list[tuple[str, bytes]]:
    """The messages, in the order imported: an applied list (its prescriptions issued), a
    recall of one of them, an M1 (kept unresolved), a list that becomes a proposal, the same
    list again (a duplicate); then the generated 20-entry list for the second patient, and it
    again from another MsgId (a proposal compared with the 20 entries)."""
    twenty = TWENTY.read_bytes()
    return [
        ("official M25.1 with demo drugs", with_demo_drugs(example("M25.1"))),
        ("official M5", example("M5")),
        ("official M1", example("M1")),
        (
            "official M25.1 on a list with entries",
            with_msg_id(example("M25.1"), "5d0b5b52-8a43-4c65-a1c3-3c0f0e3a1111"),
        ),
        (
            "the same again",
            with_msg_id(example("M25.1"), "5d0b5b52-8a43-4c65-a1c3-3c0f0e3a1111"),
        ),
        ("generated 20-entry M25.1", twenty),
        (
            "generated 20-entry M25.1, another MsgId",
            with_msg_id(twenty, str(uuid.uuid5(_IDS, "message/twenty/again"))),
        ),
    ]


def _receipt(receipt: Receipt) -> dict[str, Any]:
    return {
        **receipt.as_contract(),
        "list_version": receipt.list_version,
        "proposal": None
        if receipt.proposal is None
        else _digest(receipt.proposal.model_dump(mode="json")),
        "alerts": [_digest(a) for a in receipt.alerts],
    }


def _digest(value: Any) -> str:
    """A JSON value (a stored record) as the SHA-256 of its canonical JSON: any difference in it
    shows, in the row and column it is in, without keeping every record here whole."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return _digest(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _rows(conn, patient_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every row of the patients' data, table by table in primary-key order, without the
    command ids (random per command) and autoincrement ids; the original bytes of a received
    message and each JSON record as their SHA-256."""
    found: dict[str, list[dict[str, Any]]] = {}
    for table in metadata.sorted_tables:
        if "patient_id" not in table.c or table.name in ("audit_event", "idempotency_key"):
            continue
        order = list(table.primary_key.columns)
        rows = conn.execute(
            select(table).where(table.c.patient_id.in_(patient_ids)).order_by(*order)
        ).all()
        if not rows:
            continue
        kept = []
        for row in rows:
            values = {}
            for column in table.columns:
                if column.name == COMMAND_COLUMN or (
                    column.primary_key and column.autoincrement is True
                ):
                    continue
                value = getattr(row, column.name)
                if table.name == "received_message" and column.name == "original":
                    value = hashlib.sha256(base64.b64decode(value)).hexdigest()
                values[column.name] = _value(value)
            kept.append(values)
        found[table.name] = kept
    return found


def _audit(conn, national_ids: list[str]) -> list[dict[str, Any]]:
    """The patients' audit records, in order, without when they were written, their hashes
    and the command's claim (digests over rows with random command ids)."""
    table = audit.audit_event
    kept = []
    for row in conn.execute(
        select(table).where(table.c.chain.in_(national_ids)).order_by(table.c.chain, table.c.seq)
    ):
        kept.append(
            {
                "chain": row.chain,
                "seq": row.seq,
                "actor": row.actor,
                "actor_role": row.actor_role,
                "organisation": row.organisation,
                "patient": row.patient,
                "patient_id": row.patient_id,
                "action": row.action,
                "outcome": row.outcome,
                "reason": row.reason,
                "detail": {k: v for k, v in row.detail.items() if k != DETAIL_KEY},
            }
        )
    return kept


def imported(engine) -> dict[str, Any]:
    """Import the sequence into ``engine`` (migrated, empty) and return what was stored."""
    import_catalogue(engine, DEMO)
    for patient in (
        _patient(FIRST_PATIENT, PATIENT, "Knutsen"),
        _patient(SECOND_PATIENT, OTHER, "Generert"),
    ):
        register_patient(engine, patient, call())
    receipts = {}
    for name, data in _sequence():
        receipt = import_message(engine, data, source="msg.xml", config=reader_config())
        receipts[name] = _receipt(receipt)
    with engine.connect() as conn:
        rows = _rows(conn, [str(FIRST_PATIENT), str(SECOND_PATIENT)])
        audited = _audit(conn, [PATIENT, OTHER])
    return {"receipts": receipts, "rows": rows, "audit": audited}


@pytest.fixture
def at_fixed_now(monkeypatch):
    """A message's import happens at ``NOW`` (its sender's call is stamped with the clock)."""
    monkeypatch.setattr(loop_messages, "_now", lambda: NOW)


def test_every_import_stores_and_answers_exactly_what_the_unchanged_import_did(
    engine, at_fixed_now
):
    found = json.loads(json.dumps(imported(engine), sort_keys=True))
    expected = json.loads(EXPECTED.read_text())
    assert found["receipts"] == expected["receipts"]
    assert sorted(found["rows"]) == sorted(expected["rows"])
    for table, rows in expected["rows"].items():
        assert len(found["rows"][table]) == len(rows), table
        for index, row in enumerate(rows):
            assert found["rows"][table][index] == row, f"{table} row {index}"
    assert found["audit"] == expected["audit"]


def _record() -> None:
    """Write the expectation (and, when missing, the generated message) from this tree's
    import, on a fresh SQLite database."""
    import tempfile

    from medloop.store.db import make_engine
    from medloop.store.migrate import upgrade

    loop_messages._now = lambda: NOW
    DATA.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        if not TWENTY.exists():
            engine = make_engine(f"sqlite:///{folder}/catalogue.db")
            upgrade(engine)
            import_catalogue(engine, DEMO)
            TWENTY.write_bytes(twenty_entry_list(engine))
            engine.dispose()
        engine = make_engine(f"sqlite:///{folder}/record.db")
        upgrade(engine)
        found = imported(engine)
        engine.dispose()
    EXPECTED.write_text(json.dumps(found, sort_keys=True, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__" and "--record" in sys.argv:
    _record()
