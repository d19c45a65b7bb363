"""Benchmark: commands on the shared list (issue #4).

Imports the scale-1.0 synthetic catalogue (reused from bench/out/ or written), registers
patients, gives each a 20-entry list, then measures over --iterations:
  - prescribe-with-checks (the 21st entry, decision support on the whole list) and
  - dispense (closed-loop checks, interactions re-checked, audit, in one transaction),
each p50/p99 in ms on SQLite and, when MEDLOOP_BENCH_POSTGRES_URL (or
MEDLOOP_TEST_POSTGRES_URL) names a server, on a fresh PostgreSQL database; and commands per
second with --writers concurrent writers on different patients (PostgreSQL).
Alerts that require an override are overridden with a reason on the same call, as a GP would.
Prints one JSON object. Targets: p99 <= 25 ms on SQLite for one command;
>= 300 commands/s with 8 writers on PostgreSQL.
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
from random import Random

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fest.loader import import_catalogue
from interactions.dosage import Use
from medloop import queries
from medloop.catalogue import load_snapshot
from medloop.domain.codes import OrganisationKind, PersonnelRole
from medloop.domain.dispense import DispenseQuantity
from medloop.domain.patient import NationalId, Patient
from medloop.domain.personnel import Actor, HealthPersonnel, Organisation
from medloop.domain.prescription import PrescribedQuantity
from medloop.loop.catalogue import DrugOrder, catalogue_in_force
from medloop.loop.dispense import DispenseOrder, dispense
from medloop.loop.errors import OverrideRequired
from medloop.loop.patients import register_patient
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms, prescribe
from medloop.loop.runner import Call
from medloop.store.db import make_engine, normalise_url
from medloop.store.migrate import upgrade

OUT = Path(__file__).resolve().parent / "out"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
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
    organisation=Organisation(id="8090688", name="Bench apotek", kind=OrganisationKind.PHARMACY),
)
COMMANDS_PER_LIST = 4
"""In the concurrent run each writer spreads its commands over patients, this many each, so
the lists stay near the 20 entries the targets are set for."""
TARGETS = {"sqlite_p99_ms": 25.0, "postgres_commands_per_second_8_writers": 300}


def national_id(n: int) -> NationalId:
    """A valid fødselsnummer for the n-th bench patient (born 1940–1999, mod-11 check digits)."""
    born = date(1940, 1, 1) + timedelta(days=n % 21900)
    for individual in range(n // 21900 * 7, 500):
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
    raise ValueError(f"no valid national id for bench patient {n}")


def order(varenr: str) -> PrescribeOrder:
    return PrescribeOrder(
        entry_id=uuid.uuid4(),
        drug=DrugOrder(varenr=varenr),
        use=Use.REGULAR,
        start=NOW.date(),
        terms=PrescriptionTerms(
            prescription_id=uuid.uuid4(), quantity=PrescribedQuantity(packages=2)
        ),
    )


def prescribe_overriding(engine, patient_id, prescription: PrescribeOrder, version: int):
    """Prescribe; when alerts need an override, repeat the call overriding each with a reason."""
    try:
        return prescribe(engine, patient_id, prescription, Call(actor=GP, at=NOW), based_on=version)
    except OverrideRequired as refused:
        overrides = {a.key: "benefit outweighs risk, monitored" for a in refused.alerts}
        return prescribe(
            engine,
            patient_id,
            prescription,
            Call(actor=GP, at=NOW, overrides=overrides),
            based_on=version,
        )


def dispense_overriding(engine, patient_id, prescription: PrescribeOrder, varenr: str):
    dispensing = DispenseOrder(
        dispense_id=uuid.uuid4(),
        prescription_id=prescription.terms.prescription_id,
        varenr=varenr,
        dispensed_on=NOW.date(),
        quantity=DispenseQuantity(packages=1),
        batch="B1",
        expiry=NOW.date() + timedelta(days=700),
    )
    try:
        return dispense(engine, patient_id, dispensing, Call(actor=PHARMACIST, at=NOW))
    except OverrideRequired as refused:
        overrides = {a.key: "checked with prescriber" for a in refused.alerts}
        return dispense(
            engine, patient_id, dispensing, Call(actor=PHARMACIST, at=NOW, overrides=overrides)
        )


class World:
    """Patients with 20-entry lists on one database."""

    def __init__(self, engine, varenrs: list[str], seed: int) -> None:
        self.engine = engine
        self.varenrs = varenrs
        self.random = Random(seed)
        self.next_person = seed * 1000

    def patient_with_list(self, entries: int) -> tuple[uuid.UUID, int]:
        self.next_person += 1
        nid = national_id(self.next_person)
        patient = Patient(
            id=uuid.uuid4(),
            national_id=nid,
            given_name="Bench",
            family_name=f"Pasient{self.next_person}",
            birth_date=nid.birth_date,
        )
        register_patient(self.engine, patient, Call(actor=GP, at=NOW))
        version = 0
        for varenr in self.random.sample(self.varenrs, entries):
            version = prescribe_overriding(
                self.engine, patient.id, order(varenr), version
            ).list_version
        return patient.id, version


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 2),
        "n": len(ordered),
    }


def single_command_latencies(world: World, iterations: int) -> dict[str, dict[str, float]]:
    prescribing, dispensing = [], []
    for _ in range(iterations):
        patient_id, version = world.patient_with_list(20)
        varenr = world.random.choice(world.varenrs)
        new = order(varenr)
        started = time.perf_counter()
        prescribe_overriding(world.engine, patient_id, new, version)
        prescribing.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        dispense_overriding(world.engine, patient_id, new, varenr)
        dispensing.append((time.perf_counter() - started) * 1000)
    return {"prescribe_with_checks": percentiles(prescribing), "dispense": percentiles(dispensing)}


def _writer(engine, lists, varenrs, start, results) -> None:
    """One writer process: prescribe ``varenrs`` in turn on its own patients (round robin, so
    every list stays near 20 entries)."""
    engine.dispose(close=False)  # the parent's connections are not this process's
    with engine.connect() as conn:
        backends = {conn.execute(text("SELECT pg_backend_pid()")).scalar_one()}
        # Steady state of a patient-affine worker: it has read its patients' lists before
        # (a patient new to a process costs one read of its whole history; see RESULTS.md).
        for patient_id, _ in lists:
            queries.current_list(conn, patient_id, NOW)
    versions = dict(lists)
    start.wait()
    begun, refused = time.perf_counter(), 0
    cpu_before, server_before = time.process_time(), _cpu_seconds(backends)
    for n, varenr in enumerate(varenrs):
        patient_id = lists[n % len(lists)][0]
        new = order(varenr)
        try:
            done = prescribe(
                engine, patient_id, new, Call(actor=GP, at=NOW), based_on=versions[patient_id]
            )
        except OverrideRequired as refusal:
            refused += 1
            overrides = {a.key: "benefit outweighs risk, monitored" for a in refusal.alerts}
            done = prescribe(
                engine,
                patient_id,
                new,
                Call(actor=GP, at=NOW, overrides=overrides),
                based_on=versions[patient_id],
            )
        versions[patient_id] = done.list_version
    ended = time.perf_counter()
    with engine.connect() as conn:
        backends.add(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    results.put(
        (
            begun,
            ended,
            len(varenrs),
            refused,
            time.process_time() - cpu_before,
            _cpu_seconds(backends) - server_before,
        )
    )


def _cpu_seconds(pids) -> float:
    """CPU time (user + system) of the local PostgreSQL backends ``pids``, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def concurrent_throughput(world: World, writers: int, commands_each: int) -> dict[str, float]:
    """``writers`` processes (as a server's workers would be), each writing to patients of its
    own with 20-entry lists.
    Every call counts as a command, including the first call of a prescription that was refused
    for want of an override and then repeated with one."""
    import multiprocessing

    per_writer = max(1, commands_each // COMMANDS_PER_LIST)
    lists = [[world.patient_with_list(20) for _ in range(per_writer)] for _ in range(writers)]
    plans = [
        [world.random.choice(world.varenrs) for _ in range(commands_each)] for _ in range(writers)
    ]
    with world.engine.connect() as conn:
        catalogue_in_force(conn)  # built once here and shared with the forked writers
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=_writer, args=(world.engine, lists[i], plans[i], start, results))
        for i in range(writers)
    ]
    for process in processes:
        process.start()
    time.sleep(1.0)
    start.set()
    finished = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a writer failed with exit code {process.exitcode}")
    begun = min(f[0] for f in finished)
    seconds = max(f[1] for f in finished) - begun
    succeeded = sum(f[2] for f in finished)
    refused = sum(f[3] for f in finished)
    commands = succeeded + refused
    client_cpu = sum(f[4] for f in finished)
    server_cpu = sum(f[5] for f in finished)
    return {
        "writers": writers,
        "writer_kind": "processes",
        "commands": succeeded + refused,
        "of_which_refused_for_override": refused,
        "seconds": round(seconds, 2),
        "commands_per_second": round((succeeded + refused) / seconds, 1),
        "successful_commands_per_second": round(succeeded / seconds, 1),
        # CPU per command, which noise from other work on the machine does not inflate: with
        # two cores, 2000 ms / (client + server) bounds the commands per second.
        "client_cpu_ms_per_command": round(client_cpu * 1000 / commands, 2),
        "server_cpu_ms_per_command": round(server_cpu * 1000 / commands, 2),
        "cpu_bound_commands_per_second_on_2_cores": round(
            2 * commands / (client_cpu + server_cpu), 1
        ),
    }


