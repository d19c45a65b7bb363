"""A baton for the route threads: one of them runs its Python at a time, the others wait for
the baton, not for the GIL, and a thread gives the baton up only where it really waits (on the
database's socket).

Why: psycopg's C code releases the GIL around every libpq call (each send, each
``PQconsumeInput``, each ``PQgetResult``), and a release while another thread waits for the GIL
hands the GIL over: a ``futex`` wake, a context switch, and the releasing thread waits to get
it back. With 8 requests in flight on 4 route threads a prescribe paid ~70 ``futex`` calls and
~30 context switches more than with one (bench/RESULTS.md, issue #20, session 11). With the
baton the threads that wait for it sleep on its lock, so a route thread's short GIL releases
wake nobody but (at most) the event loop's thread.

The baton is a hint, never a condition for correctness: a thread that does not get it within
``patience`` seconds runs without it (and gives nothing back). A route that blocks while it
holds the baton on something other than the database's socket (another thread's lock held
across a round trip, a first connection under SQLAlchemy's first-connect lock) therefore stalls
the others for at most ``patience``, never for good.
"""

from __future__ import annotations

import select
import threading
from typing import Any

import psycopg
from psycopg import errors
from psycopg.connection import _WAIT_INTERVAL

PATIENCE = 0.02
"""Seconds a route thread waits for the baton before it runs without it."""

_READ, _WRITE = 1, 2  # psycopg's Wait.R / Wait.W and Ready.R / Ready.W (selectors' masks)
_POLL_MASKS = {
    _READ: select.POLLIN,
    _WRITE: select.POLLOUT,
    _READ | _WRITE: select.POLLIN | select.POLLOUT,
}
_POLL_BAD = ~(select.POLLIN | select.POLLOUT)


class Baton:
    """At most one thread holds it; ``take`` waits up to ``patience`` seconds for it."""

    def __init__(self, patience: float = PATIENCE) -> None:
        self.patience = patience
        self._lock = threading.Lock()
        self._holder: int | None = None

    def take(self) -> bool:
        """Wait for the baton (up to ``patience``); whether this thread now holds it."""
        if self._lock.acquire(True, self.patience):
            self._holder = threading.get_ident()
            return True
        return False

    def give(self) -> None:
        """Give the baton up, if this thread holds it."""
        if self._holder == threading.get_ident():
            self._holder = None
            self._lock.release()

    def held(self) -> bool:
        """Does this thread hold the baton?"""
        return self._holder == threading.get_ident()


_local = threading.local()


def carry(baton: Baton | None) -> None:
    """Make ``baton`` the one this thread's database waits give up (a route thread's
    initializer); ``None`` for none."""
    _local.baton = baton


def current() -> Baton | None:
    """The baton this thread carries, if any."""
    return getattr(_local, "baton", None)


_psycopg_wait = psycopg.Connection.wait
"""psycopg's own wait (taken at import: ``api.trace`` wraps both classes' waits, and a wait
must be recorded once)."""


def acquire(lock: threading.Lock) -> None:
    """``lock.acquire()`` for a lock that is held across round trips: a thread that has to
    wait for it gives its baton up meanwhile (else the lock's holder, back from the server,
    would wait out the baton's patience)."""
    if lock.acquire(False):
        return
    baton = getattr(_local, "baton", None)
    if baton is None or not baton.held():
        lock.acquire()
        return
    baton.give()
    try:
        lock.acquire()
    finally:
        baton.take()


class Connection(psycopg.Connection):
    """A psycopg connection whose waits for the server give up the baton the calling thread
    holds, and take it back once the socket is ready. Without a baton (every thread but a
    route thread; a route thread that runs without it) it waits as psycopg does."""

    def wait(self, gen: Any, interval: float = _WAIT_INTERVAL, timeout: float | None = None):
        baton = getattr(_local, "baton", None)
        if baton is None or timeout is not None or not baton.held():
            return _psycopg_wait(self, gen, interval, timeout)
        return _wait_giving_up(gen, self.pgconn.socket, interval, baton)


def _wait_giving_up(gen: Any, fileno: int, interval: float, baton: Baton) -> Any:
    """psycopg's ``wait_poll``, with ``baton`` given up around each ``poll``: the generator's
    own steps (the sends, reading the answers) run holding it."""
    try:
        state = next(gen)
        poller = select.poll()
        interval_ms = max(int(interval * 1000.0), 0)
        while True:
            poller.register(fileno, _POLL_MASKS[state])
            baton.give()
            try:
                events = poller.poll(interval_ms)
            finally:
                baton.take()
            if not events:
                state = gen.send(0)  # psycopg's READY_NONE: the interval passed
                continue
            event = events[0][1]
            ready = (_READ if event & select.POLLIN else 0) | (
                _WRITE if event & select.POLLOUT else 0
            )
            if not ready and event & _POLL_BAD:
                raise errors.OperationalError("connection socket closed")
            state = gen.send(ready)
    except StopIteration as done:
        return done.value
