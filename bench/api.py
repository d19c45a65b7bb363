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
  schedule (rate / clients, staggered; each client starts at its own step of the scenario and
  of its first patient's rotation, ``--lockstep`` for all at the same step); a request's latency
  is measured from the moment it was due to be sent, so a server that falls behind is charged
  for the queueing it causes (no coordinated omission). The schedule begins 0.25 s after the
  phase is set up. Reports the achieved requests/s and p50/p99 per endpoint.

Each phase also reports CPU milliseconds per request of the server processes, of this
benchmark's client threads and of every PostgreSQL process on the machine (other work on a
shared machine inflates them less than it inflates latency). Prints one JSON object, for
SQLite and, when MEDLOOP_TEST_POSTGRES_URL names a server, for a fresh PostgreSQL database.
Targets with 16 clients: list read p99 <= 30 ms and prescribe-with-checks p99 <= 60 ms (read on
the paced run at 400 requests/s); >= 400 mixed requests/s on PostgreSQL (closed loop).

Client and server share the machine: on 2 cores the client threads take CPU from the server,
so the figures are a lower bound for a server on its own host.

Each phase also lists its stalls (half-second windows in which a request took over
``STALL_MS``, by wall clock), the PostgreSQL checkpoints logged meanwhile (on a shared server
other databases' CREATE/DROP DATABASE force immediate checkpoints that stall every commit:
``--private-postgres PORT`` measures on a private cluster instead) and the full garbage
collection passes in the client processes.

