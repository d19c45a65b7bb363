"""Per-request tracing of a serving process, for finding what makes the slow requests slow (issue
#20, the paced tail). Off unless ``MEDLOOP_TRACE`` names a directory; then ``install`` (called
once per serving process, after the app is built) hooks the process and, when the app shuts down
(ASGI lifespan), writes one JSON line per record to ``DIR/worker-PID.jsonl``. Off, ``install``
returns the app untouched and hooks nothing: no cost per request.

Per request (``kind`` "request"): when its first bytes were parsed (``begin``, uvicorn's
``on_message_begin``), when the app got it (``app``), when its route was queued for a route thread
(``submit``, with how many routes of the process were then queued or running, ``inflight``), when a
thread started it (``start``), each database round trip in it (``db``: start, end, the thread's CPU
time in it), when the thread finished (``done``, the route's thread CPU time ``cpu``, its time
runnable but waiting for a core ``runq``), when the event loop took the answer back (``resumed``),
when the response started and ended (``head``, ``sent``) and when the app returned (``end``); with
the client's address and the request's number on its connection (``port``, ``seq``), so that a
benchmark's own record of the request can be joined to it. Times are ``time.perf_counter`` seconds
(CLOCK_MONOTONIC: one clock for every process on the machine).

Per process: every pass of the cyclic collector (``kind`` "gc": generation, start, duration,
objects collected, the thread it ran in), the heap censuses of the run (``kind`` "census",
``api.server.HeapCensus``), at shutdown the objects frozen and the cyclic garbage a census and
then a full pass find among everything (``kind`` "heap"), and every turn of the event loop that
came more than a millisecond late (``kind`` "lag", measured by a 5 ms ticker).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

ENV = "MEDLOOP_TRACE"

_now = time.perf_counter
_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "medloop_trace", default=None
)
_records: list[dict[str, Any]] = []
_installed = False


def directory() -> Path | None:
    """Where traces go, ``None`` when tracing is off (``MEDLOOP_TRACE``, read by the settings)."""
    from medloop.settings import current

    return current().ops.trace_dir


def install(app: Any) -> Any:
    """``app`` itself when tracing is off; else ``app`` wrapped in the request tracer, with the
    process's hooks installed (once)."""
    target = directory()
    if target is None:
        return app
    global _installed
    if not _installed:
        _installed = True
        target.mkdir(parents=True, exist_ok=True)
        _hook_protocol()
        _hook_route_threads()
        _hook_round_trips()
        gc.callbacks.append(_collected)
    return _Traced(app)


