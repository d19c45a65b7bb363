"""Soak: the mixed API workload on PostgreSQL at 80 % of measured capacity while faults are
injected (issue #13). Not part of the test suite or CI.

Builds a fresh PostgreSQL database (``MEDLOOP_TEST_POSTGRES_URL`` names the server), starts
``medloop serve --workers N`` on it, measures the capacity with a short closed loop of
``bench/api.py``'s mixed scenario, then runs that scenario paced at ``--load`` (0.8) of the
capacity for ``--minutes`` (10) while, in the middle 60 % of the run, every ``--fault-every``
seconds (120) a worker process is killed with ``SIGKILL`` (uvicorn's supervisor must start a new
one) and, half-way between two kills, every backend of the database is terminated
(``pg_terminate_backend``, only those of this database). The clients are ``bench/api.py``'s,
made to behave like a careful integrator: every POST carries an ``Idempotency-Key``, and a
request answered 503 or cut off (connection reset, refused) is sent again with the same key.

Prints one JSON object:
- ``acknowledged_writes_lost``: writes answered 2xx (prescriptions, dispenses) that are not in
  the database after the run (must be 0);
- ``duplicate_effects``: list changes in the database beyond those the stored writes explain,
  i.e. a write that took effect twice (must be 0);
- ``non_503_5xx``: 5xx answers other than 503, before / during / after the faults (0);
- ``latency_ms``: p50 and p99 before / during / after the faults (from the moment a request was
  due: retries and queueing are charged; ``service_ms`` from its first send, retries included
  but not the client's backlog), and the requests finished per second in every 5 s;
- ``server_rss_mb``: the summed RSS of the serving processes (workers and supervisor) once warm
  and at the end (growth <= 10 %; a killed worker's replacement starts small, so the figure
  per surviving worker is printed too).

  MEDLOOP_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
      .venv/bin/python bench/soak.py --minutes 10
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

from sqlalchemy import bindparam, func, select, text

BENCH = Path(__file__).resolve().parent
# bench/ goes after site-packages: bench/fhir.py must not shadow the fhir.resources package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]
import api  # noqa: E402 - bench/api.py: the workload, its client and its server start-up

from fest.loader import import_catalogue  # noqa: E402
from medloop.api.auth import issue_token  # noqa: E402
from medloop.demo import GP, PHARMACIST  # noqa: E402
from medloop.store.db import make_engine  # noqa: E402
from medloop.store.list_changes import list_change  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402
from medloop.store.prescriptions import dispense, prescription  # noqa: E402

MAX_ATTEMPTS = 20
WRITES = {"prescribe with checks", "dispense"}
CUT_OFF = (OSError, http.client.HTTPException)


class SoakClient(api.Client):
    """``bench/api.py``'s client, retrying as a careful integrator would: POSTs carry an
    Idempotency-Key, and a 503 or a cut-off connection is retried (same key) after a pause.
    Records when each request finished, its final status and the writes acknowledged."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # finished, label, ms from when it was due, status, ms from its first send
        self.events: list[tuple[float, str, float, int, float]] = []
        self.acknowledged: list[tuple[str, str]] = []  # (kind, id)
        self.retries: Counter = Counter()

    def _call(
        self, label: str, method: str, path: str, token: str, body=None, headers=None
    ) -> tuple[int, dict[str, str]]:
        started, sent, payload = self._due(token, body, headers)
        if method == "POST":
            sent.setdefault("Idempotency-Key", str(uuid.uuid4()))
        status, etag = 0, ""
        sent_at = time.perf_counter()
        for _ in range(MAX_ATTEMPTS):
            try:
                assert self.http is not None
                self.http.request(method, path, body=payload, headers=sent)
                response = self.http.getresponse()
                response.read()
            except CUT_OFF:
                self.retries["connection"] += 1
                self.http.close()
                self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                time.sleep(0.2)
                continue
            status, etag = response.status, response.getheader("ETag", "")
            if status != 503:
                break
            self.retries["503"] += 1
            time.sleep(min(float(response.getheader("Retry-After", "1") or 1), 1.0))
        finished = time.perf_counter()
        latency = (finished - started) * 1000
        self.timings[label].append(latency)
        self.statuses[label][status] += 1
        self.events.append((finished, label, latency, status, (finished - sent_at) * 1000))
        if label in WRITES and 200 <= status < 300:
            if label == "dispense":
                self.acknowledged.append(("dispense", body["dispense_id"]))
            else:
                self.acknowledged.append(("prescription", body["terms"]["prescription_id"]))
        return status, {"etag": etag}

    def extra(self) -> dict:
        return {
            "events": self.events,
            "acknowledged": self.acknowledged,
            "retries": dict(self.retries),
            "patients": [p.id for p in self.patients],
        }