``--floor`` (issue #20) runs medloop against ``bench/floor.py``, the floor of its own stack,
interleaved on one database, and reports the ratios (``floor_comparison``).
"""

from __future__ import annotations

import argparse
import gc
import http.client
import itertools
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

BENCH = Path(__file__).resolve().parent
# bench/ goes after site-packages: bench/fhir.py must not shadow the fhir.resources package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

from fest.loader import import_catalogue  # noqa: E402
from medloop.api.auth import issue_token  # noqa: E402
from medloop.demo import GP, PHARMACIST, national_id  # noqa: E402
from medloop.domain.patient import NationalId, Patient  # noqa: E402
from medloop.loop.patients import register_patient  # noqa: E402
from medloop.loop.runner import Call  # noqa: E402
from medloop.store.db import make_engine, normalise_url  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402

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
REQUESTS_PER_ROUND = 7
"""Requests in one round of the mixed scenario (``Client._scenario``)."""


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
        first_round: int = 0,
    ) -> None:
        super().__init__(daemon=True)
        self.port, self.patients, self.deadline = port, patients, deadline
        self.iterations, self.tokens, self.schedule = iterations, tokens, schedule
        self.first_round = first_round  # where in the first patient's rotation to begin
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.moments: list[tuple[float, float]] = []  # (when due or sent, latency ms)
        # paced: ms each request went out after it was due, or after the previous answer on
        # this connection came when that was later (the client's own lateness)
        self.late: list[float] = []
        self.answered = 0.0  # when the previous answer on this connection was read
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.error: str | None = None
        self.http: http.client.HTTPConnection | None = None
        self.trace: list[tuple] | None = [] if self.tracing else None
        self._connection: tuple[object, int, int] = (None, 0, 0)  # socket, local port, requests

    tracing = False
    fresh = False
    """--trace: is the scenario's current round the first on its patient (its state cold)?"""
    """``--trace``: keep (label, due, sent, answered, local port, request number on the
    connection) per request, to be joined with the server's own trace (``medloop.api.trace``)."""

    def _traced(self, label: str, due: float, sent: float, answered: float) -> None:
        assert self.http is not None and self.trace is not None
        sock, port, seq = self._connection
        if self.http.sock is not sock:  # a new connection: its requests are counted afresh
            sock, port, seq = self.http.sock, self.http.sock.getsockname()[1], 0
        seq += 1
        self._connection = (sock, port, seq)
        self.trace.append((label, due, sent, answered, port, seq, self.fresh))

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
        sending = time.perf_counter()
        self.http.request(method, path, body=payload, headers=sent)
        response = self.http.getresponse()
        response.read()
        answered = time.perf_counter()
        latency = (answered - started) * 1000
        self.timings[label].append(latency)
        self.moments.append((started, latency))
        if self.schedule is not None:
            self.late.append((sending - max(started, self.answered)) * 1000)
        self.answered = answered
        if self.trace is not None:
            self._traced(label, started, sending, answered)
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
        for n in range(self.first_round, self.first_round + self.iterations):
            if time.perf_counter() > self.deadline:
                return
            patient = self.patients[n // PRESCRIPTIONS_PER_PATIENT]
            varenr = ROTATION[n % PRESCRIPTIONS_PER_PATIENT]
            self.fresh = n == self.first_round or n % PRESCRIPTIONS_PER_PATIENT == 0
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
    postgres_cpu=None,
) -> dict:
    """One phase: closed loop (``rate`` None) or paced at ``rate`` requests/s in total. The
    client threads run in ``args.client_processes`` processes (forked), so that the load
    generator's own GIL does not add to the latencies it measures. ``client_class`` (a
    ``Client``) runs the scenario; what its ``extra()`` reports is appended to ``extras``."""
    per_client = len(patients) // args.clients
    started = time.perf_counter()  # CLOCK_MONOTONIC: one clock for every client process
    wall = time.time()
    if rate is not None:
        # The schedule begins once the client processes are running: forking them and starting
        # their threads took ~50 ms on a loaded machine, which every request would have owed.
        started, wall = started + PACED_LEAD_S, wall + PACED_LEAD_S
    deadline = started + args.seconds
    clients = []
    for i in range(args.clients):
        schedule, first_round = None, 0
        if rate is not None:
            interval = args.clients / rate
            offset = i * interval / args.clients  # the clients' sends evenly spread in time
            if not getattr(args, "lockstep", False):
                # ... and each client at its own point of the scenario and of its patient's
                # rotation: in lock-step all 16 sent the same request within one interval
                # (16 prescribes at once, then 16 pharmacy reads) and opened their next
                # patient (a first read: its state loaded) at the same moment.
                offset += (i % REQUESTS_PER_ROUND) * interval
                first_round = i * PRESCRIPTIONS_PER_PATIENT // args.clients
            schedule = _schedule(started + offset, interval)
        clients.append(
            client_class(
                port,
                patients[i * per_client : (i + 1) * per_client],
                deadline,
                args.iterations,
                dict(tokens),
                schedule,
                first_round=first_round,
            )
        )
    server_before = _cpu_seconds_of_tree(server_pid)
    postgres_cpu = postgres_cpu or _PostgresCpu()
    postgres_before = postgres_cpu.snapshot()
    machine_before = _machine_busy_seconds()
    probe = None
    if getattr(args, "trace", None):
        probe = _DiskProbe(args.trace / f"disk-{'paced' if rate else 'closed'}.jsonl")
        probe.start()
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
    if getattr(args, "trace", None):
        _write_client_trace(args.trace / f"client-{'paced' if rate else 'closed'}.jsonl", driven)
    cpu = {
        "server": _cpu_seconds_of_tree(server_pid) - server_before,
        "client": sum(share["cpu"] for share in driven),
        "postgres": postgres_cpu.since(postgres_before),
    }
    busy = _machine_busy_seconds() - machine_before
    if probe is not None:
        probe.finish()
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
        # The machine's cores kept busy in the phase (every process, /proc/stat), and by what is
        # not this benchmark (its server, its clients, PostgreSQL): another process's load
        # shows here, a stall of our own does not.
        "machine_cores_busy": {
            "all": round(busy / elapsed, 2),
            "others": round(max(0.0, busy - sum(cpu.values())) / elapsed, 2),
        },
        # Full passes of the garbage collector in the client processes (their pauses stop
        # every client thread of the process).
        "client_gc": _gc_passes([ms for share in driven for ms in share["gc"]]),
        # Half-second windows in which some request took more than STALL_MS, by wall clock,
        # with the PostgreSQL checkpoints logged in the phase (``_checkpoints``).
        "stalls": _stalls([m for share in driven for m in share["moments"]], started, wall),
        "checkpoints": _checkpoints(wall, wall + elapsed),
        "all": _latencies(every),
        "endpoints": {
            label: {**_latencies(values), "statuses": dict(statuses[label])}
            for label, values in timings.items()
        },
    }
    if rate is not None:
        late = sorted(ms for share in driven for ms in share["late"])
        # How late the clients sent their requests once they could (due, and the previous
        # answer on the connection read): a client process that did not get a core. (A request
        # due before the previous one was answered waits for it: the server's backlog, charged
        # to the server, as it is in the latency.)
        measured["client_late_ms"] = {
            "p50": round(_percentile(late, 0.5), 2) if late else None,
            "p99": round(_percentile(late, 0.99), 2) if late else None,
            "max": round(late[-1], 2) if late else None,
            "over_5ms": sum(1 for ms in late if ms > 5.0),
        }
        measured = {"offered_requests_per_s": rate, **measured}
    return measured


