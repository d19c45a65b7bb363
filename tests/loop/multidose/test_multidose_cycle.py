"""A 14-day multidose cycle on the demo catalogue: the production plan from the list at the
order deadline, changes before and after the deadline, a discontinuation mid-cycle, an urgent
pack, and the reconciliation of the pharmacy's packing report — every line classified."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from interactions.dosage import Quantity, TimeOfDay
from medloop.domain.codes import DiscontinuationReason
from medloop.domain.entry import Discontinuation
from medloop.domain.multidose.errors import (
    InvalidPackingPeriod,
    NotTheMultidosePharmacy,
    PackingPeriodOverlaps,
    UrgentPackRefused,
)
from medloop.domain.multidose.plan import OutsideReason
from medloop.domain.multidose.rules import LineClass
from medloop.loop import multidose
from medloop.loop.change import change_dosage, discontinue
from medloop.loop.prescribe import prescribe
from tests.loop.helpers import GP, PHARMACIST, call, demo_world
from tests.loop.multidose.helpers import (
    AFTER_DEADLINE,
    ALLOPURINOL,
    AMLODIPIN,
    ATORVASTATIN,
    BEFORE_DEADLINE,
    DEADLINE,
    FIRST_DAY,
    FUROSEMID,
    LAKTULOSE,
    LAST_DAY,
    METOPROLOL,
    OMEPRAZOL,
    OTHER_PHARMACIST,
    SERTRALIN,
    SIMVASTATIN,
    SIMVASTATIN_NORDKYST,
    as_report,
    dosage,
    multidose_order,
    open_period,
    prescribe_all,
    report_from,
    with_responsibility,
)

M, D, E = TimeOfDay.MORNING, TimeOfDay.MIDDAY, TimeOfDay.EVENING
EXPIRES = date(2026, 12, 3)
DISCONTINUED_AT = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def _world(engine, *, amlodipin_expires: date | None = None):
    patient_id = demo_world(engine)
    with_responsibility(engine, patient_id)
    orders = {
        "simvastatin": multidose_order(SIMVASTATIN, dosage(E)),
        "metoprolol": multidose_order(METOPROLOL, dosage(M, E)),
        "omeprazol": multidose_order(OMEPRAZOL, dosage(M, unit="kapsel")),
        "laktulose": multidose_order(LAKTULOSE, dosage(M, amount=15, unit="ml")),
        "amlodipin": multidose_order(AMLODIPIN, dosage(M), expires=amlodipin_expires),
        "allopurinol": multidose_order(ALLOPURINOL, dosage(D)),
    }
    version = prescribe_all(engine, patient_id, orders.values())
    period_id = open_period(engine, patient_id)
    ids = {name: order.entry_id for name, order in orders.items()}
    return patient_id, period_id, ids, version


def _plan(engine, patient_id, period_id):
    with engine.connect() as conn:
        return multidose.plan_of(conn, patient_id, period_id)


def test_the_plan_has_one_bag_per_day_and_intake_time_and_lists_what_is_given_outside(engine):
    patient_id, period_id, ids, _ = _world(engine)
    plan = _plan(engine, patient_id, period_id)
    assert (plan.first_day, plan.last_day) == (FIRST_DAY, LAST_DAY)
    assert len({bag.day for bag in plan.bags}) == 14
    assert {bag.intake for bag in plan.bags} == {"morning", "midday", "evening"}
    assert len(plan.bags) == 14 * 3
    morning = next(b for b in plan.bags if b.day == FIRST_DAY and b.intake == "morning")
    assert {line.entry_id for line in morning.lines} == {
        ids["metoprolol"],
        ids["omeprazol"],
        ids["amlodipin"],
    }
    assert [(o.entry_id, o.reason) for o in plan.outside] == [
        (ids["laktulose"], OutsideReason.NOT_PACKABLE)
    ]
    assert all(line.entry_id != ids["laktulose"] for b in plan.bags for line in b.lines)


def test_a_change_before_the_deadline_is_in_the_plan_and_one_after_reaches_the_next_period(engine):
    patient_id, period_id, ids, version = _world(engine)
    version = change_dosage(
        engine,
        patient_id,
        ids["allopurinol"],
        dosage(D, amount=2),
        call(at=BEFORE_DEADLINE),
        based_on=version,
    ).list_version
    at_deadline = version
    version = change_dosage(
        engine,
        patient_id,
        ids["omeprazol"],
        dosage(M, amount=2, unit="kapsel"),
        call(at=AFTER_DEADLINE),
        based_on=version,
    ).list_version
    plan = _plan(engine, patient_id, period_id)
    assert plan.list_version == at_deadline
    lines = {
        (b.day, b.intake, line.entry_id): line.quantity.value for b in plan.bags for line in b.lines
    }
    assert lines[(FIRST_DAY, "midday", ids["allopurinol"])] == 2
    assert lines[(FIRST_DAY, "morning", ids["omeprazol"])] == 1
    assert [(c.list_version, c.entry_ids, c.reaches) for c in plan.late_changes] == [
        (version, (ids["omeprazol"],), "next-period")
    ]


def test_an_urgent_pack_brings_a_change_after_the_deadline_into_the_period(engine):
    patient_id, period_id, ids, version = _world(engine)
    version = change_dosage(
        engine,
        patient_id,
        ids["omeprazol"],
        dosage(M, amount=2, unit="kapsel"),
        call(at=AFTER_DEADLINE),
        based_on=version,
    ).list_version
    with pytest.raises(UrgentPackRefused):  # the reason is required
        multidose.order_urgent(
            engine,
            patient_id,
            period_id,
            uuid.uuid4(),
            call(GP, at=AFTER_DEADLINE + timedelta(hours=1)),
        )
    multidose.order_urgent(
        engine,
        patient_id,
        period_id,
        uuid.uuid4(),
        call(GP, at=AFTER_DEADLINE + timedelta(hours=1), reason="dose up"),
    )
    plan = _plan(engine, patient_id, period_id)
    assert plan.urgent and plan.list_version == version
    assert plan.late_changes[0].reaches == "urgent-pack"
    draft = report_from(plan)
    result = multidose.reconcile_packing(
        engine,
        patient_id,
        as_report(draft),
        call(PHARMACIST, at=AFTER_DEADLINE + timedelta(hours=2)),
    )
    assert result.response["counts"] == {"ok": sum(len(b.lines) for b in plan.bags)}
    assert result.response["tasks"] == []


def test_a_packing_report_that_matches_the_plan_is_all_ok(engine):
    patient_id, period_id, _, _ = _world(engine)
    plan = _plan(engine, patient_id, period_id)
    result = multidose.reconcile_packing(
        engine, patient_id, as_report(report_from(plan)), call(PHARMACIST, at=AFTER_DEADLINE)
    )
    assert result.response["discrepancies"] == 0
    assert result.response["counts"] == {"ok": 14 * 6}


def _line(draft, day, intake, entry_id):
    return next(line for line in draft["bags"][(day, intake)] if line["entry_id"] == entry_id)


def test_the_reconciliation_classifies_every_line_of_a_14_day_cycle(engine):
    patient_id, period_id, ids, version = _world(engine, amlodipin_expires=EXPIRES)
    # before the deadline: allopurinol doubled (in the plan)
    version = change_dosage(
        engine,
        patient_id,
        ids["allopurinol"],
        dosage(D, amount=2),
        call(at=BEFORE_DEADLINE),
        based_on=version,
    ).list_version
    # after the deadline: omeprazol doubled, and furosemid added (both reach the next period)
    version = change_dosage(
        engine,
        patient_id,
        ids["omeprazol"],
        dosage(M, amount=2, unit="kapsel"),
        call(at=AFTER_DEADLINE),
        based_on=version,
    ).list_version
    furosemid = multidose_order(FUROSEMID, dosage(M))
    version = prescribe(
        engine, patient_id, furosemid, call(at=AFTER_DEADLINE), based_on=version
    ).list_version
    plan = _plan(engine, patient_id, period_id)
    draft = report_from(plan)
    day3, day5, day6, day7 = (FIRST_DAY + timedelta(days=n) for n in (2, 4, 5, 6))
    # substitution within group on day 3, outside it on day 5 (named by varenr only)
    simva3 = _line(draft, day3, "evening", ids["simvastatin"])
    simva3.update(varenr=SIMVASTATIN_NORDKYST, entry_id=None)
    _line(draft, day5, "evening", ids["simvastatin"]).update(varenr=ATORVASTATIN)
    # simvastatin missing on day 6, in the morning bag instead of the evening one on day 7
    draft["bags"][(day6, "evening")] = [
        line for line in draft["bags"][(day6, "evening")] if line["entry_id"] != ids["simvastatin"]
    ]
    moved = _line(draft, day7, "evening", ids["simvastatin"])
    draft["bags"][(day7, "evening")].remove(moved)
    draft["bags"][(day7, "morning")].append(moved)
    # allopurinol: 1 instead of 2 on day 3
    _line(draft, day3, "midday", ids["allopurinol"])["quantity"] = Quantity(value=1, unit="tablett")
    # laktulose (a mixture) packed, and sertralin (not on the list) packed, on the first day
    draft["bags"][(FIRST_DAY, "morning")] += [
        {
            "varenr": LAKTULOSE,
            "quantity": Quantity(value=15, unit="ml"),
            "entry_id": ids["laktulose"],
        },
        {"varenr": SERTRALIN, "quantity": Quantity(value=1, unit="tablett"), "entry_id": None},
    ]
    # mid-cycle: metoprolol discontinued on 2 December, amlodipin's prescription ends on 3 December
    version = discontinue(
        engine,
        patient_id,
        ids["metoprolol"],
        Discontinuation(at=DISCONTINUED_AT, reason=DiscontinuationReason.DRUG_REACTION),
        call(at=DISCONTINUED_AT),
        based_on=version,
    ).list_version
    draft["bags"][(date(2026, 12, 5), "morning")] = [
        line
        for line in draft["bags"][(date(2026, 12, 5), "morning")]
        if line["entry_id"] != ids["amlodipin"]
    ]

    result = multidose.reconcile_packing(
        engine, patient_id, as_report(draft), call(PHARMACIST, at=DISCONTINUED_AT)
    )
    with engine.connect() as conn:
        [stored] = multidose.reconciliations(conn, patient_id, period_id)
        tasks = multidose.open_tasks(conn, patient_id)
    assert result.response["reconciliation_id"] == str(stored.id)
    by_class: dict[LineClass, list] = {}
    for line in stored.lines:
        by_class.setdefault(line.line_class, []).append(line)

    def where(cls):
        return {(line.day, line.intake, line.entry_id) for line in by_class.get(cls, [])}

    assert set(LineClass) == set(by_class), set(LineClass) - set(by_class)
    assert where(LineClass.OK_SUBSTITUTED) == {(day3, "evening", ids["simvastatin"])}
    assert where(LineClass.NOT_IN_SUBSTITUTION_GROUP) == {(day5, "evening", ids["simvastatin"])}
    assert where(LineClass.MISSING_FROM_BAGS) == {(day6, "evening", ids["simvastatin"])}
    [moved_line] = by_class[LineClass.TIME_MISMATCH]
    assert (moved_line.day, moved_line.intake, moved_line.expected_intake) == (
        day7,
        "morning",
        "evening",
    )
    assert where(LineClass.DOSE_MISMATCH) == {(day3, "midday", ids["allopurinol"])}
    assert where(LineClass.NOT_PACKABLE_PACKED) == {(FIRST_DAY, "morning", ids["laktulose"])}
    [stranger] = by_class[LineClass.PACKED_NOT_ON_LIST]
    assert (stranger.varenr, stranger.entry_id) == (SERTRALIN, None)
    # metoprolol: packed from the day of its discontinuation on (2 Dec to 13 Dec, twice a day)
    discontinued = by_class[LineClass.PACKED_DISCONTINUED]
    assert {line.entry_id for line in discontinued} == {ids["metoprolol"]}
    assert {line.day for line in discontinued} == {
        date(2026, 12, 2) + timedelta(days=n) for n in range(12)
    }
    # amlodipin after its prescription's last day: packed ones and the one left out alike
    expired = by_class[LineClass.PRESCRIPTION_NOT_VALID]
    assert {line.entry_id for line in expired} == {ids["amlodipin"]}
    assert {line.day for line in expired} == {
        date(2026, 12, 4) + timedelta(days=n) for n in range(10)
    }
    # omeprazol packed as planned (1) though the list now says 2; furosemid not in this roll
    late = by_class[LineClass.CHANGE_AFTER_DEADLINE]
    assert {line.entry_id for line in late if line.packed is not None} >= {ids["omeprazol"]}
    assert {line.entry_id for line in late if line.packed is None} == {furosemid.entry_id}
    assert len([line for line in late if line.entry_id == furosemid.entry_id]) == 14
    # every class counted, and nothing left out
    assert sum(stored.counts.values()) == len(stored.lines)
    # tasks for the multidose doctor: one per class and entry, assigned to the GP
    kinds = {(t.kind, t.entry_id) for t in tasks}
    assert (LineClass.PACKED_DISCONTINUED, ids["metoprolol"]) in kinds
    assert (LineClass.NOT_IN_SUBSTITUTION_GROUP, ids["simvastatin"]) in kinds
    assert (LineClass.PRESCRIPTION_NOT_VALID, ids["amlodipin"]) in kinds
    assert (LineClass.PACKED_NOT_ON_LIST, None) in kinds
    assert not any(t.kind in (LineClass.OK, LineClass.MISSING_FROM_BAGS) for t in tasks)
    assert {t.assigned_to for t in tasks} == {GP.personnel.hpr_number}
    assert len(result.response["tasks"]) == len(tasks)


def test_only_the_multidose_pharmacy_opens_periods_and_reports(engine):
    patient_id, period_id, _, _ = _world(engine)
    with pytest.raises(NotTheMultidosePharmacy):
        multidose.open_packing_period(
            engine,
            patient_id,
            multidose.PeriodOrder(
                period_id=uuid.uuid4(),
                first_day=date(2027, 1, 4),
                order_deadline=datetime(2026, 12, 30, tzinfo=UTC),
            ),
            call(OTHER_PHARMACIST),
        )
    plan = _plan(engine, patient_id, period_id)
    with pytest.raises(NotTheMultidosePharmacy):
        multidose.reconcile_packing(
            engine,
            patient_id,
            as_report(report_from(plan)),
            call(OTHER_PHARMACIST, at=AFTER_DEADLINE),
        )
    with engine.connect() as conn:
        assert multidose.reconciliations(conn, patient_id) == []


def test_periods_do_not_overlap_and_their_deadline_comes_before_the_first_day(engine):
    patient_id, period_id, _, _ = _world(engine)
    with pytest.raises(PackingPeriodOverlaps):
        open_period(engine, patient_id, first_day=LAST_DAY)
    with pytest.raises(InvalidPackingPeriod):
        open_period(
            engine,
            patient_id,
            first_day=date(2026, 12, 14),
            deadline=datetime(2026, 12, 14, 12, 0, tzinfo=UTC),
        )
    following = open_period(
        engine,
        patient_id,
        first_day=date(2026, 12, 14),
        deadline=datetime(2026, 12, 9, 12, 0, tzinfo=UTC),
    )
    with engine.connect() as conn:
        found = multidose.periods(conn, patient_id)
    assert [v.period.id for v in found] == [period_id, following]
    assert found[1].period.last_day == date(2026, 12, 27)


def test_a_retried_report_is_reconciled_once(engine):
    patient_id, period_id, _, _ = _world(engine)
    report = as_report(report_from(_plan(engine, patient_id, period_id)))
    first = multidose.reconcile_packing(
        engine, patient_id, report, call(PHARMACIST, at=AFTER_DEADLINE, idempotency_key="r-1")
    )
    again = multidose.reconcile_packing(
        engine, patient_id, report, call(PHARMACIST, at=AFTER_DEADLINE, idempotency_key="r-1")
    )
    assert again.replayed and again.response == first.response
    with engine.connect() as conn:
        assert len(multidose.reconciliations(conn, patient_id)) == 1


def test_stored_reconciliations_cannot_be_rewritten(engine):
    patient_id, period_id, _, _ = _world(engine)
    report = as_report(report_from(_plan(engine, patient_id, period_id)))
    multidose.reconcile_packing(engine, patient_id, report, call(PHARMACIST, at=AFTER_DEADLINE))
    for statement in (
        "UPDATE multidose_reconciliation SET list_version = 0",
        "DELETE FROM multidose_period",
    ):
        with pytest.raises(Exception, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(statement))


def test_the_plan_of_an_unknown_period_is_refused(engine):
    patient_id, _, _, _ = _world(engine)
    with engine.connect() as conn, pytest.raises(multidose.PackingPeriodNotFound):
        multidose.plan_of(conn, patient_id, uuid.uuid4())


def test_deadline_is_what_the_plan_is_cut_at(engine):
    patient_id, period_id, _, version = _world(engine)
    plan = _plan(engine, patient_id, period_id)
    assert plan.cutoff == DEADLINE and not plan.urgent and plan.list_version == version
