"""Benchmark: the HTTP API over loopback (issue #6).

Builds a database (the demo catalogue, or --catalogue FILE; one GP practice and pharmacy;
registered patients for every client and phase), starts ``medloop serve`` (uvicorn, a
subprocess, --workers processes on PostgreSQL) on it and drives it with --clients threads (spread
over --client-processes processes, so that one GIL does not queue the clients), each with one
keep-alive HTTP connection (``http.client``: the load generator shares the machine, so it is kept
light) and patients of its own, through the mixed scenario

  read list (ETag) -> dry-run check -> prescribe with checks (If-Match) -> pharmacy read
  -> dispense (If-Match) -> catalogue search -> patient reads own list

in two phases on the same server, each bounded by --seconds and --iterations per client:

- ``closed_loop``: every client sends its next request as soon as the previous one is
  answered (no think time). This measures the saturation throughput; its latencies are not
  service times: with N clients the mean latency is N / throughput by construction.
- ``paced``: an open loop. The clients together offer --rate requests/s, each on its own fixed
  schedule (rate / clients, staggered); a request's latency is measured from the moment it was
  due to be sent, so a server that falls behind is charged for the queueing it causes (no
  coordinated omission). Reports the achieved requests/s and p50/p99 per endpoint.

Each phase also reports CPU milliseconds per request of the server processes, of this
benchmark's client threads and of every PostgreSQL process on the machine (other work on a
shared machine inflates them less than it inflates latency). Prints one JSON object, for
SQLite and, when MEDLOOP_TEST_POSTGRES_URL names a server, for a fresh PostgreSQL database.
Targets with 16 clients: list read p99 <= 30 ms and prescribe-with-checks p99 <= 60 ms (read on
the paced run at 400 requests/s); >= 400 mixed requests/s on PostgreSQL (closed loop).

Client and server share the machine: on 2 cores the client threads take CPU from the server,
so the figures are a lower bound for a server on its own host.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
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
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fest.loader import import_catalogue
from medloop.api.auth import issue_token
from medloop.demo import GP, PHARMACIST, national_id
from medloop.domain.patient import NationalId, Patient
from medloop.loop.patients import register_patient
from medloop.loop.runner import Call
from medloop.store.db import make_engine, normalise_url
from medloop.store.migrate import upgrade

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "seeds" / "demo-fest.xml"
TARGETS = {"list_read_p99_ms": 30.0, "prescribe_p99_ms": 60.0, "postgres_requests_per_s": 400}
# No pair among these needs an override: the mixed scenario measures the normal path.
ROTATION = (
    "090436",
    "090283",
    "090334",
    "090861",
    "090606",
    "090555",
    "090997",
    "090402",
    "090028",
    "090368",
)
PRESCRIPTIONS_PER_PATIENT = len(ROTATION)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _patients(engine, count: int) -> list[BenchPatient]:
    """``count`` registered patients, each with a token of their own."""
    found = []
    at = datetime.now(UTC)
    for n in range(count):
        birth = date(1930 + n % 60, 1 + n % 12, 1 + n % 28)
        nid = national_id(birth, (n * 7) % 400)
        patient = Patient(
            id=uuid.uuid4(),
            national_id=NationalId(nid),
            given_name="Bench",
            family_name=f"Pasient {n}",
            birth_date=birth,
        )
        try:
            register_patient(engine, patient, Call(actor=GP, at=at))
        except Exception:  # noqa: BLE001 - a repeated synthetic national id: take the next
            continue
        found.append(BenchPatient(str(patient.id), issue_token("patient", nid)))
    return found


@dataclass(frozen=True)
class BenchPatient:
    id: str
    token: str


class Client(threading.Thread):
    """One clinician's terminal: the mixed scenario on its own patients, over one keep-alive
    connection. With ``schedule`` (the moments each request is due, ``time.perf_counter``
    seconds) it waits for each due moment and measures latency from it; without, it sends
    back to back and measures from the send."""

    def __init__(
        self,
        port: int,
        patients: list[BenchPatient],
        deadline: float,
        iterations: int,
        tokens: dict[str, str],
        schedule: Iterator[float] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.port, self.patients, self.deadline = port, patients, deadline
        self.iterations, self.tokens, self.schedule = iterations, tokens, schedule
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.error: str | None = None
        self.http: http.client.HTTPConnection | None = None

    def _due(self, token: str, body, headers) -> tuple[float, dict[str, str], bytes | None]:
        """Wait until this request is due (paced), then its start time (when it was due: no
        coordinated omission), headers and body."""
        due = None if self.schedule is None else next(self.schedule)
        if due is not None:
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        started = time.perf_counter() if due is None else due
        sent = {"Authorization": f"Bearer {token}", **(headers or {})}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        return started, sent, payload

    def _call(
        self, label: str, method: str, path: str, token: str, body=None, headers=None
    ) -> tuple[int, dict[str, str]]:
        started, sent, payload = self._due(token, body, headers)
        assert self.http is not None
        self.http.request(method, path, body=payload, headers=sent)
        response = self.http.getresponse()
        response.read()
        self.timings[label].append((time.perf_counter() - started) * 1000)
        self.statuses[label][response.status] += 1
        return response.status, {"etag": response.getheader("ETag", "")}

    def extra(self) -> dict:
        """What a subclass reports beyond timings and statuses (bench/soak.py)."""
        return {}

    def run(self) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            self._scenario()
        except Exception as error:  # noqa: BLE001 - reported in the output
            self.error = repr(error)
        finally:
            self.http.close()

    def _scenario(self) -> None:
        gp, pharmacist = self.tokens["gp"], self.tokens["pharmacist"]
        for n in range(self.iterations):
            if time.perf_counter() > self.deadline:
                return
            patient = self.patients[n // PRESCRIPTIONS_PER_PATIENT]
            varenr = ROTATION[n % PRESCRIPTIONS_PER_PATIENT]
            _, listed = self._call("list read", "GET", f"/patients/{patient.id}/list", gp)
            self._call(
                "dry-run check",
                "POST",
                f"/patients/{patient.id}/list/check",
                gp,
                {"proposed": [{"drug": {"varenr": varenr}}]},
            )
            rx = str(uuid.uuid4())
            self._call(
                "prescribe with checks",
                "POST",
                f"/patients/{patient.id}/prescriptions",
                gp,
                {
                    "entry_id": str(uuid.uuid4()),
                    "drug": {"varenr": varenr},
                    "use": "regular",
                    "start": date.today().isoformat(),
                    "terms": {"prescription_id": rx, "quantity": {"packages": 1}},
                },
                {"If-Match": listed["etag"], "Idempotency-Key": str(uuid.uuid4())},
            )
            _, shown = self._call(
                "pharmacy read", "GET", f"/pharmacy/patients/{patient.id}/prescriptions", pharmacist
            )
            self._call(
                "dispense",
                "POST",
                f"/pharmacy/patients/{patient.id}/dispenses",
                pharmacist,
                {
                    "dispense_id": str(uuid.uuid4()),
                    "prescription_id": rx,
                    "varenr": varenr,
                    "dispensed_on": date.today().isoformat(),
                    "quantity": {"packages": 1},
                    "batch": "B1",
                    "expiry": "2030-01-01",
                },
                {"If-Match": shown["etag"]},
            )
            self._call("catalogue search", "GET", "/catalogue/packages?name=tab&limit=10", gp)
            # Each patient's token is new to the server on the patient's first round.
            self._call("patient own list", "GET", "/me/list", patient.token)


def _schedule(start: float, interval: float) -> Iterator[float]:
    return (start + k * interval for k in itertools.count())


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _phase(
    port: int,
    server_pid: int,
    patients: list[BenchPatient],
    tokens: dict[str, str],
    args: argparse.Namespace,
    rate: float | None,
    client_class: type[Client] = Client,
    extras: list | None = None,
) -> dict:
    """One phase: closed loop (``rate`` None) or paced at ``rate`` requests/s in total. The
    client threads run in ``args.client_processes`` processes (forked), so that the load
    generator's own GIL does not add to the latencies it measures. ``client_class`` (a
    ``Client``) runs the scenario; what its ``extra()`` reports is appended to ``extras``."""
    per_client = len(patients) // args.clients
    started = time.perf_counter()  # CLOCK_MONOTONIC: one clock for every client process
    deadline = started + args.seconds
    clients = []
    for i in range(args.clients):
        schedule = None
        if rate is not None:
            interval = args.clients / rate
            schedule = _schedule(started + i * interval / args.clients, interval)
        clients.append(
            client_class(
                port,
                patients[i * per_client : (i + 1) * per_client],
                deadline,
                args.iterations,
                dict(tokens),
                schedule,
            )
        )
    server_before = _cpu_seconds_of_tree(server_pid)
    postgres_before = _cpu_seconds_of_postgres()
    shares = [clients[k :: args.client_processes] for k in range(args.client_processes)]
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [context.Process(target=_drive, args=(share, results)) for share in shares]
    for process in processes:
        process.start()
    driven = [results.get() for _ in processes]
    if extras is not None:
        extras.extend(extra for share in driven for extra in share["extras"])
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    cpu = {
        "server": _cpu_seconds_of_tree(server_pid) - server_before,
        "client": sum(share["cpu"] for share in driven),
        "postgres": _cpu_seconds_of_postgres() - postgres_before,
    }
    timings: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for share in driven:
        for label, values in share["timings"].items():
            timings[label].extend(values)
        for label, counted in share["statuses"].items():
            for status, n in counted.items():
                statuses[label][status] += n
    every = [v for values in timings.values() for v in values]
    total = len(every)
    measured = {
        "clients": args.clients,
        "client_processes": args.client_processes,
        "seconds": round(elapsed, 2),
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "errors": [error for share in driven for error in share["errors"]],
        # CPU per request: server processes, this benchmark's client processes, and every
        # PostgreSQL process on the machine (0 on SQLite runs).
        "cpu_ms_per_request": {k: round(v * 1000 / max(total, 1), 2) for k, v in cpu.items()},
        "all": _latencies(every),
        "endpoints": {
            label: {**_latencies(values), "statuses": dict(statuses[label])}
            for label, values in timings.items()
        },
    }
    if rate is not None:
        measured = {"offered_requests_per_s": rate, **measured}
    return measured


def _drive(clients: list[Client], results) -> None:
    """In a client process: run ``clients`` (threads) to the end and report what they saw."""
    before = time.process_time()
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    timings: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for client in clients:
        for label, values in client.timings.items():
            timings[label].extend(values)
        for label, counted in client.statuses.items():
            for status, n in counted.items():
                statuses[label][status] += n
    results.put(
        {
            "timings": dict(timings),
            "statuses": {label: dict(counted) for label, counted in statuses.items()},
            "errors": [c.error for c in clients if c.error],
            "cpu": time.process_time() - before,
            "extras": [c.extra() for c in clients],
        }
    )


def _latencies(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(_percentile(values, 0.99), 2),
    }


def run(url: str, args: argparse.Namespace) -> dict:
    engine = make_engine(url)
    upgrade(engine)
    import_catalogue(engine, args.catalogue, allow_shrink=True, allow_older=True)
    per_client = -(-args.iterations // PRESCRIPTIONS_PER_PATIENT)
    patients = _patients(engine, 2 * args.clients * per_client + 1)
    engine.dispose()
    port = _free_port()
    env = {
        **os.environ,
        "MEDLOOP_ALLOW_DEV_KEYS": "1",
        "MEDLOOP_DATABASE_URL": url,
        "MEDLOOP_SCHEDULER": "off",
    }
    server = start_server(env, port, args.workers)
    tokens = {
        "gp": issue_token("gp", GP.personnel.hpr_number, GP.organisation.id),
        "pharmacist": issue_token(
            "pharmacist", PHARMACIST.personnel.hpr_number, PHARMACIST.organisation.id
        ),
    }
    try:
        _wait_until_serving(port, server)
        # Warm up: the first command builds the catalogue knowledge in the server.
        Client(port, [patients.pop()], time.perf_counter() + 60, 1, dict(tokens)).run()
        half = len(patients) // 2
        closed = _phase(port, server.pid, patients[:half], tokens, args, None)
        paced = _phase(port, server.pid, patients[half:], tokens, args, args.rate)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"closed_loop": closed, "paced": paced}


def start_server(env: dict, port: int, workers: int) -> subprocess.Popen:
    """``medloop serve`` in a subprocess. Its log lines (one per request) go to a file, kept as
    ``server.log``: a pipe nobody reads fills up and then blocks every worker mid-request."""
    server_log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from medloop.cli import app; app()",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=server_log,
    )
    server.log = server_log  # type: ignore[attr-defined]
    return server


def _wait_until_serving(port: int, server: subprocess.Popen) -> None:
    for _ in range(300):
        if server.poll() is not None:
            server.log.seek(0)  # type: ignore[attr-defined]
            raise RuntimeError(f"the server exited: {server.log.read().decode()}")  # type: ignore[attr-defined]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds_of_tree(pid: int) -> float:
    """CPU time of ``pid`` and its children (uvicorn's worker processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    return _cpu_seconds(pid) + sum(_cpu_seconds_of_tree(int(k)) for k in kids)


def _cpu_seconds_of_postgres() -> float:
    """CPU time of every process named postgres on this machine (0 on SQLite runs)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += _cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


def _postgres(base_url: str):
    admin_url = normalise_url(base_url)
    name = f"medloop_bench_api_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return admin, name, make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
    parser.add_argument(
        "--iterations", type=int, default=60, help="scenario rounds per client and phase"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=400.0,
        help="requests/s all clients together offer in the paced phase",
    )
    parser.add_argument("--catalogue", type=Path, default=DEMO)
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="server worker processes on PostgreSQL (SQLite always 1)",
    )
    parser.add_argument(
        "--client-processes",
        type=int,
        default=1,
        help="processes the client threads are spread over",
    )
    args = parser.parse_args()
    if not 1 <= args.client_processes <= args.clients:
        parser.error("--client-processes must be from 1 to --clients")
    result: dict = {
        "targets": TARGETS,
        "catalogue": args.catalogue.name,
        "postgres_workers": args.workers,
        "paced_rate": args.rate,
    }
    if args.only != "postgres":
        with tempfile.TemporaryDirectory() as directory:
            single = argparse.Namespace(**{**vars(args), "workers": 1})
            result["sqlite"] = run(f"sqlite:///{Path(directory) / 'bench.db'}", single)
    pg = os.environ.get("MEDLOOP_TEST_POSTGRES_URL")
    if pg and args.only != "sqlite":
        admin, name, url = _postgres(pg)
        try:
            result["postgres"] = run(url, args)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
