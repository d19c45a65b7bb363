"""Benchmark: what the serving process's look for frozen cyclic garbage stops (issue #20).

A serving process freezes what it keeps (``medloop.api.server._freeze_survivors``), so cyclic
garbage among frozen objects is only found by a pass over the whole heap. Until session 8 the
process thawed every ``THAW_SECONDS`` and walked it all with every thread stopped; now it counts
that garbage in a forked child first (``HeapCensus``) and thaws only when it is worth it.

This builds a serving process's heap in-process (the app over a fresh SQLite database with the
demo catalogue, ``--patients`` patients each prescribed ``api.ROTATION`` through the loop: their
cached states are what a worker keeps growing, then filler objects up to ``--objects`` tracked
objects), frozen as the server freezes it, with some frozen cyclic garbage (``--garbage``
objects, as dropped connections leave). A thread meanwhile does small units of work (a
request's worth of JSON, ~0.1 ms) back to back and records how long each took. Then, alternately
``--rounds`` times, each with ``--garbage`` objects of new frozen garbage:

- ``thaw``: unfreeze and a full pass (``server.thaw``: what every worker did every 600 s);
- ``census``: ``server.count_frozen_garbage`` (fork, the child counts; the parent goes on),

and reports for each its wall time in the calling thread, and the longest unit of work of the
other thread while it ran (against the longest over a quiet second before: the stall a request
would see). Prints one JSON object.

    .venv/bin/python bench/thaw.py --patients 300 --objects 330000 --rounds 5
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

from api import DEMO, ROTATION  # noqa: E402
from route import _patients, _prescribe  # noqa: E402

from fest.loader import import_catalogue  # noqa: E402
from medloop.api import server  # noqa: E402
from medloop.api.app import create_app  # noqa: E402
from medloop.api.config import ApiSettings  # noqa: E402
from medloop.store.db import make_engine  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402


class _Garbage:
    pass


def _drop_frozen_cycles(objects: int) -> None:
    """``objects`` objects in cycles, frozen while held, then dropped: frozen cyclic garbage."""
    held = []
    for _ in range(objects // 2):
        a, b = _Garbage(), _Garbage()
        a.other, b.other = b, a
        held.append(a)
    gc.freeze()
    held.clear()


class Worker(threading.Thread):
    """Small units of work back to back; each one's wall time, with when it ended."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.units: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        body = {"entries": [{"id": n, "drug": "x" * 20, "alerts": [n, n + 1]} for n in range(20)]}
        while not self.stop.is_set():
            started = time.perf_counter()
            json.loads(json.dumps(body))
            ended = time.perf_counter()
            self.units.append((ended, (ended - started) * 1000))

    def longest(self, start: float, end: float) -> float:
        """The longest unit that ended in [start, end + 1 s] (one stopped by a pass ends after
        it)."""
        return max((ms for at, ms in self.units if start <= at <= end + 1.0), default=0.0)


def build(patients: int, objects: int, directory: Path) -> dict:
    url = f"sqlite:///{directory / 'thaw.db'}"
    engine = make_engine(url)
    upgrade(engine)
    import_catalogue(engine, DEMO)
    app = create_app(ApiSettings.from_env(url), engine=engine)
    for patient in _patients(engine, patients):
        for based_on, varenr in enumerate(ROTATION):
            _prescribe(engine, patient, based_on, varenr)
    gc.collect()
    gc.freeze()
    gc.callbacks.append(server._freeze_survivors)  # as settle_heap, without its census thread
    filler = []
    while gc.get_freeze_count() + len(filler) < objects:
        filler.append({"k": [1, 2], "v": {"a": None}})
    gc.collect()
    return {"app": app, "engine": engine, "filler": filler}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--objects", type=int, default=330_000)
    parser.add_argument("--garbage", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        held = build(args.patients, args.objects, Path(directory))
        worker = Worker()
        worker.start()
        time.sleep(1.0)
        quiet_from = time.perf_counter()
        time.sleep(1.0)
        quiet = worker.longest(quiet_from, time.perf_counter())
        rounds = []
        for _ in range(args.rounds):
            for kind in ("thaw", "census"):
                _drop_frozen_cycles(args.garbage)
                frozen = gc.get_freeze_count()
                started = time.perf_counter()
                found = server.thaw() if kind == "thaw" else server.count_frozen_garbage()
                ended = time.perf_counter()
                time.sleep(1.2)  # the worker's units that ended up to 1 s later are counted
                row = {
                    "kind": kind,
                    "frozen": frozen,
                    "wall_ms": round((ended - started) * 1000, 1),
                    "longest_unit_ms": round(worker.longest(started, ended), 2),
                }
                if found:
                    row.update(
                        {k: round(v, 2) if isinstance(v, float) else v for k, v in found.items()}
                    )
                rounds.append(row)
        worker.stop.set()
        worker.join()
        held["engine"].dispose()

    def median(kind: str, key: str) -> float:
        return round(statistics.median(r[key] for r in rounds if r["kind"] == kind), 2)

    print(
        json.dumps(
            {
                "patients": args.patients,
                "objects": args.objects,
                "quiet_longest_unit_ms": round(quiet, 2),
                "median": {
                    kind: {
                        "wall_ms": median(kind, "wall_ms"),
                        "longest_unit_ms": median(kind, "longest_unit_ms"),
                    }
                    for kind in ("thaw", "census")
                },
                "census_fork_ms_median": median("census", "fork_ms"),
                "rounds": rounds,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
