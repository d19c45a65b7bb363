"""Responsibility (doctor and pharmacy, with validity dates), flagging entries for multidose,
closing tasks, and the scheduler's ``flag_deadlines`` (idempotent)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from interactions.dosage import TimeOfDay
from medloop.domain.codes import OrganisationKind, PersonnelRole
from medloop.domain.multidose.errors import (
    InvalidResponsibility,
    NoMultidoseResponsibility,
    NotTheMultidosePharmacy,
    PrescriberRequired,
    TaskAlreadyResolved,
    TaskNoteRequired,
    UrgentPackRefused,
)
from medloop.domain.multidose.plan import OutsideReason
from medloop.domain.personnel import Organisation
from medloop.loop import multidose
from medloop.loop.change import change_dosage
from medloop.store import audit
from medloop.store.patients import patient
from tests.loop.helpers import GP, NOW, PHARMACIST, actor, call, demo_world
from tests.loop.multidose.helpers import (
    AFTER_DEADLINE,
    DEADLINE,
    NURSE,
    OTHER_PHARMACIST,
    SERTRALIN,
    SIMVASTATIN,
    as_report,
    dosage,
    multidose_order,
    open_period,
    prescribe_all,
    report_from,
    with_responsibility,
)
from tests.store.helpers import intruded

OTHER_GP = actor(
    "565505933",
    "Lars Lege",
    PersonnelRole.DOCTOR,
    Organisation(id="8095069", name="Ski legesenter", kind=OrganisationKind.GP_PRACTICE),
)


def test_changing_the_doctor_or_the_pharmacy_makes_a_new_version_and_keeps_the_other(engine):
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    multidose.change_multidose_doctor(
        engine, patient_id, OTHER_GP, call(GP), valid_from=date(2026, 12, 1)
    )
    multidose.change_multidose_pharmacy(
        engine,
        patient_id,
        OTHER_PHARMACIST.organisation,
        call(PHARMACIST),
        valid_from=date(2026, 12, 1),
    )
    with engine.connect() as conn:
        now = multidose.responsibility(conn, patient_id)
    assert now.version == 3
    assert now.doctor == OTHER_GP and now.pharmacy == OTHER_PHARMACIST.organisation
    assert now.valid_from == date(2026, 12, 1) and not now.in_force(date(2026, 11, 30))


def test_a_responsibility_names_a_doctor_and_a_pharmacy_and_a_nurse_cannot_set_it(engine):
    patient_id = demo_world(engine)
    bad = [
        (
            GP,
            multidose.ResponsibilityOrder(
                doctor=PHARMACIST, pharmacy=PHARMACIST.organisation, valid_from=NOW.date()
            ),
        ),
        (
            GP,
            multidose.ResponsibilityOrder(
                doctor=GP, pharmacy=GP.organisation, valid_from=NOW.date()
            ),
        ),
        (GP, multidose.ResponsibilityOrder(doctor=GP, valid_from=NOW.date())),
        (
            GP,
            multidose.ResponsibilityOrder(
                doctor=GP,
                pharmacy=PHARMACIST.organisation,
                valid_from=NOW.date(),
                valid_to=date(2026, 1, 1),
            ),
        ),
        (
            NURSE,
            multidose.ResponsibilityOrder(
                doctor=GP, pharmacy=PHARMACIST.organisation, valid_from=NOW.date()
            ),
        ),
    ]
    for who, order in bad:
        with pytest.raises(InvalidResponsibility):
            multidose.set_responsibility(engine, patient_id, order, call(who))
    with engine.connect() as conn:
        assert multidose.responsibility(conn, patient_id) is None
    with pytest.raises(NoMultidoseResponsibility):
        open_period(engine, patient_id)


def test_only_a_prescriber_moves_an_entry_in_or_out_of_multidose(engine):
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    order = multidose_order(SIMVASTATIN, dosage(TimeOfDay.EVENING), multidose=False)
    version = prescribe_all(engine, patient_id, [order])
    period_id = open_period(engine, patient_id)
    with engine.connect() as conn:
        plan = multidose.plan_of(conn, patient_id, period_id)
    assert plan.bags == () and plan.outside[0].reason is OutsideReason.NOT_FLAGGED
    with pytest.raises(PrescriberRequired):
        multidose.set_multidose(
            engine, patient_id, order.entry_id, True, call(PHARMACIST), based_on=version
        )
    multidose.set_multidose(engine, patient_id, order.entry_id, True, call(GP), based_on=version)
    with engine.connect() as conn:
        plan = multidose.plan_of(conn, patient_id, period_id)
    assert len(plan.bags) == 14 and plan.outside == ()


def test_a_prescriber_closes_a_task_once_with_a_note(engine):
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    prescribe_all(engine, patient_id, [multidose_order(SIMVASTATIN, dosage(TimeOfDay.EVENING))])
    period_id = open_period(engine, patient_id)
    with engine.connect() as conn:
        plan = multidose.plan_of(conn, patient_id, period_id)
    draft = report_from(plan)
    first = next(iter(draft["bags"]))
    draft["bags"][first][0]["varenr"] = SERTRALIN
    draft["bags"][first][0]["entry_id"] = None
    multidose.reconcile_packing(
        engine, patient_id, as_report(draft), call(PHARMACIST, at=AFTER_DEADLINE)
    )
    with engine.connect() as conn:
        [task] = multidose.open_tasks(conn, assigned_to=GP.personnel.hpr_number)
    with pytest.raises(PrescriberRequired):
        multidose.resolve_multidose_task(engine, patient_id, task.id, call(PHARMACIST, reason="x"))
    with pytest.raises(TaskNoteRequired):
        multidose.resolve_multidose_task(engine, patient_id, task.id, call(GP))
    multidose.resolve_multidose_task(
        engine, patient_id, task.id, call(GP, reason="called the pharmacy; bag replaced")
    )
    with pytest.raises(TaskAlreadyResolved):
        multidose.resolve_multidose_task(engine, patient_id, task.id, call(GP, reason="again"))
    with engine.connect() as conn:
        assert multidose.open_tasks(conn, patient_id) == []


def _flags(engine, patient_id):
    with engine.connect() as conn:
        return [
            f["list_version"] for v in multidose.periods(conn, patient_id) for f in v.deadline_flags
        ]


def test_flag_deadlines_skips_a_patient_whose_record_cannot_be_read(engine):
    """The deadline flags go patient by patient: a patient whose stored record no longer loads
    is left out and named in ``skipped`` (the job's ``skipped_unreadable``), not raised out of
    the run for every other patient; mended, the patient is flagged on the next run."""
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    prescribe_all(engine, patient_id, [multidose_order(SIMVASTATIN, dosage(TimeOfDay.EVENING))])
    open_period(engine, patient_id)
    with engine.connect() as conn:
        stored = conn.execute(
            select(patient.c.record).where(patient.c.id == str(patient_id))
        ).scalar()
    intruded(engine, patient, patient.c.id == str(patient_id), record={**stored, "sex": 3})
    soon = DEADLINE - timedelta(hours=24)
    skipped: list[str] = []
    assert multidose.flag_deadlines(engine, soon, skipped=skipped) == 0
    assert skipped == [str(patient_id)]
    intruded(engine, patient, patient.c.id == str(patient_id), record=stored)
    assert multidose.flag_deadlines(engine, soon, skipped=(again := [])) == 1 and again == []


def test_flag_deadlines_flags_unplanned_changes_once_per_list_version(engine):
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    order = multidose_order(SIMVASTATIN, dosage(TimeOfDay.EVENING))
    version = prescribe_all(engine, patient_id, [order])
    open_period(engine, patient_id)
    too_early = DEADLINE - timedelta(hours=72)
    soon = DEADLINE - timedelta(hours=24)
    assert multidose.flag_deadlines(engine, too_early) == 0
    assert multidose.flag_deadlines(engine, soon) == 1
    assert multidose.flag_deadlines(engine, soon) == 0
    assert _flags(engine, patient_id) == [version]
    # the pharmacy takes the plan: nothing to flag until the list changes again
    with engine.connect() as conn:
        [view] = multidose.periods(conn, patient_id)
    multidose.take_production_plan(engine, patient_id, view.period.id, call(PHARMACIST))
    assert multidose.flag_deadlines(engine, soon + timedelta(minutes=5)) == 0
    version = change_dosage(
        engine,
        patient_id,
        order.entry_id,
        dosage(TimeOfDay.MORNING),
        call(at=soon),
        based_on=version,
    ).list_version
    assert multidose.flag_deadlines(engine, soon + timedelta(hours=1)) == 1
    assert multidose.flag_deadlines(engine, soon + timedelta(hours=1)) == 0
    assert _flags(engine, patient_id) == [version - 1, version]
    # an entry given outside multidose is no reason to flag
    outside = multidose_order(SERTRALIN, dosage(TimeOfDay.MORNING), multidose=False)
    prescribe_all(engine, patient_id, [outside], version=version, at=soon)
    assert multidose.flag_deadlines(engine, soon + timedelta(hours=2)) == 0
    assert multidose.flag_deadlines(engine, DEADLINE + timedelta(minutes=1)) == 0
    with engine.connect() as conn:
        page = audit.events_for_patient(conn, "21014605158", limit=500)
    flags = [e for e in page.events if e.action == "multidose.deadline-flag"]
    assert [(e.actor, e.detail["list_version"]) for e in flags] == [
        ("system", version),
        ("system", version - 1),
    ]


def test_taking_the_plan_twice_at_one_list_version_records_it_once(engine):
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    version = prescribe_all(
        engine, patient_id, [multidose_order(SIMVASTATIN, dosage(TimeOfDay.EVENING))]
    )
    period_id = open_period(engine, patient_id)
    for _ in range(2):
        taken = multidose.take_production_plan(engine, patient_id, period_id, call(PHARMACIST))
        assert taken.response["plan_list_version"] == version
    with engine.connect() as conn:
        [view] = multidose.periods(conn, patient_id)
    assert view.plan_list_version == version
    with pytest.raises(NotTheMultidosePharmacy):
        multidose.take_production_plan(engine, patient_id, period_id, call(OTHER_PHARMACIST))


def test_an_urgent_pack_before_the_deadline_is_refused(engine):
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    period_id = open_period(engine, patient_id)
    with pytest.raises(UrgentPackRefused):
        multidose.order_urgent(
            engine,
            patient_id,
            period_id,
            uuid.uuid4(),
            call(GP, at=DEADLINE - timedelta(hours=1), reason="now"),
        )
    with pytest.raises(UrgentPackRefused):
        multidose.order_urgent(
            engine,
            patient_id,
            period_id,
            uuid.uuid4(),
            call(GP, at=datetime(2026, 12, 14, 12, tzinfo=UTC), reason="x"),
        )


def test_a_pharmacy_change_from_a_later_date_leaves_the_earlier_period_to_the_old_pharmacy(
    engine,
):
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    multidose.change_multidose_pharmacy(
        engine,
        patient_id,
        OTHER_PHARMACIST.organisation,
        call(PHARMACIST),
        valid_from=date(2026, 12, 14),
    )
    open_period(engine, patient_id)  # 30 Nov – 13 Dec: still the first pharmacy's
    with pytest.raises(NotTheMultidosePharmacy):
        multidose.open_packing_period(
            engine,
            patient_id,
            multidose.PeriodOrder(
                period_id=uuid.uuid4(),
                first_day=date(2026, 12, 14),
                order_deadline=datetime(2026, 12, 9, tzinfo=UTC),
            ),
            call(PHARMACIST),
        )
    multidose.open_packing_period(
        engine,
        patient_id,
        multidose.PeriodOrder(
            period_id=uuid.uuid4(),
            first_day=date(2026, 12, 14),
            order_deadline=datetime(2026, 12, 9, tzinfo=UTC),
        ),
        call(OTHER_PHARMACIST),
    )
    with engine.connect() as conn:
        assert [v.period.pharmacy for v in multidose.periods(conn, patient_id)] == [
            PHARMACIST.organisation,
            OTHER_PHARMACIST.organisation,
        ]
