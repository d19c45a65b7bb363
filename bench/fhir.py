"""Benchmark: the FHIR R4 API (issue #18).

Builds a database (the demo catalogue; registered patients, each search patient with 20 list
entries), starts ``medloop serve`` (a subprocess on a port of ``--port`` to ``--port`` + 99,
9400 by default) and measures with ``--clients`` threads (one keep-alive ``http.client``
connection each, closed loop, no think time, for ``--seconds``):

- ``search``: ``GET /fhir/MedicationStatement?patient=…&_include=MedicationStatement:medication``
  of a patient with 20 statements (each client its own patient);
- ``create``: ``POST /fhir/MedicationRequest`` with checks (If-Match; each client takes
  patients from one supply shared by every phase, ``PER_PATIENT`` creates each, a drug from a
  rotation);

at 1 and 16 clients, p50/p99 in ms; each phase with the CPU it cost per request (the
server's processes, the clients, PostgreSQL's backends: ``cpu_ms_per_request``).
Then ``$export`` of ``--export-rows`` MedicationAdministrations (inserted directly as
chartings of ``--export-patients`` patients, the bench's fixture, not through commands) run as
the ``fhir-export`` job in a subprocess of its own: wall time, resources/s and the
subprocess's peak RSS.

Targets: search p99 <= 30 ms at 16 clients, create p99 <= 60 ms, export >= 5 000 resources/s
in <= 200 MB. Prints one JSON object per database (SQLite; PostgreSQL when
MEDLOOP_TEST_POSTGRES_URL names a server, or on a private cluster of its own with
``--private-postgres PORT``: ``scripts/pg-bench``, as ``bench/api.py`` runs it, so that no other
session's CREATE/DROP DATABASE forces a checkpoint in the middle of a phase). Client and
server share a noisy 2-core machine: the latencies at 16 clients are those of a saturated
server (closed loop).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# bench/ goes after site-packages: bench/fhir.py must not shadow the fhir.resources package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy.engine import make_url  # noqa: E402

from bench.api import (  # noqa: E402
    _cpu_seconds,
    _cpu_seconds_of_tree,
    _patients,
    _wait_until_serving,
    private_postgres,
    start_server,
)
from fest.loader import import_catalogue  # noqa: E402
from interactions.dosage import Quantity, Use  # noqa: E402
from medloop.api.auth import issue_token  # noqa: E402
from medloop.demo import GP  # noqa: E402
from medloop.domain.administration import Administration, Outcome  # noqa: E402
from medloop.domain.prescription import PrescribedQuantity  # noqa: E402
from medloop.loop import prescribe  # noqa: E402
from medloop.loop.catalogue import DrugOrder  # noqa: E402
from medloop.loop.errors import OverrideRequired  # noqa: E402
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms  # noqa: E402
from medloop.loop.runner import Call  # noqa: E402
from medloop.store.administration import administration, administration_values  # noqa: E402
from medloop.store.db import make_engine  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402

DEMO = REPO / "seeds" / "demo-fest.xml"
TARGETS = {
    "search_p99_ms_16_clients": 30.0,
    "create_p99_ms": 60.0,
    "export_resources_per_s": 5000,
    "export_peak_mb": 200,
}
ROTATION = ("090436", "090283", "090334", "090861", "090606", "090555", "090997", "090402")
NO_VARENR = "http://dmp.no/fhir/NamingSystem/fest-varenummer"
ENTRIES = 20


_USED: set[int] = set()


PORTS = 100
"""How many ports from ``--port`` on a server may take."""


def _port(first: int = 9400) -> int:
    """A free port of ``first`` to ``first`` + 99 not used by an earlier server of this run
    (one stopping may still hold its port a moment). Benches run side by side pick from the
    same ports: give each its own ``--port`` (a server that lost the race for its port leaves
    the bench talking to another's server; the warm-up's check stops that run)."""
    for port in range(first, first + PORTS):
        if port in _USED:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            _USED.add(port)
            return port
    raise RuntimeError(f"no free port in {first}-{first + PORTS - 1}")


def _entries(engine, patient_id: str, count: int) -> int:
    """``count`` entries on the patient's list (overrides given where an alert asks for one);
    the list version after them."""
    version = 0
    for n in range(count):
        order = PrescribeOrder(
            entry_id=uuid.uuid4(),
            drug=DrugOrder(varenr=ROTATION[n % len(ROTATION)]),
            use=Use.REGULAR,
            start=datetime.now(UTC).date(),
            terms=PrescriptionTerms(
                prescription_id=uuid.uuid4(), quantity=PrescribedQuantity(packages=1)
            ),
        )
        call = Call(actor=GP, at=datetime.now(UTC))
        try:
            result = prescribe.prescribe(
                engine, uuid.UUID(patient_id), order, call, based_on=version
            )
        except OverrideRequired as refused:
            call = Call(
                actor=GP,
                at=datetime.now(UTC),
                overrides=dict.fromkeys(refused.context["alert_keys"], "bench"),
            )
            result = prescribe.prescribe(
                engine, uuid.UUID(patient_id), order, call, based_on=version
            )
        version = result.list_version
    return version


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _summary(values: list[float], seconds: float) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "per_s": round(len(values) / seconds, 1),
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(_percentile(values, 0.99), 2),
    }


def _closed_loop(
    clients: int, seconds: float, work, rate: float | None = None, processes: int = 1
) -> dict:
    """``work(client index, connection) -> None`` repeated by each client until time is up:
    back to back (closed loop), or with ``rate`` the clients together offer ``rate``
    requests/s, each on its own staggered schedule, a latency counted from when the request
    was due (open loop: a server that falls behind is charged for the queueing). The client
    threads run in ``processes`` forked processes (one GIL each). Reported with the figures:
    the CPU per request of the server's processes, of the clients' processes and of every
    PostgreSQL backend of the run's database (0 on SQLite)."""
    begin = time.perf_counter()
    deadline = begin + seconds
    interval = None if rate is None else clients / rate

    def client(index: int, latencies: list[float], errors: list[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        due = begin + (0 if interval is None else interval * index / clients)
        try:
            while time.perf_counter() < deadline:
                if interval is not None:
                    pause = due - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                started = time.perf_counter() if interval is None else due
                work(index, conn)
                latencies.append((time.perf_counter() - started) * 1000)
                if interval is not None:
                    due += interval
        except Exception as error:  # noqa: BLE001 - reported, the bench goes on
            errors.append(f"{type(error).__name__}: {error}")
        finally:
            conn.close()

    def drive(indices: list[int]) -> tuple[list[float], list[str], float]:
        cpu = time.process_time()
        latencies: list[list[float]] = [[] for _ in indices]
        errors: list[str] = []
        threads = [
            threading.Thread(target=client, args=(i, latencies[n], errors))
            for n, i in enumerate(indices)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [v for values in latencies for v in values], errors, time.process_time() - cpu

    server_cpu = _cpu_seconds_of_tree(SERVER_PID)
    postgres_cpu = _postgres_cpu()
    started = time.perf_counter()
    if processes <= 1:
        latencies, errors, client_cpu = drive(list(range(clients)))
    else:
        context = multiprocessing.get_context("fork")
        results = context.Queue()

        def child(indices: list[int]) -> None:
            results.put(drive(indices))

        forked = [
            context.Process(target=child, args=(list(range(k, clients, processes)),))
            for k in range(processes)
        ]
        for process in forked:
            process.start()
        driven = [results.get() for _ in forked]
        for process in forked:
            process.join()
        latencies = [v for found in driven for v in found[0]]
        errors = [e for found in driven for e in found[1]]
        client_cpu = sum(found[2] for found in driven)
    elapsed = time.perf_counter() - started
    found = _summary(latencies, elapsed)
    cpu = {
        "server": _cpu_seconds_of_tree(SERVER_PID) - server_cpu,
        "clients": client_cpu,
        "postgres": sum(v - postgres_cpu.get(k, 0.0) for k, v in _postgres_cpu().items()),
    }
    found["cpu_ms_per_request"] = {
        k: round(v * 1000 / max(len(latencies), 1), 3) for k, v in cpu.items()
    }
    found["load_average"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if errors:
        found["errors"] = errors[:3]
    return found


PORT = 0
SERVER_PID = 0
POSTGRES = ""
"""The database of this run's server on PostgreSQL (its backends' CPU is counted), else ""."""


def _postgres_cpu() -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to this run's database, by pid (none
    on SQLite runs; other clusters and databases on the machine are not counted, nor the
    cluster's shared background processes): a backend that ends during a phase drops out."""
    if not POSTGRES:
        return {}
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() != "postgres":
                    continue
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if f" {POSTGRES} " in title:
                    found[int(entry.name)] = _cpu_seconds(int(entry.name))
            except OSError:
                continue
    return found


class _SkipHttp(Exception):
    """No search or create phase asked for (``--phases export``): no HTTP."""


def _request(
    conn, method: str, path: str, token: str, body=None, **headers
) -> tuple[int, dict, bytes]:
    payload = None if body is None else json.dumps(body).encode()
    conn.request(
        method,
        path,
        body=payload,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/fhir+json",
            **({"Content-Type": "application/fhir+json"} if payload else {}),
            **headers,
        },
    )
    response = conn.getresponse()
    data = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def _search_phase(
    patients: list[str],
    token: str,
    clients: int,
    seconds: float,
    rate: float | None = None,
    *,
    rotate: bool = False,
    processes: int = 1,
) -> dict:
    """Each client searches its own patient; with ``rotate`` (the warm-up) every patient in
    turn, so that each worker process has read every patient once (a worker's first read of
    a patient loads the whole state from the tables: ≈ 10 ms of CPU, not the steady state)."""
    turns = dict.fromkeys(range(clients), 0)

    def work(index: int, conn) -> None:
        patient = patients[index]
        if rotate:
            turns[index] += 1
            patient = patients[(index + turns[index]) % len(patients)]
        status, _, data = _request(
            conn,
            "GET",
            f"/fhir/MedicationStatement?patient=Patient/{patient}"
            "&_include=MedicationStatement:medication",
            token,
        )
        if status != 200 or data.count(b'"MedicationStatement"') < ENTRIES:
            raise RuntimeError(f"search answered {status}")

    return _closed_loop(clients, seconds, work, rate, processes)


PER_PATIENT = 8
"""Creates per patient before a client moves to its next one (lists stay list-sized)."""

CREATES_PER_S = 400
"""Creates/s a supply of patients is sized for by default (the fastest phase measured, SQLite
closed loop at 16 clients, did ~340/s)."""


class Supply:
    """The patients the create phases prescribe for, shared by every client of a run: a
    client takes a patient, prescribes ``PER_PATIENT`` times for it, then takes the next
    (a patient is one client's at a time: its list version goes in ``If-Match``). A patient
    still short of ``PER_PATIENT`` when a phase ends goes back for the next phase. Running
    dry raises (reported with the phase's errors) instead of ending a phase quietly."""

    def __init__(self, patients: list[str]) -> None:
        self._free = list(reversed(patients))
        self._lock = threading.Lock()
        self.size = len(patients)
        self.versions = dict.fromkeys(patients, 0)

    def take(self) -> str:
        with self._lock:
            if not self._free:
                raise RuntimeError(
                    f"the supply of {self.size} patients ran dry "
                    f"({self.size * PER_PATIENT} creates): raise --create-patients"
                )
            return self._free.pop()

    def give_back(self, patient: str) -> None:
        with self._lock:
            self._free.append(patient)

    def remaining(self) -> int:
        with self._lock:
            return len(self._free)


def _create_phase(
    supply: Supply,
    token: str,
    clients: int,
    seconds: float,
    rate: float | None = None,
) -> dict:
    """Each client prescribes for patients taken from ``supply``, ``PER_PATIENT`` each."""
    held: dict[int, str] = {}
    versions = supply.versions

    def work(index: int, conn) -> None:
        patient = held.get(index)
        if patient is None or versions[patient] >= PER_PATIENT:
            patient = held[index] = supply.take()
        n = versions[patient]
        body = {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {
                "coding": [{"system": NO_VARENR, "code": ROTATION[n % len(ROTATION)]}]
            },
            "subject": {"reference": f"Patient/{patient}"},
            "dosageInstruction": [
                {
                    "text": "1 tablett om morgenen",
                    "timing": {
                        "repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "when": ["MORN"]}
                    },
                    "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablett"}}],
                }
            ],
            "dispenseRequest": {"quantity": {"value": 1, "unit": "pakning"}},
            "extension": [
                {
                    "url": "https://medloop.dev/fhir/StructureDefinition/override-reason",
                    "valueString": "bench: duplicates are intended",
                }
            ],
        }
        status, headers, data = _request(
            conn,
            "POST",
            "/fhir/MedicationRequest",
            token,
            body,
            **{"If-Match": f'"{versions[patient]}"', "Prefer": "return=OperationOutcome"},
        )
        if status != 201:
            raise RuntimeError(f"create answered {status}: {data[:300]!r}")
        versions[patient] = int(headers["x-list-version"])

    found = _closed_loop(clients, seconds, work, rate)
    for patient in held.values():
        if versions[patient] < PER_PATIENT:
            supply.give_back(patient)
    found["patients_left"] = supply.remaining()
    return found


