"""The ward report against figures worked out by hand on a small generated ward (four
residents, two days, two rounds a day; the events are listed in ``small_ward``), on SQLite and
PostgreSQL; and the charts drawn from its tables carry exactly the tables' values."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from interactions.dosage import Use
from medloop.reports import charts
from medloop.reports.period import ReportPeriod
from medloop.reports.ward import read_ward_facts, ward_report
from medloop.store.db import reader
from tests.reports.svg import marks
from tests.reports.world import Dose, Prn, Resident, reviewed, write_ward

MON, TUE = date(2026, 3, 2), date(2026, 3, 3)
NOW = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)  # after the period: the report's moment is its end


def small_ward(engine):
    residents = [
        Resident(
            "Aase",
            "Berg",
            datetime(2026, 1, 10, 11, 0, tzinfo=UTC),
            drugs=(
                ("Haloperidol 1 mg", "N05AD01", Use.REGULAR),
                ("Sertralin 50 mg", "N06AB06", Use.REGULAR),
                ("Zopiklon 5 mg", "N05CF01", Use.AS_NEEDED),
            ),
        ),
        Resident(
            "Bjørn",
            "Dahl",
            datetime(2025, 3, 20, 11, 0, tzinfo=UTC),
            drugs=(("Oksazepam 10 mg", "N05BA04", Use.REGULAR),),
        ),
        Resident(
            "Cecilie",
            "Eng",
            datetime(2025, 6, 1, 11, 0, tzinfo=UTC),
            discharged_at=datetime(2026, 3, 3, 12, 0, tzinfo=UTC),
            drugs=(("Kvetiapin 25 mg", "N05AH04", Use.REGULAR),),
        ),
        Resident("Dag", "Fosse", datetime(2026, 2, 20, 11, 0, tzinfo=UTC)),
    ]
    doses = [
        Dose(0, MON, "08:00", "given"),
        Dose(0, MON, "20:00", "given", late=True),
        Dose(1, MON, "08:00", "given", scan="barcode-unreadable"),
        Dose(1, MON, "20:00", "refused", reason="Sover"),
        Dose(2, MON, "08:00", "held", reason="Lavt blodtrykk"),
        Dose(2, MON, "20:00", "missed"),
        Dose(0, TUE, "08:00", "given", corrected=True),
        Dose(0, TUE, "20:00", None),  # nobody charted it: missed by 22:00
        Dose(1, TUE, "08:00", "not-given", reason="Ikke på avdelingen"),
        Dose(1, TUE, "20:00", "given", scan=None),
        Dose(2, TUE, "08:00", "given", scan="multidose-bag"),
        Dose(2, TUE, "20:00", None),  # due after Cecilie's discharge: not the ward's
    ]
    prn = [
        Prn(0, datetime(2026, 3, 2, 14, 0, tzinfo=UTC)),
        Prn(0, datetime(2026, 3, 3, 2, 0, tzinfo=UTC), corrected=True),
        Prn(1, datetime(2026, 3, 3, 10, 0, tzinfo=UTC), scan="no-barcode"),
        Prn(2, datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
    ]
    world = write_ward(engine, residents, doses, prn)
    reviewed(engine, world.residents[0], datetime(2025, 12, 1, 10, 0, tzinfo=UTC))  # elsewhere
    reviewed(engine, world.residents[1], datetime(2025, 3, 25, 10, 0, tzinfo=UTC))
    return world


def report_of(engine, world):
    with reader(engine).connect() as conn:
        return ward_report(read_ward_facts(conn, world.ward_id, ReportPeriod.of(MON, TUE), NOW))


def counts(row) -> dict[str, int]:
    return {
        k: v
        for k, v in row.model_dump().items()
        if k in ("planned", "on_time", "late", "missed", "refused", "held", "not_given", "pending")
    }


def test_doses_count_as_worked_out_by_hand(engine):
    report = report_of(engine, small_ward(engine))

    assert counts(report.doses) == {
        "planned": 11,
        "on_time": 5,
        "late": 1,
        "missed": 2,
        "refused": 1,
        "held": 1,
        "not_given": 1,
        "pending": 0,
    }
    by_slot = {s.slot: counts(s) for s in report.by_slot}
    assert by_slot["08:00"] == {
        "planned": 6,
        "on_time": 4,
        "late": 0,
        "missed": 0,
        "refused": 0,
        "held": 1,
        "not_given": 1,
        "pending": 0,
    }
    assert by_slot["20:00"] == {
        "planned": 5,
        "on_time": 1,
        "late": 1,
        "missed": 2,
        "refused": 1,
        "held": 0,
        "not_given": 0,
        "pending": 0,
    }
    by_day = {d.day: counts(d) for d in report.by_day}
    assert by_day[MON] == {
        "planned": 6,
        "on_time": 2,
        "late": 1,
        "missed": 1,
        "refused": 1,
        "held": 1,
        "not_given": 0,
        "pending": 0,
    }
    assert by_day[TUE]["planned"] == 5 and by_day[TUE]["on_time"] == 3
    assert [(r.outcome, r.reason, r.count) for r in report.not_given_reasons] == [
        ("held", "Lavt blodtrykk", 1),
        ("not-given", "Ikke på avdelingen", 1),
        ("refused", "Sover", 1),
    ]


def test_scans_and_prn_count_as_worked_out_by_hand(engine):
    report = report_of(engine, small_ward(engine))

    scan = report.scan
    # six planned doses given and three PRN doses that stand (one was entered in error)
    assert (scan.given, scan.scanned, scan.skipped, scan.unscanned_without_reason) == (9, 5, 3, 1)
    assert scan.share_scanned == round(5 / 9, 4)
    assert {r.reason: r.count for r in scan.skip_reasons} == {
        "barcode-unreadable": 1,
        "multidose-bag": 1,
        "no-barcode": 1,
    }
    prn = report.prn
    assert prn.total_doses == 3 and prn.other_residents_doses == 1  # Cecilie: discharged
    assert [(r.name, r.doses, [(w.week, w.doses) for w in r.weeks]) for r in prn.residents] == [
        ("Berg, Aase", 1, [(MON, 1)]),
        ("Dahl, Bjørn", 1, [(MON, 1)]),
        ("Fosse, Dag", 0, [(MON, 0)]),
    ]


def test_psychotropics_and_reviews_of_the_current_residents(engine):
    report = report_of(engine, small_ward(engine))

    psych = report.psychotropics
    assert (psych.residents, psych.with_any, psych.with_antipsychotic) == (3, 2, 1)
    assert psych.share_antipsychotic == round(1 / 3, 4)
    assert {c.id: c.residents for c in psych.by_class} == {
        "antipsychotic": 1,
        "anxiolytic": 1,
        "hypnotic": 1,
        "antidepressant": 1,
    }
    assert psych.count_distribution == {"0": 1, "1": 1, "2": 0, "3+": 1}
    assert [(r.name, r.count, r.antipsychotic) for r in psych.per_resident] == [
        ("Berg, Aase", 3, True),
        ("Dahl, Bjørn", 1, False),
        ("Fosse, Dag", 0, False),
    ]
    # Cecilie (discharged, on kvetiapin) is not named and not counted
    assert "Eng, Cecilie" not in report.model_dump_json()
    reviews = {r.name: (r.last_review, r.next_due, r.status) for r in report.reviews.residents}
    assert reviews == {
        # reviewed before this stay only: the admission review is 53 days overdue
        "Berg, Aase": (None, date(2026, 1, 10), "overdue"),
        # reviewed five days after admission: the yearly review is due in 21 days
        "Dahl, Bjørn": (date(2025, 3, 25), date(2026, 3, 25), "due-soon"),
        # admitted 12 days ago, not reviewed yet
        "Fosse, Dag": (None, date(2026, 2, 20), "due-now"),
    }
    assert report.reviews.basis == "admission-date-and-signed-reviews"


def test_a_dose_not_yet_missed_is_pending_and_not_counted_as_missed(engine):
    world = small_ward(engine)
    with reader(engine).connect() as conn:
        # 21:00 Oslo on Tuesday: Aase's 20:00 dose is overdue, not yet missed (22:00)
        now = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)
        report = ward_report(read_ward_facts(conn, world.ward_id, ReportPeriod.of(MON, TUE), now))
    assert (report.doses.missed, report.doses.pending) == (1, 1)


def test_a_dose_charted_after_the_systems_missed_record_counts_as_charted(engine):
    resident = Resident("Eva", "Gran", datetime(2026, 1, 10, 11, 0, tzinfo=UTC))
    world = write_ward(
        engine,
        [resident],
        [
            Dose(0, MON, "08:00", "given", late=True, after_missed=True),
            Dose(0, MON, "20:00", "refused", reason="Kvalm", after_missed=True),
            Dose(0, TUE, "08:00", "missed"),
        ],
    )
    report = report_of(engine, world)
    assert counts(report.doses) == {
        "planned": 3,
        "on_time": 0,
        "late": 1,
        "missed": 1,
        "refused": 1,
        "held": 0,
        "not_given": 0,
        "pending": 0,
    }
    assert [(r.outcome, r.reason, r.count) for r in report.not_given_reasons] == [
        ("refused", "Kvalm", 1)
    ]


_ROLE = {"bar": "bar", "heatmap": "rect mark", "line": "point"}


def assert_chart_matches_table(table: charts.Table) -> None:
    """The chart has one mark per row of its table that has a value (a month without courses
    has no share: no mark, an empty cell), each labelled with that row's values."""
    assert table.chart is not None
    svg = charts.render_svg(table)
    assert f'<title id="{table.id}-title">' in svg and "<desc" in svg
    drawn = marks(svg, _ROLE[table.chart.kind])
    value = table.columns.index(table.chart.value)
    rows = [row for row in table.rows if row[value] is not None]
    assert len(drawn) == len(rows), table.id
    expected = sorted(tuple("" if v is None else _text(v) for v in row) for row in rows)
    found = sorted(tuple(m.get(c, "") for c in table.columns) for m in drawn)
    assert found == expected, table.id


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_every_ward_chart_has_a_mark_per_row_of_its_table(engine):
    report = report_of(engine, small_ward(engine))
    drawn = [t for t in charts.ward_tables(report) if t.chart is not None]
    assert {t.id for t in drawn} == {
        "doses-by-slot",
        "doses-by-day",
        "not-given-reasons",
        "scan",
        "prn-by-week",
        "psychotropics-by-class",
    }
    for table in drawn:
        assert_chart_matches_table(table)


def test_the_csv_of_a_table_has_its_columns_and_rows(engine):
    report = report_of(engine, small_ward(engine))
    table = charts.find_table(charts.ward_tables(report), "reviews-due")
    assert table is not None
    lines = charts.to_csv(table).split("\r\n")
    assert lines[0] == "resident,admitted_on,last_review,next_due,status"
    assert '"Dahl, Bjørn",2025-03-20,2025-03-25,2026-03-25,due-soon' in lines
    assert '"Berg, Aase",2026-01-10,,2026-01-10,overdue' in lines
    assert len([line for line in lines if line]) == 1 + 3


@pytest.mark.parametrize("days", [0, 401])
def test_a_period_that_cannot_be_is_refused(days):
    from medloop.reports.period import InvalidReportPeriod

    with pytest.raises(InvalidReportPeriod):
        ReportPeriod.of(MON, MON.fromordinal(MON.toordinal() + days - 1))
