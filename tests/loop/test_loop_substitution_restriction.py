"""Generic substitution within a substitution group FEST marks with a substitution remark
(``MerknadTilByttbarhet``): limited substitution (only at a patient's first prescription) or none
for part of a use (IG 3.5 §6.5.3). Dispensing a substitute in such a group raises an alert the
pharmacist must decide with a reason (stored as an override and audited); the dispense response
names the group, the remark and the decision.

On the demo catalogue (group 900103, metoprolol depot tablets, is restricted) and on the real
2017 extract, whose 16 groups all carry ``MerknadTilByttbarhet`` false: there one real group is
marked restricted in a copy, and the unmarked extract is checked to raise nothing.
"""

from __future__ import annotations

import gzip
import re
import uuid
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from fest.loader import import_catalogue
from interactions import Kind
from medloop import queries
from medloop.domain.codes import PrescriptionStatus
from medloop.domain.patient import NationalId, Patient
from medloop.loop.dispense import dispense
from medloop.loop.patients import register_patient
from medloop.loop.prescribe import prescribe
from medloop.loop.runner import OverrideRequired
from medloop.store import audit
from tests.loop.helpers import (
    NOW,
    PHARMACIST,
    SIMVASTATIN_28,
    SIMVASTATIN_NORDKYST,
    call,
    demo_world,
    dispense_order,
    prescription_order,
)
from tests.reference import real_extract

METOPROLOL_30 = "090283"  # Metoprolol Fjordfarma Depottab 50 mg, group 900103 (restricted)
METOPROLOL_POLARLYS = "090317"
RESTRICTED_GROUP = "ID_2CB6E3A9-37BE-5BA4-8D37-06D13BD75981"

# The real extract's zolmitriptan 2.5 mg group (Kode 000543): Zomig and two generics.
ZOLMITRIPTAN_GROUP = "ID_D9F7C043-1CBF-4142-9B54-87716BFF4E0D"
ZOMIG = "004752"
ZOLMITRIPTAN_ACTAVIS = "089497"
REMARK = "Begrenset bytte: bytte kun ved første forskrivning til en pasient."


def _restriction_alerts(alerts) -> list:
    return [a for a in alerts if a.kind is Kind.SUBSTITUTION_RESTRICTION]


def _prescribed(engine, patient_id, varenr: str, *, repeats: int = 0) -> str:
    with engine.connect() as conn:
        version = queries.current_list(conn, patient_id, NOW).list_version
    result = prescribe(
        engine, patient_id, prescription_order(varenr, repeats=repeats), call(), based_on=version
    )
    return result.response["prescription_id"]


def test_a_substitute_in_a_restricted_group_needs_the_pharmacists_recorded_decision(engine):
    patient_id = demo_world(engine)
    rx = _prescribed(engine, patient_id, METOPROLOL_30, repeats=1)

    with pytest.raises(OverrideRequired) as refused:
        dispense(engine, patient_id, dispense_order(rx, METOPROLOL_POLARLYS), call(PHARMACIST))
    (alert,) = refused.value.alerts
    assert alert.kind is Kind.SUBSTITUTION_RESTRICTION and alert.requires_override
    assert alert.detail.substitution_group_id == RESTRICTED_GROUP
    assert alert.detail.group_code == "900103"
    assert alert.detail.restriction.startswith("Byttbarheten gjelder ikke pasienter")
    assert alert.detail.prescription == rx
    assert alert.detail.earlier_dispenses == 0
    assert alert.source.fest_id == RESTRICTED_GROUP
    with engine.connect() as conn:
        assert queries.dispenses(conn, patient_id) == ()
        (still,) = queries.prescriptions(conn, patient_id)
    assert still.status is PrescriptionStatus.DISPENSABLE and still.dispensed == 0

    reason = "patient swallows the tablet whole; substitution agreed with the patient"
    handed = dispense(
        engine,
        patient_id,
        dispense_order(rx, METOPROLOL_POLARLYS),
        call(PHARMACIST, overrides={alert.key: reason}),
    )
    assert handed.response["substituted"] is True
    substitution = handed.response["substitution"]
    assert substitution["restricted"] is True and substitution["code"] == "900103"
    assert substitution["restriction"] == alert.detail.restriction
    assert substitution["decision"]["reason"] == reason
    assert substitution["decision"]["by"] == PHARMACIST.personnel.name
    assert [a.key for a in _restriction_alerts(handed.alerts)] == [alert.key]
    assert handed.response["overridden"] == [alert.key]

    with engine.connect() as conn:
        (stored,) = queries.overrides(conn, patient_id)
        rows = list(conn.execute(select(audit.audit_event).order_by(audit.audit_event.c.seq)))
    assert stored.key == alert.key and stored.reason == reason
    assert stored.hpr_number == PHARMACIST.personnel.hpr_number
    assert stored.alert.detail.kind == "substitution-restriction"
    dispensed = [r for r in rows if r.action.endswith("dispense") and r.outcome == "ok"]
    assert dispensed and dispensed[-1].detail["overridden"] == [alert.key]
    assert dispensed[-1].detail["substitution"]["decision"]["reason"] == reason

    # The decision holds for the rest of this prescription: the repeat is not asked again.
    repeat = dispense(engine, patient_id, dispense_order(rx, METOPROLOL_POLARLYS), call(PHARMACIST))
    assert _restriction_alerts(repeat.alerts) == []
    assert repeat.response["substitution"]["decision"] == substitution["decision"]


