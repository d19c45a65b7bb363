"""Per-request tracing of a serving process (``medloop.api.trace``, ``MEDLOOP_TRACE``): off, the
app is served untouched; on, every request of a real server is recorded with its steps, so a
benchmark can join its own record of the request to the server's (bench/paced_trace.py)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid

from medloop.api import trace
from medloop.api.auth import issue_token
from medloop.api.routing import RouteThreads
from medloop.api.server import HttpProtocol
from medloop.demo import GP


def test_tracing_off_serves_the_app_itself_and_hooks_nothing(monkeypatch):
    monkeypatch.delenv(trace.ENV, raising=False)
    app = object()
    begin, run = HttpProtocol.on_message_begin, RouteThreads.run
    assert trace.install(app) is app
    assert HttpProtocol.on_message_begin is begin and RouteThreads.run is run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_traced_server_records_each_request_by_connection_and_number(db_url, tmp_path):
    port = _free_port()
    traces = tmp_path / "trace"
    env = {
        **os.environ,
        "MEDLOOP_ALLOW_DEV_KEYS": "1",
        "MEDLOOP_SCHEDULER": "off",
        "MEDLOOP_ROUTE_THREADS": "2",  # the route threads' steps, on SQLite too
        trace.ENV: str(traces),
    }
    server = subprocess.Popen(
        [sys.executable, "-c", "from medloop.cli import app; app()", "serve"]
        + ["--port", str(port), "--db", db_url],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    token = issue_token("gp", GP.personnel.hpr_number, GP.organisation.id)
    path = f"/patients/{uuid.uuid4()}/list"  # a list read (a hot route): no such patient
    try:
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.connect()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                time.sleep(0.1)
        own_port = conn.sock.getsockname()[1]
        statuses = []
        for _ in range(2):
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            statuses.append((response.status, response.read()))
        conn.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert [status for status, _ in statuses] == [404, 404], statuses
    (written,) = traces.glob("worker-*.jsonl")
    records = [json.loads(line) for line in written.read_text().splitlines()]
    requests = [r for r in records if r["kind"] == "request" and r.get("port") == own_port]
    assert [r["seq"] for r in requests] == [1, 2]
    for record in requests:
        assert record["path"] == path and record["status"] == 404
        steps = [record[step] for step in ("begin", "app", "submit", "start", "done")]
        steps += [record[step] for step in ("resumed", "head", "sent", "end")]
        assert steps == sorted(steps)  # each step after the one before
        assert record["cpu"] > 0 and record["thread"] and record["inflight"] == 0
        for start, end, cpu in record["db"]:  # PostgreSQL's round trips (none on SQLite)
            assert record["start"] <= start <= end <= record["done"] and cpu >= 0
    if db_url.startswith("postgresql"):
        assert all(record["db"] for record in requests)
    assert any(r["kind"] == "connection" and r["port"] == own_port for r in records)
    assert any(r["kind"] == "gc" for r in records)
    # At shutdown the frozen heap is counted twice: by the census in a forked child (what the
    # serving process now does instead of thawing) and by a full pass in the process itself.
    (heap,) = [r for r in records if r["kind"] == "heap"]
    census = heap["census"]
    assert "failed" not in census, census
    assert census["frozen"] > 10_000 and census["fork_ms"] > 0 and census["garbage"] >= 0
    assert heap["frozen"] > 10_000 and heap["cpu_ms"] > 0
