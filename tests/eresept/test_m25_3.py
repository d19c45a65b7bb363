"""M25.3 in: the multidose pharmacy's report of what it packed is translated into the packing
report the JSON route takes (``PackReport``) and reconciled by the same decision
(``loop.multidose.packing_reconciliation``), with the same classes. No official M25.3 example
is published: the message is built here from the official M1 and M10 parts and validated
against ER-M253 by the reader as any message is. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import date

import pytest

from medloop.domain.messages import MessageNotMatched
from medloop.loop import multidose
from medloop.loop.messages import import_message
from tests.eresept.importing import counts, demo_world, reader_config
from tests.eresept.messages import embedded_m1s, example, needs_shared, read, without_signature
from tests.loop.multidose.helpers import (
    FIRST_DAY,
    LAST_DAY,
    METOPROLOL,
    dosage,
    multidose_order,
    open_period,
    prescribe_all,
    with_responsibility,
)

pytestmark = needs_shared

M253 = "http://www.kith.no/xmlstds/eresept/m253/2013-10-08"
PHARMACIST_HCP = (
    b"<HealthcareProfessional><FamilyName>Apoteker</FamilyName><GivenName>Per</GivenName>"
    b'<Ident><Id>9876543</Id><TypeId V="HPR" DN="HPR-nummer" S="2.16.578.1.12.4.1.1.8116"/>'
    b"</Ident></HealthcareProfessional>"
)


def _packed_m1(varenr: str, amount: str = "1") -> bytes:
    """The official M25.1's first embedded M1 (1 tablett every morning) naming ``varenr``."""
    m1 = embedded_m1s(example("M25.1"))[0]
    m1 = re.sub(rb"<Varenr>[0-9]+</Varenr>", f"<Varenr>{varenr}</Varenr>".encode(), m1)
    return m1.replace(b'<Mengde V="1" U="tablett">', f'<Mengde V="{amount}" U="tablett">'.encode())


def _utlevering(varenr: str) -> bytes:
    """The official M10's ``Utlevering`` (a whole document of its own) naming ``varenr``."""
    m10 = example("M10")
    start = m10.index(b"<Utlevering ")
    end = m10.index(b"</Utlevering>") + len(b"</Utlevering>")
    body = m10[start:end].replace(b"<Varenr>541409</Varenr>", f"<Varenr>{varenr}</Varenr>".encode())
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def m253(
    entry_id: uuid.UUID | str,
    prescription_id: uuid.UUID | str,
    *,
    varenr: str = METOPROLOL,
    amount: str = "1",
    first: date = FIRST_DAY,
    last: date = LAST_DAY,
    repacked: bool = False,
    msg_id: str | None = None,
) -> bytes:
    """An M25.3 from the patient's multidose pharmacy (Apotek 1, HER 8090688, pharmacist HPR
    9876543) reporting ``amount`` tablett of ``varenr`` every morning from ``first`` to
    ``last`` for our entry."""
    envelope = without_signature(example("M10"))
    envelope = envelope.replace(
        b'<Type V="ERM10" DN="Utleveringsrapport reseptbanken"/>',
        b'<Type V="ERM253" DN="Legemidler i bruk - utleveringsmelding"/>',
    )
    envelope = re.sub(
        rb"<MsgId>[^<]*</MsgId>", f"<MsgId>{msg_id or uuid.uuid4()}</MsgId>".encode(), envelope
    )
    # the sending pharmacist, after the sender's TeleCom
    envelope = envelope.replace(
        b"</TeleCom>\n      </Organisation>\n    </Sender>",
        b"</TeleCom>" + PHARMACIST_HCP + b"</Organisation></Sender>",
    )
    repack = b'<Ompakkingsgrunn V="1" DN="Endret dosering"/>' if repacked else b""
    content = (
        (
            f'<LegemidlerIBruk xmlns="{M253}"><EnkeltoppforingLIB>'
            f'<Id>{entry_id}</Id><Type V="E" DN="Legemiddel"/>'
            f"<ReseptId>{prescription_id}</ReseptId>"
            f"<SistEndret>2026-11-20T09:00:00</SistEndret>"
            f"<ReseptDokLegemiddelB64>{base64.b64encode(_packed_m1(varenr, amount)).decode()}"
            f"</ReseptDokLegemiddelB64><SisteUtlevering>"
        ).encode()
        + repack
        + (
            f"<DatoForsteDose>{first.isoformat()}</DatoForsteDose>"
            f"<DatoSisteDose>{last.isoformat()}</DatoSisteDose>"
            f"<UtleveringB64>{base64.b64encode(_utlevering(varenr)).decode()}</UtleveringB64>"
            f"</SisteUtlevering></EnkeltoppforingLIB>"
            f"<Pakkeinfo><Bestillingsfrist>2026-11-25T12:00:00Z</Bestillingsfrist>"
            f"<ForsteDoseringsdato>{first.isoformat()}</ForsteDoseringsdato>"
            f"<SisteDoseringsdato>{last.isoformat()}</SisteDoseringsdato></Pakkeinfo>"
            f"</LegemidlerIBruk>"
        ).encode()
    )
    start = envelope.index(b"<Content>") + len(b"<Content>")
    end = envelope.index(b"</Content>")
    return envelope[:start] + content + envelope[end:]


