"""Benchmark: the HTTP API over loopback (issue #6).

Builds a database (the demo catalogue, or --catalogue FILE; one GP practice and pharmacy;
``--clients`` x ``--patients-per-client`` registered patients), starts ``medloop serve``
(uvicorn, a subprocess) on it and drives it with N concurrent clients (threads, one HTTP
connection each) through the mixed scenario, each client on patients of its own:

  read list (ETag) -> dry-run check -> prescribe with checks (If-Match) -> pharmacy read
  -> dispense (If-Match) -> catalogue search -> patient reads own list

bounded by --seconds and --iterations per client. Prints one JSON object: requests/s, and
p50/p99 per endpoint, on SQLite and, when MEDLOOP_TEST_POSTGRES_URL names a server, on a fresh
PostgreSQL database. Targets with 16 clients: list read p99 <= 30 ms; prescribe-with-checks
p99 <= 60 ms; >= 400 mixed requests/s on PostgreSQL.

Client and server share the machine: on 2 cores the client threads take CPU from the server,
so the figures are a lower bound for a server on its own host.
"""

from __future__ import annotations

import argparse
import json
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
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
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
ROTATION = ("090436", "090283", "090334", "090861", "090606", "090555", "090997", "090402",
            "090028", "090368")
PRESCRIPTIONS_PER_PATIENT = len(ROTATION)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _patients(engine, count: int) -> list[tuple[str, str]]:
    """``count`` registered patients as (patient id, national id)."""
    found = []
    at = datetime.now(UTC)
    for n in range(count):
        birth = date(1930 + n % 60, 1 + n % 12, 1 + n % 28)
        nid = national_id(birth, (n * 7) % 400)
        patient = Patient(id=uuid.uuid4(), national_id=NationalId(nid), given_name="Bench",
                          family_name=f"Pasient {n}", birth_date=birth)
        try:
            register_patient(engine, patient, Call(actor=GP, at=at))
        except Exception:  # noqa: BLE001 - a repeated synthetic national id: take the next
            continue
        found.append((str(patient.id), nid))
    return found


