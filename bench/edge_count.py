"""Benchmark: the event loop's side of a route by instruction count (issue #20): the two hot
routes, and the routes of ``bench/api.py``'s mix that FastAPI's handler (or its lean twin,
``medloop.api.lean``) serves.

One serving process's stack as ``bench/edge.py`` builds it (``medloop.api.app.from_env``, uvicorn's
configuration, medloop's ``HttpProtocol`` on uvloop, the Prometheus multiprocess mode, the access
line written to a file), on a SQLite file, one keep-alive client whose transport is in memory.
After a few real prescribes and list reads (routes in the route threads, as served), the route
threads are replaced by a stand-in that answers each route at once with the response object the
real route gave for that method: what is left is exactly the event loop's side of a request
(uvicorn's parsing, the middleware, the hot route's validation, the caller, the endpoint's
wrapper, the response's send, the access line, the metrics), without the hand-off to a thread
and without the database.

``-n`` requests of ``--kind`` (a prescribe, each with its own body, entry id and idempotency
key; a list read; the dry-run check, the pharmacy's read, the catalogue search or the patient's
own list, as ``bench/api.py`` sends them) are made before the measurement; with
``--callgrind``, run under ``valgrind --tool=callgrind --instr-atstart=no``, the
instrumentation is switched on only around them: valgrind's "Collected" divided by ``-n`` is
the event loop's instructions per request. Without it, the loop thread's CPU per request is
printed (noisy; the count is the figure).

    cd /tmp && PYTHONPATH=TREE valgrind --tool=callgrind --instr-atstart=no \\
        --callgrind-out-file=/dev/null /work/wt/edge/.venv/bin/python \\
        /work/wt/edge/bench/edge_count.py --kind prescribe -n 400 --callgrind
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
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]


OTHER = ("check", "pharmacy", "catalogue", "own-list")
"""The mix's routes past the hot path (``bench/api.py``'s ``Client._scenario``): requests the
hot routes do not take, so FastAPI's route matching and handler serve them."""