class _DiskProbe(threading.Thread):
    """--trace: every 20 ms, write 4 KiB to a file next to the trace and wait for it to reach
    the disk (``fdatasync``, as PostgreSQL waits for its log at every commit), and keep how long
    each took: a commit that waited on a disk that other work keeps busy shows here too. Each
    time also the machine's pressure stall totals (/proc/pressure: the time some task waited
    for a core, for I/O) and the time the private cluster's processes have spent runnable but
    waiting for a core (their schedstat): what the database's share of a round trip waited
    for."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.syncs = path, []
        self.pressure: list[tuple[float, int, int, float]] = []
        self.done = threading.Event()

    def _sample_pressure(self) -> None:
        at = time.perf_counter()
        stalls = []
        for kind in ("cpu", "io"):
            try:
                first = Path(f"/proc/pressure/{kind}").read_text().split("\n", 1)[0]
                stalls.append(int(first.rsplit("total=", 1)[1]))
            except (OSError, IndexError, ValueError):
                stalls.append(0)
        waited = 0.0
        if PRIVATE_POSTMASTER is not None:
            children = Path(f"/proc/{PRIVATE_POSTMASTER}/task/{PRIVATE_POSTMASTER}/children")
            try:
                kids = children.read_text().split()
            except OSError:
                kids = []
            for kid in kids:
                try:
                    waited += int(Path(f"/proc/{kid}/schedstat").read_text().split()[1]) / 1e9
                except (OSError, IndexError, ValueError):
                    continue
        self.pressure.append((at, stalls[0], stalls[1], waited))

    def run(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".scratch")
        descriptor = os.open(scratch, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            block = os.urandom(4096)
            while not self.done.wait(0.02):
                self._sample_pressure()
                started = time.perf_counter()
                os.pwrite(descriptor, block, 0)
                os.fdatasync(descriptor)
                self.syncs.append((started, (time.perf_counter() - started) * 1000))
        finally:
            os.close(descriptor)
            scratch.unlink(missing_ok=True)

    def finish(self) -> None:
        self.done.set()
        self.join()
        with self.path.open("w") as out:
            for at, ms in self.syncs:
                out.write(json.dumps({"kind": "disk", "at": at, "ms": ms}) + "\n")
            for at, cpu_us, io_us, postgres_s in self.pressure:
                line = {"kind": "pressure", "at": at, "cpu_us": cpu_us, "io_us": io_us}
                out.write(json.dumps({**line, "postgres_runq_s": postgres_s}) + "\n")


def _machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _drive(clients: list[Client], results) -> None:
    """In a client process: run ``clients`` (threads) to the end and report what they saw.

    The full passes of the cyclic garbage collector in this process are timed and reported
    (``client_gc``): one stops every client thread of the process, a pause the clients would
    charge to the server (latencies are measured from when a request was due)."""
    passes: list[float] = []
    every_pass: list[tuple[int, float, float]] = []  # --trace: (generation, start, ms)
    started_pass = [0.0]

    def timed(phase: str, info: dict) -> None:
        if info.get("generation") != 2 and not Client.tracing:
            return
        if phase == "start":
            started_pass[0] = time.perf_counter()
            return
        ms = (time.perf_counter() - started_pass[0]) * 1000
        if info.get("generation") == 2:
            passes.append(ms)
        if Client.tracing:
            every_pass.append((info.get("generation"), started_pass[0], ms))

    gc.callbacks.append(timed)
    before = time.process_time()
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    gc.callbacks.remove(timed)
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
            "gc": passes,
            "moments": [m for c in clients for m in c.moments],
            "late": [ms for c in clients for ms in c.late],
            "trace": [t for c in clients for t in (c.trace or ())],
            "trace_gc": every_pass,
        }
    )


def _write_client_trace(path: Path, driven: list[dict]) -> None:
    """--trace: the clients' requests and collector passes of one phase, a JSON line each, after
    a line that ties the trace's clock to the wall clock (for the PostgreSQL log's times)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        out.write(json.dumps({"kind": "clock", "wall": time.time(), "perf": time.perf_counter()}))
        out.write("\n")
        for share in driven:
            for label, due, sent, answered, port, seq, fresh in share["trace"]:
                line = {"kind": "request", "label": label, "due": due, "sent": sent}
                line.update(answered=answered, port=port, seq=seq, fresh=fresh)
                out.write(json.dumps(line) + "\n")
            for generation, at, ms in share["trace_gc"]:
                out.write(json.dumps({"kind": "gc", "generation": generation, "at": at, "ms": ms}))
                out.write("\n")


PACED_LEAD_S = 0.25
"""The paced schedule's first request is due this long after the phase is set up (``_phase``)."""
STALL_MS = 500.0
"""A request slower than this marks its half-second window as a stall (``_stalls``)."""
POSTGRES_LOG = Path(
    os.environ.get("BENCH_POSTGRES_LOG", "/var/log/postgresql/postgresql-15-main.log")
)
"""The server log read for checkpoints (default: the machine's PostgreSQL; absent: none
reported)."""


def _stalls(moments: list[tuple[float, float]], started: float, wall: float) -> list[dict]:
    windows: dict[int, float] = {}
    for at, latency in moments:
        if latency > STALL_MS:
            window = int((at - started) / 0.5)
            windows[window] = max(windows.get(window, 0.0), latency)
    return [
        {
            "at": datetime.fromtimestamp(wall + window * 0.5, UTC).strftime("%H:%M:%S.%f")[:-3],
            "longest_ms": round(longest, 1),
        }
        for window, longest in sorted(windows.items())
    ]


def _checkpoints(since: float, until: float) -> list[str]:
    """The checkpoint lines PostgreSQL logged between two wall-clock moments (UTC): what
    started, and what it wrote and how long it took."""
    try:
        lines = POSTGRES_LOG.read_text(errors="replace").splitlines()[-5000:]
    except OSError:
        return []
    found = []
    for line in lines:
        if "checkpoint" not in line:
            continue
        try:
            at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        except ValueError:
            continue
        if since <= at.timestamp() <= until + 2:
            found.append(line[11:23] + " " + line.split("LOG:", 1)[-1].strip()[:120])
    return found


