"""Benchmark: the mixed API workload (bench/api.py) against a primary with a streaming replica,
read routing on (``MEDLOOP_DATABASE_REPLICA_URLS``) and off, interleaved in one run (issue #21).

Builds its own primary + ``pg_basebackup -R`` replica from the machine's PostgreSQL binaries
(``scripts/pg-replica``), then for each of ``--rounds`` rounds runs bench/api.py's two phases
(closed loop, paced) once with every read on the primary and once with catalogue reads routed to
the replica, in alternating order. Reports per run: requests/s, p99 per route, server CPU per
request, CPU per request of the *primary's* PostgreSQL processes and of the replica's, and the
replica's lag sampled every 0.25 s from the primary's ``pg_stat_replication`` (WAL bytes not yet
replayed, and ``replay_lag``). Prints one JSON object.
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
from pathlib import Path

from sqlalchemy import create_engine, text

BENCH = Path(__file__).resolve().parent
# bench/ goes after site-packages: bench/fhir.py must not shadow the fhir.resources package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]
import api  # noqa: E402 - bench/api.py, beside this file

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "pg-replica"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cluster_cpu(data_dir: Path) -> float:
    """CPU seconds of a cluster's postmaster and every backend it started."""
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError):
        return 0.0
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, parent = int(entry.name), int(fields[1])
        if pid == postmaster or parent == postmaster:
            total += api._cpu_seconds(pid)
    return total


class LagSampler(threading.Thread):
    def __init__(self, primary_url: str) -> None:
        super().__init__(daemon=True)
        self._primary = create_engine(primary_url, isolation_level="AUTOCOMMIT")
        self._done = threading.Event()
        self.bytes: list[int] = []
        self.seconds: list[float] = []

    def run(self) -> None:
        # pg_stat_replication on the primary: WAL bytes the standby has not replayed yet, and
        # replay_lag (the time from a commit's WAL flush on the primary to its replay; NULL
        # once the standby has caught up with an idle primary).
        with self._primary.connect() as primary:
            while not self._done.wait(0.25):
                row = primary.execute(
                    text(
                        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn),"
                        " EXTRACT(EPOCH FROM replay_lag) FROM pg_stat_replication LIMIT 1"
                    )
                ).first()
                if row is None:
                    continue
                self.bytes.append(max(int(row[0] or 0), 0))
                self.seconds.append(float(row[1] or 0.0))

    def stop(self) -> dict:
        self._done.set()
        self.join()
        self._primary.dispose()
        return {
            "samples": len(self.bytes),
            "wal_bytes_behind": {
                "p50": statistics.median(self.bytes) if self.bytes else None,
                "max": max(self.bytes) if self.bytes else None,
            },
            "replay_lag_seconds": {
                "p50": round(statistics.median(self.seconds), 3) if self.seconds else None,
                "max": round(max(self.seconds), 3) if self.seconds else None,
            },
        }


def _one_run(
    primary_url: str, replica_url: str, pair: Path, routed: bool, args: argparse.Namespace
) -> dict:
    name = f"medloop_bench_scale_{uuid.uuid4().hex[:8]}"
    admin = create_engine(primary_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = primary_url.rsplit("/", 1)[0] + f"/{name}"
    replica_db = replica_url.rsplit("/", 1)[0] + f"/{name}"
    if routed:
        os.environ["MEDLOOP_DATABASE_REPLICA_URLS"] = replica_db
    else:
        os.environ.pop("MEDLOOP_DATABASE_REPLICA_URLS", None)
    # bench/api.py counts "postgres" CPU: here the primary's processes only.
    api._cpu_seconds_of_postgres = lambda: _cluster_cpu(pair / "primary")
    replica_before = _cluster_cpu(pair / "replica")
    sampler = LagSampler(primary_url)
    try:
        sampler.start()
        measured = api.run(url, args)
        lag = sampler.stop()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    requests = sum(phase["requests"] for phase in measured.values())
    replica_cpu = _cluster_cpu(pair / "replica") - replica_before
    return {
        "read_routing": routed,
        "replica_cpu_ms_per_request": round(replica_cpu * 1000 / max(requests, 1), 3),
        "replica_lag": lag,
        **{
            phase: {
                "requests_per_s": found["requests_per_s"],
                "cpu_ms_per_request": found["cpu_ms_per_request"],
                "p99_ms": {label: e["p99_ms"] for label, e in found["endpoints"].items()},
                "errors": len(found["errors"]),
            }
            for phase, found in measured.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--rate", type=float, default=400.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--catalogue", type=Path, default=api.DEMO)
    args = parser.parse_args()
    args.client_processes = 1
    folder = Path(tempfile.mkdtemp(prefix="medloop-scale-", dir="/tmp"))
    folder.chmod(0o755)
    pair = folder / "pair"
    ports = _free_port(), _free_port()
    exports = subprocess.run(
        [str(SCRIPT), "start", str(pair), *map(str, ports)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = dict(line.removeprefix("export ").split("=", 1) for line in exports.splitlines())
    primary_url = found["MEDLOOP_TEST_REPLICA_PRIMARY_URL"]
    replica_url = found["MEDLOOP_TEST_REPLICA_URL"]
    runs = []
    try:
        for round_ in range(args.rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for routed in order:
                runs.append(
                    {"round": round_ + 1, **_one_run(primary_url, replica_url, pair, routed, args)}
                )
                time.sleep(1)
    finally:
        subprocess.run([str(SCRIPT), "stop", str(pair)], check=False)
        folder.rmdir()

    def median_of(routed: bool, phase: str, key: str) -> float:
        values = [
            run[phase]["cpu_ms_per_request"][key] if key != "rps" else run[phase]["requests_per_s"]
            for run in runs
            if run["read_routing"] is routed
        ]
        return round(statistics.median(values), 3)

    summary = {
        phase: {
            "requests_per_s": {
                "primary_only": median_of(False, phase, "rps"),
                "routed": median_of(True, phase, "rps"),
            },
            "primary_cpu_ms_per_request": {
                "primary_only": median_of(False, phase, "postgres"),
                "routed": median_of(True, phase, "postgres"),
            },
            "server_cpu_ms_per_request": {
                "primary_only": median_of(False, phase, "server"),
                "routed": median_of(True, phase, "server"),
            },
        }
        for phase in ("closed_loop", "paced")
    }
    print(
        json.dumps(
            {"workers": args.workers, "clients": args.clients, "summary": summary, "runs": runs},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
