"""SQLite's write-ahead log checkpointed from a thread of its own, not by the request that
happens to commit past the threshold.

In WAL mode SQLite copies the log back into the database file (a checkpoint) when a commit
leaves more than ``wal_autocheckpoint`` pages in the log (1 000 by default): that commit's
connection does the copying and the two ``fsync``s around it before its ``COMMIT`` returns. On
the SQLite server every route runs on the event loop (``route_threads`` 0), so that request and
every request queued behind it wait for the checkpoint: with 16 KiB pages a commit writes tens
of pages and the threshold comes round every few hundred commits (``bench/fhir.py``, paced
creates: p99 18-22 ms with the checkpoints in the requests, 6-9 ms without).

``WalCheckpointer`` runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection after every
``every_commits`` commits of the engine (and after ``idle_seconds`` when fewer came), so the log
stays short and a writer restarts it from the beginning whenever a checkpoint has caught up.
A passive checkpoint blocks neither readers nor writers, and Python's sqlite3 releases the GIL
while SQLite works, so the event loop goes on serving meanwhile. When commits come faster than a
checkpoint catches up (a loaded machine), no commit finds the log copied and none restarts it
(it then grows to ``FALLBACK_PAGES``, where a request's commit checkpoints it). Once it holds
``restart_pages`` (``RESTART_PAGES``, 4 000) or more, the checkpointer follows the passive
checkpoint with a ``RESTART`` one, which waits at most ``RESTART_WAIT_MS`` for the writer of the
moment and makes the next writer start the log again. A ``RESTART`` holds the writer's lock
while it runs, and on the SQLite server every request waits for a blocked writer (they share
the event loop): so it runs seldom (every 64 MB of log) and waits briefly. The engine's own
connections keep ``FALLBACK_PAGES`` as their threshold: should the thread fall behind (a long
read holding an old snapshot), a commit still checkpoints, as without it, only much later.

Only the serving process uses it (``medloop serve`` on SQLite); everything else keeps SQLite's
default behaviour.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, event

__all__ = [
    "FALLBACK_PAGES",
    "RESTART_PAGES",
    "Checkpoints",
    "WalCheckpointer",
    "autocheckpoint_pages",
]

FALLBACK_PAGES = 16_000
"""The engine's connections' own ``wal_autocheckpoint`` while a checkpointer runs (16 times
SQLite's default: about 250 MB of log with 16 KiB pages)."""

DEFAULT_PAGES = 1_000
"""SQLite's default ``wal_autocheckpoint``, which connections keep without a checkpointer."""

RESTART_PAGES = 4_000
"""A log this long (64 MB with 16 KiB pages) or longer is restarted by the checkpointer. At
1 000 pages, ``bench/fhir.py``'s create phases on SQLite (30 s, up to 16 clients) made it
restart 74-112 times, stalling the writers 0.75-1.79 s in all, up to 67 ms at a time; at 4 000
pages, with ``RESTART_WAIT_MS`` 10 instead of 50, 28-42 times and 0.28-0.36 s, at most 21 ms,
the log at most 95 MB (``bench/RESULTS.md``: "SQLite's log under creates")."""

RESTART_WAIT_MS = 10
"""How long a ``RESTART`` checkpoint waits for readers and the writer of the moment (new
writers wait as long, once per ``restart_pages`` of log at most); busy then, it is tried again
at the next round."""

BUSY_TIMEOUT_MS = 5_000
"""The checkpointer's own connection's busy timeout otherwise (``sqlite3.connect``'s 5 s)."""


def autocheckpoint_pages(engine: Engine) -> int:
    """The ``wal_autocheckpoint`` that ``engine``'s new connections set (``store.db`` asks)."""
    return FALLBACK_PAGES if getattr(engine, "_medloop_wal_checkpointer", None) else DEFAULT_PAGES


@dataclass
class Checkpoints:
    """What the checkpointer has done so far."""

    runs: int = 0
    pages_copied: int = 0
    busy: int = 0
    """Checkpoints that could not run (another connection's checkpoint in progress)."""
    restarts: int = 0
    """``RESTART`` checkpoints that reset a log grown past ``restart_pages``."""
    failed: int = 0
    last_error: str | None = None
    longest_ms: float = 0.0


class WalCheckpointer:
    """Checkpoints ``engine``'s database (a file, in WAL mode) from a thread of its own while
    started; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        *,
        every_commits: int = 32,
        idle_seconds: float = 1.0,
        restart_pages: int = RESTART_PAGES,
    ) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError("only an SQLite database has a write-ahead log to checkpoint")
        path = engine.url.database
        if not path or path == ":memory:" or path.startswith("file::memory:"):
            raise ValueError("an in-memory SQLite database has no write-ahead log to checkpoint")
        if every_commits < 1 or idle_seconds <= 0 or restart_pages < 1:
            raise ValueError(
                "every_commits and restart_pages must be at least 1 and idle_seconds positive"
            )
        self.engine = engine
        self.path = path
        self.every_commits = every_commits
        self.idle_seconds = idle_seconds
        self.restart_pages = restart_pages
        self.done = Checkpoints()
        self._commits = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- the engine's side ----------------------------------------------------------------------

    def _committed(self, _conn) -> None:
        # Runs in the committing thread: a counter and, now and then, an Event.set.
        self._commits += 1
        if self._commits >= self.every_commits:
            self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> WalCheckpointer:
        if self._thread is not None:
            raise RuntimeError("the checkpointer is already running")
        if getattr(self.engine, "_medloop_wal_checkpointer", None) is not None:
            raise RuntimeError("another checkpointer already runs for this engine")
        self.engine._medloop_wal_checkpointer = self  # type: ignore[attr-defined]
        # Pooled connections set their threshold when they connected: make them connect again.
        self.engine.dispose()
        event.listen(self.engine, "commit", self._committed)
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="medloop-wal-checkpoint", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after a last checkpoint; the engine's new connections go back to
        SQLite's default threshold."""
        if self._thread is None:
            return
        event.remove(self.engine, "commit", self._committed)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None
        self.engine._medloop_wal_checkpointer = None  # type: ignore[attr-defined]
        self.engine.dispose()

    def __enter__(self) -> WalCheckpointer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            while True:
                self._wake.wait(self.idle_seconds)
                self._wake.clear()
                stopping = self._stopping
                # Commits counted while this checkpoint runs wake the next one (a count lost
                # to a race between two threads' += only delays a checkpoint a little).
                pending, self._commits = self._commits, 0
                if pending or stopping:
                    self._checkpoint(conn)
                if stopping:
                    return
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        started = time.perf_counter()
        try:
            busy, log_pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if log_pages >= self.restart_pages:
                self._restart(conn)
        except sqlite3.Error as error:
            # The next round tries again; a commit past FALLBACK_PAGES checkpoints meanwhile.
            self.done.failed += 1
            self.done.last_error = str(error)
            return
        elapsed = (time.perf_counter() - started) * 1000
        self.done.runs += 1
        self.done.busy += 1 if busy else 0
        self.done.pages_copied += max(copied, 0)
        self.done.longest_ms = max(self.done.longest_ms, elapsed)

    def _restart(self, conn: sqlite3.Connection) -> None:
        """The log grew past ``restart_pages`` although passive checkpoints run: commits came
        faster than a checkpoint catches up, so no writer ever found the log copied and
        restarted it, and it would grow until a request's commit checkpoints it at
        ``FALLBACK_PAGES``. A ``RESTART`` checkpoint waits for
        the writer of the moment, copies the few frames the passive one left, and makes the
        next writer start the log from the beginning; new writers wait meanwhile, at most
        ``RESTART_WAIT_MS`` (then it gives up, busy, and the next round tries again)."""
        conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if busy:
            self.done.busy += 1
        else:
            self.done.restarts += 1