class Client(threading.Thread):
    """One clinician's terminal: the mixed scenario on its own patients."""

    def __init__(self, base: str, patients: list[tuple[str, str]], deadline: float,
                 iterations: int, tokens: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.base, self.patients, self.deadline = base, patients, deadline
        self.iterations, self.tokens = iterations, tokens
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.error: str | None = None

    def _call(self, http: httpx.Client, label: str, method: str, path: str, token: str,
              body=None, headers=None) -> httpx.Response:
        started = time.perf_counter()
        response = http.request(method, path, json=body,
                                headers={"Authorization": f"Bearer {token}", **(headers or {})})
        self.timings[label].append((time.perf_counter() - started) * 1000)
        self.statuses[label][response.status_code] += 1
        return response

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base, timeout=30) as http:
                self._scenario(http)
        except Exception as error:  # noqa: BLE001 - reported in the output
            self.error = repr(error)

    def _scenario(self, http: httpx.Client) -> None:
        gp, pharmacist = self.tokens["gp"], self.tokens["pharmacist"]
        for n in range(self.iterations):
            if time.monotonic() > self.deadline:
                return
            patient, nid = self.patients[n // PRESCRIPTIONS_PER_PATIENT]
            varenr = ROTATION[n % PRESCRIPTIONS_PER_PATIENT]
            listed = self._call(http, "list read", "GET", f"/patients/{patient}/list", gp)
            etag = listed.headers["ETag"]
            self._call(http, "dry-run check", "POST", f"/patients/{patient}/list/check", gp,
                       {"proposed": [{"drug": {"varenr": varenr}}]})
            rx = str(uuid.uuid4())
            self._call(http, "prescribe with checks", "POST", f"/patients/{patient}/prescriptions",
                       gp, {"entry_id": str(uuid.uuid4()), "drug": {"varenr": varenr},
                            "use": "regular", "start": date.today().isoformat(),
                            "terms": {"prescription_id": rx, "quantity": {"packages": 1}}},
                       {"If-Match": etag, "Idempotency-Key": str(uuid.uuid4())})
            shown = self._call(http, "pharmacy read", "GET",
                               f"/pharmacy/patients/{patient}/prescriptions", pharmacist)
            self._call(http, "dispense", "POST", f"/pharmacy/patients/{patient}/dispenses",
                       pharmacist,
                       {"dispense_id": str(uuid.uuid4()), "prescription_id": rx,
                        "varenr": varenr, "dispensed_on": date.today().isoformat(),
                        "quantity": {"packages": 1}, "batch": "B1", "expiry": "2030-01-01"},
                       {"If-Match": shown.headers["ETag"]})
            self._call(http, "catalogue search", "GET", "/catalogue/packages?name=tab&limit=10",
                       gp)
            self._call(http, "patient own list", "GET", "/me/list",
                       issue_token("patient", nid) if n % PRESCRIPTIONS_PER_PATIENT == 0
                       else self.tokens.setdefault(nid, issue_token("patient", nid)))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(url: str, args: argparse.Namespace) -> dict:
    engine = make_engine(url)
    upgrade(engine)
    import_catalogue(engine, args.catalogue, allow_shrink=True, allow_older=True)
    per_client = -(-args.iterations // PRESCRIPTIONS_PER_PATIENT)
    patients = _patients(engine, args.clients * per_client + args.clients)
    engine.dispose()
    port = _free_port()
    env = {**os.environ, "MEDLOOP_ALLOW_DEV_KEYS": "1", "MEDLOOP_DATABASE_URL": url}
    server = subprocess.Popen(
        [sys.executable, "-c", "from medloop.cli import app; app()", "serve", "--port", str(port),
         "--workers", str(args.workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    tokens = {
        "gp": issue_token("gp", GP.personnel.hpr_number, GP.organisation.id),
        "pharmacist": issue_token("pharmacist", PHARMACIST.personnel.hpr_number,
                                  PHARMACIST.organisation.id),
    }
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/cds-services", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        # Warm up: the first command builds the catalogue knowledge in the server.
        warm_patient = patients.pop()
        Client(base, [warm_patient], time.monotonic() + 60, 1, dict(tokens)).run()
        deadline = time.monotonic() + args.seconds
        clients = [
            Client(base, patients[i * per_client:(i + 1) * per_client], deadline,
                   args.iterations, dict(tokens))
            for i in range(args.clients)
        ]
        server_before = _cpu_seconds_of_tree(server.pid)
        postgres_before = _cpu_seconds_of_postgres()
        client_before = time.process_time()
        started = time.perf_counter()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        elapsed = time.perf_counter() - started
        cpu = {
            "server": _cpu_seconds_of_tree(server.pid) - server_before,
            "client": time.process_time() - client_before,
            "postgres": _cpu_seconds_of_postgres() - postgres_before,
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    timings: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for client in clients:
        for label, values in client.timings.items():
            timings[label].extend(values)
        for label, counted in client.statuses.items():
            for status, n in counted.items():
                statuses[label][status] += n
    total = sum(len(v) for v in timings.values())
    return {
        "clients": args.clients,
        "seconds": round(elapsed, 2),
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "errors": [c.error for c in clients if c.error],
        # CPU per request, which other work on the machine inflates less than latency:
        # server processes, the benchmark's own client threads, and every PostgreSQL process.
        "cpu_ms_per_request": {k: round(v * 1000 / total, 2) for k, v in cpu.items()},
        "endpoints": {
            label: {
                "n": len(values),
                "p50_ms": round(statistics.median(values), 2),
                "p99_ms": round(_percentile(values, 0.99), 2),
                "statuses": dict(statuses[label]),
            }
            for label, values in timings.items()
        },
    }


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
    return admin, name, make_url(admin_url).set(database=name).render_as_string(
        hide_password=False
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--iterations", type=int, default=60, help="scenario rounds per client")
    parser.add_argument("--catalogue", type=Path, default=DEMO)
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    parser.add_argument("--workers", type=int, default=1,
                        help="server worker processes on PostgreSQL (SQLite always 1)")
    args = parser.parse_args()
    result: dict = {"targets": TARGETS, "catalogue": args.catalogue.name,
                    "postgres_workers": args.workers}
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
