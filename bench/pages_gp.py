"""Benchmark: the GP's, the multidose pharmacist's and the patient's pages (issue #16).

Builds the demo world in a temporary SQLite database and measures, through the app in process
(Starlette's TestClient, so no network), the server time of each page (p50/p99 in ms over
``--runs`` requests after one warm-up) and its weight: the HTML plus the stylesheet and the
scripts it loads, in KB. The medication timeline is drawn by vl-convert on every request, so it
is the page to watch. Target of issue #16: every page <= 150 KB. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# bench/ goes after site-packages: bench/fhir.py must not shadow the fhir.resources package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient  # noqa: E402

from medloop.loop import multidose  # noqa: E402
from medloop.store.db import make_engine  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402
from tests.pages.helpers import BUILT, client_signed_in, demo_app  # noqa: E402


def measure(client: TestClient, path: str, runs: int, extra: int) -> dict:
    client.get(path)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{path}: {answer.status_code}")
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p99_ms": round(times[min(len(times) - 1, int(0.99 * len(times)))], 1),
        "kb": round((len(answer.content) + extra) / 1024, 1),
    }


def timeline_cache(client: TestClient, paths: list[str], runs: int) -> dict:
    """The timeline's drawn-picture cache (``medloop.pages.timeline.DRAWN``) measured
    interleaved: each round requests every path once with the cache cleared first (drawn by
    vl-convert, as before the cache) and once with it warm (the same timeline unchanged). CPU
    time of this process (the app runs in it: server work plus the test client's), and wall."""
    from medloop.pages import timeline as page_timeline

    found: dict[str, dict] = {}
    for path in paths:
        client.get(path)
        cold_cpu, warm_cpu, cold_wall, warm_wall = [], [], [], []
        for _ in range(runs):
            for cleared in (True, False):
                if cleared:
                    page_timeline.DRAWN.clear()
                cpu, wall = time.process_time(), time.perf_counter()
                answer = client.get(path)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                if answer.status_code != 200:
                    raise SystemExit(f"{path}: {answer.status_code}")
                (cold_cpu if cleared else warm_cpu).append(cpu * 1000)
                (cold_wall if cleared else warm_wall).append(wall * 1000)
        found[path.rsplit("/", 1)[1]] = {
            "drawn_cpu_ms_p50": round(statistics.median(cold_cpu), 1),
            "cached_cpu_ms_p50": round(statistics.median(warm_cpu), 1),
            "cpu_ratio_cached_vs_drawn": round(
                statistics.median(warm_cpu) / statistics.median(cold_cpu), 3
            ),
            "drawn_wall_ms_p50": round(statistics.median(cold_wall), 1),
            "cached_wall_ms_p50": round(statistics.median(warm_wall), 1),
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--timeline-cache",
        action="store_true",
        help="only the timeline, drawn (cache cleared) and cached, interleaved",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        upgrade(engine)
        world = demo_app(engine)
        client = TestClient(world.app, follow_redirects=False)
        patient = str(list(world.world.patients.values())[0])
        css = len(client.get("/app/static/medloop.css").content)
        js = len(client.get("/app/static/gp.js").content)
        with engine.connect() as conn:
            period = multidose.periods(conn, uuid.UUID(patient))[0].period.id
        found: dict[str, dict] = {}
        client_signed_in(client, "gp")
        if args.timeline_cache:
            base = f"/app/gp/patients/{patient}/timeline"
            compared = timeline_cache(client, [base, f"{base}?days=365"], args.runs)
            engine.dispose()
            print(json.dumps({"runs": args.runs, "timeline_cache": compared}, indent=2))
            return
        listed = client.get(f"/app/gp/patients/{patient}").text
        entry = re.search(r'href="(/app/gp/patients/[^"]+/entries/[^"]+)"', listed)[1]
        for name, path, extra in (
            ("gp-find", "/app/gp", css),
            ("gp-list", f"/app/gp/patients/{patient}", css),
            ("gp-prescribe", f"/app/gp/patients/{patient}/prescribe?q=simva", css + js),
            ("gp-entry", entry, css),
            ("gp-timeline-90d", f"/app/gp/patients/{patient}/timeline", css),
            ("gp-timeline-365d", f"/app/gp/patients/{patient}/timeline?days=365", css),
        ):
            found[name] = measure(client, path, args.runs, extra)
        client.cookies.clear()
        # an hour after the demo was built: its periods' order deadline just passed and they
        # begin on Monday, so the worklist lists the multidose patients
        world.clock.at = BUILT + timedelta(hours=1)
        client_signed_in(client, "pharmacist")
        base = f"/app/pharmacy/patients/{patient}"
        for name, path in (
            ("pharmacy-worklist", "/app/pharmacy?days=14"),
            ("pharmacy-dispensing", base),
            ("pharmacy-multidose", f"{base}/multidose"),
            ("pharmacy-plan", f"{base}/multidose/periods/{period}/plan"),
        ):
            found[name] = measure(client, path, args.runs, css)
        client.cookies.clear()
        client_signed_in(client, "patient")
        for name, path in (
            ("patient-list", "/app/me"),
            ("patient-access-log", "/app/me/access-log"),
        ):
            found[name] = measure(client, path, args.runs, css)
        engine.dispose()
    print(json.dumps({"runs": args.runs, "pages": found}, indent=2))


if __name__ == "__main__":
    main()
