"""Benchmark: the quality reports (issue #19).

- the ward report of a 60-resident ward over 90 days (16 planned doses a resident a day at 4
  rounds, ~86 000 planned doses and their chartings, a PRN dose every other day per resident),
  read and aggregated (``read_ward_facts`` + ``ward_report``) and serialised to JSON;
- the prescriber report of a year of a 1 500-patient GP list (~12 000 prescriptions issued by
  the doctor, ~500 antibiotic courses, ~3 600 alerts, 200 multidose proposals; another doctor's
  prescribing of half that volume in the same database);
- one chart rendered to SVG (the ward's doses per day, 360 points).

The records are generated straight into the store by ``tests/reports/world.py`` (the records
the domain's models make; generation is not timed). Each report runs ``--runs`` times
(interleaved ward / prescriber); median and p99 in ms, wall clock and this process's CPU
(SQLite runs in the process, so on SQLite that is the report's whole cost; on PostgreSQL the
server's share is not in it). SQLite always; PostgreSQL too when
MEDLOOP_BENCH_POSTGRES_URL (or MEDLOOP_TEST_POSTGRES_URL) names a server. Prints one JSON
object. Targets: ward report <= 1 s, prescriber report <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
# bench/ goes after site-packages: bench/fhir.py must not shadow the fhir.resources package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

from loop import percentiles, postgres_database  # noqa: E402  (sibling bench)
from sqlalchemy import func  # noqa: E402

from interactions.dosage import Use  # noqa: E402
from medloop.reports import charts  # noqa: E402
from medloop.reports.period import ReportPeriod  # noqa: E402
from medloop.reports.prescriber import prescriber_report, read_prescriber_facts  # noqa: E402
from medloop.reports.ward import (  # noqa: E402
    _A,
    _CHARTING_FACTS,
    _dose_groups,
    read_ward_facts,
    ward_report,
)
from medloop.store.db import make_engine, reader  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402
from tests.reports.world import (  # noqa: E402
    AlertSpec,
    CourseSpec,
    Dose,
    Prn,
    ProposalSpec,
    Resident,
    oslo,
    write_prescribing,
    write_ward,
)

# How the report read a charting's facts before migration 0017: out of each JSON record.
_JSON = (
    func.coalesce(_A.c.record["late"].as_boolean(), False),
    _A.c.record["scan"]["gtin"].as_string().is_not(None),
    _A.c.record["scan_skipped"].as_string(),
    _A.c.record["reason"].as_string(),
)

TARGETS = {"ward_report_seconds": 1.0, "prescriber_report_seconds": 2.0}
RESIDENTS, DAYS, LIST = 60, 90, 1_500
FIRST = date(2026, 6, 1)
SLOTS = ("08:00", "13:00", "17:00", "21:00")
ME, OTHER = "431002737", "100000009"
YEAR = ReportPeriod.of(date(2026, 1, 1), date(2026, 12, 31))
NOW = datetime(2027, 1, 15, tzinfo=UTC)
ATC = ("C10AA01", "C07AB02", "C08CA01", "C03CA01", "H03AA01", "A02BC01", "N06AB06", "N05CF01")
ANTIBIOTICS = (
    ("J01CE02", 5),
    ("J01FA09", 1),
    ("J01CA08", 2),
    ("J01AA02", 1),
    ("J01CR02", 1),
)
INDICATIONS = ("R74 Akutt øvre luftveisinfeksjon", "Pneumoni", "U71 Cystitt", "Sinusitt", None)


def ward_world(engine, rng: random.Random):
    residents = [
        Resident(
            f"Beboer{n}",
            f"Etternavn{n}",
            datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(500)),
            drugs=(
                ("Paracetamol 500 mg", "N02BE01", Use.REGULAR),
                *((("Kvetiapin 25 mg", "N05AH04", Use.REGULAR),) if n % 4 == 0 else ()),
                *((("Mirtazapin 15 mg", "N06AX11", Use.REGULAR),) if n % 3 == 0 else ()),
            ),
        )
        for n in range(RESIDENTS)
    ]
    outcomes = (
        [("given", False, "scanned")] * 80
        + [("given", True, "scanned")] * 5
        + [("given", False, "multidose-bag")] * 5
        + [("given", False, None)] * 2
        + [("refused", False, None)] * 3
        + [("held", False, None)] * 2
        + [("not-given", False, None)] * 1
        + [("missed", False, None)] * 2
    )
    doses = []
    for day in (FIRST + timedelta(days=n) for n in range(DAYS)):
        for r in range(RESIDENTS):
            for slot in SLOTS:
                for index in range(4):
                    charted, late, scan = rng.choice(outcomes)
                    doses.append(
                        Dose(
                            r,
                            day,
                            slot,
                            charted,
                            late=late,
                            scan=scan,
                            reason="Sover" if charted in ("refused", "held", "not-given") else None,
                            index=index,
                        )
                    )
    prn = [
        Prn(r, oslo(FIRST + timedelta(days=d), "15:00"))
        for r in range(RESIDENTS)
        for d in range(0, DAYS, 2)
    ]
    return write_ward(engine, residents, doses, prn)


def gp_world(engine, rng: random.Random) -> None:
    start = datetime(2026, 1, 1, 8, tzinfo=UTC)

    def moment() -> datetime:
        return start + timedelta(minutes=rng.randrange(365 * 24 * 60))

    courses: list[CourseSpec] = []
    for hpr, n in ((ME, 12_000), (OTHER, 6_000)):
        for _ in range(n):
            courses.append(
                CourseSpec(rng.randrange(LIST), moment(), "Legemiddel", rng.choice(ATC), None, hpr)
            )
        for _ in range(n // 24):
            atc = rng.choices([a for a, _ in ANTIBIOTICS], [w for _, w in ANTIBIOTICS])[0]
            courses.append(
                CourseSpec(
                    rng.randrange(LIST), moment(), "Antibiotikum", atc, rng.choice(INDICATIONS), hpr
                )
            )
    raised = [
        AlertSpec(
            rng.randrange(LIST),
            moment(),
            "interaction",
            f"ID_IA_{rng.randrange(40)}",
            rng.choice(("avoid", "precautions", "info")),
            rng.random() < 0.6,
            ME if rng.random() < 0.67 else OTHER,
        )
        for _ in range(3_600)
    ]
    proposals = []
    for _ in range(200):
        proposed = moment()
        decided = proposed + timedelta(hours=rng.randrange(1, 96)) if rng.random() < 0.9 else None
        proposals.append(ProposalSpec(rng.randrange(100), proposed, decided, True, ME))
    write_prescribing(engine, LIST, courses, raised, proposals, multidose_doctor=ME)


def measure(url: str, runs: int) -> dict[str, object]:
    engine = make_engine(url)
    upgrade(engine)
    rng = random.Random(19)
    started = time.perf_counter()
    ward = ward_world(engine, rng)
    gp_world(engine, rng)
    generated = time.perf_counter() - started
    if engine.dialect.name == "postgresql":
        # A live server's autovacuum analyses tables soon after a bulk load (autoanalyze); the
        # world is written in bulk just before the runs, so without this the planner would
        # plan the report for empty tables (measured: 1.4 s instead of 0.5 s).
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    ward_period = ReportPeriod.of(FIRST, FIRST + timedelta(days=DAYS - 1))
    ward_ms: list[float] = []
    gp_ms: list[float] = []
    ward_cpu: list[float] = []
    gp_cpu: list[float] = []
    report = None
    start, end = ward_period.bounds
    with reader(engine).connect() as conn:
        cutoff = NOW - read_ward_facts(conn, ward.ward_id, ward_period, NOW).config.missed_after
    groups_cpu: dict[str, list[float]] = {"columns": [], "json_baseline": []}
    for _ in range(runs):
        # The dose groups (the report's main query), interleaved: by the columns of 0017 and,
        # as the baseline, by the records' JSON fields as read before (same rows, same SQL).
        found = {}
        for name, facts in (("columns", _CHARTING_FACTS), ("json_baseline", _JSON)):
            c0 = time.process_time()
            with reader(engine).connect() as conn:
                found[name] = _dose_groups(conn, ward.ward_id, start, end, cutoff, facts)
            groups_cpu[name].append((time.process_time() - c0) * 1000)
        assert sorted(found["columns"], key=repr) == sorted(found["json_baseline"], key=repr)
        t0, c0 = time.perf_counter(), time.process_time()
        with reader(engine).connect() as conn:
            report = ward_report(read_ward_facts(conn, ward.ward_id, ward_period, NOW))
        report.model_dump_json()
        ward_ms.append((time.perf_counter() - t0) * 1000)
        ward_cpu.append((time.process_time() - c0) * 1000)
        t0, c0 = time.perf_counter(), time.process_time()
        with reader(engine).connect() as conn:
            gp = prescriber_report(read_prescriber_facts(conn, ME, YEAR, NOW))
        gp.model_dump_json()
        gp_ms.append((time.perf_counter() - t0) * 1000)
        gp_cpu.append((time.process_time() - c0) * 1000)
    assert report is not None
    table = charts.find_table(charts.ward_tables(report), "doses-by-day")
    assert table is not None
    svg_ms = []
    for _ in range(3):
        t0 = time.perf_counter()
        charts.render_svg(table)
        svg_ms.append((time.perf_counter() - t0) * 1000)
    engine.dispose()
    return {
        "generated_seconds": round(generated, 1),
        "ward_planned_doses": report.doses.planned,
        "gp_antibiotic_courses": gp.antibiotics.courses,
        "ward_report": percentiles(ward_ms),
        "ward_report_process_cpu": percentiles(ward_cpu),
        "ward_dose_groups_process_cpu": {k: percentiles(v) for k, v in groups_cpu.items()},
        "prescriber_report": percentiles(gp_ms),
        "prescriber_report_process_cpu": percentiles(gp_cpu),
        "doses_by_day_svg": percentiles(svg_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, object] = {
        "targets": TARGETS,
        "runs": args.runs,
        "load_average_at_start": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = measure(f"sqlite:///{Path(folder) / 'reports.db'}", args.runs)
    server = os.environ.get("MEDLOOP_BENCH_POSTGRES_URL") or os.environ.get(
        "MEDLOOP_TEST_POSTGRES_URL"
    )
    if server:
        url, drop = postgres_database(server)
        try:
            results["postgresql"] = measure(url, args.runs)
        finally:
            drop()
    results["load_average_at_end"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
