"""Benchmark: a transaction's round trips as the store sends them, main vs this tree (issues
#18, #20).

The two transaction shapes the store sends, through the store's own code (``store.batch`` on an
engine from ``store.db.make_engine``) of the tree that runs it:

* ``read`` — an audited read: the row by its key (prepared, the transaction's first statement),
  then the audit record's insert with the COMMIT in one pipeline.
* ``command`` — a command: the row ``FOR UPDATE`` (first statement), an update, four appends
  queued, the record's insert and the COMMIT in one pipeline.

``--base DIR``: two worker processes on one scratch database, one importing medloop from
``DIR`` (e.g. a ``git archive`` of main) and one from this tree, one connection each;
``--blocks`` blocks of ``--transactions`` transactions per tree, alternating (the order flips
every block); per block the wall time, the worker's CPU and its backend's CPU
(``/proc/<pid>/stat``, clock ticks) per transaction. Prints JSON with every block, the medians
and the ratios this tree / base.

``--only``: run ``--transactions`` of each shape in this process and nothing else (after
set-up), with the medloop ``PYTHONPATH`` names (this tree's without it), for ``strace -c``:
run it with ``--transactions 0`` and ``N`` and take the difference over N.

Run: ``MEDLOOP_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test
python bench/begin.py --base /tmp/main --transactions 500 --blocks 6`` (a scratch database is
made and dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    create_engine,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url

TREE = Path(__file__).resolve().parents[1]
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(TREE))
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


def _warm(engine, shapes) -> None:
    for shape in shapes:  # statements prepared, caches filled
        for _ in range(20):
            SHAPES[shape](engine)


def worker(url: str) -> None:
    """Run blocks asked for on stdin (``shape n``), one JSON line each on stdout."""
    engine = make_engine(url)  # used by one thread: one pooled connection, one backend
    backend = _backend_pid(engine)
    _warm(engine, SHAPES)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        shape, n = line.split()
        print(json.dumps(_block(engine, shape, int(n), backend)), flush=True)
    engine.dispose()


def _start_worker(url: str, tree: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": tree}
    process = subprocess.Popen(
        [sys.executable, __file__, "--worker", url],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tempfile.gettempdir(),  # not a source tree: PYTHONPATH decides which medloop
    )
    assert process.stdout is not None
    assert json.loads(process.stdout.readline()) == {"ready": True}
    return process


def _ask(process: subprocess.Popen, shape: str, n: int) -> dict[str, float]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(f"{shape} {n}\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--transactions", type=int, default=500, help="per block")
    p.add_argument("--blocks", type=int, default=6, help="per tree and shape")
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--base", help="the base tree (its medloop is imported)")
    p.add_argument("--only", action="store_true", help="for strace -c")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a.worker)
        return
    if not (a.base or a.only):
        p.error("--base DIR or --only")
    server = os.environ["MEDLOOP_TEST_POSTGRES_URL"]
    admin = create_engine(normalise_url(server), isolation_level="AUTOCOMMIT")
    name = f"bench_begin_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalise_url(server)).set(database=name).render_as_string(False)
    workers: dict[str, subprocess.Popen] = {}
    try:
        setup = create_engine(url)
        metadata.create_all(setup)
        with setup.begin() as conn:
            conn.execute(insert(rows), {"id": 1, "revision": 0, "note": "the row"})
        setup.dispose()
        if a.only:
            engine = make_engine(url)
            _warm(engine, a.shapes)
            for shape in a.shapes:
                for _ in range(a.transactions):
                    SHAPES[shape](engine)
            engine.dispose()
            return
        workers = {"base": _start_worker(url, a.base), "branch": _start_worker(url, str(TREE))}
        out = {
            "started": time.strftime("%H:%M:%S", time.gmtime()),
            "load_before": os.getloadavg(),
            "base": a.base,
            "transactions_per_block": a.transactions,
            "shapes": {},
        }
        kinds = ["base", "branch"]
        for shape in a.shapes:
            blocks: dict[str, list] = {k: [] for k in kinds}
            for b in range(a.blocks):
                for k in kinds if b % 2 == 0 else kinds[::-1]:
                    blocks[k].append(_ask(workers[k], shape, a.transactions))
            medians = {
                k: {m: statistics.median(x[m] for x in blocks[k]) for m in blocks[k][0]}
                for k in kinds
            }
            ratios = {
                m: round(medians["branch"][m] / medians["base"][m], 3)
                for m in medians["base"]
                if medians["base"][m]
            }
            out["shapes"][shape] = {"blocks": blocks, "medians": medians, "ratios": ratios}
        out["load_after"] = os.getloadavg()
        print(json.dumps(out, indent=1))
    finally:
        for process in workers.values():
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=60)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
