"""Benchmark: the serving process's CPU per request on the event loop's side (issue #20), in
one process without sockets, two trees alternated in one invocation.

``bench/api.py --floor`` and ``bench/api_ab.py`` measure whole servers, whose figures move by
tens of percent with the machine's other work. This drives one serving process's stack as a
worker of ``medloop serve --workers N`` builds it (``medloop.api.app.from_env``: the app, the
settled heap, lean log records; uvicorn's configuration and medloop's ``HttpProtocol`` on
uvloop; the Prometheus multiprocess mode; the access log written to a file; 4 route threads
on PostgreSQL) with ``--clients`` keep-alive connections whose transports are in memory: each
client's next request is handed to its protocol's ``data_received`` as soon as the previous
response's last byte is written. The route threads, the hand-off and the database are real;
the network is not (no ``send``/``recv`` system calls on either side).

The phases are ``bench/api.py --floor``'s: each client prescribes the rotation
(``api.ROTATION``) to ``--patients-per-client`` patients of its own, each prescription based
on the ETag the last answer gave, then reads their lists ``--reads`` times. Per phase it
reports, per request: the event loop's thread CPU (``loop_cpu_ms``: uvicorn's protocol, the
middleware, the hot routes, the hand-off, the response, the access log and the metrics), the
whole process's CPU (``process_cpu_ms``: the route threads too), the voluntary and involuntary
context switches of the loop's thread and of the others, and the statuses.

Each ``--tree NAME=DIR`` runs in a process of its own with ``PYTHONPATH=DIR`` (working
directory /tmp), the trees in a rotating order in every round, on one database (a fresh one on
the server ``MEDLOOP_TEST_POSTGRES_URL`` names, or on a private cluster with
``--private-postgres PORT``); the first round warms up and is not reported.

    .venv/bin/python bench/edge.py --private-postgres 5477 --rounds 5 \\
        --tree base=/tmp/h9-edge-base --tree branch=$PWD
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

BENCH = Path(__file__).resolve().parent
HERE = Path(__file__).resolve()
# bench/ goes after site-packages: bench/fhir.py must not shadow the fhir.resources package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]


# -- the child: one serving process driven in memory ------------------------------------------


def _switches() -> dict[str, tuple[int, int]]:
    """Every thread of this process: name -> (voluntary, involuntary) context switches, the
    event loop's (this) thread as ``main``."""
    found: dict[str, tuple[int, int]] = {}
    me = os.getpid()
    for task in Path(f"/proc/{me}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue
        values = {
            line.split(":")[0]: int(line.split()[1])
            for line in status.splitlines()
            if "ctxt_switches" in line
        }
        key = "main" if int(task.name) == me else f"thread-{task.name}"
        found[key] = (values["voluntary_ctxt_switches"], values["nonvoluntary_ctxt_switches"])
    return found


def _loop_ticks() -> tuple[int, int]:
    """The event loop's (this) thread's user and system CPU, in clock ticks."""
    me = os.getpid()
    fields = Path(f"/proc/{me}/task/{me}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def _switch_delta(before: dict, after: dict, n: int) -> dict[str, float]:
    main = [a - b for a, b in zip(after["main"], before.get("main", (0, 0)), strict=True)]
    others = [0, 0]
    for key, (voluntary, involuntary) in after.items():
        if key == "main":
            continue
        v0, i0 = before.get(key, (0, 0))
        others[0] += voluntary - v0
        others[1] += involuntary - i0
    return {
        "loop_voluntary": round(main[0] / n, 2),
        "loop_involuntary": round(main[1] / n, 2),
        "others_voluntary": round(others[0] / n, 2),
        "others_involuntary": round(others[1] / n, 2),
    }


class MemoryTransport:
    """A keep-alive connection's transport in memory (this file's and ``bench/edge_count.py``'s
    drivers): what the protocol writes goes to ``client.received``; no system calls."""

    def __init__(self, client) -> None:
        self.client = client
        self.closing = False

    def get_extra_info(self, name: str, default=None):
        return {"sockname": ("127.0.0.1", 9000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        self.client.received(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def child(job: dict) -> dict:
    import asyncio

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="edge-prom-")
    os.environ["MEDLOOP_ALLOW_DEV_KEYS"] = "1"
    os.environ["MEDLOOP_DATABASE_URL"] = job["url"]
    os.environ["MEDLOOP_SCHEDULER"] = "off"
    import uvicorn
    import uvloop
    from uvicorn.server import ServerState

    import medloop
    from medloop.api.app import from_env
    from medloop.api.server import HttpProtocol

    app = from_env()
    config = uvicorn.Config(
        app, http=HttpProtocol, log_config=None, log_level="warning", lifespan="off"
    )
    config.load()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    state = ServerState()
    token = job["token"]

    class Client:
        def __init__(self, requests, done: asyncio.Future, counts: dict) -> None:
            self.requests = requests  # a generator: sent the last answer, yields the next
            self.done = done
            self.counts = counts
            self.buffer = b""
            self.protocol = HttpProtocol(config, state, {}, loop)
            self.protocol.connection_made(MemoryTransport(self))  # type: ignore[arg-type]

        def start(self) -> None:
            self._send(next(self.requests))

        def _send(self, request: bytes) -> None:
            loop.call_soon(self.protocol.data_received, request)

        def received(self, data: bytes) -> None:
            self.buffer += data
            head, found, body = self.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            lines = head.split(b"\r\n")
            headers = dict(line.split(b": ", 1) for line in lines[1:])
            if len(body) < int(headers[b"content-length"]):
                return
            self.buffer = b""
            status = int(lines[0].split()[1])
            self.counts[status] = self.counts.get(status, 0) + 1
            try:
                self._send(self.requests.send((status, headers.get(b"etag", b"").decode())))
            except StopIteration:
                self.done.set_result(None)

    def prescribes(patients):
        for patient in patients:
            tag = '"0"'
            for varenr in job["rotation"]:
                body = json.dumps(
                    {
                        "entry_id": str(uuid.uuid4()),
                        "drug": {"varenr": varenr},
                        "use": "regular",
                        "start": date.today().isoformat(),
                        "terms": {
                            "prescription_id": str(uuid.uuid4()),
                            "quantity": {"packages": 1},
                        },
                    }
                ).encode()
                request = (
                    f"POST /patients/{patient}/prescriptions HTTP/1.1\r\n"
                    "Host: 127.0.0.1:9000\r\nAccept-Encoding: identity\r\n"
                    f"Content-Length: {len(body)}\r\nAuthorization: Bearer {token}\r\n"
                    f"If-Match: {tag}\r\nIdempotency-Key: {uuid.uuid4()}\r\n"
                    "Content-Type: application/json\r\n\r\n"
                ).encode() + body
                _, etag = yield request
                tag = etag or tag

    def reads(patients, count):
        for n in range(count):
            patient = patients[n % len(patients)]
            yield (
                f"GET /patients/{patient}/list HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"
                f"Accept-Encoding: identity\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()

    async def phase(streams) -> dict:
        counts: dict[int, int] = {}
        clients = [Client(s, loop.create_future(), counts) for s in streams]
        switches, ticks = _switches(), _loop_ticks()
        started = time.monotonic()  # to find the phase in a profiler's timeline
        wall, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
        for client in clients:
            client.start()
        await asyncio.gather(*(client.done for client in clients))
        loop_cpu = time.thread_time() - loop_cpu
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        n = sum(counts.values())
        user, system = (b - a for a, b in zip(ticks, _loop_ticks(), strict=True))
        return {
            "monotonic": [round(started, 6), round(time.monotonic(), 6)],
            "requests": n,
            "requests_per_s": round(n / wall, 1),
            "loop_cpu_ms": round(loop_cpu * 1000 / n, 4),
            "process_cpu_ms": round(cpu * 1000 / n, 4),
            "loop_system_share": round(system / max(user + system, 1), 3),
            **_switch_delta(switches, _switches(), n),
            "statuses": counts,
        }

    async def main() -> dict:
        warm = job["warm"]
        await phase([prescribes([warm])])  # the catalogue knowledge, the first command
        await phase([reads([warm], 20)])
        per = job["patients_per_client"]
        mine = job["patients"]
        groups = [mine[k * per : (k + 1) * per] for k in range(job["clients"])]
        profile = None
        if job.get("profile"):  # the event loop's thread only (cProfile follows one thread)
            import cProfile

            profile = cProfile.Profile(time.thread_time)  # its CPU, not the wall clock
            profile.enable()
        found = {"prescribe": await phase([prescribes(g) for g in groups])}
        found["list read"] = await phase([reads(g, job["reads"]) for g in groups])
        if profile is not None:
            profile.disable()
            profile.dump_stats(f"{job['profile']}.{os.getpid()}")
        return found

    result = loop.run_until_complete(main())
    result["medloop"] = str(Path(medloop.__file__).parent)
    return result


# -- the parent: the database, the patients, the rounds ----------------------------------------


def parent(args: argparse.Namespace) -> list[dict]:
    import contextlib

    import api
    from sqlalchemy import text

    from fest.loader import import_catalogue
    from medloop.api.auth import issue_token
    from medloop.demo import GP
    from medloop.store.db import make_engine
    from medloop.store.migrate import upgrade

    trees = dict(spec.split("=", 1) for spec in args.tree)
    os.environ.setdefault("MEDLOOP_ALLOW_DEV_KEYS", "1")
    with contextlib.ExitStack() as stack:
        if args.private_postgres:
            base_url = stack.enter_context(api.private_postgres(args.private_postgres))
        else:
            base_url = os.environ["MEDLOOP_TEST_POSTGRES_URL"]
        admin, database, url = api._postgres(base_url)
        try:
            engine = make_engine(url)
            upgrade(engine)
            import_catalogue(engine, api.DEMO, allow_shrink=True, allow_older=True)
            per_run = args.clients * args.patients_per_client
            runs = (args.rounds + 1) * len(trees)
            patients = [p.id for p in api._patients(engine, runs * (per_run + 1))]
            engine.dispose()
            gp = issue_token("gp", GP.personnel.hpr_number, GP.organisation.id)
            rounds = []
            names = list(trees)
            for n in range(args.rounds + 1):
                order = names[n % len(names) :] + names[: n % len(names)]
                measured: dict = {"load_before": os.getloadavg()[0]}
                for name in order:
                    job = {
                        "url": url,
                        "token": gp,
                        "rotation": list(api.ROTATION),
                        "clients": args.clients,
                        "patients_per_client": args.patients_per_client,
                        "reads": args.reads,
                        "warm": patients.pop(),
                        "patients": [patients.pop() for _ in range(per_run)],
                        "profile": args.profile and f"{args.profile}-{name}-{n}",
                    }
                    measured[name] = _run_child(trees[name], job)
                    print(n, name, json.dumps(measured[name]), file=sys.stderr, flush=True)
                measured["order"] = order
                if n > 0:
                    rounds.append(measured)
            return rounds
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()


def _run_child(tree: str, job: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": tree}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as spec, tempfile.TemporaryFile() as log:
        json.dump(job, spec)
        spec.flush()
        # EDGE_WRAP: a command the child runs under (a profiler), e.g. "py-spy record ... --"
        wrap = os.environ.get("EDGE_WRAP", "").split()
        done = subprocess.run(
            [*wrap, sys.executable, str(HERE), "--child", spec.name],
            env=env,
            cwd=tempfile.gettempdir(),  # not a source tree: PYTHONPATH decides
            stdout=subprocess.PIPE,
            stderr=log,
            check=False,
        )
        if done.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"the child failed: {log.read().decode()[-3000:]}")
        return json.loads(done.stdout)


def summary(rounds: list[dict], names: list[str]) -> dict:
    import statistics

    out: dict = {}
    if not rounds:
        return out
    for part in ("prescribe", "list read"):
        for field in ("loop_cpu_ms", "process_cpu_ms", "requests_per_s"):
            values = {name: [r[name][part][field] for r in rounds] for name in names}
            entry = {name: statistics.median(v) for name, v in values.items()}
            if len(names) == 2:
                a, b = names
                ratios = [y / x for x, y in zip(values[a], values[b], strict=True) if x]
                entry[f"{b}/{a} per round"] = [round(r, 3) for r in ratios]
                entry[f"{b}/{a} median"] = round(statistics.median(ratios), 3)
            out[f"{part} {field}"] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--tree", action="append", default=[], help="NAME=DIR (repeatable)")
    parser.add_argument("--private-postgres", type=int, help="a private cluster on this port")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (after a warm-up)")
    parser.add_argument("--clients", type=int, default=8, help="connections (requests in flight)")
    parser.add_argument("--patients-per-client", type=int, default=2)
    parser.add_argument("--reads", type=int, default=60, help="list reads per client")
    parser.add_argument("--profile", help="a file prefix: cProfile the event loop's thread")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(Path(args.child).read_text()))))
        return
    rounds = parent(args)
    names = [spec.split("=", 1)[0] for spec in args.tree]
    print(json.dumps({"rounds": rounds, "summary": summary(rounds, names)}, indent=1))


if __name__ == "__main__":
    main()