def _world(engine):
    """Our patient on multidose (Apotek 1 Ski, the GP), metoprolol 1 tablett every morning,
    and the packing period 30 November – 13 December."""
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    order = multidose_order(METOPROLOL, dosage(_morning()))
    prescribe_all(engine, patient_id, [order])
    period_id = open_period(engine, patient_id)
    return patient_id, period_id, order.entry_id, order.terms.prescription_id


def _morning():
    from interactions.dosage import TimeOfDay

    return TimeOfDay.from_code("1")


def _import(engine, data: bytes):
    return import_message(engine, data, source="m253.xml", config=reader_config())


def test_an_m25_3_is_read_with_its_packing_info_and_what_each_entry_packed():
    lib = read(m253(uuid.uuid4(), uuid.uuid4(), repacked=True)).lists[0]
    assert lib.type == "M25.3"
    assert (lib.packing.first_day, lib.packing.last_day) == ("2026-11-30", "2026-12-13")
    assert lib.packing.order_deadline == "2026-11-25T12:00:00Z"
    (packed,) = lib.entries[0].packed
    assert (packed.first_dose, packed.last_dose) == ("2026-11-30", "2026-12-13")
    assert packed.repacking_reason.dn == "Endret dosering"
    assert packed.dispensed.forskrivning.drug.varenr == METOPROLOL
    assert packed.dispensed_on == "2019-07-16"


def test_an_m25_3_that_packs_the_list_is_reconciled_all_ok_like_the_json_report(engine):
    patient_id, period_id, entry_id, prescription_id = _world(engine)
    receipt = _import(engine, m253(entry_id, prescription_id))
    assert (receipt.type, receipt.result, receipt.entries) == ("ERM253", "applied", 1)
    assert receipt.reasons[0].endswith("14 ok; 0 discrepancy(ies)")
    with engine.connect() as conn:
        (stored,) = multidose.reconciliations(conn, patient_id, period_id)
    assert stored.counts and {k.value: v for k, v in stored.counts.items() if v} == {"ok": 14}
    assert all(line.entry_id == entry_id for line in stored.lines)


def test_an_m25_3_that_packs_another_dose_gives_the_same_classes_and_tasks_as_the_json_report(
    engine,
):
    patient_id, period_id, entry_id, prescription_id = _world(engine)
    receipt = _import(engine, m253(entry_id, prescription_id, amount="2", repacked=True))
    assert receipt.result == "applied"
    assert "14 dose-mismatch; 14 discrepancy(ies)" in receipt.reasons[0]
    assert any("repacked (Endret dosering)" in r for r in receipt.reasons)
    with engine.connect() as conn:
        (stored,) = multidose.reconciliations(conn, patient_id, period_id)
        tasks = multidose.open_tasks(conn, patient_id)
    assert {k.value: v for k, v in stored.counts.items() if v} == {"dose-mismatch": 14}
    assert tasks  # a discrepancy that needs the doctor, as from the JSON report


def test_an_m25_3_outside_every_packing_period_is_refused_and_nothing_is_stored(engine):
    patient_id, _, entry_id, prescription_id = _world(engine)
    before = counts(engine)
    with pytest.raises(MessageNotMatched, match="in no packing period"):
        _import(
            engine,
            m253(entry_id, prescription_id, first=date(2027, 3, 1), last=date(2027, 3, 14)),
        )
    assert counts(engine) == before
    with engine.connect() as conn:
        assert multidose.reconciliations(conn, patient_id) == []


def test_the_same_m25_3_twice_is_one_reconciliation(engine):
    patient_id, period_id, entry_id, prescription_id = _world(engine)
    data = m253(entry_id, prescription_id)
    assert _import(engine, data).result == "applied"
    assert _import(engine, data).result == "duplicate"
    with engine.connect() as conn:
        assert len(multidose.reconciliations(conn, patient_id, period_id)) == 1
