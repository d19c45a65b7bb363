"""Read routing to PostgreSQL streaming replicas.

``MEDLOOP_DATABASE_REPLICA_URLS`` (comma-separated) names hot-standby replicas of the primary
(``MEDLOOP_DATABASE_URL``). Reads that may be a moment behind — the catalogue (its version in
force, package searches, building a version's knowledge) and, later, reports and exports — go
to a replica through :meth:`ReadRouter.read`; everything else stays on the primary:

- every command (a write);
- every read of patient data: it is an *audited* read, whose audit record is appended in the
  read's own transaction on the primary, and the list itself comes from the state cache of the
  revision the primary just locked, so a replica would save nothing and could show the caller a
  list older than the one they wrote. Read-your-writes holds because these reads never leave
  the primary.

A replica is used only while it is *caught up*: at most every ``check_seconds`` (default 1 s,
``MEDLOOP_REPLICA_CHECK_SECONDS``) the router compares the replica's replayed WAL position with
the position the primary had at the previous check; a replica that has not replayed that far
(replay paused, a slow standby, a broken stream) is passed over until it has, so what it serves
is at most about two check intervals old. A replica that cannot be reached is passed over for
``down_seconds`` (default 5 s) and the read runs on the primary instead, without an error to the
caller; a read whose replica connection breaks midway is run again on the primary. With no
replica configured every read goes to the primary, as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection, Engine, exc, text

from medloop.settings import current
from medloop.store.db import make_engine, reader

T = TypeVar("T")

__all__ = ["ReadRouter", "replica_urls_from_env"]


def replica_urls_from_env() -> list[str]:
    """``MEDLOOP_DATABASE_REPLICA_URLS`` of the process's settings."""
    return list(current().replicas.urls)


@dataclass
class _Replica:
    engine: Engine
    checked_at: float = float("-inf")
    down_until: float = float("-inf")
    fresh: bool = False
    primary_lsn_before: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Route:
    """Where one read went, and why (for tests and metrics)."""

    to: str  # "replica" or "primary"
    reason: str


class ReadRouter:
    def __init__(
        self,
        primary: Engine,
        replicas: Sequence[Engine] = (),
        *,
        check_seconds: float | None = None,
        down_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self._replicas = [_Replica(engine) for engine in replicas]
        self._check_seconds = (
            current().replicas.check_seconds if check_seconds is None else check_seconds
        )
        self._down_seconds = down_seconds
        self._clock = clock
        self._next = 0
        self.last_route: Route = Route("primary", "no replica configured")

    @classmethod
    def from_env(cls, primary: Engine) -> ReadRouter:
        return cls(primary, [make_engine(url) for url in replica_urls_from_env()])

    @property
    def has_replicas(self) -> bool:
        return bool(self._replicas)

    def read(self, work: Callable[[Connection], T]) -> T:
        """``work`` on a caught-up replica's read connection, else on the primary's."""
        replica = self._pick()
        if replica is not None:
            try:
                with reader(replica.engine).connect() as conn:
                    found = work(conn)
                self.last_route = Route("replica", "caught up")
                return found
            except (exc.OperationalError, exc.InterfaceError) as error:
                if not _is_connection_failure(error):
                    raise
                replica.down_until = self._clock() + self._down_seconds
                replica.fresh = False
                self.last_route = Route("primary", "replica failed during the read")
                with reader(self.primary).connect() as conn:
                    return work(conn)
        with reader(self.primary).connect() as conn:
            return work(conn)

    def _pick(self) -> _Replica | None:
        if not self._replicas:
            self.last_route = Route("primary", "no replica configured")
            return None
        now = self._clock()
        for offset in range(len(self._replicas)):
            replica = self._replicas[(self._next + offset) % len(self._replicas)]
            if now < replica.down_until:
                continue
            if now - replica.checked_at >= self._check_seconds:
                self._check(replica, now)
            if replica.fresh and now >= replica.down_until:
                self._next = (self._next + offset + 1) % len(self._replicas)
                return replica
        self.last_route = Route("primary", "no replica caught up and reachable")
        return None

    def _check(self, replica: _Replica, now: float) -> None:
        """Compare the replica's replayed WAL with where the primary was at the last check."""
        if not replica.lock.acquire(blocking=False):
            return  # another thread is checking it; use what is known
        try:
            replica.checked_at = now
            try:
                with reader(replica.engine).connect() as conn:
                    replayed = conn.execute(
                        text("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")
                    ).scalar()
            except (exc.OperationalError, exc.InterfaceError):
                replica.fresh = False
                replica.down_until = now + self._down_seconds
                return
            with reader(self.primary).connect() as conn:
                primary_now = conn.execute(
                    text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
                ).scalar()
            before = replica.primary_lsn_before
            replica.fresh = replayed is not None and before is not None and int(replayed) >= before
            replica.primary_lsn_before = int(primary_now)
        finally:
            replica.lock.release()

    def dispose(self) -> None:
        for replica in self._replicas:
            replica.engine.dispose()


def _is_connection_failure(error: exc.DBAPIError) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None)
    return error.connection_invalidated or sqlstate is None or sqlstate.startswith(("08", "57"))