def _gc_passes(pauses: list[float]) -> dict:
    return {"full_passes": len(pauses), "longest_ms": round(max(pauses, default=0.0), 1)}


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
    # One patient more than the rounds need: a paced client may begin mid-rotation.
    per_client = -(-args.iterations // PRESCRIPTIONS_PER_PATIENT) + 1
    patients = _patients(engine, 2 * args.clients * per_client + 1)
    engine.dispose()
    port = getattr(args, "port", None) or _free_port()
    env = server_env(url)
    if getattr(args, "trace", None):
        env["MEDLOOP_TRACE"] = str(args.trace)  # medloop.api.trace, in every worker
        Client.tracing = True
    server = start_server(env, port, args.workers)
    tokens = {
        "gp": issue_token("gp", GP.personnel.hpr_number, GP.organisation.id),
        "pharmacist": issue_token(
            "pharmacist", PHARMACIST.personnel.hpr_number, PHARMACIST.organisation.id
        ),
    }
    try:
        _wait_until_serving(port, server)
        _wait_until_every_worker_accepts(server, args.workers)
        # Warm up: the first command builds the catalogue knowledge in the server.
        Client(port, [patients.pop()], time.perf_counter() + 60, 1, dict(tokens)).run()
        half = len(patients) // 2
        closed = _phase(port, server.pid, patients[:half], tokens, args, None)
        planned = _statements(url) if getattr(args, "trace", None) else None
        analyze = None
        if getattr(args, "analyze_at", None) is not None:
            analyze = threading.Timer(PACED_LEAD_S + args.analyze_at, _analyze, (url, args.trace))
            analyze.start()
        paced = _phase(port, server.pid, patients[half:], tokens, args, args.rate)
        if analyze is not None:
            analyze.join()
        if planned is not None:
            paced["postgres_planning"] = _planning_since(url, planned, args.trace)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"closed_loop": closed, "paced": paced}


def _analyze(url: str, trace: Path | None) -> None:
    """--analyze-at: ANALYZE the database, as autovacuum does when a visit finds a table changed
    enough (in a fresh benchmark database, about once a minute), and note when (the trace's
    clock) in ``analyze.json``."""
    engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    started = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    ended = time.perf_counter()
    engine.dispose()
    if trace is not None:
        (trace / "analyze.json").write_text(json.dumps({"at": started, "ended": ended}))


def _statements(url: str) -> dict[str, tuple[int, int, float, float]] | None:
    """--trace on PostgreSQL: pg_stat_statements' counters per statement (calls, plans, plan
    and execution ms), None where the extension is not loaded (only the private cluster)."""
    if not url.startswith("postgresql"):
        return None
    admin = make_url(normalise_url(url)).set(database="postgres")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT queryid::text || ':' || left(query, 90), calls, plans, "
                    "total_plan_time, total_exec_time FROM pg_stat_statements"
                )
            ).all()
    except Exception:  # noqa: BLE001 - no such view: nothing to say
        return None
    finally:
        engine.dispose()
    return {key: (calls, plans, plan, run) for key, calls, plans, plan, run in found}


def _planning_since(url: str, before: dict, trace: Path) -> dict | None:
    """--trace: how often PostgreSQL planned in the phase and how long that took, against its
    execution time (a statement's cached plans are planned again after its tables'
    statistics change, as autovacuum's ANALYZE changes them); each statement's counts go to
    ``postgres-statements-paced.json`` in the trace."""
    after = _statements(url)
    if after is None:
        return None
    rows = []
    for key, (calls, plans, plan, run) in after.items():
        calls0, plans0, plan0, run0 = before.get(key, (0, 0, 0.0, 0.0))
        if calls > calls0 or plans > plans0:
            rows.append(
                {
                    "statement": key.split(":", 1)[1],
                    "calls": calls - calls0,
                    "plans": plans - plans0,
                    "plan_ms": round(plan - plan0, 2),
                    "exec_ms": round(run - run0, 2),
                }
            )
    rows.sort(key=lambda row: -row["plan_ms"])
    (trace / "postgres-statements-paced.json").write_text(json.dumps(rows, indent=1))
    return {
        "calls": sum(row["calls"] for row in rows),
        "plans": sum(row["plans"] for row in rows),
        "plan_ms": round(sum(row["plan_ms"] for row in rows), 1),
        "exec_ms": round(sum(row["exec_ms"] for row in rows), 1),
    }


def server_env(url: str) -> dict[str, str]:
    """The environment of a benchmarked ``medloop serve`` on ``url``: this one's, with the dev
    keys allowed (the benchmark's tokens) and no scheduled jobs."""
    return {
        **os.environ,
        "MEDLOOP_ALLOW_DEV_KEYS": "1",
        "MEDLOOP_DATABASE_URL": url,
        "MEDLOOP_SCHEDULER": "off",
    }


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
    # Up to two minutes: on a machine shared with other work start-up alone took over 30 s.
    for _ in range(1200):
        if server.poll() is not None:
            server.log.seek(0)  # type: ignore[attr-defined]
            raise RuntimeError(f"the server exited: {server.log.read().decode()}")  # type: ignore[attr-defined]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def _wait_until_every_worker_accepts(server: subprocess.Popen, workers: int) -> None:
    """With several workers, until each has started accepting connections (it has mapped its
    server's table of connections, ``api.server.ConnectionShares``), at most two minutes: the
    port answers once the first worker is up, and on a loaded machine the second took up to
    1.4 s more, so every keep-alive client of the first phase connected to the first."""
    if workers < 2:
        return
    for _ in range(1200):
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
        kids = children.read_text().split() if children.exists() else []
        accepting = 0
        for kid in kids:
            try:
                accepting += "medloop-connections-" in Path(f"/proc/{kid}/maps").read_text()
            except OSError:
                continue
        if accepting >= workers:
            return
        time.sleep(0.1)
    print(f"warning: {accepting} of {workers} workers accepting after 2 minutes", file=sys.stderr)


