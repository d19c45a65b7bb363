"""Benchmark: reconciliation of a multidose pharmacy's packing report (issue #5).

Sets up ``patients`` multidose patients on the demo catalogue (seeds/demo-fest.xml), each with
8 multidose entries spread over 4 intake times (morning, midday, evening, night; every entry
twice a day: 16 lines per day), one 14-day packing period and the production plan taken. The
report of each patient packs the plan with one generic substitution and one missing line, so
the classification does real work. Measured: the wall time of reconciling the whole ward's
report (``reconcile_packing`` once per patient: one transaction each, stored with its tasks and
audited), over ``runs`` runs; the median is the figure. Target: <= 3 s for 100 patients.

``measure_reconciliation(db_url, patients)`` returns the figures as a dict (another benchmark
imports it); run alone, the module prints them as JSON. Without ``--db-url`` it uses a fresh
SQLite file, and also a fresh PostgreSQL database when MEDLOOP_BENCH_POSTGRES_URL (or
MEDLOOP_TEST_POSTGRES_URL) names a server.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from fest.loader import import_catalogue
from interactions.dosage import Dosage, FixedDose, Quantity, TimeOfDay, Use
from medloop.domain.codes import OrganisationKind, PersonnelRole
from medloop.domain.multidose.reconciliation import PackedBag, PackedLine, PackReport
from medloop.domain.patient import NationalId, Patient
from medloop.domain.personnel import Actor, HealthPersonnel, Organisation
from medloop.domain.prescription import PrescribedQuantity
from medloop.loop import multidose
from medloop.loop.catalogue import DrugOrder
from medloop.loop.errors import OverrideRequired
from medloop.loop.patients import register_patient
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms, prescribe
from medloop.loop.runner import Call
from medloop.store.db import make_engine, normalise_url
from medloop.store.migrate import upgrade

DEMO = Path(__file__).resolve().parents[1] / "seeds" / "demo-fest.xml"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
FIRST_DAY = date(2026, 11, 30)
DEADLINE = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
REPORTED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
TARGET_SECONDS = 3.0

GP = Actor(
    personnel=HealthPersonnel(hpr_number="431002737", name="Bench Lege", role=PersonnelRole.DOCTOR),
    organisation=Organisation(
        id="8095068", name="Bench legekontor", kind=OrganisationKind.GP_PRACTICE
    ),
)
PHARMACIST = Actor(
    personnel=HealthPersonnel(
        hpr_number="9876543", name="Bench Apoteker", role=PersonnelRole.PHARMACIST
    ),
    organisation=Organisation(
        id="8090688", name="Bench multidoseapotek", kind=OrganisationKind.PHARMACY
    ),
)
# Eight packable demo tablets and capsules without a relevance-1 interaction between them.
VARENR = ("090436", "090283", "090334", "090402", "090861", "090997", "090606", "090028")
SUBSTITUTE = ("090436", "090470")  # simvastatin Fjordfarma → Nordkyst (group 900104)
TIMES = (TimeOfDay.MORNING, TimeOfDay.MIDDAY, TimeOfDay.EVENING, TimeOfDay.NIGHT)


def _born(n: int) -> date:
    return date(1930, 1, 1) + timedelta(days=n % 20000)


def _national_id(n: int) -> NationalId:
    """A valid fødselsnummer (mod-11 check digits) for the n-th bench patient."""
    born = _born(n)
    for individual in range(500):
        digits = [int(c) for c in f"{born:%d%m%y}{individual:03d}"]
        k1 = (
            11 - sum(d * w for d, w in zip(digits, (3, 7, 6, 1, 8, 9, 4, 5, 2), strict=True)) % 11
        ) % 11
        if k1 == 10:
            continue
        digits.append(k1)
        k2 = (
            11
            - sum(d * w for d, w in zip(digits, (5, 4, 3, 2, 7, 6, 5, 4, 3, 2), strict=True)) % 11
        ) % 11
        if k2 != 10:
            return NationalId("".join(map(str, digits)) + str(k2))
    raise ValueError(f"no national id for bench patient {n}")


def _call(who: Actor, at: datetime = NOW, **fields: Any) -> Call:
    return Call(actor=who, at=at, **fields)


def _order(n: int, varenr: str) -> PrescribeOrder:
    unit = "kapsel" if varenr == "090861" else "tablett"
    times = (TIMES[n % 4], TIMES[(n + 2) % 4])
    return PrescribeOrder(
        entry_id=uuid.uuid4(),
        drug=DrugOrder(varenr=varenr),
        use=Use.REGULAR,
        dosage=Dosage(
            use=Use.REGULAR,
            fixed=tuple(
                FixedDose(amount=Quantity(value=1, unit=unit), time_of_day=t) for t in times
            ),
        ),
        start=NOW.date(),
        multidose=True,
        terms=PrescriptionTerms(
            prescription_id=uuid.uuid4(), quantity=PrescribedQuantity(packages=1), repeats=3
        ),
    )


def _prescribe(engine: Engine, patient_id: uuid.UUID, order: PrescribeOrder, version: int) -> int:
    try:
        return prescribe(engine, patient_id, order, _call(GP), based_on=version).list_version
    except OverrideRequired as needed:
        overrides = {a.key: "bench: reviewed" for a in needed.alerts}
        return prescribe(
            engine, patient_id, order, _call(GP, overrides=overrides), based_on=version
        ).list_version


def _set_up_patient(engine: Engine, n: int) -> tuple[uuid.UUID, uuid.UUID]:
    patient = Patient(
        id=uuid.uuid4(),
        national_id=_national_id(n),
        given_name="Bench",
        family_name=f"Pasient {n}",
        birth_date=_born(n),
    )
    register_patient(engine, patient, _call(GP))
    multidose.set_responsibility(
        engine,
        patient.id,
        multidose.ResponsibilityOrder(
            doctor=GP, pharmacy=PHARMACIST.organisation, valid_from=NOW.date()
        ),
        _call(GP),
    )
    version = 0
    for i, varenr in enumerate(VARENR):
        version = _prescribe(engine, patient.id, _order(i, varenr), version)
    period_id = uuid.uuid4()
    multidose.open_packing_period(
        engine,
        patient.id,
        multidose.PeriodOrder(period_id=period_id, first_day=FIRST_DAY, order_deadline=DEADLINE),
        _call(PHARMACIST),
    )
    multidose.take_production_plan(engine, patient.id, period_id, _call(PHARMACIST))
    return patient.id, period_id


def _report(plan: multidose.ProductionPlan) -> PackReport:
    """The plan as packed, with one substitution and one line left out."""
    bags = []
    for i, bag in enumerate(plan.bags):
        lines = [
            PackedLine(varenr=line.varenr or "", quantity=line.quantity, entry_id=line.entry_id)
            for line in bag.lines
        ]
        if i == 3:
            lines = lines[1:]
        if i == 4:  # the second day's morning bag holds simvastatin
            lines = [
                line.model_copy(update={"varenr": SUBSTITUTE[1], "entry_id": None})
                if line.varenr == SUBSTITUTE[0]
                else line
                for line in lines
            ]
        bags.append(PackedBag(day=bag.day, intake=bag.intake, lines=tuple(lines)))
    return PackReport(report_id=uuid.uuid4(), period_id=plan.period_id, bags=tuple(bags))


def measure_reconciliation(db_url: str, patients: int = 100, runs: int = 5) -> dict[str, Any]:
    """Set up ``patients`` multidose patients in the database at ``db_url`` (migrated here,
    demo catalogue imported) and time the reconciliation of the whole ward's 14-day report
    ``runs`` times. Returns the figures (seconds; median is the one to compare with the
    target)."""
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        import_catalogue(engine, DEMO)
        started = time.perf_counter()
        ward = [_set_up_patient(engine, n) for n in range(patients)]
        set_up = time.perf_counter() - started
        with engine.connect() as conn:
            plans = [multidose.plan_of(conn, p, period) for p, period in ward]
        lines = sum(len(line.lines) for plan in plans for line in plan.bags)
        seconds = []
        counts: dict[str, int] = {}
        for _ in range(runs):
            reports = [_report(plan) for plan in plans]
            started = time.perf_counter()
            for (patient_id, _period), report in zip(ward, reports, strict=True):
                result = multidose.reconcile_packing(
                    engine, patient_id, report, _call(PHARMACIST, at=REPORTED)
                )
                for key, value in result.response["counts"].items():
                    counts[key] = counts.get(key, 0) + value
            seconds.append(time.perf_counter() - started)
    finally:
        engine.dispose()
    median = statistics.median(seconds)
    return {
        "dialect": make_url(normalise_url(db_url)).get_backend_name(),
        "patients": patients,
        "entries_per_patient": len(VARENR),
        "intake_times": len(TIMES),
        "period_days": 14,
        "planned_lines_per_run": lines,
        "runs": runs,
        "seconds_per_run": [round(s, 3) for s in seconds],
        "median_seconds": round(median, 3),
        "median_ms_per_patient": round(1000 * median / patients, 2),
        "target_seconds": TARGET_SECONDS,
        "meets_target": median <= TARGET_SECONDS,
        "line_classes_over_all_runs": dict(sorted(counts.items())),
        "set_up_seconds": round(set_up, 1),
    }


def _fresh_postgres(url: str) -> tuple[str, Any]:
    admin_url = normalise_url(url)
    name = f"medloop_bench_md_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--db-url",
        help="database to use (default: fresh SQLite, and "
        "PostgreSQL when MEDLOOP_BENCH_POSTGRES_URL is set)",
    )
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    if args.db_url:
        figures["given"] = measure_reconciliation(args.db_url, args.patients, args.runs)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            figures["sqlite"] = measure_reconciliation(
                f"sqlite:///{Path(tmp) / 'bench.db'}", args.patients, args.runs
            )
        server = os.environ.get("MEDLOOP_BENCH_POSTGRES_URL") or os.environ.get(
            "MEDLOOP_TEST_POSTGRES_URL"
        )
        if server:
            url, drop = _fresh_postgres(server)
            try:
                figures["postgresql"] = measure_reconciliation(url, args.patients, args.runs)
            finally:
                drop()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