def test_a_later_prescription_asks_again_and_counts_the_earlier_dispenses(engine):
    patient_id = demo_world(engine)
    first = _prescribed(engine, patient_id, METOPROLOL_30)
    dispense(engine, patient_id, dispense_order(first, METOPROLOL_30), call(PHARMACIST))
    second = _prescribed(engine, patient_id, METOPROLOL_30)
    with pytest.raises(OverrideRequired) as refused:
        dispense(engine, patient_id, dispense_order(second, METOPROLOL_POLARLYS), call(PHARMACIST))
    (alert,) = refused.value.alerts
    assert alert.detail.prescription == second
    assert alert.detail.earlier_dispenses == 1, "not the patient's first prescription"


def test_the_prescribed_package_or_an_unrestricted_group_raises_no_restriction(engine):
    patient_id = demo_world(engine)
    metoprolol = _prescribed(engine, patient_id, METOPROLOL_30)
    same = dispense(engine, patient_id, dispense_order(metoprolol, METOPROLOL_30), call(PHARMACIST))
    assert same.response["substituted"] is False and same.response["substitution"] is None
    assert _restriction_alerts(same.alerts) == []

    simvastatin = _prescribed(engine, patient_id, SIMVASTATIN_28)
    generic = dispense(
        engine, patient_id, dispense_order(simvastatin, SIMVASTATIN_NORDKYST), call(PHARMACIST)
    )
    assert generic.response["substituted"] is True
    assert generic.response["substitution"]["restricted"] is False
    assert generic.response["substitution"]["decision"] is None
    assert _restriction_alerts(generic.alerts) == []


# -- the real extract ----------------------------------------------------------------------------


def _real_extract_marking(tmp_path: Path, group_id: str | None) -> Path:
    """The real extract, with ``group_id`` (if any) marked restricted as FEST marks one."""
    text = gzip.decompress(real_extract().read_bytes()).decode("utf-8")
    assert text.count("<m30:MerknadTilByttbarhet>true<") == 0, "no group of 2017 is marked"
    if group_id is not None:
        pattern = re.compile(
            rf"(<m30:Id>{group_id}</m30:Id>\s*<m30:Kode [^>]*/>\s*)"
            r"<m30:MerknadTilByttbarhet>false</m30:MerknadTilByttbarhet>"
        )
        text, n = pattern.subn(
            rf"\1<m30:MerknadTilByttbarhet>true</m30:MerknadTilByttbarhet>"
            rf"<m30:BeskrivelseByttbarhet>{REMARK}</m30:BeskrivelseByttbarhet>",
            text,
        )
        assert n == 1
    path = tmp_path / "fest-2017.xml"
    path.write_text(text, encoding="utf-8")
    return path


def _real_world(engine, path: Path):
    import_catalogue(engine, path)
    patient = Patient(
        id=uuid.uuid4(),
        national_id=NationalId("21014605158"),
        given_name="Kari",
        family_name="Nordmann",
        birth_date=date(1946, 1, 21),
    )
    register_patient(engine, patient, call())
    return patient.id


def test_real_extract_a_marked_group_needs_the_decision(engine, tmp_path):
    patient_id = _real_world(engine, _real_extract_marking(tmp_path, ZOLMITRIPTAN_GROUP))
    rx = _prescribed(engine, patient_id, ZOMIG)
    with pytest.raises(OverrideRequired) as refused:
        dispense(engine, patient_id, dispense_order(rx, ZOLMITRIPTAN_ACTAVIS), call(PHARMACIST))
    (alert,) = _restriction_alerts(refused.value.alerts)
    assert alert.detail.group_code == "000543"
    assert alert.detail.group_name == "ZOLMITRIPTAN TABLETTER 2,5MG"
    assert alert.detail.restriction == REMARK
    handed = dispense(
        engine,
        patient_id,
        dispense_order(rx, ZOLMITRIPTAN_ACTAVIS),
        call(PHARMACIST, overrides={alert.key: "first prescription for this patient"}),
    )
    assert handed.response["substitution"]["decision"]["reason"] == (
        "first prescription for this patient"
    )


def test_real_extract_as_published_substitutes_without_a_restriction_alert(engine, tmp_path):
    patient_id = _real_world(engine, _real_extract_marking(tmp_path, None))
    rx = _prescribed(engine, patient_id, ZOMIG)
    handed = dispense(
        engine, patient_id, dispense_order(rx, ZOLMITRIPTAN_ACTAVIS), call(PHARMACIST)
    )
    assert handed.response["substituted"] is True
    assert handed.response["substitution"]["restricted"] is False
    assert _restriction_alerts(handed.alerts) == []
