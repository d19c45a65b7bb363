"""Benchmark: a nursing-home ward (issue #5).

A 60-resident ward on the demo catalogue, each resident with 8 regular entries spread over 4
intake times (morning, midday, evening, night; two slots per entry, so 16 doses a day and 4 in
each round). Measures:
  - each resident's prescriptions, made after the admission, as p50/p99 in ms
    (``prescribe_admitted``: since #15 a prescription for an admitted resident plans its
    doses 48 h ahead in its own transaction);
  - the time to generate the next 48 h of planned doses for the whole ward (``roll_forward`` at
    48 h after set-up, when the commands' own plans run out; one transaction per resident,
    audited), and
  - the 08:00 round: every resident's morning doses charted as given with a pack scan, each a
    full ``chart`` command (admission and window checks, scan resolution, witness policy,
    decision support on the last 24 h, audit), as p50/p99 in ms;
  - the multidose reconciliation figure from bench/ward_reconcile.py when that file exists.
SQLite always; PostgreSQL too when MEDLOOP_BENCH_POSTGRES_URL (or MEDLOOP_TEST_POSTGRES_URL)
names a server. Prints one JSON object. Targets: 48 h plan <= 2 s; charting p99 <= 25 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fest.loader import import_catalogue
from interactions.dosage import Dosage, FixedDose, Quantity, TimeOfDay, Use
from medloop.domain.administration import ChartRequest, Outcome
from medloop.domain.codes import OrganisationKind, PersonnelRole
from medloop.domain.patient import Patient
from medloop.domain.personnel import Actor, HealthPersonnel, Organisation
from medloop.domain.prescription import PrescribedQuantity
from medloop.loop import administration
from medloop.loop.catalogue import DrugOrder
from medloop.loop.errors import OverrideRequired
from medloop.loop.patients import register_patient
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms, prescribe
from medloop.loop.runner import Call
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade

BENCH = Path(__file__).resolve().parent
# bench/ goes after site-packages: bench/fhir.py must not shadow the fhir.resources package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]
from loop import national_id, percentiles, postgres_database  # noqa: E402  (sibling bench)

DEMO = BENCH.parent / "seeds" / "demo-fest.xml"
RESIDENTS = 60
SETUP_AT = datetime(2026, 11, 19, 20, 0, tzinfo=UTC)  # 21:00 in Oslo
PLAN_AT = SETUP_AT + timedelta(hours=48)  # the commands planned up to here: 48 h new
ROUND_AT = datetime(2026, 11, 20, 7, 5, tzinfo=UTC)  # 08:05 in Oslo
SLOTS = (TimeOfDay.MORNING, TimeOfDay.MIDDAY, TimeOfDay.EVENING, TimeOfDay.NIGHT)
# (varenr, EAN): regular nursing-home drugs of the demo catalogue without avoid-tier pairs.
DRUGS = (
    ("090436", "7046260904361"),  # simvastatin 20 mg
    ("090283", "7046260902831"),  # metoprolol depot 50 mg
    ("090334", "7046260903340"),  # amlodipin 5 mg
    ("090402", "7046260904026"),  # furosemid 40 mg
    ("090606", "7046260906068"),  # levotyroksin 50 mikrog
    ("090861", "7046260908611"),  # omeprazol 20 mg
    ("090997", "7046260909977"),  # allopurinol 100 mg
    ("090555", "7046260905559"),  # metformin 500 mg
)
TARGETS = {"plan_48h_seconds": 2.0, "chart_p99_ms": 25.0}

HOME = Organisation(id="8012345", name="Bench sykehjem", kind=OrganisationKind.NURSING_HOME)
GP = Actor(
    personnel=HealthPersonnel(hpr_number="431002737", name="Bench Lege", role=PersonnelRole.DOCTOR),
    organisation=Organisation(
        id="8095068", name="Bench legekontor", kind=OrganisationKind.GP_PRACTICE
    ),
)
NURSE = Actor(
    personnel=HealthPersonnel(
        hpr_number="1234567", name="Bench Sykepleier", role=PersonnelRole.NURSE
    ),
    organisation=HOME,
)


def dosage(index: int) -> Dosage:
    """Entry ``index`` takes one tablet in two of the four slots, so each slot has 4 doses."""
    slots = (SLOTS[index % 4], SLOTS[(index + 2) % 4])
    return Dosage(
        use=Use.REGULAR,
        fixed=tuple(
            FixedDose(amount=Quantity(value=1, unit="tablett"), time_of_day=s) for s in slots
        ),
    )


def prescribe_overriding(engine, patient_id, order: PrescribeOrder, version: int) -> int:
    try:
        result = prescribe(engine, patient_id, order, Call(actor=GP, at=SETUP_AT), based_on=version)
    except OverrideRequired as refused:
        overrides = {a.key: "benefit outweighs risk, monitored" for a in refused.alerts}
        result = prescribe(
            engine,
            patient_id,
            order,
            Call(actor=GP, at=SETUP_AT, overrides=overrides),
            based_on=version,
        )
    return result.list_version


def ward(
    url: str,
) -> tuple[object, uuid.UUID, dict[uuid.UUID, dict[uuid.UUID, str]], list[float]]:
    """The ward with its residents admitted and their lists prescribed; returns the engine, the
    ward id, per resident the EAN of each entry, and each prescription's time in ms."""
    engine = make_engine(url)
    upgrade(engine)
    import_catalogue(engine, DEMO)
    ward_id = uuid.uuid4()
    administration.create_ward(
        engine,
        administration.WardOrder(ward_id=ward_id, name="Bench"),
        Call(actor=NURSE, at=SETUP_AT),
    )
    residents: dict[uuid.UUID, dict[uuid.UUID, str]] = {}
    prescribing: list[float] = []
    for n in range(RESIDENTS):
        nid = national_id(5000 + n)
        patient = Patient(
            id=uuid.uuid4(),
            national_id=nid,
            given_name="Bench",
            family_name=f"Beboer{n}",
            birth_date=nid.birth_date,
        )
        register_patient(engine, patient, Call(actor=GP, at=SETUP_AT))
        administration.admit(
            engine,
            patient.id,
            administration.AdmissionOrder(
                admission_id=uuid.uuid4(),
                ward_id=ward_id,
                admitted_at=SETUP_AT,
                reason="Langtidsopphold",
                decision_reference="Bench 2026/1",
            ),
            Call(actor=NURSE, at=SETUP_AT),
        )
        version = 0
        eans: dict[uuid.UUID, str] = {}
        for index, (varenr, ean) in enumerate(DRUGS):
            order = PrescribeOrder(
                entry_id=uuid.uuid4(),
                drug=DrugOrder(varenr=varenr),
                use=Use.REGULAR,
                dosage=dosage(index),
                start=SETUP_AT.date(),
                terms=PrescriptionTerms(
                    prescription_id=uuid.uuid4(), quantity=PrescribedQuantity(packages=1)
                ),
            )
            began = time.perf_counter()
            version = prescribe_overriding(engine, patient.id, order, version)
            prescribing.append((time.perf_counter() - began) * 1000)
            eans[order.entry_id] = ean
        residents[patient.id] = eans
    return engine, ward_id, residents, prescribing