EXPORT_CHILD = """
import json, resource, sys, time
from datetime import UTC, datetime
from pathlib import Path
from medloop.store.db import make_engine
from medloop.fhir.export import run_pending
engine = make_engine(sys.argv[1])
started = time.perf_counter()
found = run_pending(engine, datetime.now(UTC), Path(sys.argv[2]))
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, **found}))
"""


def _export_phase(engine, url: str, rows: int, patients: list[str], workdir: Path) -> dict:
    """``rows`` chartings over ``patients`` (each given from its first entry), then a system
    export of MedicationAdministrations run in a child process."""
    from medloop import queries
    from medloop.loop import exports

    per_patient = -(-rows // len(patients))
    at = datetime.now(UTC) - timedelta(days=30)
    made = 0
    for patient in patients:
        with engine.connect() as conn:
            entry = queries.patient_state(conn, uuid.UUID(patient)).medication_list.entries[0]
        batch = []
        for n in range(min(per_patient, rows - made)):
            moment = at + timedelta(minutes=n)
            batch.append(
                administration_values(
                    Administration(
                        id=uuid.uuid4(),
                        patient_id=uuid.UUID(patient),
                        entry_id=entry.id,
                        outcome=Outcome.GIVEN,
                        at=moment,
                        recorded_at=moment,
                        dose=Quantity(value=1, unit="tablett"),
                    )
                )
            )
        with engine.begin() as conn:
            for start in range(0, len(batch), 5000):
                conn.execute(administration.insert(), batch[start : start + 5000])
        made += len(batch)
    export = exports.Export(
        id=uuid.uuid4(),
        requested_at=datetime.now(UTC),
        requested_by={"actor": "bench", "role": "exporter", "organisation": "bench"},
        kind="system",
        group_id=None,
        types=("MedicationAdministration",),
        since=None,
        request_url="/fhir/$export?_type=MedicationAdministration",
        status=exports.PENDING,
        finished_at=None,
        output=None,
        error=None,
    )
    exports.kick_off(engine, export)
    child = subprocess.run(
        [sys.executable, "-c", EXPORT_CHILD, url, str(workdir / "exports")],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    found = json.loads(child.stdout.strip().splitlines()[-1])
    found["administrations"] = made
    found["resources_per_s"] = round(found["resources"] / found["seconds"], 1)
    found["seconds"] = round(found["seconds"], 2)
    found["peak_rss_mb"] = round(found["peak_rss_mb"], 1)
    return found


def _analyze(engine) -> None:
    """PostgreSQL's statistics of the loaded database, as a database in use has them (pgbench
    analyzes after loading too). Without them every prepared statement is planned on a database
    autovacuum has not analyzed yet (it visits a new database within a minute, about when a run
    ends): the audit append's tail lookup then scans its whole chain (bench/RESULTS.md, issue #18,
    session 9)."""
    from sqlalchemy import text

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def _started(phase: str) -> None:
    """A line on stderr as a phase starts (with the server's pid: for a profiler to attach)."""
    print(f"{datetime.now(UTC):%H:%M:%S} {phase} server={SERVER_PID}", file=sys.stderr, flush=True)


def run(url: str, args: argparse.Namespace, workdir: Path) -> dict:
    global PORT, SERVER_PID, POSTGRES
    engine = make_engine(url)
    upgrade(engine)
    import_catalogue(engine, DEMO, allow_shrink=True, allow_older=True)
    clients = max(args.clients)
    # The create phases (and their warm-up second) draw on one supply of patients.
    seconds = (args.seconds * (len(args.clients) + (1 if args.create_rate else 0)) + 1) * (
        "create" in args.phases
    )
    creating = args.create_patients or -(-int(CREATES_PER_S * seconds) // PER_PATIENT)
    registered = [p.id for p in _patients(engine, clients + creating + args.export_patients)]
    search_patients = registered[:clients]
    create_patients = registered[clients : clients + creating]
    export_patients = registered[clients + creating :]
    supply = Supply(create_patients)
    for patient in search_patients + export_patients:
        _entries(engine, patient, ENTRIES if patient in search_patients else 1)
    if url.startswith("postgresql"):
        _analyze(engine)
    PORT = _port(args.port)
    env = {
        **os.environ,
        "MEDLOOP_ALLOW_DEV_KEYS": "1",
        "MEDLOOP_DATABASE_URL": url,
        "MEDLOOP_SCHEDULER": "off",
        "MEDLOOP_ACCESS_LOG": "off",
    }
    server = start_server(env, PORT, args.workers if url.startswith("postgresql") else 1)
    SERVER_PID = server.pid
    POSTGRES = make_url(url).database if url.startswith("postgresql") else ""
    token = issue_token(
        "gp",
        GP.personnel.hpr_number,
        GP.organisation.id,
        scope="user/*.rs user/MedicationRequest.c",
        lifetime=timedelta(hours=1),
    )
    result: dict = {}
    try:
        if "search" not in args.phases and "create" not in args.phases:
            raise _SkipHttp
        _wait_until_serving(PORT, server)
        # Warm-up at full concurrency, so that every worker process has built its catalogue
        # knowledge, opened its connections and read every search patient before anything is
        # measured.
        warm = _search_phase(search_patients, token, clients, 2.0, rotate=True)
        if warm.get("errors") or server.poll() is not None:
            raise RuntimeError(
                f"the warm-up failed (the server {'exited' if server.poll() is not None else 'ran'}"
                f", port {PORT}): {warm.get('errors')}"
            )
        if "create" in args.phases:
            _create_phase(supply, token, clients, 1.0)
        for count in args.clients:
            if "search" in args.phases:
                _started(f"search_{count}_clients")
                result[f"search_{count}_clients"] = _search_phase(
                    search_patients,
                    token,
                    count,
                    args.seconds,
                    processes=min(count, args.client_processes),
                )
            if "create" in args.phases:
                _started(f"create_{count}_clients")
                result[f"create_{count}_clients"] = _create_phase(
                    supply, token, count, args.seconds
                )
        if args.search_rate and "search" in args.phases:
            _started(f"search_{clients}_clients_paced")
            result[f"search_{clients}_clients_paced_{args.search_rate:g}_per_s"] = _search_phase(
                search_patients,
                token,
                clients,
                args.seconds,
                args.search_rate,
                processes=args.client_processes,
            )
        if args.create_rate and "create" in args.phases:
            _started(f"create_{clients}_clients_paced")
            result[f"create_{clients}_clients_paced_{args.create_rate:g}_per_s"] = _create_phase(
                supply, token, clients, args.seconds, args.create_rate
            )
    except _SkipHttp:
        pass
    finally:
        server.terminate()
        server.wait(timeout=30)
    if "export" in args.phases:
        result["export"] = _export_phase(engine, url, args.export_rows, export_patients, workdir)
    engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="server processes on PostgreSQL")
    parser.add_argument(
        "--port",
        type=int,
        default=9400,
        help=f"the first port a server may take (it takes one of the {PORTS} from there)",
    )
    parser.add_argument(
        "--client-processes",
        type=int,
        default=1,
        help="processes the search phases' client threads are spread over (one GIL each; "
        "the create phases share one supply of patients and keep to this process)",
    )
    parser.add_argument(
        "--create-patients",
        type=int,
        default=0,
        help="patients the create phases share (default: enough for "
        f"{CREATES_PER_S} creates/s in every create phase)",
    )
    parser.add_argument("--export-rows", type=int, default=100_000)
    parser.add_argument("--export-patients", type=int, default=50)
    parser.add_argument("--postgres-only", action="store_true")
    parser.add_argument(
        "--phases",
        nargs="+",
        choices=("search", "create", "export"),
        default=["search", "create", "export"],
        help="what to measure",
    )
    parser.add_argument(
        "--search-rate", type=float, default=100.0, help="paced search: requests/s offered"
    )
    parser.add_argument(
        "--create-rate", type=float, default=30.0, help="paced create: requests/s offered"
    )
    parser.add_argument(
        "--private-postgres",
        type=int,
        metavar="PORT",
        help="run the PostgreSQL figures on a private cluster on PORT (scripts/pg-bench, "
        "started and removed here, as bench/api.py does) instead of "
        "MEDLOOP_TEST_POSTGRES_URL's server: other databases' CREATE/DROP DATABASE on a "
        "shared server force immediate checkpoints",
    )
    args = parser.parse_args()
    if args.private_postgres:
        with private_postgres(args.private_postgres) as url:
            os.environ["MEDLOOP_TEST_POSTGRES_URL"] = url
            _main(args)
        return
    _main(args)


def _main(args: argparse.Namespace) -> None:
    report: dict = {"targets": TARGETS}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.postgres_only:
            report["sqlite"] = run(f"sqlite:///{workdir / 'bench.db'}", args, workdir)
        pg = os.environ.get("MEDLOOP_TEST_POSTGRES_URL")
        if pg:
            report["postgresql"] = _on_fresh_postgres(pg, args, workdir)
            report["postgresql"]["cluster"] = (
                f"private, port {args.private_postgres}"
                if args.private_postgres
                else f"MEDLOOP_TEST_POSTGRES_URL's, port {make_url(pg).port}"
            )
    print(json.dumps(report, indent=2))


def _on_fresh_postgres(url: str, args: argparse.Namespace, workdir: Path) -> dict:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"bench_fhir_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        return run(
            make_url(url).set(database=name).render_as_string(hide_password=False), args, workdir
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
