"""Where the slow requests of a traced benchmark run spent their time (issue #20, the paced tail).

Reads a directory written by ``bench/api.py --trace DIR`` (the clients' ``client-PHASE.jsonl``
and the server workers' ``worker-PID.jsonl``, ``medloop.api.trace``), joins each client request
to the server's record of it (the client's local port and the request's number on that
connection) and splits its latency, from when it was due, into consecutive segments:

  behind        due -> ready           due before the previous request on its connection was
                                     answered (ready: when it was): the server's backlog
  client_late   ready -> sent          the client sent it late (its sleep, its GIL)
  to_server     sent -> begin          until the server's event loop parsed its first bytes
  to_app        begin -> app           body, task start, until the ASGI app got it
  edge_in       app -> submit          middleware, routing, parameters, until queued for a thread
  queue         submit -> start        waiting for a route thread
  route         start -> done          the route in its thread (split below)
  back          done -> resumed        until the event loop took the answer back
  edge_out      resumed -> sent        rendering and writing the response
  to_client     sent(server) -> answered   until the client had read it

and the route into its CPU time (``route_cpu``), its database round trips' waiting time
(``db_wait``: wall minus CPU of the round trips, which includes taking the GIL back after each),
the time neither running nor in a round trip (``route_off_db``: waiting for the GIL or a core),
and, by the kernel's schedstat, its time runnable but waiting for a core (``route_core_wait``) and
asleep (``route_asleep``: on the database's socket or the GIL). Prints, as JSON, per endpoint and
for all, the median of each segment over every request and over the slowest 1 %, and for the
slowest requests what else happened meanwhile: collector passes in their worker and in the clients,
the event loop's late turns, how many routes were in flight, the longest disk sync of the
benchmark's probe (``disk-PHASE.jsonl``), the machine's pressure meanwhile (``machine``: the share
of the time some task waited for a core, for I/O, and how many of the private cluster's processes
waited for a core, on average) and the private cluster's log lines (``postgres.log``:
autovacuum runs, lock waits and statements over 10 ms, checkpoints). Each slow request is also
named by its dominant segment (``dominant``; counted over the slowest 1 %), and whether it was on
its patient's first round (``fresh``: the patient's state not yet cached in that worker).

    .venv/bin/python bench/paced_trace.py DIR [--phase paced] [--slowest 0.01]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

SEGMENTS = (
    ("behind", "due", "ready"),
    ("client_late", "ready", "sent"),
    ("to_server", "sent", "begin"),
    ("to_app", "begin", "app"),
    ("edge_in", "app", "submit"),
    ("queue", "submit", "start"),
    ("route", "start", "done"),
    ("back", "done", "resumed"),
    ("edge_out", "resumed", "server_sent"),
    ("to_client", "server_sent", "answered"),
)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def postgres_log(directory: Path, clients: list[dict]) -> list[dict]:
    """The private cluster's log lines (``postgres.log``, kept by ``bench/api.py --trace``), each
    at its moment on the trace's clock (the clients' ``clock`` line ties the two clocks); [] when
    either is missing."""
    clock = next((c for c in clients if c["kind"] == "clock"), None)
    path = directory / "postgres.log"
    if clock is None or not path.exists():
        return []
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        except ValueError:
            continue  # a statement's continuation line
        found.append(
            {"at": at.timestamp() - clock["wall"] + clock["perf"], "line": line[24:].strip()[:200]}
        )
    return found


def load(directory: Path, phase: str) -> tuple[list[dict], dict[int, list[dict]], list[dict]]:
    """The joined requests, each worker's other records (by pid), the clients' gc passes."""
    clients = _lines(directory / f"client-{phase}.jsonl")
    workers: dict[int, list[dict]] = {}
    by_key: dict[tuple[int, int], tuple[int, dict]] = {}
    for path in sorted(directory.glob("worker-*.jsonl")):
        pid = int(path.stem.split("-")[1])
        records = _lines(path)
        workers[pid] = [r for r in records if r["kind"] != "request"]
        for record in records:
            if record["kind"] == "request" and record.get("port") is not None:
                by_key[(record["port"], record["seq"])] = (pid, record)
    joined = []
    answered: dict[int, float] = {}  # each connection's previous answer (its requests in order)
    requests = sorted((c for c in clients if c["kind"] == "request"), key=lambda c: c["due"])
    for request in requests:
        request["ready"] = max(request["due"], answered.get(request["port"], 0.0))
        answered[request["port"]] = request["answered"]
        found = by_key.get((request["port"], request["seq"]))
        if found is None:
            continue
        pid, server = found
        row = {**server, **request, "worker": pid, "server_sent": server.get("sent")}
        row["latency_ms"] = (request["answered"] - request["due"]) * 1000
        joined.append(row)
    client_gc = [c for c in clients if c["kind"] == "gc"]
    return joined, workers, client_gc


def segments(row: dict) -> dict[str, float]:
    found = {}
    for name, first, last in SEGMENTS:
        if row.get(first) is not None and row.get(last) is not None:
            found[name] = (row[last] - row[first]) * 1000
    if "route" in found:
        db = row.get("db") or []
        db_wall = sum(end - start for start, end, _ in db)
        db_cpu = sum(cpu for _, _, cpu in db)
        cpu = row.get("cpu", 0.0)
        found["route_cpu"] = cpu * 1000
        found["db_wait"] = (db_wall - db_cpu) * 1000
        found["db_trips"] = len(db)
        found["route_off_db"] = found["route"] - found["route_cpu"] - found["db_wait"]
        found["route_core_wait"] = row.get("runq", 0.0) * 1000
        found["route_asleep"] = found["route"] - found["route_cpu"] - found["route_core_wait"]
    return found


def _median_segments(rows: list[dict]) -> dict[str, float]:
    per: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        for name, value in segments(row).items():
            per[name].append(value)
    return {name: round(statistics.median(values), 2) for name, values in per.items()}


def _mean_segments(rows: list[dict]) -> dict[str, float]:
    per: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        for name, value in segments(row).items():
            per[name].append(value)
    return {name: round(statistics.fmean(values), 2) for name, values in per.items()}


def _overlapping(events: list[dict], start: float, end: float) -> list[dict]:
    return [e for e in events if e["at"] < end and e["at"] + e["ms"] / 1000 > start]


def dominant(found: dict[str, float]) -> str:
    """The segment that took most of a request's time (the route split into its CPU, its round
    trips' waiting, its time runnable waiting for a core, and the rest asleep)."""
    parts = {k: v for k, v in found.items() if k != "route" and k != "db_trips"}
    parts.pop("route_off_db", None)
    if "route_asleep" in parts:
        parts["route_asleep"] = max(0.0, parts["route_asleep"] - parts.get("db_wait", 0.0))
    return max(parts, key=lambda k: parts[k]) if parts else "unknown"


