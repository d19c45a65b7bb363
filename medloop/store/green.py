"""Synchronous psycopg code run on the event loop's thread without blocking it (greenlets).

On PostgreSQL a route is plain synchronous code (SQLAlchemy over psycopg). Run in a route
thread, each request hands its work to a thread and back and the threads take turns at the
GIL: ~17 context switches and futex calls per prescribe against ~2 for the floor of our own
stack, which runs everything on the event loop with async psycopg (bench/RESULTS.md, issue #20,
"Session 7 - h7-gap"). Run on the event loop directly, a route blocks the loop for every round
trip. This module is the third way, SQLAlchemy's own ``greenlet_spawn``/``await_only`` idea
brought down to the socket: the route runs in a :class:`RouteGreenlet` on the loop's thread,
and every time psycopg would block on the connection's socket, the greenlet registers the
socket with the event loop and switches back to the loop; the loop's reader callback switches
into the greenlet again when the server has answered. Other requests run in between.

psycopg drives every protocol exchange as a sans-IO generator that yields what it waits for
(readable, writable) and is sent what is ready; its synchronous ``Connection.wait`` drives it
with a blocking ``poll``. :class:`Connection` (what ``store.db`` connects with on PostgreSQL)
drives the same generator with the event loop instead when, and only when, the calling code
runs in a route greenlet; in any other greenlet (any thread, the loop itself) it is psycopg's
own ``wait``. ``store.postgres`` drives its generators through ``Connection.wait`` too, so its
one-write round trips wait the same way.

What holds (``tests/api/test_api_green.py``):

- A route greenlet runs in a copy of the request's context, as a route thread does.
- At most ``slots`` route greenlets run at once per :class:`GreenRoutes` (the others wait in
  arrival order on an ``asyncio.Semaphore``), fewer than the engine's pool has connections:
  an exhausted SQLAlchemy pool would block the loop's thread on a ``threading.Condition``.
- A connection is used by one greenlet at a time (the pool checks it out to one), and psycopg's
  connection lock, held across a wait, is only ever wanted by that greenlet.
- A request given up while its route runs (the server shutting down) does not stop the route:
  the greenlet is driven by the event loop's socket callbacks, not by the request's task, so it
  finishes its transaction and its answer is dropped; its slot is free when it has finished.
  One still waiting for a slot does not start.
- A greenlet thrown out of a wait in the middle of a round trip (the process going down)
  closes its connection, so that the pool never hands out one in an unknown state.
- A ``threading`` lock must not be held across a database wait by code that route greenlets
  run: a second greenlet of the same thread wanting it would block the loop's thread for good.
  (``loop.catalogue.catalogue_of`` builds a catalogue outside its lock for that reason.)
"""

from __future__ import annotations

import asyncio
import contextvars
import select
import threading
from collections.abc import Callable
from time import monotonic
from typing import Any, TypeVar

import psycopg
from greenlet import getcurrent, greenlet
from psycopg import errors as e
from psycopg import pq

Result = TypeVar("Result")

_WAIT_R = 1  # psycopg's Wait.R
_WAIT_W = 2  # Wait.W
_READY_NONE = 0
_READY_R = 1  # Ready.R
_READY_W = 2  # Ready.W
_ACTIVE = pq.TransactionStatus.ACTIVE


class RouteGreenlet(greenlet):
    """A route's work on the event loop's thread (see the module docstring). Its parent is the
    greenlet the event loop runs in: switching to it gives the loop back.

    The loop switches into it only from a callback of its own ready queue (``call_soon``):
    ``start`` and every wake-up (a socket ready, a timer) are scheduled so, never run from the
    socket or timer callback itself. A greenlet's stack is copied in and out of the C stack
    below the point where it first ran, and uvloop (libuv) keeps pointers into its own C stack
    while it dispatches socket events (the array of ready events, which ``add_reader`` and
    ``remove_reader`` touch): entered from there, a greenlet would overwrite that array and the
    loop would crash. Entered from the ready queue, every switch starts at the same depth of
    the loop's dispatch, with nothing of the loop's below it."""

    def __init__(
        self,
        work: Callable[[], Any],
        loop: asyncio.AbstractEventLoop,
        answer: asyncio.Future,
        finished: Callable[[], None],
    ) -> None:
        super().__init__(self._main)
        self._work = work
        self._loop = loop
        self._answer = answer
        self._finished = finished
        self._turn = 0
        """Which wait a wake-up is for: one left from an earlier wait does nothing."""
        self._ready = _READY_NONE
        self._woken = False

    def start(self) -> None:
        """Run the route from the loop's ready queue (see the class docstring)."""
        self._loop.call_soon(self.switch)

    def _main(self) -> None:
        answer = self._answer
        try:
            if answer.cancelled():  # given up before it started: not started
                return
            result = self._work()
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting request
            if not answer.cancelled():  # given up while it ran: the answer is dropped
                answer.set_exception(error)
        else:
            if not answer.cancelled():
                answer.set_result(result)
        finally:
            self._work = None  # type: ignore[assignment]
            self._finished()

    def wait_socket(self, fileno: int, wanted: int, deadline: float | None) -> int:
        """Give the loop back until ``fileno`` is ready for what ``wanted`` says (psycopg's
        ``Wait``) or ``deadline`` (``time.monotonic``) has passed; what is ready (``Ready``)."""
        loop = self._loop
        turn = self._next_turn()
        timer = None
        if wanted & _WAIT_R:
            loop.add_reader(fileno, self._wake, turn, _READY_R)
        if wanted & _WAIT_W:
            loop.add_writer(fileno, self._wake, turn, _READY_W)
        if deadline is not None:
            timer = loop.call_at(
                loop.time() + max(0.0, deadline - monotonic()), self._wake, turn, _READY_NONE
            )
        try:
            self.parent.switch()
            return self._ready
        finally:
            self._turn += 1
            if wanted & _WAIT_R:
                loop.remove_reader(fileno)
            if wanted & _WAIT_W:
                loop.remove_writer(fileno)
            if timer is not None:
                timer.cancel()

    def pause(self, seconds: float) -> None:
        """Give the loop back for ``seconds``."""
        timer = self._loop.call_later(seconds, self._wake, self._next_turn(), _READY_NONE)
        try:
            self.parent.switch()
        finally:
            self._turn += 1
            timer.cancel()

    def _next_turn(self) -> int:
        self._turn += 1
        self._ready = _READY_NONE
        self._woken = False
        return self._turn

    def _wake(self, turn: int, ready: int) -> None:
        """A socket or timer callback: what is ready noted, the greenlet's resumption queued
        (once per wait)."""
        if turn != self._turn:
            return
        self._ready |= ready
        if not self._woken:
            self._woken = True
            self._loop.call_soon(self._resume, turn)

    def _resume(self, turn: int) -> None:
        if turn == self._turn and not self.dead:
            self.switch()