def _cpu_seconds(pid: int) -> float:
    """CPU seconds ``pid`` has run, to the nanosecond where the kernel tells it.

    ``/proc/PID/stat``'s user and system times are the scheduler's exact run time cut down to
    whole clock ticks (10 ms): over a part of ~640 prescribes that cut moved a server's figure
    by up to 2 % and PostgreSQL's (~25 processes, each cut) by ~4 % either way, from one
    invocation to the next, on the floor's side as on medloop's. Each live thread's exact run
    time is in its ``schedstat`` (first field, nanoseconds); the threads that have ended are
    only in ``stat`` (the process's total includes them), so whatever ``stat`` holds beyond the
    live threads' sum is added: the figure is exact while no thread has ended, and never less
    than ``stat``'s tick-cut figure otherwise."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticked = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    live = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            live += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return ticked
    exact = live / 1e9
    return exact + max(0.0, ticked - exact)


def _cpu_seconds_of_tree(pid: int) -> float:
    """CPU time of ``pid`` and its children (uvicorn's worker processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    return _cpu_seconds(pid) + sum(_cpu_seconds_of_tree(int(k)) for k in kids)


PRIVATE_POSTMASTER: int | None = None
"""``--private-postgres``: the private cluster's postmaster, whose processes alone are then
counted as PostgreSQL's (``_cpu_seconds_of_postgres``): the machine's shared server serves
other work."""


def _cpu_seconds_of_postgres() -> float:
    """CPU time of every process named postgres on this machine (0 on SQLite runs), or of the
    private cluster's processes (``PRIVATE_POSTMASTER``)."""
    if PRIVATE_POSTMASTER is not None:
        return _cpu_seconds_of_tree(PRIVATE_POSTMASTER)
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += _cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


class _PostgresCpu:
    """CPU seconds of every PostgreSQL process on the machine (0 on SQLite runs)."""

    def snapshot(self) -> dict[int, float]:
        return {0: _cpu_seconds_of_postgres()}

    def since(self, before: dict[int, float]) -> float:
        after = self.snapshot()
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


class _BackendCpu(_PostgresCpu):
    """CPU seconds of the PostgreSQL backends serving one server's connections to ``database``
    (by ``application_name``; the floor's are ``medloop-floor``), read from their /proc: the
    database work of that server alone, whatever else the shared PostgreSQL does."""

    def __init__(self, admin_url: str, database: str, floor: bool) -> None:
        self.engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self.database, self.floor = database, floor

    def snapshot(self) -> dict[int, float]:
        with self.engine.connect() as conn:
            pids = conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = :db AND backend_type = "
                    "'client backend' AND pid <> pg_backend_pid() AND "
                    "(application_name = 'medloop-floor') = :floor"
                ),
                {"db": self.database, "floor": self.floor},
            ).scalars()
            return {pid: _cpu_seconds(pid) for pid in pids}


def _postgres(base_url: str):
    admin_url = normalise_url(base_url)
    name = f"medloop_bench_api_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return admin, name, make_url(admin_url).set(database=name).render_as_string(hide_password=False)


# -- medloop against the floor of its own stack (issue #20) -------------------------------------


class FloorClient(Client):
    """The floor's scenario on one keep-alive connection (so on one server worker, which is
    where the floor keeps a patient's list): prescribe the rotation to each of its patients in
    turn, each prescription based on the list version the last answer gave (its ETag); wait
    until every client has done so (``barriers``: the benchmark reads the CPU counters
    between the two parts); then read its patients' lists in turn, ``iterations`` reads."""

    barriers: tuple = ()

    def _scenario(self) -> None:
        try:
            self._prescribe_all()
        finally:
            for barrier in self.barriers:
                barrier.wait(timeout=600)
        gp = self.tokens["gp"]
        for n in range(self.iterations):
            if time.perf_counter() > self.deadline:
                return
            patient = self.patients[n % len(self.patients)]
            self._call("list read", "GET", f"/patients/{patient.id}/list", gp)

    def _prescribe_all(self) -> None:
        gp = self.tokens["gp"]
        for patient in self.patients:
            tag = '"0"'
            for varenr in ROTATION:
                if time.perf_counter() > self.deadline:
                    return
                body = {
                    "entry_id": str(uuid.uuid4()),
                    "drug": {"varenr": varenr},
                    "use": "regular",
                    "start": date.today().isoformat(),
                    "terms": {"prescription_id": str(uuid.uuid4()), "quantity": {"packages": 1}},
                }
                headers = {"If-Match": tag, "Idempotency-Key": str(uuid.uuid4())}
                path = f"/patients/{patient.id}/prescriptions"
                _, answered = self._call("prescribe", "POST", path, gp, body, headers)
                tag = answered["etag"] or tag