def _workers(server_pid: int) -> list[int]:
    """uvicorn's worker processes: the supervisor's children started by multiprocessing."""
    found = []
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children")
    for pid in children.read_text().split() if children.exists() else []:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            found.append(int(pid))
    return found


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _memory(server_pid: int) -> dict:
    workers = _workers(server_pid)
    per_worker = {pid: round(_rss_mb(pid), 1) for pid in workers}
    return {
        "total_mb": round(_rss_mb(server_pid) + sum(per_worker.values()), 1),
        "supervisor_mb": round(_rss_mb(server_pid), 1),
        "workers_mb": per_worker,
    }


class Faults(threading.Thread):
    """Kills a worker with SIGKILL every ``every`` seconds and terminates the database's
    backends half-way between, from ``start`` until ``stop`` (perf_counter seconds)."""

    def __init__(
        self, server_pid: int, admin, database: str, start: float, stop: float, every: float
    ) -> None:
        super().__init__(daemon=True)
        self.server_pid, self.admin, self.database = server_pid, admin, database
        self.start_at, self.stop_at, self.every = start, stop, every
        self.log: list[dict] = []
        self.errors: list[str] = []

    def run(self) -> None:
        moments = []
        k = 0
        while self.start_at + k * self.every / 2 < self.stop_at:
            moments.append((self.start_at + k * self.every / 2, "kill" if k % 2 == 0 else "pg"))
            k += 1
        for at, kind in moments:
            wait = at - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            try:
                self.log.append(self._kill() if kind == "kill" else self._terminate())
            except Exception as error:  # noqa: BLE001 - reported in the output
                self.errors.append(repr(error))

    def _kill(self) -> dict:
        workers = _workers(self.server_pid)
        victim = workers[0]
        at = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        replaced = None
        while time.perf_counter() - at < 60:  # until the supervisor has started another
            now = _workers(self.server_pid)
            if len(now) >= len(workers) and victim not in now:
                replaced = round(time.perf_counter() - at, 2)
                break
            time.sleep(0.05)
        return {
            "at": at,
            "fault": "kill -9 worker",
            "pid": victim,
            "workers_before": workers,
            "replacement_started_after_s": replaced,
        }

    def _terminate(self) -> dict:
        with self.admin.connect() as conn:
            count = len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": self.database},
                ).all()
            )
        return {"at": time.perf_counter(), "fault": "pg_terminate_backend", "backends": count}


def _window(at: float, faults_from: float, faults_to: float) -> str:
    if at < faults_from:
        return "before"
    return "during" if at < faults_to else "after"