def _pressure_between(samples: list[dict], start: float, end: float) -> dict[str, float]:
    """From the probe's samples around [start, end]: the share of the time some task waited
    for a core (``cpu``) and for I/O (``io``), and how many of the private cluster's processes
    were runnable but waiting for a core, on average (``postgres_runq``)."""
    before = [e for e in samples if e["at"] <= start]
    after = [e for e in samples if e["at"] >= end]
    if not before or not after:
        return {}
    first, last = before[-1], after[0]
    span = last["at"] - first["at"]
    if span <= 0:
        return {}
    return {
        "cpu": round((last["cpu_us"] - first["cpu_us"]) / 1e6 / span, 2),
        "io": round((last["io_us"] - first["io_us"]) / 1e6 / span, 2),
        "postgres_runq": round((last["postgres_runq_s"] - first["postgres_runq_s"]) / span, 2),
    }


def report(directory: Path, phase: str, slowest: float, show: int) -> dict:
    rows, workers, client_gc = load(directory, phase)
    clients = _lines(directory / f"client-{phase}.jsonl")
    pg_lines = postgres_log(directory, clients)
    disk_path = directory / f"disk-{phase}.jsonl"
    probed = _lines(disk_path) if disk_path.exists() else []
    disk = [e for e in probed if e["kind"] == "disk"]
    pressure = [e for e in probed if e["kind"] == "pressure"]
    rows.sort(key=lambda r: r["latency_ms"])
    by_label: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    summary = {}
    for label, group in [("all", rows), *sorted(by_label.items())]:
        cut = max(1, int(len(group) * slowest))
        slow = group[-cut:]
        summary[label] = {
            "n": len(group),
            "p50_ms": round(statistics.median(r["latency_ms"] for r in group), 2),
            "p99_ms": round(
                group[min(len(group) - 1, int(0.99 * (len(group) - 1)))]["latency_ms"], 2
            ),
            "median_segments_all": _median_segments(group),
            f"mean_segments_slowest_{cut}": _mean_segments(slow),
        }
    cut = max(1, int(len(rows) * slowest))
    first_due = min((r["due"] for r in rows), default=0.0)
    details = []
    for row in rows[-min(show, cut) :][::-1]:
        start, end = row["due"], row["answered"]
        events = workers.get(row["worker"], [])
        gcs = _overlapping([e for e in events if e["kind"] == "gc"], start, end)
        lags = _overlapping([e for e in events if e["kind"] == "lag"], start, end)
        found = segments(row)
        details.append(
            {
                "label": row["label"],
                "fresh": row.get("fresh"),
                "latency_ms": round(row["latency_ms"], 1),
                "at_s": round(row["due"] - first_due, 3),
                "worker": row["worker"],
                "inflight": row.get("inflight"),
                "dominant": dominant(found),
                "segments": {k: round(v, 2) for k, v in found.items()},
                "worker_gc": [(e["generation"], round(e["ms"], 2)) for e in gcs],
                "worker_lag_ms": [round(e["ms"], 1) for e in lags],
                "client_gc": [
                    (e["generation"], round(e["ms"], 2))
                    for e in _overlapping(client_gc, start, end)
                ],
                "postgres_log": [p["line"] for p in pg_lines if start - 0.5 <= p["at"] <= end],
                "disk_sync_ms": round(
                    max((e["ms"] for e in _overlapping(disk, start, end)), default=0.0), 1
                ),
                "machine": _pressure_between(pressure, start, end),
            }
        )
    cut_rows = rows[-cut:]
    fresh = {
        "all": round(sum(1 for r in rows if r.get("fresh")) / max(len(rows), 1), 3),
        "slowest": round(sum(1 for r in cut_rows if r.get("fresh")) / max(len(cut_rows), 1), 3),
    }
    dominant_slowest: dict[str, int] = defaultdict(int)
    for row in cut_rows:
        dominant_slowest[dominant(segments(row))] += 1
    gc_totals = {}
    for pid, events in workers.items():
        passes = [e for e in events if e["kind"] == "gc"]
        if rows:
            first, last = rows[0]["due"], max(r["answered"] for r in rows)
            passes = [e for e in passes if first <= e["at"] <= last]
        gc_totals[pid] = {
            f"gen{g}": {
                "passes": len(ms := [e["ms"] for e in passes if e["generation"] == g]),
                "max_ms": round(max(ms, default=0.0), 2),
                "total_ms": round(sum(ms), 1),
                "max_cpu_ms": round(
                    max((e.get("cpu_ms", 0) for e in passes if e["generation"] == g), default=0),
                    2,
                ),
            }
            for g in (0, 1, 2)
        }
    workers_served = defaultdict(int)
    for row in rows:
        workers_served[row["worker"]] += 1
    heaps = {pid: [e for e in events if e["kind"] == "heap"] for pid, events in workers.items()}
    return {
        "phase": phase,
        "worker_heap_at_shutdown": heaps,
        "requests_joined": len(rows),
        "requests_per_worker": dict(workers_served),
        "connections_per_worker": {
            pid: len({r["port"] for r in rows if r["worker"] == pid}) for pid in workers_served
        },
        "endpoints": summary,
        "worker_gc_in_phase": gc_totals,
        "worker_censuses": {
            pid: [e for e in events if e["kind"] == "census"] for pid, events in workers.items()
        },
        "share_on_a_patients_first_round": fresh,
        "dominant_segment_of_slowest": dict(
            sorted(dominant_slowest.items(), key=lambda kv: -kv[1])
        ),
        "machine_in_phase": _pressure_between(
            pressure,
            rows[0]["due"] if rows else 0.0,
            max((r["answered"] for r in rows), default=0.0),
        ),
        "disk_sync_ms": {
            "n": len(disk),
            "p50": round(statistics.median(e["ms"] for e in disk), 2) if disk else None,
            "p99": round(sorted(e["ms"] for e in disk)[int(0.99 * (len(disk) - 1))], 2)
            if disk
            else None,
            "max": round(max((e["ms"] for e in disk), default=0.0), 2),
        },
        "postgres_log_in_phase": [
            p["line"]
            for p in pg_lines
            if rows and rows[0]["due"] <= p["at"] <= max(r["answered"] for r in rows)
        ],
        "client_gc_in_phase": {
            f"gen{g}": len([e for e in client_gc if e["generation"] == g]) for g in (0, 1, 2)
        },
        "slowest": details,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--phase", default="paced", choices=("paced", "closed"))
    parser.add_argument("--slowest", type=float, default=0.01, help="the share called slow")
    parser.add_argument("--show", type=int, default=15, help="slow requests listed one by one")
    args = parser.parse_args()
    print(json.dumps(report(args.directory, args.phase, args.slowest, args.show), indent=1))


if __name__ == "__main__":
    main()