class _Traced:
    """The ASGI app, each HTTP request's record completed and kept."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._ticking = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, _writing_at_shutdown(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._ticking:
            self._ticking = True
            asyncio.get_running_loop().create_task(_tick())
        record = scope.get("medloop.trace") or {"kind": "request"}
        record["app"] = _now()
        record["path"] = scope.get("path")
        record["method"] = scope.get("method")
        record["db"] = []
        _current.set(record)

        async def traced_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                record["head"] = _now()
                record["status"] = message.get("status")
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                record["sent"] = _now()
            await send(message)

        try:
            await self.app(scope, receive, traced_send)
        finally:
            record["end"] = _now()
            _records.append(record)


def _writing_at_shutdown(send: Any) -> Any:
    """``send`` that writes the records once the app has shut down (uvicorn ends a process
    it stopped by re-raising the signal: no ``atexit`` runs)."""

    async def send_then_write(message: dict) -> None:
        if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            target = directory()
            if target is not None:
                from medloop.api.server import HeapCensus

                _records.extend({"kind": "census", **found} for found in HeapCensus.censuses)
                _records.append(_heap())
                _write(target / f"worker-{os.getpid()}.jsonl")
        await send(message)

    return send_then_write


def _heap() -> dict[str, Any]:
    """How many objects were frozen at the end, and how many of them and of the rest a full
    pass over the whole heap then finds to be cyclic garbage (what freezing kept from the
    collector: ``api.server._freeze_survivors``), counted twice: by the census in a child
    (``api.server.HeapCensus``: ``census``, with how long this process stopped to fork) and by
    that full pass here (``ms``, ``cpu_ms``: what a thaw costs)."""
    from medloop.api.server import count_frozen_garbage

    if _collected in gc.callbacks:
        gc.callbacks.remove(_collected)
    # Not at the lowest priority: on a loaded machine that took 20 s, and the process is ending.
    census = count_frozen_garbage(lowest=False)
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)  # the garbage kept in gc.garbage, to be told by type
    started, cpu = _now(), time.thread_time()
    garbage = gc.collect()
    took = (_now() - started) * 1000
    cpu = (time.thread_time() - cpu) * 1000
    gc.set_debug(0)
    kinds: dict[str, int] = {}
    for found in gc.garbage:
        kinds[type(found).__qualname__] = kinds.get(type(found).__qualname__, 0) + 1
    gc.garbage.clear()
    common = dict(sorted(kinds.items(), key=lambda kind: -kind[1])[:12])
    return {
        "kind": "heap",
        "frozen": frozen,
        "garbage": garbage,
        "ms": took,
        "cpu_ms": cpu,
        "types": common,
        "census": census,
    }


def _hook_protocol() -> None:
    from medloop.api.server import HttpProtocol

    message_begins = HttpProtocol.on_message_begin
    made = HttpProtocol.connection_made

    def connection_made(self: Any, transport: Any) -> None:
        made(self, transport)
        self._medloop_seq = 0
        _records.append({"kind": "connection", "at": _now(), "port": _port(self.client)})

    def on_message_begin(self: Any) -> None:
        at = _now()
        message_begins(self)
        self._medloop_seq = getattr(self, "_medloop_seq", 0) + 1
        self.scope["medloop.trace"] = {
            "kind": "request",
            "begin": at,
            "port": _port(self.client),
            "seq": self._medloop_seq,
        }

    HttpProtocol.connection_made = connection_made  # type: ignore[method-assign]
    HttpProtocol.on_message_begin = on_message_begin  # type: ignore[method-assign]


def _port(client: Any) -> int | None:
    return client[1] if client else None


def _hook_route_threads() -> None:
    from medloop.api.routing import RouteThreads

    run = RouteThreads.run
    inflight = [0]

    async def traced_run(self: Any, work: Any) -> Any:
        record = _current.get()
        if record is None:
            return await run(self, work)
        record["submit"] = _now()
        record["inflight"] = inflight[0]
        inflight[0] += 1

        def traced() -> Any:
            record["start"] = _now()
            record["thread"] = threading.get_ident()
            cpu, queued = time.thread_time(), _run_delay()
            try:
                return work()
            finally:
                record["cpu"] = time.thread_time() - cpu
                record["runq"] = _run_delay() - queued
                record["done"] = _now()

        try:
            return await run(self, traced)
        finally:
            inflight[0] -= 1
            record["resumed"] = _now()

    RouteThreads.run = traced_run  # type: ignore[method-assign]


def _hook_round_trips() -> None:
    """Time every psycopg wait for the server (one round trip, or a pipeline's), in the
    request whose context runs it."""
    try:
        from psycopg import Connection
    except ImportError:
        return
    wait = Connection.wait

    def traced_wait(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
        record = _current.get()
        if record is None:
            return wait(self, gen, *args, **kwargs)
        at, cpu = _now(), time.thread_time()
        try:
            return wait(self, gen, *args, **kwargs)
        finally:
            record["db"].append((at, _now(), time.thread_time() - cpu))

    Connection.wait = traced_wait  # type: ignore[method-assign]


def _run_delay() -> float:
    """Seconds this thread has spent runnable but waiting for a core (the kernel's
    schedstat), so that a route's time neither running nor waiting on the database can be told
    apart: waiting for a core, or for the GIL (not runnable: asleep on its condition)."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as found:
            return int(found.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


_gc_started = [0.0, 0.0]


def _collected(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[:] = _now(), time.thread_time()
        return
    _records.append(
        {
            "kind": "gc",
            "generation": info.get("generation"),
            "at": _gc_started[0],
            "ms": (_now() - _gc_started[0]) * 1000,
            "cpu_ms": (time.thread_time() - _gc_started[1]) * 1000,
            "collected": info.get("collected"),
            "thread": threading.get_ident(),
        }
    )


async def _tick(every: float = 0.005) -> None:
    while True:
        due = _now() + every
        await asyncio.sleep(every)
        late = _now() - due
        if late > 0.001:
            _records.append({"kind": "lag", "at": due, "ms": late * 1000})


def _write(path: Path) -> None:
    with path.open("w") as out:
        for record in _records:
            out.write(json.dumps(record, default=str) + "\n")
