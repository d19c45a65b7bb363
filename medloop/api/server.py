"""How ``medloop serve`` runs the app: uvicorn's httptools protocol, with the writes of one
event-loop turn sent together, in a process whose start-up heap is kept out of the cyclic
garbage collector (``settle_heap``); with several worker processes, each takes its turn at
accepting connections (``BalancedLoop``).

uvicorn writes a response's status line and headers, then its body, as two ``write`` calls; on
uvloop each is a ``send`` system call of its own, so a small JSON answer costs two TCP segments
and wakes the client twice. ``CoalescingTransport`` gathers what is written during one turn of
the event loop and sends it once at the end of the turn (before closing, when the connection
closes): the bytes and their order are unchanged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import gc
import json
import logging
import mmap
import os
import random
import select
import signal
import socket
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from medloop.ops.logs import lean_records

if TYPE_CHECKING:
    from fastapi import FastAPI

    from medloop.settings import Settings

logger = logging.getLogger("uvicorn.error")


class CoalescingTransport:
    """A transport whose ``write``s of one event-loop turn become one write of the real one.

    Every other method of an asyncio transport (``_DELEGATED``: all of ``asyncio.Transport``'s
    public ones, which are all of uvloop's transports' public attributes) is the real
    transport's own bound method, kept on this object when it is made. Until session 13 a
    ``__getattr__`` handed them on: a class with ``__getattr__`` has every attribute look-up
    on its objects go through the slow, unspecialised path (``slot_tp_getattr_hook``), and
    uvicorn, FlowControl and ``write`` itself look up ~16 a request (~20 k instructions of the
    event loop's ~490 k a prescribe, issue #20). What the real transport lacks is missing here
    too (``AttributeError`` as before); its private attributes are not reached through this
    (uvicorn reads none)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        for name in _DELEGATED:
            found = getattr(transport, name, _MISSING)
            if found is not _MISSING:
                setattr(self, name, found)

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()


_DELEGATED = (
    "abort",
    "can_write_eof",
    "get_extra_info",
    "get_protocol",
    "get_write_buffer_limits",
    "get_write_buffer_size",
    "is_closing",
    "is_reading",
    "pause_reading",
    "resume_reading",
    "set_protocol",
    "set_write_buffer_limits",
    "write_eof",
    "writelines",
)
"""``asyncio.Transport``'s public methods but ``write`` and ``close``: the real transport's."""
_MISSING = object()


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, its writes coalesced (``CoalescingTransport``), and
    uvicorn's own access line prepared only when its logger would write it.

    uvicorn prepares that line (the client's address, the path quoted again) for every
    response when the ``uvicorn.access`` logger has a handler anywhere up its tree, which
    medloop's root handler always is (``medloop.ops.logs.configure``), and the logger then
    drops it: ``medloop serve`` runs uvicorn at level ``warning``, and the line is ``info``;
    medloop writes its own access line (``medloop.api.app.RequestId``). Asking the logger
    whether it is enabled for ``info`` when a connection is made gives the same lines for
    2 us less of the event loop a request (issue #20)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self.access_log = self.access_log and self.access_logger.isEnabledFor(logging.INFO)


def settle_heap() -> None:
    """Freeze what the process holds once the app is built (modules, routes, schemas, the
    engine): it lives as long as the process, and a full pass of the cyclic collector stops
    every thread while it walks it. Measured under bench/api.py: a full pass took 100-150 ms
    over the start-up heap, 30-40 ms without it. From then on what survives the young
    generations' passes is frozen too (``_freeze_survivors``), and every ``THAW_SECONDS`` a
    census in a child process looks for cyclic garbage among the frozen objects
    (``HeapCensus``). Frozen objects are still freed by reference counting; only the serving
    processes call this (tests build many short-lived apps)."""
    gc.collect()
    gc.freeze()
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)
    HeapCensus.start()


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    """After a pass of the cyclic collector over the older young generation (or a full one),
    freeze what survived it, so that the oldest generation stays empty and a full pass has
    only the young to walk.

    What a serving process keeps is long-lived: the catalogue knowledge built at the first
    command, and above all the patients' cached states, a new one per command. Frozen only
    after a full pass (until session 7), they were walked by the next full pass with every
    thread stopped: traced under bench/api.py at 400 requests/s (bench/RESULTS.md, issue #20,
    session 7), each worker ran a full pass every 3-6 s, 17-27 ms each, collecting 0-33
    objects, and the requests in flight in that worker waited it out: the slowest requests of
    a quiet run were those. The survivors of the young passes are those same objects (and the
    requests' own ones in flight, which are still freed by reference counting when done); a
    young pass leaves both young generations empty, so what is frozen here is exactly the
    oldest generation. Cyclic garbage among frozen objects is left to ``HeapCensus``."""
    if phase == "stop" and info.get("generation") in (1, 2):
        gc.freeze()


THAW_SECONDS = 600.0
"""How often (a quarter more or less) a serving process counts the cyclic garbage among its
frozen objects (``HeapCensus``)."""
THAW_WORTH = 0.05
"""The share of the frozen objects that must be cyclic garbage for the census to thaw: a full
pass over the whole heap, which stops every thread of the process while it runs."""
CENSUS_TIMEOUT = 120.0
"""A census child that has not answered by then is killed (and the heap thawed, as before)."""


class HeapCensus:
    """What frozen objects that later became cyclic garbage cost, counted without stopping
    the process that holds them.

    Frozen objects are freed by reference counting but never by the cyclic collector: an
    object frozen while in use (a connection's objects, frozen by ``_freeze_survivors`` while
    the connection lasts) that ends up in a reference cycle stays until the heap is thawed
    (``gc.unfreeze``) and a full pass walks all of it: every thread of the process stopped for
    as long as that takes (~330 thousand objects in a worker after bench/api.py; 0.84-1.93 s
    wall at load 10-16, session 7), for ~550 objects of garbage (about 11 per connection
    served: deques, AsyncExitStacks, Events, functions). Until session 8 every worker did so
    every ``THAW_SECONDS`` whatever there was to find.

    Now a thread of the process forks a child about every ``THAW_SECONDS``: the child (at the
    lowest priority, every descriptor but its answer's closed, so that no finalizer it runs
    touches the parent's sockets or files) unfreezes its copy of the heap, runs the full pass
    with the garbage kept (``gc.DEBUG_SAVEALL``) and answers how many objects were frozen,
    how many of them are garbage, their size and commonest types. The parent's threads go on
    serving; it stops only for the ``fork`` itself. It thaws (unfreeze, full pass, freeze what
    survives) only when the garbage is at least ``THAW_WORTH`` of the frozen objects, so that
    what frozen garbage holds stays a small share of the heap; without ``os.fork``, or when the
    child fails, it thaws as before. The child's memory is the parent's, shared copy-on-write:
    its pass writes the header of every object, so while it runs the machine holds a second
    copy of the heap's pages (``copied_kb``); each worker's census comes at its own time.
    ``censuses`` keeps the latest results (``medloop.api.trace`` records them)."""

    censuses: collections.deque[dict[str, Any]] = collections.deque(maxlen=64)
    _thread: threading.Thread | None = None

    @classmethod
    def start(cls, every: float | None = None) -> None:
        """The census thread of this process (one; a daemon)."""
        if cls._thread is not None and cls._thread.is_alive():
            return
        cls._thread = threading.Thread(
            target=cls._run, args=(every,), name="medloop-heap-census", daemon=True
        )
        cls._thread.start()

    @classmethod
    def _run(cls, every: float | None) -> None:
        while True:
            # Each time a quarter more or less, so that a server's workers, started together,
            # do not all hold a child's copy of their heap at once.
            time.sleep((THAW_SECONDS if every is None else every) * random.uniform(0.75, 1.25))
            try:
                cls.look()
            except Exception:  # noqa: BLE001 - the thread must outlive a failed census
                logger.exception("the heap census failed")

    @classmethod
    def look(cls, worth: float | None = None) -> dict[str, Any]:
        """Count the frozen garbage in a child; thaw here when it is worth it. The result."""
        worth = THAW_WORTH if worth is None else worth
        found = count_frozen_garbage()
        found["thawed"] = bool(
            found.get("failed") or found["garbage"] >= worth * max(found["frozen"], 1)
        )
        if found["thawed"]:
            started = time.perf_counter()
            thaw()
            found["thaw_ms"] = (time.perf_counter() - started) * 1000
        found["at"] = time.perf_counter()
        cls.censuses.append(found)
        return found


def thaw() -> None:
    """Unfreeze and walk the whole heap once (every thread stopped meanwhile): the frozen
    cyclic garbage is freed; ``_freeze_survivors`` freezes what survives."""
    gc.unfreeze()
    gc.collect()


def count_frozen_garbage(timeout: float | None = None, lowest: bool = True) -> dict[str, Any]:
    """How many objects this process has frozen, and how many of them, and of the rest of the
    heap, a full pass would find to be cyclic garbage (their size in bytes, shallow): counted
    in a forked child (``HeapCensus``), at the lowest priority unless not ``lowest``.
    ``fork_ms`` is how long this process stopped to fork; ``failed`` says why there is no
    count."""
    if not hasattr(os, "fork"):
        return {"failed": "no fork on this platform"}
    read, write = os.pipe()
    started = time.perf_counter()
    try:
        pid = os.fork()
    except OSError as error:
        os.close(read)
        os.close(write)
        return {"failed": f"fork: {error}"}
    if pid == 0:  # the child: count, answer, and leave without running anything of the parent's
        try:
            if lowest:
                with contextlib.suppress(OSError):
                    os.nice(19)
            _count_in_child(write)
        finally:
            os._exit(0)
    forked = time.perf_counter()
    os.close(write)
    answer = b""
    try:
        deadline = forked + (CENSUS_TIMEOUT if timeout is None else timeout)
        poller = select.poll()  # not select(): a busy server's descriptors pass FD_SETSIZE
        poller.register(read, select.POLLIN)
        while (left := deadline - time.perf_counter()) > 0:
            if not poller.poll(left * 1000):
                break
            chunk = os.read(read, 65536)
            if not chunk:
                break
            answer += chunk
    finally:
        os.close(read)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # gone already, unless it hung
        with contextlib.suppress(ChildProcessError):  # reaped by a handler of SIGCHLD
            os.waitpid(pid, 0)
    found: dict[str, Any] = {"fork_ms": (forked - started) * 1000}
    try:
        found.update(json.loads(answer))
    except ValueError:
        found["failed"] = "the census child did not answer"
    found["child_ms"] = (time.perf_counter() - forked) * 1000
    return found


def _count_in_child(answer: int) -> None:
    quiet = os.open(os.devnull, os.O_RDWR)
    for standard in (0, 1, 2):
        os.dup2(quiet, standard)
    # Whatever finalizer the pass runs must not write to the parent's sockets (a database
    # connection's goodbye) or files: every descriptor but the answer's is closed.
    os.closerange(3, answer)
    os.closerange(answer + 1, max(os.sysconf("SC_OPEN_MAX"), answer + 1))
    gc.callbacks.clear()  # the parent's hooks (freezing, tracing) are not the census's
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    cpu = time.process_time()
    garbage = gc.collect()
    cpu = time.process_time() - cpu
    size = sum(sys.getsizeof(found) for found in gc.garbage)
    kinds = collections.Counter(type(found).__qualname__ for found in gc.garbage)
    result = {
        "frozen": frozen,
        "garbage": garbage,
        "garbage_bytes": size,
        "garbage_types": dict(kinds.most_common(6)),
        "pass_cpu_ms": cpu * 1000,
        "copied_kb": _private_dirty_kb(),
    }
    os.write(answer, json.dumps(result).encode())


def _private_dirty_kb() -> int | None:
    """This process's own written pages (kB): in the census child, the parent's pages its pass
    copied."""
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return None


class ConnectionShares:
    """How many connections each worker process of one server holds open: a small table in a
    file that every worker maps into memory (a path: uvicorn pickles its configuration, and so
    this, into every worker it spawns). A worker claims a slot when it starts serving, under
    the file's lock; a dead worker's slot (its process gone, or its pid now another process's:
    the start time differs) is ignored and taken again. Each worker writes only its own slot.
    The process that made the table removes its file when it is done with it."""

    SLOTS = 256
    FIELDS = 3  # pid, the process's start time (clock ticks since boot), open connections

    def __init__(self) -> None:
        descriptor, self.path = tempfile.mkstemp(prefix="medloop-connections-")
        try:
            os.ftruncate(descriptor, self.SLOTS * self.FIELDS * 8)
        finally:
            os.close(descriptor)
        weakref.finalize(self, _remove, self.path)
        self._opened()

    def __getstate__(self) -> dict[str, str]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.path = state["path"]
        self._opened()

    def _opened(self) -> None:
        self._table: memoryview | None = None  # FIELDS per slot
        self._file: int | None = None
        self._lock = threading.Lock()

    def _mapped(self) -> memoryview:
        if self._table is None:
            self._file = os.open(self.path, os.O_RDWR)
            self._table = memoryview(mmap.mmap(self._file, self.SLOTS * self.FIELDS * 8)).cast("q")
        return self._table

    def join(self) -> int:
        """A slot of this process's own, its count at 0."""
        table = self._mapped()
        fcntl.flock(self._file, fcntl.LOCK_EX)
        try:
            for slot in range(self.SLOTS):
                at = self.FIELDS * slot
                pid, started = table[at], table[at + 1]
                if pid == 0 or pid == os.getpid() or not _alive(pid, started):
                    table[at + 2] = 0
                    table[at + 1] = _started(os.getpid())
                    table[at] = os.getpid()
                    return slot
        finally:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        raise RuntimeError("more worker processes than ConnectionShares.SLOTS")

    def add(self, slot: int, change: int) -> None:
        table = self._mapped()
        with self._lock:  # the accepting thread and the event loop's both count
            table[self.FIELDS * slot + 2] += change

    def fewest(self, slot: int) -> bool:
        """Does the worker in ``slot`` hold no more connections than any other live worker?"""
        table = self._mapped().tolist()
        n = self.FIELDS
        own = table[n * slot + 2]
        return all(
            own <= table[n * other + 2]
            for other in range(self.SLOTS)
            if other != slot
            and table[n * other] != 0
            and _alive(table[n * other], table[n * other + 1])
        )


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _started(pid: int) -> int:
    """When process ``pid`` started (clock ticks since boot, /proc), 0 when it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _alive(pid: int, started: int) -> bool:
    """Is the process that took a slot still running (and not another one with its pid)?"""
    now = _started(pid)
    return now != 0 and now == started


class TurnTakingAcceptor:
    """Accepts a shared listening socket's connections in a thread of its own and serves each
    on the event loop (``connect_accepted_socket``): what the event loop's server would do,
    except that the worker processes sharing the socket take turns.

    uvicorn's workers share one listening socket. With the event loop's own server every idle
    worker is woken for a new connection and the first to run accepts all that are queued, so
    a burst of connections lands on one worker, and keep-alive clients stay there. Measured
    under bench/api.py (16 keep-alive clients, 2 workers, a loaded machine): all 16
    connections of the closed-loop phase on one worker and 15 of 16 in the paced phase, the
    other worker idle while the first queued requests for seconds (bench/RESULTS.md, issue
    #20, session 6).

    Here a worker accepts only while it holds no more open connections than any other live
    worker (``ConnectionShares``): its thread then waits in ``accept()``, where the kernel hands
    each new connection to one waiting thread, the longest waiting first. (A thread checks its
    share before it waits: one already waiting when other workers' connections close may still
    get one connection more than its share, never two.) A worker with more than its share
    leaves new connections to the others, unless one waits unaccepted for ``grace`` seconds
    (a worker that is stuck, starved of CPU or still starting), and then takes it.

    ``close()`` stops handing connections to the loop. A connection the kernel gives the
    blocked thread after that is closed unserved, as those still queued on a listening socket
    are when a server shuts down."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        sock: socket.socket,
        backlog: int,
        shares: ConnectionShares,
        grace: float = 0.25,
    ) -> None:
        self._loop = loop
        self._grace = grace
        self._protocol_factory = protocol_factory
        self._sock = sock
        self._shares = shares
        self._slot = shares.join()
        self._closing = threading.Event()
        self._tasks: set[asyncio.Task] = set()
        self.sockets = [sock]
        # Blocking: the thread waits in the kernel's queue of acceptors (the flag belongs to
        # the shared socket, so every worker's thread waits so; none uses the loop's server).
        sock.setblocking(True)
        sock.listen(backlog)  # uvicorn only binds it: the event loop's server would listen
        self._thread = threading.Thread(target=self._accept, name="medloop-accept", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        waiting_since: float | None = None
        while not self._closing.is_set() and self._sock.fileno() != -1:
            if not self._shares.fewest(self._slot):
                queued = _readable(self._sock, 0.002 if waiting_since else 0.05)
                if not queued:
                    waiting_since = None
                    continue
                waiting_since = waiting_since or time.monotonic()
                if time.monotonic() - waiting_since < self._grace:
                    continue
            waiting_since = None
            try:
                conn, _ = self._sock.accept()
            except OSError as error:
                if self._closing.is_set() or self._sock.fileno() == -1:
                    return
                # Out of file descriptors, or a connection reset while queued: as the event
                # loop's own server does, say so and try again in a moment.
                logger.warning("accepting a connection failed: %s", error)
                time.sleep(0.1)
                continue
            if self._closing.is_set():
                conn.close()
                return
            self._shares.add(self._slot, 1)
            try:
                self._loop.call_soon_threadsafe(self._serve, conn)
            except RuntimeError:  # the loop is closed: the process is ending
                conn.close()
                return

    def _serve(self, conn: socket.socket) -> None:
        if self._closing.is_set():
            self._shares.add(self._slot, -1)
            conn.close()
            return
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = self._loop.create_task(self._loop.connect_accepted_socket(self._counted, conn))
        self._tasks.add(task)
        task.add_done_callback(self._served)

    def _counted(self) -> asyncio.BaseProtocol:
        """The server's protocol, its connection uncounted when lost."""
        protocol = self._protocol_factory()
        lost = protocol.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            self._shares.add(self._slot, -1)
            lost(exc)

        protocol.connection_lost = connection_lost  # type: ignore[method-assign]
        return protocol

    def _served(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._shares.add(self._slot, -1)  # never connected: nothing will be lost
            logger.warning("serving an accepted connection failed: %r", task.exception())

    def is_serving(self) -> bool:
        return not self._closing.is_set()

    def close(self) -> None:
        self._closing.set()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _readable(sock: socket.socket, timeout: float) -> bool:
    poller = select.poll()
    try:
        poller.register(sock.fileno(), select.POLLIN)
    except ValueError:  # closed meanwhile: the caller sees it and stops
        return False
    return bool(poller.poll(timeout * 1000))


class BalancedLoop(uvloop.Loop):  # type: ignore[misc]
    """uvloop's event loop whose server on a shared listening TCP socket (uvicorn gives its
    workers one) is a ``TurnTakingAcceptor``; everything else is uvloop's."""

    shares: ConnectionShares | None = None
    """Set in each worker process (``BalancedConfig.load``) before the server starts."""
    accept_grace = 0.25
    """``TurnTakingAcceptor``'s grace (seconds), likewise."""

    async def create_server(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], *args: Any, **options: Any
    ) -> Any:
        sock = options.get("sock")
        if (
            self.shares is None
            or sock is None
            or args
            or options.get("ssl") is not None
            or sock.family not in (socket.AF_INET, socket.AF_INET6)
            or sock.type != socket.SOCK_STREAM
        ):
            return await super().create_server(protocol_factory, *args, **options)
        backlog = options.get("backlog", 100)
        return TurnTakingAcceptor(
            self, protocol_factory, sock, backlog, self.shares, self.accept_grace
        )


def balanced_loop() -> asyncio.AbstractEventLoop:
    """The worker processes' event loop (uvicorn's ``loop`` option, as an import string)."""
    return BalancedLoop()


class BalancedConfig(uvicorn.Config):
    """uvicorn's configuration for several worker processes on one listening socket, which take
    turns at accepting connections (``TurnTakingAcceptor``)."""

    def __init__(self, app: Any, accept_grace: float = 0.25, **options: Any) -> None:
        options.setdefault("loop", "medloop.api.server:balanced_loop")
        super().__init__(app, **options)
        self.connection_shares = ConnectionShares()
        self.accept_grace = accept_grace

    def load(self) -> None:
        BalancedLoop.shares = self.connection_shares
        BalancedLoop.accept_grace = self.accept_grace
        super().load()


class SettingsConfig(BalancedConfig):
    """uvicorn's configuration with medloop's settings on board, for ``medloop serve --workers
    N``: uvicorn's process supervisor pickles its configuration into every worker it starts (and
    restarts), so each worker builds its app from the very settings the parent read (``--db``
    included) instead of reading the environment again, and the parent's environment is not
    written to pass them on."""

    def __init__(self, settings: Settings, **options: Any) -> None:
        super().__init__("medloop.api.app:create_app", factory=True, **options)
        self.medloop_settings = settings

    def load_app(self) -> Callable[[], FastAPI]:
        settings = self.medloop_settings

        def factory() -> FastAPI:
            from medloop.api import trace
            from medloop.api.app import create_app
            from medloop.settings import install

            install(settings)  # the worker's subsystems read the parent's settings
            app = create_app(settings)
            settle_heap()
            lean_records()
            return trace.install(app)  # the app itself unless MEDLOOP_TRACE is set

        return factory