def catalogue_file() -> Path:
    path = OUT / "synth-scale1.0-seed1.xml"
    if not path.exists():
        from fest.synth import write_synthetic

        OUT.mkdir(exist_ok=True)
        write_synthetic(path, scale=1.0, seed=1)
    return path


def prepared(url: str, catalogue: Path) -> tuple[object, list[str]]:
    engine = make_engine(url)
    upgrade(engine)
    import_catalogue(engine, catalogue)
    with engine.connect() as conn:
        snapshot = load_snapshot(conn)
    counts: dict[str, int] = {}
    for package in snapshot.packages:
        counts[package.varenr] = counts.get(package.varenr, 0) + 1
    varenrs = sorted(v for v, n in counts.items() if n == 1)
    return engine, varenrs


def postgres_database(server_url: str) -> tuple[str, callable]:
    admin = create_engine(normalise_url(server_url), isolation_level="AUTOCOMMIT")
    name = f"medloop_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(normalise_url(server_url)).set(database=name).render_as_string(
        hide_password=False
    ), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--commands-each", type=int, default=40)
    args = parser.parse_args()
    catalogue = catalogue_file()
    figures: dict[str, object] = {"catalogue": catalogue.name, "list_size": 20, "targets": TARGETS}

    with tempfile.TemporaryDirectory() as tmp:
        engine, varenrs = prepared(f"sqlite:///{tmp}/bench.db", catalogue)
        figures["sqlite"] = single_command_latencies(
            World(engine, varenrs, seed=1), args.iterations
        )
        engine.dispose()

    server = os.environ.get("MEDLOOP_BENCH_POSTGRES_URL") or os.environ.get(
        "MEDLOOP_TEST_POSTGRES_URL"
    )
    if server:
        url, drop = postgres_database(server)
        try:
            engine, varenrs = prepared(url, catalogue)
            world = World(engine, varenrs, seed=2)
            figures["postgres"] = single_command_latencies(world, args.iterations)
            figures["postgres_concurrent"] = concurrent_throughput(
                world, args.writers, args.commands_each
            )
            engine.dispose()
        finally:
            drop()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