def _floor_phase(
    port: int,
    server_pid: int,
    patients: list[BenchPatient],
    tokens: dict[str, str],
    args: argparse.Namespace,
    probe: _BackendCpu,
) -> dict:
    """One server's prescribe part and list read part (``FloorClient``), each with its own
    requests/s, latencies and CPU per request (server and its PostgreSQL backends)."""
    context = multiprocessing.get_context("fork")
    FloorClient.barriers = (context.Barrier(args.clients + 1), context.Barrier(args.clients + 1))
    per_client = len(patients) // args.clients
    started = time.perf_counter()
    deadline = started + args.seconds
    clients = [
        FloorClient(
            port,
            patients[i * per_client : (i + 1) * per_client],
            deadline,
            args.iterations,
            dict(tokens),
        )
        for i in range(args.clients)
    ]
    shares = [clients[k :: args.client_processes] for k in range(args.client_processes)]
    results = context.Queue()
    processes = [context.Process(target=_drive, args=(share, results)) for share in shares]
    marks = []

    def mark() -> None:
        marks.append((time.perf_counter(), _cpu_seconds_of_tree(server_pid), probe.snapshot()))

    mark()
    for process in processes:
        process.start()
    FloorClient.barriers[0].wait(timeout=600)  # every prescription sent and answered
    mark()
    FloorClient.barriers[1].wait(timeout=600)
    mark()
    driven = [results.get() for _ in processes]
    for process in processes:
        process.join()
    mark()
    timings: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for share in driven:
        for label, values in share["timings"].items():
            timings[label].extend(values)
        for label, counted in share["statuses"].items():
            for status, n in counted.items():
                statuses[label][status] += n
    errors = [error for share in driven for error in share["errors"]]
    found = {}
    for label, (first, last) in (("prescribe", (0, 1)), ("list read", (2, 3))):
        (t0, server0, pg0), (t1, server1, _) = marks[first], marks[last]
        n = max(len(timings[label]), 1)
        found[label] = {
            "requests_per_s": round(len(timings[label]) / (t1 - t0), 1),
            **_latencies(timings[label]),
            "server_cpu_ms": round((server1 - server0) * 1000 / n, 3),
            "postgres_cpu_ms": round(
                sum(cpu - pg0.get(pid, 0.0) for pid, cpu in marks[last][2].items()) * 1000 / n, 3
            ),
            "statuses": dict(statuses[label]),
        }
    found["errors"] = errors
    return found


def _floor_module():
    """bench/floor.py, imported as ``floor`` (the name its pickled calibration refers to)."""
    if "floor" not in sys.modules:
        sys.path.append(str(Path(__file__).resolve().parent))
        import floor  # noqa: F401

    return sys.modules["floor"]


def _calibrate_floor(engine, warm: BenchPatient, patient: BenchPatient, gp: str, path: Path):
    """Record medloop (in-process, on the benchmark's database) serving the floor's scenario
    (``floor.calibrate``) and write the recording to ``path``."""
    from fastapi.testclient import TestClient

    from medloop.api.app import create_app
    from medloop.api.config import DEV_PUBLIC_KEY, ApiSettings
    from medloop.settings import DEFAULT_AUDIENCE, DEV_ISSUER

    floor = _floor_module()
    os.environ["MEDLOOP_ALLOW_DEV_KEYS"] = "1"
    app = create_app(ApiSettings.from_env(engine.url.render_as_string(False)), engine=engine)
    with TestClient(app) as client:
        # The first command builds the catalogue knowledge: not the steady state.
        for v, varenr in enumerate(ROTATION[:2]):
            answer = client.post(
                f"/patients/{warm.id}/prescriptions",
                json={
                    "entry_id": str(uuid.uuid4()),
                    "drug": {"varenr": varenr},
                    "use": "regular",
                    "start": date.today().isoformat(),
                    "terms": {"prescription_id": str(uuid.uuid4()), "quantity": {"packages": 1}},
                },
                headers={"Authorization": f"Bearer {gp}", "If-Match": f'"{v}"'},
            )
            assert answer.status_code == 201, answer.text
        with engine.connect() as conn:
            national = conn.execute(
                text("SELECT national_id FROM patient WHERE id = :id"), {"id": patient.id}
            ).scalar_one()
        calibration = floor.calibrate(
            client,
            patient.id,
            national,
            gp,
            (DEV_PUBLIC_KEY.read_text(), DEV_ISSUER, DEFAULT_AUDIENCE),
            date.today(),
        )
    import pickle

    path.write_bytes(pickle.dumps(calibration))


def start_floor(
    calibration: Path, url: str, port: int, workers: int, user: str | None = None
) -> subprocess.Popen:
    """``bench/floor.py`` in a subprocess (its log in a file, as ``start_server``'s), connected
    as ``user`` when given (pg_stat_statements then tells its statements from medloop's)."""
    log = tempfile.TemporaryFile()
    floor_url = make_url(url).set(drivername="postgresql")
    if user:
        floor_url = floor_url.set(username=user)
    floor_url = floor_url.render_as_string(hide_password=False)
    server = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve().parent / "floor.py"),
            "--calibration",
            str(calibration),
            "--database-url",
            floor_url,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    server.log = log  # type: ignore[attr-defined]
    return server


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


HOST_LOOP_ADDITIONS = 2_000_000


