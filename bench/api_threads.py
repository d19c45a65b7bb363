"""Benchmark: a serving process's CPU per request split by thread, with its context switches
(issue #20).

``bench/api.py --floor`` gives each server's CPU per request as one figure. This runs the same
phases (16 keep-alive clients prescribe the rotation to ``--patients-per-client`` patients each,
then read those lists ``--iterations`` times each) against one or more ``medloop serve`` servers
of 2 workers (``--server NAME=TREE[:ENV=VALUE,...]``: the tree goes first on ``PYTHONPATH``, the
settings into its environment, e.g. ``t2=/work/main:MEDLOOP_ROUTE_THREADS=2``) and, with
``--floor``, ``bench/floor.py``, on one private PostgreSQL cluster, the servers measured in a
rotating order, the first round a warm-up. Around each part it reads every thread of every
worker (``/proc/PID/task/TID``) and reports per request: CPU (and the system part of it) and
voluntary and involuntary context switches of the event loop's thread (``main``) and of the
other threads (``python``: the route threads and the acceptor), and of the supervisor
(``/parent``). ``--tool-prescribe`` / ``--tool-list`` run a command against the workers for
the duration of that part in round ``--tool-round`` (``{pids}``: the workers, comma-separated;
``{out}``: a file prefix), stopped with SIGINT: e.g. ``perf stat -e context-switches -p {pids}
-o {out}.perf`` or a py-spy per worker. Prints one JSON list (a round per entry).

    .venv/bin/python bench/api_threads.py --pg-port 5480 --http-port 8800 --rounds 3 \\
        --server base=/tmp/base --server branch=$PWD --floor
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]
import api  # noqa: E402
from sqlalchemy import text  # noqa: E402

from fest.loader import import_catalogue  # noqa: E402
from medloop.api.auth import issue_token  # noqa: E402
from medloop.demo import GP  # noqa: E402
from medloop.store.db import make_engine  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402

CLIENTS = 16
WORKERS = 2


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(k) for k in found.read_text().split()] if found.exists() else []


def _threads(pids: list[int]) -> dict[tuple[int, int], tuple[str, int, int, int, int]]:
    """Every thread of ``pids``: (pid, tid) -> (name, user ticks, system ticks, voluntary and
    involuntary context switches)."""
    found = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text()
                status = (task / "status").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            switches = {
                line.split(":")[0]: int(line.split()[1])
                for line in status.splitlines()
                if line.endswith(tuple("0123456789")) and "ctxt_switches" in line
            }
            found[(pid, int(task.name))] = (
                name,
                int(fields[11]),
                int(fields[12]),
                switches.get("voluntary_ctxt_switches", 0),
                switches.get("nonvoluntary_ctxt_switches", 0),
            )
    return found


def _per_request(before: dict, after: dict, workers: set[int], n: int) -> dict[str, dict]:
    tick = os.sysconf("SC_CLK_TCK")
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for key, (name, user, system, voluntary, involuntary) in after.items():
        _, user0, system0, voluntary0, involuntary0 = before.get(key, (name, 0, 0, 0, 0))
        kind = "main" if key[0] == key[1] else "python"
        if key[0] not in workers:
            kind += "/parent"
        group = groups[kind]
        group[0] += user - user0
        group[1] += system - system0
        group[2] += voluntary - voluntary0
        group[3] += involuntary - involuntary0
    return {
        kind: {
            "cpu_ms": round((g[0] + g[1]) * 1000 / tick / n, 3),
            "sys_ms": round(g[1] * 1000 / tick / n, 3),
            "voluntary_switches": round(g[2] / n, 2),
            "involuntary_switches": round(g[3] / n, 2),
        }
        for kind, g in sorted(groups.items())
    }


def _tool(template: str | None, workers: list[int], out: str) -> subprocess.Popen | None:
    if not template:
        return None
    command = template.format(pids=",".join(map(str, workers)), out=out)
    return subprocess.Popen(command, shell=True, start_new_session=True)


def _stop(tool: subprocess.Popen | None) -> None:
    if tool is None:
        return
    try:
        os.killpg(tool.pid, signal.SIGINT)
        tool.wait(timeout=60)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(tool.pid, signal.SIGKILL)


def _phase(port, server_pid, patients, tokens, args, tools: tuple | None) -> dict:
    """``api.FloorClient``'s prescribe part and list read part against one server."""
    context = multiprocessing.get_context("fork")
    client = api.FloorClient
    client.barriers = (context.Barrier(CLIENTS + 1), context.Barrier(CLIENTS + 1))
    per = len(patients) // CLIENTS
    deadline = time.perf_counter() + 600
    clients = [
        client(port, patients[i * per : (i + 1) * per], deadline, args.iterations, dict(tokens))
        for i in range(CLIENTS)
    ]
    results = context.Queue()
    process = context.Process(target=api._drive, args=(clients, results))
    workers = _children(server_pid) or [server_pid]
    marks = []

    def mark() -> None:
        marks.append((time.perf_counter(), _threads([*workers, server_pid])))

    tool = _tool(tools and tools[0], workers, tools and f"{tools[2]}-prescribe")
    mark()
    process.start()
    client.barriers[0].wait(timeout=600)
    mark()
    _stop(tool)
    tool = _tool(tools and tools[1], workers, tools and f"{tools[2]}-list")
    client.barriers[1].wait(timeout=600)
    mark()
    driven = results.get()
    process.join()
    mark()
    _stop(tool)
    found = {}
    for label, (first, last) in (("prescribe", (0, 1)), ("list read", (2, 3))):
        timings = sorted(driven["timings"].get(label, [0.0]))
        n = max(len(driven["timings"].get(label, [])), 1)
        (t0, before), (t1, after) = marks[first], marks[last]
        threads = _per_request(before, after, set(workers), n)
        found[label] = {
            "requests_per_s": round(n / (t1 - t0), 1),
            "server_cpu_ms": round(sum(t["cpu_ms"] for t in threads.values()), 3),
            "p50_ms": round(timings[len(timings) // 2], 1),
            "p99_ms": round(timings[int(len(timings) * 0.99)], 1),
            "threads": threads,
            "statuses": driven["statuses"].get(label),
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-port", type=int, required=True, help="the private cluster's port")
    parser.add_argument("--http-port", type=int, default=8800, help="the first server's; +2 each")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (after a warm-up)")
    parser.add_argument("--server", action="append", default=[], help="NAME=TREE[:ENV=V,...]")
    parser.add_argument("--floor", action="store_true", help="bench/floor.py as one more server")
    parser.add_argument("--patients-per-client", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=100, help="list reads per client")
    parser.add_argument("--tool-prescribe", help="a command run during each prescribe part")
    parser.add_argument("--tool-list", help="a command run during each list read part")
    parser.add_argument("--tool-round", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "api-threads")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    servers = {}
    for spec in args.server:
        name, _, rest = spec.partition("=")
        tree, _, settings = rest.partition(":")
        servers[name] = (tree, dict(kv.split("=", 1) for kv in settings.split(",") if kv))
    names = [*servers, *(["floor"] if args.floor else [])]
    os.chdir(tempfile.gettempdir())  # python -c would put a source tree first on sys.path
    with api.private_postgres(args.pg_port) as base_url:
        admin, database, url = api._postgres(base_url)
        started: dict[str, subprocess.Popen] = {}
        try:
            engine = make_engine(url)
            upgrade(engine)
            import_catalogue(engine, api.DEMO, allow_shrink=True, allow_older=True)
            per_phase = CLIENTS * args.patients_per_client
            patients = api._patients(engine, len(names) * (args.rounds + 1) * per_phase + 2)
            gp = issue_token("gp", GP.personnel.hpr_number, GP.organisation.id)
            tokens = {"gp": gp, "pharmacist": ""}
            calibration = args.out / "floor.calibration"
            if args.floor:
                api._calibrate_floor(engine, patients.pop(), patients.pop(), gp, calibration)
            engine.dispose()
            env = {
                **os.environ,
                "MEDLOOP_ALLOW_DEV_KEYS": "1",
                "MEDLOOP_DATABASE_URL": url,
                "MEDLOOP_SCHEDULER": "off",
            }
            env.pop("PYTHONPATH", None)
            ports = {name: args.http_port + 2 * k for k, name in enumerate(names)}
            for name in names:
                if name == "floor":
                    started[name] = api.start_floor(calibration, url, ports[name], WORKERS)
                else:
                    tree, settings = servers[name]
                    server_env = {**env, "PYTHONPATH": tree, **settings}
                    started[name] = api.start_server(server_env, ports[name], WORKERS)
            for name in names:
                api._wait_until_serving(ports[name], started[name])
                api._wait_until_every_worker_accepts(started[name], WORKERS)
            rounds = []
            for n in range(args.rounds + 1):
                order = names[n % len(names) :] + names[: n % len(names)]
                measured: dict = {"load_before": api._loadavg()}
                for name in order:
                    share = [patients.pop() for _ in range(per_phase)]
                    tools = None
                    if n == args.tool_round:
                        tools = (args.tool_prescribe, args.tool_list, f"{args.out}/r{n}-{name}")
                    measured[name] = _phase(
                        ports[name], started[name].pid, share, tokens, args, tools
                    )
                    print(n, name, json.dumps(measured[name]), file=sys.stderr, flush=True)
                if n > 0:
                    rounds.append(measured)
            print(json.dumps(rounds, indent=1))
        finally:
            for server in started.values():
                server.terminate()
                server.wait(timeout=30)
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
