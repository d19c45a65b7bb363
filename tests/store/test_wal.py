"""The SQLite server's write-ahead log is checkpointed by a thread of its own
(``medloop.store.wal``): commits leave the log to it, it keeps the log short, and nothing
written meanwhile is lost."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from medloop.cli import _start_wal_checkpointer
from medloop.store import wal
from medloop.store.db import make_engine, writer
from medloop.store.wal import WalCheckpointer

ROWS = 200
"""Commits of three pages or more each: about 650 pages in the log without a checkpoint, below
SQLite's own threshold of 1 000."""


def _table(engine) -> None:
    with writer(engine).begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)"))


def _write(engine, rows: int, *, pause: float = 0.0) -> None:
    for i in range(rows):
        with writer(engine).begin() as conn:
            # 20 KiB: more than a 16 KiB page, so every commit puts a few pages in the log.
            conn.execute(text("INSERT INTO t VALUES (:i, :p)"), {"i": i, "p": bytes(20_000)})
        if pause:
            time.sleep(pause)  # a server's commits come a request apart


def _threshold(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()


def _log_state(path: str) -> tuple[int, int]:
    """(pages in the log, of them already copied into the database) as a passive checkpoint
    on a fresh connection finds them before it copies any."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        _busy, pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return pages, copied
    finally:
        conn.close()


def test_commits_leave_the_log_to_the_checkpointer_while_it_runs(sqlite_url):
    engine = make_engine(sqlite_url)
    _table(engine)
    assert _threshold(engine) == wal.DEFAULT_PAGES
    checkpointer = WalCheckpointer(engine, every_commits=8).start()
    try:
        assert _threshold(engine) == wal.FALLBACK_PAGES
        _write(engine, ROWS)
        deadline = time.monotonic() + 10
        while checkpointer.done.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpointer.done.runs >= 2
        assert checkpointer.done.pages_copied > 0
        assert checkpointer.done.failed == 0
    finally:
        checkpointer.stop()
    assert _threshold(engine) == wal.DEFAULT_PAGES


def test_the_log_stays_short_and_the_last_checkpoint_copies_everything(sqlite_url):
    engine = make_engine(sqlite_url)
    _table(engine)
    path = engine.url.database
    with WalCheckpointer(engine, every_commits=4, restart_pages=64):
        _write(engine, ROWS, pause=0.002)
        pages_while_running, _ = _log_state(path)
    # Without a checkpoint about 650 pages (the next test). With the checkpointer a commit
    # restarts the log whenever the last checkpoint has caught up with it (13 pages here on an
    # idle machine); on a busy one, where a checkpoint takes longer than commits come apart,
    # the checkpointer restarts it once it passes ``restart_pages`` (below).
    assert pages_while_running < ROWS
    pages, copied = _log_state(path)
    assert copied == pages  # stop() ran a last checkpoint
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == ROWS
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_a_log_past_the_bound_is_restarted_and_the_next_commit_starts_it_again(sqlite_url):
    """When commits come faster than a checkpoint catches up with them, no commit finds the log
    copied, so none restarts it: it reached ~650 pages on a loaded machine here, and would grow
    until a request's commit checkpoints it at ``FALLBACK_PAGES``. A log at ``restart_pages`` or
    more gets a ``RESTART`` checkpoint after the passive one (waiting for the writer of the
    moment), and the next commit starts the log from the beginning; every row is kept. Below the
    bound, a passive checkpoint only."""
    import sqlite3

    engine = make_engine(sqlite_url)
    _table(engine)
    _write(engine, 40)  # about 130 pages, no checkpoint yet
    grown, _ = _log_state(engine.url.database)
    assert grown >= 100
    checkpointer = WalCheckpointer(engine, restart_pages=64)  # its round, run here by hand
    conn = sqlite3.connect(engine.url.database, isolation_level=None)
    try:
        checkpointer._checkpoint(conn)
        assert (checkpointer.done.runs, checkpointer.done.restarts) == (1, 1)
        with writer(engine).begin() as write:
            write.execute(text("INSERT INTO t VALUES (40, :p)"), {"p": bytes(20_000)})
        restarted, _ = _log_state(engine.url.database)
        assert 0 < restarted < 10  # the one commit's pages, from the log's beginning
        checkpointer._checkpoint(conn)  # below the bound: passive only
        assert (checkpointer.done.runs, checkpointer.done.restarts) == (2, 1)
    finally:
        conn.close()
    assert checkpointer.done.failed == 0
    with engine.connect() as read:
        assert read.execute(text("SELECT count(*) FROM t")).scalar() == 41
        assert read.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_a_restart_a_reader_holds_up_gives_up_at_once_and_the_next_round_restarts(sqlite_url):
    """A ``RESTART`` holds the writer's lock while it waits for readers still on the log, and on
    the SQLite server every request waits behind a blocked writer: so it gives up after
    ``RESTART_WAIT_MS`` (busy, nothing restarted, not the connection's 5 s), every row kept;
    the next round, the reader gone, restarts the log."""
    import sqlite3

    engine = make_engine(sqlite_url)
    _table(engine)
    _write(engine, 40)
    checkpointer = WalCheckpointer(engine, restart_pages=64)
    conn = sqlite3.connect(engine.url.database, isolation_level=None)
    try:
        with engine.connect() as read:
            read.execute(text("SELECT count(*) FROM t")).scalar()  # a snapshot on the log
            started = time.perf_counter()
            checkpointer._checkpoint(conn)
            waited = time.perf_counter() - started
            assert (checkpointer.done.restarts, checkpointer.done.busy) == (0, 1)
            assert waited < wal.BUSY_TIMEOUT_MS / 1000 / 5
            assert read.execute(text("SELECT count(*) FROM t")).scalar() == 40
        checkpointer._checkpoint(conn)
        assert (checkpointer.done.restarts, checkpointer.done.busy) == (1, 1)
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == wal.BUSY_TIMEOUT_MS
    finally:
        conn.close()
    assert checkpointer.done.failed == 0


def test_the_restart_bound_lies_between_sqlites_threshold_and_the_fallback(sqlite_url):
    """A checkpointer restarts the log at ``RESTART_PAGES`` unless told otherwise: above
    SQLite's own threshold (a restart stalls the writers, so it runs seldom) and below the
    engine's fallback, where a request's commit would copy the log back itself."""
    assert wal.DEFAULT_PAGES < wal.RESTART_PAGES < wal.FALLBACK_PAGES
    assert WalCheckpointer(make_engine(sqlite_url)).restart_pages == wal.RESTART_PAGES


def test_without_a_checkpointer_the_log_grows_until_a_commit_checkpoints(sqlite_url):
    """The comparison the previous test's bound rests on: SQLite's own threshold leaves the
    log to grow to about 1 000 pages before the committing request copies it back."""
    engine = make_engine(sqlite_url)
    _table(engine)
    _write(engine, ROWS, pause=0.002)
    pages, _ = _log_state(engine.url.database)
    assert 2 * ROWS <= pages < wal.DEFAULT_PAGES


def test_only_a_database_file_has_a_log_to_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="in-memory"):
        WalCheckpointer(make_engine("sqlite://"))
    with pytest.raises(ValueError, match="only an SQLite"):
        WalCheckpointer(make_engine("postgresql://postgres@127.0.0.1:5432/nothing"))
    with pytest.raises(ValueError, match="every_commits"):
        WalCheckpointer(make_engine(f"sqlite:///{tmp_path / 'x.db'}"), every_commits=0)
    with pytest.raises(ValueError, match="restart_pages"):
        WalCheckpointer(make_engine(f"sqlite:///{tmp_path / 'x.db'}"), restart_pages=0)
    # `medloop serve` starts one only where it can run
    assert _start_wal_checkpointer(make_engine("sqlite://")) is None
    assert _start_wal_checkpointer(make_engine("postgresql://postgres@127.0.0.1/x")) is None


def test_one_checkpointer_per_engine_and_stop_twice_is_harmless(sqlite_url):
    engine = make_engine(sqlite_url)
    _table(engine)
    first = _start_wal_checkpointer(engine)
    assert isinstance(first, WalCheckpointer)
    try:
        with pytest.raises(RuntimeError, match="already runs"):
            WalCheckpointer(engine).start()
        with pytest.raises(RuntimeError, match="already running"):
            first.start()
    finally:
        first.stop()
    first.stop()
    # and a new one may start once the first has stopped
    WalCheckpointer(engine).start().stop()