def _instrument(on: bool, switch: str) -> None:
    if on:
        subprocess.run(
            ["callgrind_control", "-i", switch, str(os.getpid())], check=True, capture_output=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=("prescribe", "read", *OTHER), default="prescribe")
    parser.add_argument("-n", type=int, default=400)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--profile", help="a file: cProfile the measured requests")
    parser.add_argument(
        "--real",
        action="store_true",
        help="list reads only: keep the real route (threads, database) in the measurement",
    )
    args = parser.parse_args()
    if args.real and args.kind != "read":
        parser.error("--real measures list reads only")

    folder = tempfile.mkdtemp(prefix="edge-count-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="edge-count-prom-")
    os.environ["MEDLOOP_ALLOW_DEV_KEYS"] = "1"
    url = f"sqlite:///{folder}/medloop.db"
    os.environ["MEDLOOP_DATABASE_URL"] = url
    os.environ["MEDLOOP_SCHEDULER"] = "off"
    os.environ["MEDLOOP_ROUTE_THREADS"] = "4"  # as served on PostgreSQL (SQLite's default: 0)
    log = open(f"{folder}/log", "w")  # noqa: SIM115 - the access lines, for the process' life
    sys.stderr = log

    import asyncio

    import api
    import uvicorn
    import uvloop
    from edge import MemoryTransport
    from uvicorn.server import ServerState

    from fest.loader import import_catalogue
    from medloop.api.app import from_env
    from medloop.api.auth import issue_token
    from medloop.api.server import HttpProtocol
    from medloop.demo import GP, PHARMACIST
    from medloop.store.db import make_engine
    from medloop.store.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    import_catalogue(engine, api.DEMO, allow_shrink=True, allow_older=True)
    registered = api._patients(engine, 3)
    patients = [p.id for p in registered]
    engine.dispose()
    token = issue_token("gp", GP.personnel.hpr_number, GP.organisation.id)
    pharmacist = issue_token(
        "pharmacist", PHARMACIST.personnel.hpr_number, PHARMACIST.organisation.id
    )

    app = from_env()
    config = uvicorn.Config(
        app, http=HttpProtocol, log_config=None, log_level="warning", lifespan="off"
    )
    config.load()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    state = ServerState()

    class Client:
        def __init__(self) -> None:
            self.protocol = HttpProtocol(config, state, {}, loop)
            self.protocol.connection_made(MemoryTransport(self))  # type: ignore[arg-type]
            self.buffer = b""

        def run(self, requests: list[bytes]) -> list[tuple[int, str]]:
            self.pending = iter(requests)
            self.answers: list[tuple[int, str]] = []
            self.done = loop.create_future()
            loop.call_soon(self.protocol.data_received, next(self.pending))
            loop.run_until_complete(self.done)
            return self.answers

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
            self.answers.append((int(lines[0].split()[1]), headers.get(b"etag", b"").decode()))
            following = next(self.pending, None)
            if following is None:
                self.done.set_result(None)
            else:
                loop.call_soon(self.protocol.data_received, following)

    def prescribe(patient, tag: str, varenr: str) -> bytes:
        body = json.dumps(
            {
                "entry_id": str(uuid.uuid4()),
                "drug": {"varenr": varenr},
                "use": "regular",
                "start": date.today().isoformat(),
                "terms": {"prescription_id": str(uuid.uuid4()), "quantity": {"packages": 1}},
            }
        ).encode()
        return (
            f"POST /patients/{patient}/prescriptions HTTP/1.1\r\n"
            "Host: 127.0.0.1:9000\r\nAccept-Encoding: identity\r\n"
            f"Content-Length: {len(body)}\r\nAuthorization: Bearer {token}\r\n"
            f"If-Match: {tag}\r\nIdempotency-Key: {uuid.uuid4()}\r\n"
            "Content-Type: application/json\r\n\r\n"
        ).encode() + body

    def read(patient) -> bytes:
        return (
            f"GET /patients/{patient}/list HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"
            f"Accept-Encoding: identity\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()

    def get(path: str, bearer: str) -> bytes:
        return (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"
            f"Accept-Encoding: identity\r\nAuthorization: Bearer {bearer}\r\n\r\n"
        ).encode()

    def check(patient) -> bytes:
        body = json.dumps({"proposed": [{"drug": {"varenr": api.ROTATION[2]}}]}).encode()
        return (
            f"POST /patients/{patient}/list/check HTTP/1.1\r\n"
            "Host: 127.0.0.1:9000\r\nAccept-Encoding: identity\r\n"
            f"Content-Length: {len(body)}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\n\r\n"
        ).encode() + body

    other = {
        "check": lambda: check(patients[1]),
        "pharmacy": lambda: get(f"/pharmacy/patients/{patients[1]}/prescriptions", pharmacist),
        "catalogue": lambda: get("/catalogue/packages?name=tab&limit=10", token),
        "own-list": lambda: get("/me/list", registered[1].token),
    }

    client = Client()
    # Real routes first (threads, database): the catalogue knowledge, the caches, the answers.
    tag = '"0"'
    for varenr in api.ROTATION[:3]:
        ((status, etag),) = client.run([prescribe(patients[0], tag, varenr)])
        assert status == 201, status
        tag = etag
    threads = app.state.route_limiter
    answers: dict[str, object] = {}

    class Capture:
        async def run(self, work):
            result = await threads.run(work)
            answers[kind] = result
            return result

    class Replay:
        async def run(self, work):
            return answers[kind]

    app.state.route_limiter = Capture()
    kind = "POST"
    ((status, tag),) = client.run([prescribe(patients[1], '"0"', api.ROTATION[0])])
    assert status == 201, status
    kind = "GET"
    assert client.run([read(patients[1])])[0][0] == 200
    for kind, made in other.items():
        assert client.run([made()])[0][0] == 200, kind
    app.state.route_limiter = threads if args.real else Replay()
    kind = {"prescribe": "POST", "read": "GET"}.get(args.kind, args.kind)
    if kind == "POST":
        made = lambda: prescribe(patients[1], tag, api.ROTATION[1])  # noqa: E731
    elif kind == "GET":
        made = lambda: read(patients[1])  # noqa: E731
    else:
        made = other[kind]
    warm = [made()]
    assert {s for s, _ in client.run(warm * 20)} == {201 if kind == "POST" else 200}
    requests = [made() for _ in range(args.n)]
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile(time.thread_time)
        profile.enable()
    _instrument(args.callgrind, "on")
    cpu = time.thread_time()
    statuses = client.run(requests)
    cpu = time.thread_time() - cpu
    _instrument(args.callgrind, "off")
    if profile is not None:
        profile.disable()
        profile.dump_stats(args.profile)
    assert len(statuses) == args.n and {s for s, _ in statuses} == {201 if kind == "POST" else 200}
    print(
        json.dumps({"kind": args.kind, "n": args.n, "loop_cpu_us": round(cpu * 1e6 / args.n, 2)}),
        file=sys.__stdout__,
    )
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    os._exit(0)  # the route threads and the census thread are daemons; nothing to flush


if __name__ == "__main__":
    main()
