"""Override rates count only overridden alerts: an alert the doctor heeded — the command refused
for want of an override and never retried with one for the same patient and entries — is
counted as raised and heeded, never as overridden. Commands run through the loop's runner
(the refusal is audited with its alerts); figures computed by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from medloop.loop.prescribe import prescribe
from medloop.loop.runner import OverrideRequired
from medloop.reports.period import ReportPeriod
from medloop.reports.prescriber import prescriber_report, read_prescriber_facts
from medloop.store import audit
from medloop.store.db import reader
from tests.loop.helpers import (
    GP,
    KLARITROMYCIN,
    NOW,
    PHARMACIST,
    SIMVASTATIN_28,
    TODAY,
    call,
    demo_world,
    prescription_order,
)

PERIOD = ReportPeriod.of(TODAY - timedelta(days=30), TODAY + timedelta(days=5))


def _refused(engine, patient_id, order, at, based_on) -> str:
    """Prescribe ``order`` without an override; the key of the (one) alert that needed one."""
    with pytest.raises(OverrideRequired) as refused:
        prescribe(engine, patient_id, order, call(at=at), based_on=based_on)
    (key,) = [a.key for a in refused.value.alerts]
    return key


def _rates(engine, hpr):
    with reader(engine).connect() as conn:
        report = prescriber_report(
            read_prescriber_facts(conn, hpr, PERIOD, NOW + timedelta(days=6))
        )
    return {o.rule: o for o in report.overrides}


def test_heeded_alerts_are_raised_but_never_overridden(engine):
    patient_id = demo_world(engine)
    prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    # A: refused, never retried — heeded
    a = prescription_order(KLARITROMYCIN)
    _refused(engine, patient_id, a, NOW + timedelta(hours=1), 1)
    # B: refused, then the same order retried with an override — overridden, not heeded
    b = prescription_order(KLARITROMYCIN)
    key_b = _refused(engine, patient_id, b, NOW + timedelta(hours=2), 1)
    prescribe(
        engine,
        patient_id,
        b,
        call(at=NOW + timedelta(hours=3), overrides={key_b: "short course, statin paused"}),
        based_on=1,
    )
    # C: refused twice, never retried with an override — heeded, counted once
    c = prescription_order(KLARITROMYCIN)
    _refused(engine, patient_id, c, NOW + timedelta(hours=4), 2)
    key_c = _refused(engine, patient_id, c, NOW + timedelta(hours=5), 2)

    rule = key_c.rsplit("/", 1)[0]
    assert rule.startswith("interaction/") and rule == key_b.rsplit("/", 1)[0]
    found = _rates(engine, GP.personnel.hpr_number)[rule]
    # by hand: raised = A + B + C = 3; overridden = B = 1; heeded = A + C = 2; rate = 1 / 3
    assert (found.raised, found.overridden, found.heeded) == (3, 1, 2)
    assert found.rate == round(1 / 3, 4)
    # someone else's report has none of them
    assert rule not in _rates(engine, PHARMACIST.personnel.hpr_number)


def test_the_audited_refusal_names_the_alerts_that_needed_an_override(engine):
    patient_id = demo_world(engine)
    prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    key = _refused(engine, patient_id, prescription_order(KLARITROMYCIN), NOW, 1)
    with reader(engine).connect() as conn:
        details = [
            d
            for (d,) in conn.execute(
                select(audit.audit_event.c.detail).where(audit.audit_event.c.outcome == "refused")
            )
        ]
    (detail,) = [d for d in details if d.get("code") == "override-required"]
    assert detail["patient_id"] == str(patient_id)
    assert detail["at"] == NOW.isoformat()
    assert [(a["key"], a["kind"], a["severity"]) for a in detail["alerts"]] == [
        (key, "interaction", detail["alerts"][0]["severity"])
    ]
    assert detail["alerts"][0]["summary"]


def test_a_refusal_outside_the_period_is_not_counted(engine):
    patient_id = demo_world(engine)
    prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    key = _refused(
        engine, patient_id, prescription_order(KLARITROMYCIN), NOW - timedelta(days=60), 1
    )
    assert key.rsplit("/", 1)[0] not in _rates(engine, GP.personnel.hpr_number)


def test_the_pages_description_states_the_english_tables_own_words_and_figures(engine):
    from medloop.pages.report_texts import descriptions
    from medloop.reports import charts

    patient_id = demo_world(engine)
    prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    with reader(engine).connect() as conn:
        report = prescriber_report(
            read_prescriber_facts(conn, GP.personnel.hpr_number, PERIOD, NOW), list_size=1_500
        )
    tables = charts.prescriber_tables(report)

    def untranslated(message: str, **values: object) -> str:
        return message % values if values else message

    texts = descriptions(report, [t.id for t in tables], untranslated, str)
    assert texts == {t.id: t.description for t in tables}
