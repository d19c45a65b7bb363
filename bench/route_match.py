"""Benchmark: what matching a request to its route costs, with the included routers as FastAPI
includes them and indexed by first path segment (``medloop.api.route_index``), issue #20.

Two apps over one SQLite file, alike but for the index; for each request of the JSON API's
mix that is not a hot route (and a page, a report and the health check), the router's choice
as ``APIRouter.app`` makes it (the first full match, down to the included router's own route)
is timed in rounds that alternate the two apps. Prints one JSON object: per request, the
median microseconds of each and their ratio.

    .venv/bin/python bench/route_match.py [--rounds 7] [--repeat 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# bench/fhir.py is not the fhir package medloop imports (fhir.resources)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

from medloop.api import route_index  # noqa: E402
from medloop.api.app import create_app  # noqa: E402
from medloop.api.config import ApiSettings  # noqa: E402
from medloop.store.db import make_engine  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402

PATIENT = str(uuid.uuid4())
REQUESTS = [
    ("POST", f"/patients/{PATIENT}/list/check"),
    ("GET", f"/pharmacy/patients/{PATIENT}/prescriptions"),
    ("POST", f"/pharmacy/patients/{PATIENT}/dispenses"),
    ("GET", "/catalogue/packages"),
    ("GET", "/me/list"),
    ("GET", f"/reports/wards/{PATIENT}"),
    ("GET", "/app/nurse"),
    ("GET", "/health/live"),
]


def _time(router: Any, method: str, path: str, repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        route_index.chosen(router, method, path)
    return (time.perf_counter() - started) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'medloop.db'}"
        engine = make_engine(url)
        upgrade(engine)
        plain = create_app(ApiSettings.from_env(url), engine=engine).router
        indexed = create_app(ApiSettings.from_env(url), engine=engine).router
        route_index.index_routers(indexed)
        times: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.rounds):
            for method, path in REQUESTS:
                name = f"{method} {path.replace(PATIENT, '{id}')}"
                found = times.setdefault(name, {"plain": [], "indexed": []})
                found["plain"].append(_time(plain, method, path, args.repeat))
                found["indexed"].append(_time(indexed, method, path, args.repeat))
        engine.dispose()
    report = {}
    for name, found in times.items():
        plain_us = statistics.median(found["plain"])
        indexed_us = statistics.median(found["indexed"])
        report[name] = {
            "plain_us": round(plain_us, 1),
            "indexed_us": round(indexed_us, 1),
            "ratio": round(indexed_us / plain_us, 2),
        }
    print(json.dumps({"rounds": args.rounds, "repeat": args.repeat, "requests": report}, indent=2))


if __name__ == "__main__":
    main()