def _verify(
    url: str, acknowledged: list[tuple[str, str]], patients: list[str], untouched: str, warm: str
) -> dict:
    """Every acknowledged write is in the database; no write took effect twice."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            found = {
                "prescription": set(conn.execute(select(prescription.c.id)).scalars()),
                "dispense": set(conn.execute(select(dispense.c.id)).scalars()),
            }
            lost = [(kind, id_) for kind, id_ in acknowledged if id_ not in found[kind]]

            def per_patient(table, column):
                return dict(
                    conn.execute(
                        select(column, func.count())
                        .where(column.in_(bindparam("ids", expanding=True)))
                        .group_by(column),
                        {"ids": [*patients, untouched, warm]},
                    ).all()
                )

            changes = per_patient(list_change, list_change.c.patient_id)
            prescriptions = per_patient(prescription, prescription.c.patient_id)
            dispenses = per_patient(dispense, dispense.c.patient_id)
    finally:
        engine.dispose()
    # What one patient's list changes are made of, learnt from two patients outside the run:
    # registration alone, and one prescription plus one dispense (the warm-up round).
    base = changes.get(untouched, 0)
    per_dispense = changes.get(warm, 0) - base - 1
    duplicates = sum(
        changes.get(p, 0) - base - prescriptions.get(p, 0) - per_dispense * dispenses.get(p, 0)
        for p in patients
    )
    return {
        "acknowledged_writes": len(acknowledged),
        "acknowledged_writes_lost": len(lost),
        "lost": lost[:20],
        "duplicate_effects": duplicates,
        "stored": {
            "prescriptions": sum(prescriptions.get(p, 0) for p in patients),
            "dispenses": sum(dispenses.get(p, 0) for p in patients),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--fault-every",
        type=float,
        default=120.0,
        help="seconds between two worker kills (backends terminated between)",
    )
    parser.add_argument("--load", type=float, default=0.8, help="share of measured capacity")
    parser.add_argument("--capacity-seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--catalogue", type=Path, default=api.DEMO)
    args = parser.parse_args()
    base = os.environ.get("MEDLOOP_TEST_POSTGRES_URL")
    if not base:
        parser.error("set MEDLOOP_TEST_POSTGRES_URL to a PostgreSQL server")
    if args.workers < 2:
        parser.error("--workers must be 2 or more: a worker is killed while the others serve")

    duration = args.minutes * 60
    admin, name, url = api._postgres(base)
    started_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    try:
        engine = make_engine(url)
        upgrade(engine)
        import_catalogue(engine, args.catalogue, allow_shrink=True, allow_older=True)
        first = args.clients * 16 + 2
        capacity_share = api._patients(engine, first)
        untouched, warm = capacity_share.pop(), capacity_share.pop()

        port = api._free_port()
        env = {
            **os.environ,
            "MEDLOOP_ALLOW_DEV_KEYS": "1",
            "MEDLOOP_DATABASE_URL": url,
            "MEDLOOP_SCHEDULER": "off",
        }
        server = api.start_server(env, port, args.workers)
        tokens = {
            "gp": issue_token("gp", GP.personnel.hpr_number, GP.organisation.id),
            "pharmacist": issue_token(
                "pharmacist", PHARMACIST.personnel.hpr_number, PHARMACIST.organisation.id
            ),
        }
        try:
            api._wait_until_serving(port, server)
            for _ in range(60):  # every worker up
                if len(_workers(server.pid)) == args.workers:
                    break
                time.sleep(0.5)
            api.Client(port, [warm], time.perf_counter() + 60, 1, dict(tokens)).run()
            capacity = api._phase(
                port,
                server.pid,
                capacity_share,
                tokens,
                argparse.Namespace(
                    clients=args.clients,
                    client_processes=args.client_processes,
                    seconds=args.capacity_seconds,
                    iterations=16 * api.PRESCRIPTIONS_PER_PATIENT,
                ),
                None,
            )
            rate = round(capacity["requests_per_s"] * args.load, 1)
            # Patients for every round a client can run at that rate (7 requests a round),
            # with room: a client that runs out of patients stops before the run ends.
            rounds = int(rate * duration / args.clients / 7 * 1.3) + 20
            per_client = -(-rounds // api.PRESCRIPTIONS_PER_PATIENT)
            # (_patients numbers its synthetic national ids from 0: the first ``first`` are
            # taken already and are skipped.)
            soak_share = api._patients(engine, first + args.clients * per_client)
            engine.dispose()
            memory_start = _memory(server.pid)
            workers_start = sorted(memory_start["workers_mb"])

            start = time.perf_counter()
            faults_from, faults_to = start + 0.2 * duration, start + 0.8 * duration
            faults = Faults(server.pid, admin, name, faults_from, faults_to, args.fault_every)
            faults.start()
            extras: list[dict] = []
            soak = api._phase(
                port,
                server.pid,
                soak_share,
                tokens,
                argparse.Namespace(
                    clients=args.clients,
                    client_processes=args.client_processes,
                    seconds=duration,
                    iterations=rounds,
                ),
                rate,
                SoakClient,
                extras,
            )
            faults.join(timeout=5)
            memory_end = _memory(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()

        windows: dict[str, list[float]] = defaultdict(list)
        service: dict[str, list[float]] = defaultdict(list)
        buckets: Counter = Counter()  # requests finished per 5 s of the run
        non_503: dict[str, Counter] = defaultdict(Counter)
        statuses: Counter = Counter()
        retries: Counter = Counter()
        acknowledged = []
        for extra in extras:
            acknowledged.extend(tuple(a) for a in extra["acknowledged"])
            retries.update(extra["retries"])
            for at, label, ms, status, served_ms in extra["events"]:
                window = _window(at, faults_from, faults_to)
                windows[window].append(ms)
                service[window].append(served_ms)
                buckets[int((at - start) // 5)] += 1
                statuses[status] += 1
                if status >= 500 and status != 503 or status == 0:
                    non_503[window][f"{label} {status or 'no answer'}"] += 1
        soak_patients = [p for extra in extras for p in extra["patients"]]
        verified = _verify(url, acknowledged, soak_patients, untouched.id, warm.id)
        surviving = [pid for pid in workers_start if pid in memory_end["workers_mb"]]
        growth = (memory_end["total_mb"] - memory_start["total_mb"]) / memory_start["total_mb"]
        result = {
            "conditions": {
                "started": started_at,
                "minutes": args.minutes,
                "fault_every_s": args.fault_every,
                "workers": args.workers,
                "clients": args.clients,
                "cores": os.cpu_count(),
                "load_average_at_end": os.getloadavg(),
                "catalogue": args.catalogue.name,
            },
            "capacity_requests_per_s": capacity["requests_per_s"],
            "offered_requests_per_s": rate,
            "achieved_requests_per_s": soak["requests_per_s"],
            "requests": soak["requests"],
            "faults": [{**f, "at": round(f["at"] - start, 1)} for f in faults.log],
            "fault_errors": faults.errors,
            "workers_at_start": workers_start,
            "workers_at_end": sorted(memory_end["workers_mb"]),
            **verified,
            "non_503_5xx": {w: dict(non_503.get(w, {})) for w in ("before", "during", "after")},
            "statuses": dict(statuses),
            "client_retries": dict(retries),
            "client_errors": soak["errors"],
            "latency_ms": {w: api._latencies(windows[w]) for w in ("before", "during", "after")},
            "service_ms": {w: api._latencies(service[w]) for w in ("before", "during", "after")},
            "requests_per_s_by_5s": [
                round(buckets.get(k, 0) / 5, 1) for k in range(int(duration // 5) + 1)
            ],
            "server_rss_mb": {
                "start": memory_start,
                "end": memory_end,
                "growth_percent": round(growth * 100, 1),
                "surviving_workers": {
                    str(pid): [memory_start["workers_mb"][pid], memory_end["workers_mb"][pid]]
                    for pid in surviving
                },
            },
        }
        result["targets_met"] = {
            "no_acknowledged_write_lost": result["acknowledged_writes_lost"] == 0,
            "no_duplicate_effect": result["duplicate_effects"] == 0,
            "no_5xx_but_503": not any(result["non_503_5xx"].values()),
            "memory_growth_at_most_10_percent": growth <= 0.10,
            "every_killed_worker_replaced": len(memory_end["workers_mb"]) == args.workers,
        }
        print(json.dumps(result, indent=2))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
