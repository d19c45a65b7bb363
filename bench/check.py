"""Benchmark: decision support on a production-sized catalogue.

Reuses (or writes) the scale-1.0 synthetic catalogue, imports it into a fresh SQLite database in
a subprocess (so the import's memory does not count), then measures in this process:
  - snapshot load (``load_snapshot``) and knowledge build (``Knowledge.build``) times;
  - peak RSS after both, and the memory traced by ``tracemalloc`` during a second build;
  - p50/p99 latency over --iterations fresh random lists of --list-size packages of
    (a) checking one new package against the list (``proposed=[new]``) and
    (b) a full check of the list,
    each through the request path of ``medloop check`` (validate the request, resolve every entry,
    check, render the alerts as JSON) on freshly built knowledge (``Knowledge.build`` resolves
    and matches every package up front, so the first check of a package costs what any
    later one does), and through ``interactions.check`` alone (entries resolved beforehand).
Prints one JSON object. Targets: build <= 10 s and <= 400 MB; (a) p99 <= 2 ms; (b) p99 <= 10 ms.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from random import Random
from typing import Any

from interactions import Knowledge, Medication, check
from interactions.catalogue import CatalogueSnapshot, Package
from medloop.catalogue import load_snapshot
from medloop.check import CheckRequest, run_check
from medloop.store.db import make_engine

OUT = Path(__file__).resolve().parent / "out"
TARGETS = {
    "build_seconds": 10.0,
    "build_memory_mb": 400,
    "proposed_p99_ms": 2.0,
    "full_p99_ms": 10.0,
}

IMPORT = """
import sys
from fest.loader import import_catalogue
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
engine = make_engine(sys.argv[2])
upgrade(engine)
import_catalogue(engine, sys.argv[1])
"""


def catalogue_file(scale: float, seed: int) -> Path:
    """The synthetic catalogue for ``scale`` and ``seed``, written once and then reused."""
    from fest.synth import write_synthetic

    OUT.mkdir(exist_ok=True)
    path = OUT / f"synth-scale{scale}-seed{seed}.xml"
    if not path.exists():
        counts = write_synthetic(path, scale=scale, seed=seed)
        path.with_suffix(".counts.json").write_text(json.dumps(counts))
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def traced_build_mb(snapshot: CatalogueSnapshot) -> float:
    """Peak memory ``tracemalloc`` sees while knowledge of ``snapshot`` is built."""
    gc.collect()
    tracemalloc.start()
    Knowledge.build(snapshot)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def request_for(packages: list[Package], proposed: bool) -> dict[str, Any]:
    """A ``medloop check`` request naming ``packages`` by FEST id; the last is the new one."""
    medications = [{"id": f"m{n}", "fest_id": p.id} for n, p in enumerate(packages)]
    request: dict[str, Any] = {"medications": medications}
    if proposed:
        request["proposed"] = [medications[-1]["id"]]
    return request


Check = Callable[[], int]
"""One prepared check; returns how many alerts it raised."""


def through_request(knowledge: Knowledge, request: dict[str, Any]) -> Check:
    return lambda: len(
        run_check(knowledge, CheckRequest.model_validate(request), include_all=False).as_json()[
            "alerts"
        ]
    )


def through_library(knowledge: Knowledge, request: dict[str, Any]) -> Check:
    medications = [
        Medication(m["id"], knowledge.resolve(fest_id=m["fest_id"])) for m in request["medications"]
    ]
    proposed = request.get("proposed")
    return lambda: len(check(knowledge, medications, proposed=proposed))


def latencies_ms(
    knowledge: Knowledge,
    packages: tuple[Package, ...],
    *,
    list_size: int,
    iterations: int,
    proposed: bool,
    path: Callable[[Knowledge, dict[str, Any]], Check],
    seed: int,
) -> dict[str, float]:
    """p50/p99 of one check of a fresh random list per iteration (list + one new package when
    ``proposed``); the alerts raised are counted to show the checks did work."""
    random = Random(seed)
    timings, alerts = [], 0
    for _ in range(iterations):
        drawn = random.sample(packages, list_size + 1 if proposed else list_size)
        run = path(knowledge, request_for(drawn, proposed))
        started = time.perf_counter()
        alerts += run()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {
        "p50_ms": round(timings[len(timings) // 2], 3),
        "p99_ms": round(timings[int(len(timings) * 0.99) - 1], 3),
        "max_ms": round(timings[-1], 3),
        "alerts_per_check": round(alerts / iterations, 1),
    }


def scenario(
    snapshot: CatalogueSnapshot, *, proposed: bool, list_size: int, iterations: int, seed: int
) -> dict[str, Any]:
    """Latencies on freshly built knowledge, through the request path and the library alone."""
    knowledge = Knowledge.build(snapshot)
    packages = snapshot.packages
    measure = {"list_size": list_size, "iterations": iterations, "proposed": proposed}
    return {
        "request": latencies_ms(knowledge, packages, path=through_request, seed=seed, **measure),
        "library": latencies_ms(
            knowledge, packages, path=through_library, seed=seed + 1, **measure
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--list-size", type=int, default=30)
    args = parser.parse_args()

    path = catalogue_file(args.scale, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORT, str(path), url], check=True)
        import_seconds = time.perf_counter() - started

        engine = make_engine(url)
        started = time.perf_counter()
        with engine.connect() as conn:
            snapshot = load_snapshot(conn)
        load_seconds = time.perf_counter() - started
        engine.dispose()

    started = time.perf_counter()
    knowledge = Knowledge.build(snapshot)
    build_seconds = time.perf_counter() - started
    rss_after_build = peak_rss_mb()
    del knowledge
    traced_mb = traced_build_mb(snapshot)

    measure = {"list_size": args.list_size, "iterations": args.iterations, "seed": args.seed}
    proposed = scenario(snapshot, proposed=True, **measure)
    full = scenario(snapshot, proposed=False, **measure)
    figures = {
        "file": path.name,
        "counts": {
            "packages": len(snapshot.packages),
            "products": len(snapshot.products),
            "interactions": len(snapshot.interactions),
            "substances": len(snapshot.substances),
        },
        "import_seconds": round(import_seconds, 2),
        "snapshot_load_seconds": round(load_seconds, 2),
        "knowledge_build_seconds": round(build_seconds, 2),
        "peak_rss_mb_after_build": round(rss_after_build, 1),
        "build_traced_peak_mb": round(traced_mb, 1),
        "list_size": args.list_size,
        "iterations": args.iterations,
        "proposed_one_new_drug": proposed,
        "full_check": full,
        "peak_rss_mb_at_end": round(peak_rss_mb(), 1),
        "targets": TARGETS,
        "met": {
            "build_seconds": build_seconds <= TARGETS["build_seconds"],
            "build_memory_mb": rss_after_build <= TARGETS["build_memory_mb"],
            **{
                f"{name}_p99_ms": figures_of["request"]["p99_ms"] <= TARGETS[f"{name}_p99_ms"]
                for name, figures_of in (("proposed", proposed), ("full", full))
            },
        },
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