def host_loop_s(additions: int = HOST_LOOP_ADDITIONS) -> float:
    """The host's speed now: the seconds a fixed pure-Python loop of ``additions`` additions
    takes in this process, before and after each run (0.056-0.072 s for two million on this
    machine at its normal speed, session 17). The floor ratios move with the host's speed
    (RESULTS, #20, sessions 16 and 17): a run whose loop took twice as long was measured on a
    slowed host. It does not see what the host does during a phase."""
    started = time.perf_counter()
    total = 0
    for i in range(additions):
        total += i
    return round(time.perf_counter() - started, 3)


@dataclass
class FloorWorld:
    """What a comparison with the floor measures on (``floor_world``): a fresh PostgreSQL
    database (``name`` on the server of ``admin_url``) with its registered patients, a GP's
    token, the floor's calibration recorded on it, and the servers started on it (``serve``),
    each measured through the probe of its own PostgreSQL backends."""

    url: str
    name: str
    admin_url: str
    patients: list[BenchPatient]
    tokens: dict[str, str]
    calibration: Path
    servers: dict[str, tuple[subprocess.Popen, int, bool]] = field(default_factory=dict)
    probes: dict[bool, _BackendCpu] = field(default_factory=dict)

    def serve(self, which: str, port: int, server: subprocess.Popen, *, floor: bool) -> None:
        """Keep ``server`` (on ``port``; ``floor``: it is bench/floor.py) as ``which``, stopped
        when the world ends."""
        self.servers[which] = (server, port, floor)

    def until_serving(self) -> None:
        """Wait until every server answers, then open the probes of medloop's and the floor's
        backends."""
        for server, port, _ in self.servers.values():
            _wait_until_serving(port, server)
        self.probes = {
            floor: _BackendCpu(self.admin_url, self.name, floor) for floor in (False, True)
        }

    def measure(self, order: Sequence[str], per_phase: int, args, **stamp) -> dict:
        """One run: each server's prescribe and list read phases (``_floor_phase``) in ``order``,
        on ``per_phase`` new patients each, with the load average before (and ``stamp``) and
        after."""
        measured: dict = {
            "order": list(order),
            "load_before": _loadavg(),
            "host_loop_s_before": host_loop_s(),
            **stamp,
        }
        for which in order:
            server, port, floor = self.servers[which]
            share = [self.patients.pop() for _ in range(per_phase)]
            probe = self.probes[floor]
            measured[which] = _floor_phase(port, server.pid, share, self.tokens, args, probe)
        measured["load_after"] = _loadavg()
        measured["host_loop_s_after"] = host_loop_s()
        return measured

    def stop(self) -> None:
        for server, _, _ in self.servers.values():
            server.terminate()
            server.wait(timeout=30)
        for probe in self.probes.values():
            probe.engine.dispose()


@contextmanager
def floor_world(base_url: str, catalogue: Path, patients: int) -> Iterator[FloorWorld]:
    """A database of its own on ``base_url``'s server for the block, migrated, with
    ``catalogue`` imported, ``patients`` registered (two of them taken for the floor's
    calibration, recorded from medloop in this process); the servers the block starts are
    stopped and the database dropped after it."""
    admin, name, url = _postgres(base_url)
    world = None
    try:
        engine = make_engine(url)
        upgrade(engine)
        import_catalogue(engine, catalogue, allow_shrink=True, allow_older=True)
        registered = _patients(engine, patients)
        tokens = {
            "gp": issue_token("gp", GP.personnel.hpr_number, GP.organisation.id),
            "pharmacist": "",
        }
        calibration = Path(tempfile.mkdtemp(prefix="medloop-floor-")) / "floor.calibration"
        _calibrate_floor(engine, registered.pop(), registered.pop(), tokens["gp"], calibration)
        engine.dispose()
        world = FloorWorld(url, name, normalise_url(base_url), registered, tokens, calibration)
        yield world
    finally:
        if world is not None:
            world.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


FLOOR_FIGURES = ("requests_per_s", "p50_ms", "p99_ms", "server_cpu_ms", "postgres_cpu_ms")


