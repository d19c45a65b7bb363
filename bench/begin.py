"""Benchmark: a transaction's BEGIN alone vs written with its first statement (issues #18, #20).

The two transaction shapes the store sends, through the store's own code (``store.batch`` on an
engine from ``store.db.make_engine``):

* ``read`` — an audited read: the row by its key (prepared, the transaction's first statement),
  then the audit record's insert with the COMMIT in one pipeline.
* ``command`` — a command: the row ``FOR UPDATE`` (first statement), an update, four appends
  queued, the record's insert and the COMMIT in one pipeline.

Two engines on one database, one connection each: ``begin-alone`` (psycopg's own cursor, as
main sends ``BEGIN`` in a round trip of its own) and ``with-first`` (``store.postgres.Cursor``).
``--blocks`` blocks of ``--transactions`` transactions per engine, alternating; per block the
wall time, this process's CPU and the backend's CPU (``/proc/<pid>/stat``, clock ticks) per
transaction. Prints JSON with every block and the medians and their ratios.

``--only ENGINE`` runs one engine's transactions and nothing else (after set-up), for
``strace -c``: run it with ``--transactions 0`` and ``N`` and take the difference over N.

Run: ``MEDLOOP_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test
python bench/begin.py --transactions 500 --blocks 5`` (a scratch database is made and dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from medloop.store import batch  # noqa: E402
from medloop.store.db import make_engine, normalise_url, writer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
metadata = MetaData()
rows = Table(
    "bench_rows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("note", Text, nullable=False),
)
appends = Table(
    "bench_appends",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("row_id", Integer, nullable=False),
    Column("note", Text, nullable=False),
)
READ_ROW = select(rows.c.revision, rows.c.note).where(rows.c.id == 1)
LOCK_ROW = select(rows.c.revision).where(rows.c.id == 1).with_for_update()
BUMP = update(rows).where(rows.c.id == 1).values(revision=rows.c.revision + 1)
APPEND = insert(appends).values(row_id=bindparam("row_id"), note=bindparam("note"))
RECORD = APPEND.returning(appends.c.id)


def audited_read(engine) -> None:
    with writer(engine).begin() as conn:
        assert batch.first_row(conn, READ_ROW, {}) is not None
        batch.commit_with_next_row(conn)
        batch.execute_returning_one(conn, RECORD, {"row_id": 1, "note": "read"})


def command(engine) -> None:
    with writer(engine).begin() as conn, batch.batched(conn):
        assert batch.first_row(conn, LOCK_ROW, {}) is not None
        batch.execute(conn, BUMP, {})
        for n in range(4):
            batch.execute(conn, APPEND, {"row_id": 1, "note": f"append {n}"})
        batch.commit_with_next_row(conn)
        batch.execute_returning_one(conn, RECORD, {"row_id": 1, "note": "record"})


SHAPES = {"read": audited_read, "command": command}


def _engine(url: str, begin_alone: bool):
    engine = make_engine(url)  # used by one thread: one pooled connection, one backend
    if begin_alone:

        @event.listens_for(engine, "connect")
        def _psycopg_cursor(dbapi_connection, _record) -> None:
            dbapi_connection.cursor_factory = psycopg.Cursor

    return engine


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.connection.driver_connection.info.backend_pid


def _ticks(pid: int | str) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def _block(engine, shape, n: int, backend: int) -> dict[str, float]:
    run = SHAPES[shape]
    backend_before = _ticks(backend)
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    for _ in range(n):
        run(engine)
    wall = time.perf_counter() - wall_before
    cpu = time.process_time() - cpu_before
    backend_cpu = (_ticks(backend) - backend_before) / TICK
    per = 1e6 / max(n, 1)
    return {
        "wall_us": round(wall * per, 1),
        "cpu_us": round(cpu * per, 1),
        "backend_cpu_us": round(backend_cpu * per, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--transactions", type=int, default=500, help="per block")
    p.add_argument("--blocks", type=int, default=5, help="per engine and shape")
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--only", choices=["begin-alone", "with-first"], help="for strace -c")
    a = p.parse_args()
    server = os.environ["MEDLOOP_TEST_POSTGRES_URL"]
    admin = create_engine(normalise_url(server), isolation_level="AUTOCOMMIT")
    name = f"bench_begin_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalise_url(server)).set(database=name).render_as_string(False)
    engines = {}
    try:
        setup = create_engine(url)
        metadata.create_all(setup)
        with setup.begin() as conn:
            conn.execute(insert(rows), {"id": 1, "revision": 0, "note": "the row"})
        setup.dispose()
        kinds = [a.only] if a.only else ["begin-alone", "with-first"]
        engines = {k: _engine(url, k == "begin-alone") for k in kinds}
        backends = {k: _backend_pid(e) for k, e in engines.items()}
        for shape in a.shapes:  # warm: statements prepared, caches filled
            for engine in engines.values():
                for _ in range(20):
                    SHAPES[shape](engine)
        if a.only:
            for shape in a.shapes:
                for _ in range(a.transactions):
                    SHAPES[shape](engines[a.only])
            return
        out = {
            "started": time.strftime("%H:%M:%S", time.gmtime()),
            "load_before": os.getloadavg()[0],
            "transactions_per_block": a.transactions,
            "shapes": {},
        }
        for shape in a.shapes:
            blocks = {k: [] for k in kinds}
            for b in range(a.blocks):
                order = kinds if b % 2 == 0 else kinds[::-1]
                for k in order:
                    blocks[k].append(_block(engines[k], shape, a.transactions, backends[k]))
            medians = {
                k: {m: statistics.median(x[m] for x in blocks[k]) for m in blocks[k][0]}
                for k in kinds
            }
            ratios = {
                m: round(medians["with-first"][m] / medians["begin-alone"][m], 3)
                for m in medians["begin-alone"]
                if medians["begin-alone"][m]
            }
            out["shapes"][shape] = {"blocks": blocks, "medians": medians, "ratios": ratios}
        out["load_after"] = os.getloadavg()[0]
        print(json.dumps(out, indent=1))
    finally:
        for engine in engines.values():
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
