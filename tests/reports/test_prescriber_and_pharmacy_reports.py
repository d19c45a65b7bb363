"""The prescriber and multidose pharmacy reports against figures worked out by hand on
generated records (SQLite and PostgreSQL): antibiotic courses by month and indication, override
rates per rule and severity, time to answer proposals; reconciliation classes, changes after
deadline and urgent packs per month; and each report scoped to its own doctor / pharmacy."""

from __future__ import annotations

from datetime import UTC, date, datetime

from medloop.reports import charts
from medloop.reports.period import ReportPeriod
from medloop.reports.pharmacy import pharmacy_report, read_pharmacy_facts
from medloop.reports.prescriber import prescriber_report, read_prescriber_facts
from medloop.store.db import reader
from tests.reports.test_ward_report import assert_chart_matches_table
from tests.reports.world import (
    PHARMACY,
    AlertSpec,
    CourseSpec,
    Organisation,
    PeriodSpec,
    ProposalSpec,
    write_pharmacy,
    write_prescribing,
)

ME, OTHER = "431002737", "100000009"
Q1 = ReportPeriod.of(date(2026, 1, 1), date(2026, 3, 31))
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


def gp_list(engine) -> None:
    courses = [
        # January: 2 courses, both respiratory, one narrow-spectrum
        CourseSpec(0, at(1, 5), "Apocillin 660 mg", "J01CE02", "R74 Akutt øvre luftveisinf.", ME),
        CourseSpec(1, at(1, 20), "Klaritromycin 250 mg", "J01FA09", "Pneumoni", ME),
        # February: 3 courses: respiratory narrow, urinary (not respiratory), no indication
        CourseSpec(2, at(2, 2), "Apocillin 660 mg", "J01CE02", "Bihulebetennelse", ME),
        CourseSpec(3, at(2, 10), "Selexid 200 mg", "J01CA08", "U71 Cystitt", ME),
        CourseSpec(0, at(2, 25), "Apocillin 660 mg", "J01CE02", None, ME),
        # not antibiotics, or not mine, or outside the quarter: never counted
        CourseSpec(4, at(1, 7), "Paracet 500 mg", "N02BE01", "R74", ME),
        CourseSpec(4, at(1, 8), "Apocillin 660 mg", "J01CE02", "R74", OTHER),
        CourseSpec(5, at(4, 2), "Apocillin 660 mg", "J01CE02", "R74", ME),
    ]
    raised = [
        AlertSpec(0, at(1, 6), "interaction", "ID_IA_1", "avoid", True, ME),
        AlertSpec(1, at(1, 7), "interaction", "ID_IA_1", "avoid", True, ME),
        AlertSpec(2, at(2, 7), "interaction", "ID_IA_1", "avoid", True, ME),
        AlertSpec(3, at(2, 8), "interaction", "ID_IA_2", "precautions", False, ME),
        AlertSpec(4, at(2, 9), "interaction", "ID_IA_2", "precautions", True, ME),
        AlertSpec(5, at(3, 9), "duplicate", "duplicate:same-atc-level4", "info", False, ME),
        AlertSpec(0, at(3, 10), "interaction", "ID_IA_1", "avoid", True, OTHER),
    ]
    proposals = [
        ProposalSpec(0, at(1, 5, 8), at(1, 5, 12), True, ME),  # 4 h
        ProposalSpec(1, at(1, 10, 8), at(1, 11, 8), False, ME),  # 24 h
        ProposalSpec(2, at(2, 3, 8), at(2, 3, 10), True, ME),  # 2 h
        ProposalSpec(3, at(3, 1, 8), None, False, ME),  # open at the quarter's end
        ProposalSpec(4, at(3, 2, 8), at(3, 2, 9), True, OTHER),  # another doctor's answer
    ]
    write_prescribing(engine, 6, courses, raised, proposals, multidose_doctor=ME)


def report_for(engine, hpr, list_size=None):
    with reader(engine).connect() as conn:
        return prescriber_report(read_prescriber_facts(conn, hpr, Q1, NOW), list_size)


def test_antibiotic_courses_count_by_month_and_indication(engine):
    gp_list(engine)

    antibiotics = report_for(engine, ME, list_size=1_000).antibiotics

    assert (antibiotics.courses, antibiotics.narrow_spectrum, antibiotics.respiratory) == (5, 3, 3)
    assert antibiotics.respiratory_narrow_spectrum == 2
    assert antibiotics.without_indication == 1
    assert antibiotics.share_narrow_respiratory == round(2 / 3, 4)
    assert antibiotics.share_narrow_all == 0.6
    assert antibiotics.per_1000 == 5.0
    months = {m.month: m for m in antibiotics.by_month}
    assert list(months) == ["2026-01", "2026-02", "2026-03"]
    assert (months["2026-01"].courses, months["2026-01"].share_narrow_respiratory) == (2, 0.5)
    assert (months["2026-02"].courses, months["2026-02"].share_narrow_respiratory) == (3, 1.0)
    assert (months["2026-03"].courses, months["2026-03"].share_narrow_all) == (0, None)