def floor_comparison(base_url: str, args: argparse.Namespace) -> dict:
    """medloop and the floor (bench/floor.py) on one PostgreSQL database, both running, measured
    in turn (the order alternating run by run; a first run warms both up and is not reported):
    per server and run a prescribe phase (``--patients-per-client`` patients per client get the
    rotation) and a list read phase (``--iterations`` reads per client of those lists). Each
    phase reports requests/s, p50/p99, the server's CPU ms per request (its processes' /proc)
    and PostgreSQL's (the backends of that server's connections); the medians over the runs,
    and medloop's figures as ratios to the floor's."""
    per_phase = args.clients * args.patients_per_client
    runs = []
    with floor_world(base_url, args.catalogue, 2 * (args.runs + 1) * per_phase + 2) as world:
        port = args.port or 9510
        medloop = start_server(server_env(world.url), port, args.workers)
        world.serve("medloop", port, medloop, floor=False)
        floor = start_floor(world.calibration, world.url, port + 1, args.workers, args.floor_user)
        world.serve("floor", port + 1, floor, floor=True)
        world.until_serving()
        for run in range(args.runs + 1):
            order = ("medloop", "floor") if run % 2 == 0 else ("floor", "medloop")
            measured = world.measure(order, per_phase, args)
            if run > 0:  # the first run warms both servers up
                runs.append(measured)
    median: dict = {}
    ratios: dict = {}
    for which in ("medloop", "floor"):
        median[which] = {
            endpoint: {
                figure: round(statistics.median(r[which][endpoint][figure] for r in runs), 3)
                for figure in FLOOR_FIGURES
            }
            for endpoint in ("list read", "prescribe")
        }
    for endpoint in ("list read", "prescribe"):
        ours, floor_figures = median["medloop"][endpoint], median["floor"][endpoint]
        ratios[endpoint] = {
            figure: round(ours[figure] / floor_figures[figure], 2)
            if floor_figures[figure]
            else None
            for figure in FLOOR_FIGURES
        }
    loops = sorted(r[key] for r in runs for key in ("host_loop_s_before", "host_loop_s_after"))
    return {
        "clients": args.clients,
        "workers": args.workers,
        "host_loop_s": {
            "additions": HOST_LOOP_ADDITIONS,
            "min": loops[0],
            "median": round(statistics.median(loops), 3),
            "max": loops[-1],
        },
        "runs": runs,
        "median": median,
        "ratios_medloop_to_floor": ratios,
    }


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
    parser.add_argument(
        "--lockstep",
        action="store_true",
        help="paced phase as before session 6: every client at the same step of the scenario "
        "and of its patients' rotation (16 prescribes due within one interval, 16 new patients "
        "opened at once)",
    )
    parser.add_argument(
        "--analyze-at",
        type=float,
        metavar="SECONDS",
        help="ANALYZE the database this long into the paced phase (as autovacuum's visits do "
        "at their own moments), to see what it costs the requests after it",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        metavar="DIR",
        help="trace every request into DIR: the server's workers (MEDLOOP_TRACE, "
        "medloop.api.trace) and the clients (client-closed.jsonl, client-paced.jsonl); "
        "bench/paced_trace.py joins them",
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
    parser.add_argument(
        "--floor",
        action="store_true",
        help="medloop against the floor (bench/floor.py), interleaved, on PostgreSQL only: "
        "prescribe and list read phases; --iterations is then reads per client",
    )
    parser.add_argument("--runs", type=int, default=3, help="--floor: measured runs (median)")
    parser.add_argument(
        "--patients-per-client", type=int, default=8, help="--floor: patients prescribed to"
    )
    parser.add_argument(
        "--port",
        type=int,
        help="the server's port (default: a free one); --floor: medloop's (the floor's is the "
        "next; default 9510)",
    )
    parser.add_argument(
        "--floor-user", help="--floor: the database role the floor connects as (default: ours)"
    )
    parser.add_argument(
        "--private-postgres",
        type=int,
        metavar="PORT",
        help="run the PostgreSQL figures on a private cluster on PORT (scripts/pg-bench, "
        "started and removed here) instead of MEDLOOP_TEST_POSTGRES_URL's server: other "
        "databases' CREATE/DROP DATABASE on a shared server force immediate checkpoints",
    )
    args = parser.parse_args()
    if not 1 <= args.client_processes <= args.clients:
        parser.error("--client-processes must be from 1 to --clients")
    if args.private_postgres:
        keep_log = args.trace / "postgres.log" if args.trace else None
        with private_postgres(args.private_postgres, keep_log) as url:
            if args.trace:
                _log_waits(url)
            os.environ["MEDLOOP_TEST_POSTGRES_URL"] = url
            _main(args, parser)
        return
    _main(args, parser)


def _log_waits(url: str) -> None:
    """--trace on a private cluster: its log also says what could make a request wait there
    (every autovacuum run, lock waits over 10 ms, statements over 10 ms), for
    bench/paced_trace.py to set beside the slowest requests."""
    admin = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        for setting, value in (
            ("log_autovacuum_min_duration", "0"),
            ("log_lock_waits", "on"),
            ("deadlock_timeout", "'10ms'"),
            ("log_min_duration_statement", "10"),
        ):
            conn.execute(text(f"ALTER SYSTEM SET {setting} = {value}"))
        conn.execute(text("SELECT pg_reload_conf()"))
    admin.dispose()


@contextmanager
def private_postgres(port: int, keep_log: Path | None = None) -> Iterator[str]:
    """A private cluster (``scripts/pg-bench``) for the block: its URL; its log is where the
    phases' checkpoints are read from (and copied to ``keep_log`` at the end, when given)."""
    global POSTGRES_LOG, PRIVATE_POSTMASTER
    directory = Path(tempfile.mkdtemp(prefix="medloop-bench-pg-"))
    script = str(REPO / "scripts" / "pg-bench")
    try:
        found = subprocess.run(
            [script, "start", str(directory), str(port)], check=True, capture_output=True
        )
        POSTGRES_LOG = directory / "server.log"
        PRIVATE_POSTMASTER = int((directory / "data" / "postmaster.pid").read_text().split()[0])
        yield found.stdout.decode().strip()
    finally:
        PRIVATE_POSTMASTER = None
        if keep_log is not None and (directory / "server.log").exists():
            keep_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(directory / "server.log", keep_log)
        subprocess.run([script, "stop", str(directory)], check=False)


def _main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.floor:
        pg = os.environ.get("MEDLOOP_TEST_POSTGRES_URL")
        if not pg:
            parser.error("--floor needs PostgreSQL: set MEDLOOP_TEST_POSTGRES_URL")
        print(json.dumps(floor_comparison(pg, args), indent=2))
        return
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