def chart_round(
    engine, ward_id: uuid.UUID, residents: dict[uuid.UUID, dict[uuid.UUID, str]], hour: int, at
) -> list[float]:
    """Every resident's doses of the ``hour`` o'clock round (Oslo) charted as given at ``at``
    with a pack scan, each a full ``chart`` command; returns each command's time in ms."""
    with engine.connect() as conn:
        chart = administration.ward_chart(conn, ward_id, at.date(), at)
    samples: list[float] = []
    for patient in chart.patients:
        for line in patient.doses:
            if line.local_time.hour != hour:
                continue
            request = ChartRequest(
                administration_id=uuid.uuid4(),
                entry_id=line.entry_id,
                planned_dose_id=line.planned_dose_id,
                outcome=Outcome.GIVEN,
                given_at=at,
                dose=line.amount,
                scan=residents[patient.patient_id][line.entry_id],
            )
            began = time.perf_counter()
            administration.chart(
                engine,
                patient.patient_id,
                request,
                Call(actor=NURSE, at=at, idempotency_key=str(uuid.uuid4())),
            )
            samples.append((time.perf_counter() - began) * 1000)
    return samples


def measure(url: str) -> dict[str, object]:
    engine, ward_id, residents, prescribing = ward(url)
    started = time.perf_counter()
    planned = administration.roll_forward(engine, PLAN_AT)
    plan_seconds = time.perf_counter() - started
    samples = chart_round(engine, ward_id, residents, 8, ROUND_AT)
    engine.dispose()
    return {
        "residents": RESIDENTS,
        "entries_each": len(DRUGS),
        "prescribe_admitted": percentiles(prescribing),
        "plan_48h": {"seconds": round(plan_seconds, 3), **planned},
        "chart_0800_round": percentiles(samples),
    }


def reconciliation(url: str) -> dict[str, object] | None:
    """The multidose reconciliation figure, when bench/ward_reconcile.py exists."""
    if not (BENCH / "ward_reconcile.py").exists():
        return None
    from ward_reconcile import measure_reconciliation

    return measure_reconciliation(url, patients=100)


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    figures: dict[str, object] = {"catalogue": DEMO.name, "targets": TARGETS}
    with tempfile.TemporaryDirectory() as tmp:
        figures["sqlite"] = measure(f"sqlite:///{tmp}/ward.db")
        found = reconciliation(f"sqlite:///{tmp}/reconcile.db")
        if found is not None:
            figures["sqlite_reconciliation"] = found
    server = os.environ.get("MEDLOOP_BENCH_POSTGRES_URL") or os.environ.get(
        "MEDLOOP_TEST_POSTGRES_URL"
    )
    if server:
        url, drop = postgres_database(server)
        try:
            figures["postgres"] = measure(url)
        finally:
            drop()
        url, drop = postgres_database(server)
        try:
            found = reconciliation(url)
            if found is not None:
                figures["postgres_reconciliation"] = found
        finally:
            drop()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
