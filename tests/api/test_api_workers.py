"""Several worker processes on one listening socket (``medloop serve --workers N``): they take
turns at accepting connections (``api.server.TurnTakingAcceptor``), so keep-alive clients that
connect at once are spread over the workers instead of all landing on whichever woke first."""

from __future__ import annotations

import asyncio
import http.client
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from medloop.api.server import BalancedLoop, ConnectionShares, TurnTakingAcceptor

REPO = Path(__file__).resolve().parents[2]


async def pid_app(scope, receive, send) -> None:
    """An ASGI app that answers with the process id of the worker serving the request."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})


SERVE = """
import sys
from uvicorn.supervisors import Multiprocess
from medloop.api.server import BalancedConfig, HttpProtocol
config = BalancedConfig("tests.api.test_api_workers:pid_app", host="127.0.0.1",
                        port=int(sys.argv[1]), workers=2, log_level="warning", http=HttpProtocol,
                        accept_grace=2.0)
Multiprocess(config, sockets=[config.bind_socket()]).run()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _connect_at_once(port: int, count: int) -> list[tuple[http.client.HTTPConnection, str]]:
    """``count`` keep-alive connections opened at the same moment, each after one request: the
    connection and the pid of the worker that answered it."""
    barrier = threading.Barrier(count)
    found: list[tuple[http.client.HTTPConnection, str]] = []
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        barrier.wait()
        conn.request("GET", "/")
        pid = conn.getresponse().read().decode()
        with lock:
            found.append((conn, pid))

    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found


def _wait_for_workers(port: int, count: int) -> None:
    """Until ``count`` different workers have answered (one connection at a time, each closed
    before the next: the workers take turns), at most two minutes (a loaded machine)."""
    seen: set[str] = set()
    for _ in range(1200):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/")
            seen.add(conn.getresponse().read().decode())
            conn.close()
        except OSError:
            pass
        if len(seen) == count:
            time.sleep(0.2)  # the last connection closed in its worker too
            return
        time.sleep(0.1)
    raise AssertionError(f"only {len(seen)} of {count} workers answered")


def test_keep_alive_connections_opened_at_once_are_spread_evenly_over_the_workers():
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], cwd=REPO)
    try:
        _wait_for_workers(port, 2)
        first = _connect_at_once(port, 16)
        assert sorted(Counter(pid for _, pid in first).values()) == [8, 8]
        # One worker's clients leave: the next ones to connect go to that worker, which now
        # holds fewer connections than the other; all but at most one, which the other's thread
        # may get if it was already waiting in accept() (it checks its share before it waits).
        emptied = first[0][1]
        for conn, pid in first:
            if pid == emptied:
                conn.close()
        time.sleep(0.3)  # the worker sees its connections closed
        second = _connect_at_once(port, 8)
        assert Counter(pid for _, pid in second)[emptied] >= 7
        for conn, _ in first + second:
            conn.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def _hold_a_slot(shares: ConnectionShares, ready, done) -> None:
    shares.join()
    ready.set()
    done.wait(60)


class _Hold(asyncio.Protocol):
    """Answers at once and keeps the connection until the client closes it."""

    def connection_made(self, transport) -> None:
        transport.write(b"served")


def test_a_worker_with_more_than_its_share_leaves_new_connections_to_others_but_not_for_long(
    monkeypatch,
):
    """Another live worker holds no connection and accepts none (stuck, or still starting):
    this one takes a connection at once while it holds none either, and one more only after it
    has waited its grace (1 s here) for the other; a closed connection no longer counts."""
    monkeypatch.setattr(BalancedLoop, "accept_grace", 1.0)
    context = multiprocessing.get_context("spawn")
    shares = ConnectionShares()
    ready, done = context.Event(), context.Event()
    peer = context.Process(target=_hold_a_slot, args=(shares, ready, done))
    peer.start()
    loop = BalancedLoop()
    loop.shares = shares
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    serving = threading.Thread(target=loop.run_forever, daemon=True)
    opened: list[socket.socket] = []
    server = None

    def served_after() -> float:
        started = time.perf_counter()
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        opened.append(conn)
        assert conn.recv(100) == b"served"
        return time.perf_counter() - started

    try:
        assert ready.wait(60)
        serving.start()
        server = asyncio.run_coroutine_threadsafe(
            loop.create_server(_Hold, sock=listening), loop
        ).result(10)
        assert isinstance(server, TurnTakingAcceptor)
        assert served_after() < 1.0  # both hold none: this worker takes it
        assert 1.0 <= served_after() < 5.0  # holds one, the peer none: left to the peer first
        for conn in opened:
            conn.close()
        time.sleep(0.3)  # the loop sees them closed
        assert served_after() < 1.0  # holds none again
    finally:
        done.set()
        peer.join(30)
        for conn in opened:
            conn.close()
        if server is not None:
            server.close()  # its thread, blocked in accept(), ends at the next connection
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        loop.call_soon_threadsafe(loop.stop)
        serving.join(10)
        loop.close()
        listening.close()


def _join_and_leave(shares: ConnectionShares) -> None:
    shares.join()


def test_a_dead_workers_share_is_ignored_and_its_slot_taken_again():
    shares = ConnectionShares()
    context = multiprocessing.get_context("spawn")
    ready, done = context.Event(), context.Event()
    live = context.Process(target=_hold_a_slot, args=(shares, ready, done))
    live.start()
    try:
        assert ready.wait(60)  # a live worker in slot 0, holding no connection
        gone = context.Process(target=_join_and_leave, args=(shares,))
        gone.start()
        gone.join(60)  # a worker that took slot 1 and exited
        own = shares.join()
        assert own == 1  # the dead worker's slot, not a fresh one
        assert shares.fewest(own)
        shares.add(own, 1)
        assert not shares.fewest(own)  # more than the live worker's none
    finally:
        done.set()
        live.join(30)
    assert shares.fewest(own)  # the other worker is gone too
