"""Benchmark: ``medloop audit verify`` (issue #13, "every change provable").

Builds patients with 10-entry lists through the loop's own commands on the demo catalogue
(SQLite, and PostgreSQL when MEDLOOP_BENCH_POSTGRES_URL or MEDLOOP_TEST_POSTGRES_URL names a
server), then times ``verify`` of the chains alone and of the chains and every attested row.
Prints one JSON object: records, rows, seconds and rows per second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# bench/ goes after site-packages: bench/fhir.py must not shadow the fhir.resources package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

from loop import World, postgres_database  # noqa: E402  (bench/loop.py)

from fest.loader import import_catalogue  # noqa: E402
from medloop.catalogue import load_snapshot  # noqa: E402
from medloop.store.audit import verify  # noqa: E402
from medloop.store.db import make_engine  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402

DEMO = Path(__file__).resolve().parent.parent / "seeds" / "demo-fest.xml"


def measure(url: str, patients: int) -> dict[str, float]:
    engine = make_engine(url)
    upgrade(engine)
    import_catalogue(engine, DEMO, allow_shrink=True, allow_older=True)
    with engine.connect() as conn:
        varenrs = sorted({p.varenr for p in load_snapshot(conn).packages})
    world = World(engine, varenrs, seed=7)
    for _ in range(patients):
        world.patient_with_list(10)
    timings = {}
    for rows in (False, True):
        with engine.connect() as conn, conn.begin():
            started = time.perf_counter()
            result = verify(conn, rows=rows)
            timings["chains_and_rows" if rows else "chains_only"] = round(
                time.perf_counter() - started, 3
            )
    assert result.ok, [p.as_json() for p in result.problems]
    engine.dispose()
    return {
        "records": result.records,
        "rows": result.rows,
        "seconds": timings,
        "rows_per_second": round(result.rows / max(timings["chains_and_rows"], 1e-9)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=200)
    args = parser.parse_args()
    out: dict[str, object] = {"patients": args.patients}
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = measure(f"sqlite:///{tmp}/verify.db", args.patients)
    server = os.environ.get("MEDLOOP_BENCH_POSTGRES_URL") or os.environ.get(
        "MEDLOOP_TEST_POSTGRES_URL"
    )
    if server:
        url, drop = postgres_database(server)
        try:
            out["postgres"] = measure(url, args.patients)
        finally:
            drop()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