class GreenRoutes:
    """Runs routes in route greenlets on the event loop's thread, at most ``slots`` at once
    (the others queued in arrival order). The same interface as ``api.routing.RouteThreads``."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"route greenlets must be 1 or more, not {slots}")
        self.slots = slots
        self._free: asyncio.Semaphore | None = None

    async def run(self, work: Callable[[], Result]) -> Result:
        """``work()``'s result, computed in a route greenlet in a copy of the context."""
        free = self._free
        if free is None:  # made on first use: it belongs to the loop that serves
            free = self._free = asyncio.Semaphore(self.slots)
        await free.acquire()  # given up here: not started, nothing to release
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Result] = loop.create_future()
        try:
            route = RouteGreenlet(work, loop, answer, free.release)
            route.gr_context = contextvars.copy_context()
        except BaseException:
            free.release()
            raise
        route.start()
        return await answer


class GreenLock:
    """A ``threading.Lock`` for code that holds it across database waits. In a route greenlet,
    the lock held by someone else is waited for by giving the event loop back every
    ``poll_seconds`` until it is free (the holder may be another greenlet of this thread,
    which can only go on when the loop runs); anywhere else it is waited for as usual."""

    __slots__ = ("_lock", "poll_seconds")

    def __init__(self, poll_seconds: float = 0.002) -> None:
        self._lock = threading.Lock()
        self.poll_seconds = poll_seconds

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            current = getcurrent()
            if type(current) is RouteGreenlet:
                while not self._lock.acquire(blocking=False):
                    current.pause(self.poll_seconds)
            else:
                self._lock.acquire()

    def __exit__(self, *_exc: object) -> None:
        self._lock.release()


class Connection(psycopg.Connection):
    """psycopg's connection, whose waits for the server give the event loop back when they are
    made in a route greenlet (see the module docstring), once the pool has handed it out
    (``handed_out``): before that, while the pool sets up a new connection, SQLAlchemy may hold
    a ``threading`` lock (the first connection's dialect set-up runs under one), so a new
    connection's set-up waits as psycopg waits, blocking, as its ``connect`` itself does."""

    handed_out = False

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if self.handed_out:
            current = getcurrent()
            if type(current) is RouteGreenlet:
                return _wait_green(self, current, gen, timeout)
        return super().wait(gen, interval, timeout)


def handed_out(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """The pool's ``checkout`` listener that lets a connection's waits go green."""
    dbapi_connection.handed_out = True


def _wait_green(conn: Connection, route: RouteGreenlet, gen: Any, timeout: float | None) -> Any:
    """``gen`` driven to its end as psycopg's ``wait`` drives it, waiting through ``route``."""
    fileno = conn.pgconn.socket
    deadline = None if timeout is None else monotonic() + timeout
    try:
        wanted = next(gen)
        while True:
            if wanted & _WAIT_W:
                # A socket asked for writing is nearly always writable (as psycopg's
                # ``wait_async`` does): a zero-timeout poll before the loop's round.
                ready = _ready_now(fileno, wanted)
                if ready:
                    wanted = gen.send(ready)
                    continue
            try:
                ready = route.wait_socket(fileno, wanted, deadline)
            except BaseException:
                # Thrown out of the wait (the greenlet killed): the connection is in the middle
                # of an exchange nobody will finish. Closed, so it is never used again.
                if conn.pgconn.transaction_status == _ACTIVE:
                    conn.pgconn.finish()
                raise
            if deadline is not None and not ready and monotonic() >= deadline:
                raise e._WaitTimeout("wait timeout expired")
            wanted = gen.send(ready)
    except StopIteration as done:
        return done.value
    except OSError as error:
        raise e.OperationalError("connection socket closed") from error


def _ready_now(fileno: int, wanted: int) -> int:
    poller = select.poll()
    events = (select.POLLIN if wanted & _WAIT_R else 0) | (
        select.POLLOUT if wanted & _WAIT_W else 0
    )
    poller.register(fileno, events)
    found = 0
    for _fd, happened in poller.poll(0):
        if happened & (select.POLLIN | select.POLLERR | select.POLLHUP):
            found |= _READY_R
        if happened & (select.POLLOUT | select.POLLERR | select.POLLHUP):
            found |= _READY_W
    return found & (wanted & (_WAIT_R | _WAIT_W))