def test_without_a_list_size_the_denominator_is_the_patients_prescribed_for(engine):
    gp_list(engine)

    antibiotics = report_for(engine, ME).antibiotics

    # patients 0-4 got a prescription from me in the quarter (4: paracetamol)
    assert antibiotics.denominator.model_dump() == {
        "patients": 5,
        "basis": "patients-prescribed-for",
    }
    assert antibiotics.per_1000 == 1000.0


def test_override_rates_per_rule_and_severity_most_overridden_first(engine):
    gp_list(engine)

    rates = [
        (o.rule, o.severity, o.raised, o.overridden, o.rate)
        for o in report_for(engine, ME).overrides
    ]

    assert report_for(engine, ME).overrides[0].summary == "interaction ID_IA_1"
    assert rates == [
        ("interaction/ID_IA_1", "avoid", 3, 3, 1.0),
        ("interaction/ID_IA_2", "precautions", 2, 1, 0.5),
        ("duplicate/duplicate:same-atc-level4", "info", 1, 0, 0.0),
    ]


def test_time_to_answer_proposals(engine):
    gp_list(engine)

    proposals = report_for(engine, ME).proposals

    assert (proposals.answered, proposals.accepted, proposals.open) == (3, 2, 1)
    assert (proposals.median_hours, proposals.p90_hours, proposals.longest_hours) == (4, 24, 24)
    assert [(m.month, m.answered, m.median_hours) for m in proposals.by_month] == [
        ("2026-01", 2, 14.0),
        ("2026-02", 1, 2.0),
        ("2026-03", 0, None),
    ]


def test_another_doctor_sees_only_their_own(engine):
    gp_list(engine)

    other = report_for(engine, OTHER)

    assert other.antibiotics.courses == 1  # the course of 8 January
    assert [(o.rule, o.raised) for o in other.overrides] == [("interaction/ID_IA_1", 1)]
    assert (other.proposals.answered, other.proposals.open) == (1, 0)


def test_every_prescriber_chart_has_a_mark_per_row_of_its_table(engine):
    gp_list(engine)
    for table in charts.prescriber_tables(report_for(engine, ME, list_size=800)):
        assert_chart_matches_table(table)


ELSEWHERE = Organisation(id="8090699", name="Annet apotek", kind=PHARMACY.kind)


def pharmacy_world(engine) -> None:
    write_pharmacy(
        engine,
        [
            PeriodSpec(
                date(2026, 1, 12),
                reconciliations=(
                    (at(1, 11), {"ok": 40, "dose-mismatch": 2, "missing-from-bags": 1}),
                    (at(1, 25), {"ok": 38, "ok-substituted": 4}),
                ),
                flags=((at(1, 10), 2),),
                urgent=((at(1, 14), "Ny antibiotikakur"),),
            ),
            PeriodSpec(
                date(2026, 2, 9),
                reconciliations=((at(2, 8), {"ok": 30, "change-after-deadline": 3}),),
                flags=((at(2, 7), 1), (at(2, 8), 3)),
                urgent=((at(2, 10), "Ny antibiotikakur"), (at(2, 12), "Doseendring")),
            ),
            PeriodSpec(  # another pharmacy's: never in this report
                date(2026, 1, 12),
                pharmacy=ELSEWHERE,
                reconciliations=((at(1, 11), {"ok": 99}),),
                flags=((at(1, 10), 5),),
                urgent=((at(1, 14), "Annet"),),
            ),
        ],
    )


def test_the_pharmacy_report_counts_its_own_periods(engine):
    pharmacy_world(engine)
    with reader(engine).connect() as conn:
        report = pharmacy_report(read_pharmacy_facts(conn, PHARMACY.id, Q1, NOW))

    assert report.reconciliations == 3
    assert {k: v for k, v in report.lines.items() if v} == {
        "ok": 108,
        "ok-substituted": 4,
        "dose-mismatch": 2,
        "missing-from-bags": 1,
        "change-after-deadline": 3,
    }
    assert report.discrepancy_share == round(6 / 118, 4)
    assert (report.changes_after_deadline, report.entries_changed_after_deadline) == (3, 6)
    assert report.urgent_packs == 3
    assert [(r.reason, r.count) for r in report.urgent_pack_reasons] == [
        ("Ny antibiotikakur", 2),
        ("Doseendring", 1),
    ]
    months = {m.month: m for m in report.by_month}
    assert (months["2026-01"].reconciliations, months["2026-01"].urgent_packs) == (2, 1)
    assert months["2026-01"].discrepancy_share == round(3 / 85, 4)
    assert (months["2026-02"].changes_after_deadline, months["2026-02"].urgent_packs) == (2, 2)
    assert months["2026-03"].reconciliations == 0 and months["2026-03"].discrepancy_share is None

    for table in charts.pharmacy_tables(report):
        assert_chart_matches_table(table)
