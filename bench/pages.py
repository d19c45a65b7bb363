"""Benchmark: the nurse's pages (issue #16) on a 60-resident ward.

The ward of bench/ward.py (60 residents, 8 regular entries each, 48 h planned), served by the
app in-process (Starlette's TestClient: the whole ASGI request — session lookup, policy,
audited read, template — without the network). Measures, at 08:05 in Oslo:
  - the server time to render the ward overview (every resident, doses per slot, PRN in the
    last 24 h, open alerts) and a resident's week MAR, p50/p99 in ms (interleaved);
  - the same for the JSON API's ward chart (GET /nursing/wards/{id}/chart), the baseline: the
    overview runs that query and adds names, PRN and alerts;
  - the page weight of each nurse page: HTML plus the CSS and JS it loads, in bytes;
  - the overview and the API's ward chart as they were before the batched audit appends, the
    one-query PRN entries and the kept ward-day plans (``_before``: the old functions swapped
    in), and with only the kept plans swapped out (``_unkept``), interleaved with the current
    ones, wall and process CPU per request, with the ratios.
The heap is settled as ``medloop serve`` settles it (``--no-settle``: not). ``--afternoon``:
the 08:00 and 13:00 rounds charted as given first, the pages measured at 13:05 (480 of the
day's 960 doses charted, instead of none at 08:05).
SQLite always; PostgreSQL too when MEDLOOP_BENCH_POSTGRES_URL (or MEDLOOP_TEST_POSTGRES_URL)
names a server. Prints one JSON object. Targets: overview p99 <= 100 ms, MAR week p99 <= 60 ms,
every page <= 150 KB.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# bench/ goes after site-packages: bench/fhir.py must not shadow the fhir.resources package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]
from loop import percentiles, postgres_database  # noqa: E402  (sibling bench)
from ward import NURSE, PLAN_AT, ROUND_AT, chart_round, ward  # noqa: E402

TARGETS = {"overview_p99_ms": 100.0, "mar_week_p99_ms": 60.0, "page_kb": 150.0}


def _chart_lines_before(conn, patient_ids, start, end, ward_id=None):
    """The chart's lines as read before issue #16's rework (the baseline): every planned dose
    and every charting of them validated from its stored record."""
    from medloop.domain.administration import dose_in_force, effective_charting
    from medloop.loop.administration.queries import _Line
    from medloop.store import administration as store

    doses = store.planned_doses(
        conn,
        patient_ids=None if ward_id is not None else patient_ids,
        ward_id=ward_id,
        start=start,
        end=end,
    )
    chartings = store.chartings_of_doses(conn, [d.id for d in doses])
    schedules = store.schedules_of(conn, sorted({d.patient_id for d in doses}))
    lines = []
    for dose in doses:
        standing = effective_charting(
            c.administration for c in chartings.get(dose.id, ()) if c.stands
        )
        in_force = dose_in_force(dose, schedules.get(dose.entry_id, []), standing is not None)
        lines.append(_Line(dose, in_force, standing))
    return lines


def _audited_many_before(engine, who, action, work):
    """``store.access.audited_many`` before the batched audit appends (the baseline): one
    ``audit.append`` per patient read (on PostgreSQL each takes the chain's lock and inserts:
    two round trips per resident)."""
    from medloop.store import audit
    from medloop.store.access import _event
    from medloop.store.db import writer
    from medloop.store.patients import national_ids_of

    with writer(engine).begin() as conn:
        result, patient_ids = work(conn)
        national_ids = national_ids_of(conn, patient_ids)
        for patient_id in patient_ids:
            audit.append(
                conn,
                _event(
                    who,
                    national_ids.get(patient_id),
                    action,
                    detail={"patient_id": str(patient_id)},
                ),
            )
    return result


def _prn_lines_before(conn, patient_ids, now):
    """The ward chart's PRN lines before the one-query read (the baseline): each resident's
    state (the process's state cache, as the API passed it) for their list."""
    from collections import defaultdict

    from medloop import queries
    from medloop.domain.administration import (
        PRN_WINDOW_MAX,
        Intake,
        Outcome,
        is_as_needed,
        prn_status,
    )
    from medloop.domain.oslo import local_date
    from medloop.loop.administration.queries import PrnLine
    from medloop.store import administration as store

    entries = {}
    for patient_id in patient_ids:
        found = [
            e
            for e in queries.patient_state(conn, patient_id).medication_list.entries
            if is_as_needed(e) and e.in_use(local_date(now)) and e.dosage is not None
        ]
        if found:
            entries[patient_id] = found
    if not entries:
        return {}
    given = defaultdict(list)
    since, until = now - PRN_WINDOW_MAX, now + timedelta(microseconds=1)
    for charted in store.chartings_of_patients(conn, list(entries), since, until):
        record = charted.administration
        if charted.stands and record.outcome is Outcome.GIVEN and record.dose is not None:
            given[record.entry_id].append((record.at, record.dose))
    lines = defaultdict(list)
    for patient_id, found in entries.items():
        for entry in found:
            for dose in entry.dosage.as_needed:
                intakes = [
                    Intake(at, amount.value)
                    for at, amount in given.get(entry.id, ())
                    if amount.unit == dose.amount.unit
                ]
                lines[patient_id].append(
                    PrnLine(entry.id, entry.drug.name, prn_status(dose, intakes, now))
                )
    return lines


def _ward_lines_before(conn, ward_id, start, end, only=None):
    """The ward chart's lines before the kept ward-day plans (the baseline): every planned dose
    of the ward's day built from its stored record and the schedules read, at every read (the
    one-query ``chart_lines`` of the ward), by patient (``only``: those patients')."""
    from collections import defaultdict

    from medloop.loop.administration.queries import chart_lines

    found = defaultdict(list)
    for line in chart_lines(conn, [], start, end, ward_id=ward_id):
        if only is None or line.dose.patient_id in only:
            found[line.dose.patient_id].append(line)
    return found


@contextlib.contextmanager
def _before():
    """The request path as it was before the batched audit appends, the one-query PRN read and
    the kept ward-day plans (swapped in for the baseline, so that both run interleaved in one
    process)."""
    from medloop.api import deps
    from medloop.loop.administration import queries as chart_queries

    now = deps.audited_many, chart_queries._prn_lines, chart_queries.ward_lines
    deps.audited_many, chart_queries._prn_lines, chart_queries.ward_lines = (
        _audited_many_before,
        _prn_lines_before,
        _ward_lines_before,
    )
    try:
        yield
    finally:
        deps.audited_many, chart_queries._prn_lines, chart_queries.ward_lines = now


@contextlib.contextmanager
def _unkept():
    """The request path with only the kept ward-day plans swapped out (``_ward_lines_before``:
    the sixth session's change alone; the rest as now)."""
    from medloop.loop.administration import queries as chart_queries

    now = chart_queries.ward_lines
    chart_queries.ward_lines = _ward_lines_before
    try:
        yield
    finally:
        chart_queries.ward_lines = now


def compare_reads(engine, ward_id, patient, iterations: int, at=ROUND_AT) -> dict[str, object]:
    """CPU per call of the overview's and the MAR week's reads (no HTTP, no audit), now and as
    before (the baseline: validated chart lines, the PRN limits from a state read per resident,
    a name query and an open-alerts state per resident), interleaved in one process."""
    from medloop import queries
    from medloop.domain.oslo import local_date
    from medloop.loop.administration import queries as chart_queries
    from medloop.store.db import reader
    from medloop.store.patients import read_patient

    now_lines, now_ward_lines = chart_queries.chart_lines, chart_queries.ward_lines
    day = local_date(at)

    def overview_now(conn):
        chart = chart_queries.ward_chart(conn, ward_id, day, at, prn_limits=False)
        ids = [p.patient_id for p in chart.patients]
        return chart, queries.residents(conn, ids), queries.open_alert_counts(conn, ids)

    def overview_before(conn):
        chart_queries.chart_lines = _chart_lines_before
        chart_queries.ward_lines = _ward_lines_before
        try:
            chart = chart_queries.ward_chart(conn, ward_id, day, at)
        finally:
            chart_queries.chart_lines, chart_queries.ward_lines = now_lines, now_ward_lines
        ids = [p.patient_id for p in chart.patients]
        names = {p: read_patient(conn, p) for p in ids}
        return chart, names, {p: len(queries.open_alerts(conn, p)) for p in ids}

    def week_now(conn):
        return chart_queries.resident_chart(conn, patient, day - timedelta(days=3), 7, at)

    def week_before(conn):
        chart_queries.chart_lines = _chart_lines_before
        try:
            return week_now(conn)
        finally:
            chart_queries.chart_lines = now_lines

    cpu: dict[str, list[float]] = {
        "overview_read": [],
        "overview_read_before": [],
        "mar_week_read": [],
        "mar_week_read_before": [],
    }
    for _ in range(iterations):
        answers = {}
        for name, read in (
            ("overview_read", overview_now),
            ("overview_read_before", overview_before),
            ("mar_week_read", week_now),
            ("mar_week_read_before", week_before),
        ):
            c0 = time.process_time()
            with reader(engine).connect() as conn:
                answers[name] = read(conn)
            cpu[name].append((time.process_time() - c0) * 1000)
        now, before = answers["overview_read"], answers["overview_read_before"]
        statuses = [[(d.planned_dose_id, d.status) for d in p.doses] for p in now[0].patients]
        assert statuses == [
            [(d.planned_dose_id, d.status) for d in p.doses] for p in before[0].patients
        ]
        assert now[2] == before[2]
        assert answers["mar_week_read"] == answers["mar_week_read_before"]
    found: dict[str, object] = {k: percentiles(v) for k, v in cpu.items()}
    for name in ("overview_read", "mar_week_read"):
        found[f"{name}_cpu_ratio_before_over_now_p50"] = round(
            percentiles(cpu[f"{name}_before"])["p50_ms"] / percentiles(cpu[name])["p50_ms"], 2
        )
    return found


def measure(
    url: str, iterations: int, settle: bool = True, afternoon: bool = False
) -> dict[str, object]:
    import logging

    from fastapi.testclient import TestClient

    from medloop.api.app import create_app
    from medloop.loop import administration
    from medloop.settings import Settings
    from medloop.store import sessions

    logging.getLogger("medloop.access").disabled = True
    engine, ward_id, residents, _ = ward(url)
    administration.roll_forward(engine, PLAN_AT)
    at, charted = ROUND_AT, 0
    if afternoon:  # the 08:00 and the 13:00 round charted, the pages at 13:05
        midday = ROUND_AT + timedelta(hours=5)
        for hour, round_at in ((8, ROUND_AT), (13, midday)):
            charted += len(chart_round(engine, ward_id, residents, hour, round_at))
        at = midday
    settings = dataclasses.replace(Settings.from_env(url))
    app = create_app(settings, engine=engine, clock=lambda: at)
    claims = {
        "sub": NURSE.personnel.hpr_number,
        "role": "nurse",
        "org": NURSE.organisation.id,
        "name": NURSE.personnel.name,
    }
    session_id, _ = sessions.start(engine, claims, now=at, expires_at=at + timedelta(hours=8))
    client = TestClient(app, follow_redirects=False)
    client.cookies.set("medloop_session", session_id, domain="testserver.local", path="/app")
    patient = next(iter(residents))
    overview = f"/app/nurse/wards/{ward_id}"
    week = f"/app/nurse/residents/{patient}?view=week"
    pages = {
        "ward_overview": overview,
        "mar_week": week,
        "mar_day": f"/app/nurse/residents/{patient}",
        "bedside": f"/app/nurse/residents/{patient}/bedside?identity=scan",
        "sign_in": "/app/sign-in",
    }
    bedside = client.get(pages["bedside"]).text
    link = re.search(r'href="(/app/nurse/[^"]+/chart\?dose=[^"]+)"', bedside)
    if link:
        pages["chart_dose"] = link.group(1).replace("&amp;", "&")
    for path in (overview, week):
        assert client.get(path).status_code == 200, path  # and warm the caches
    from medloop.api.auth import issue_token

    token = issue_token("nurse", claims["sub"], claims["org"], name=claims["name"])
    api = f"/nursing/wards/{ward_id}/chart"
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get(api, headers=bearer).status_code == 200
    if settle:
        # As `medloop serve` does once the app is built (medloop.api.server.settle_heap): the
        # heap so far (here the ward's set-up too) is frozen, out of the cyclic collector's full
        # passes, which otherwise stop a request for the whole walk at random (the p99).
        from medloop.api.server import settle_heap

        settle_heap()
    with _before():  # the baseline's answers are the same pages and JSON
        assert client.get(api, headers=bearer).json() == client.get(api, headers=bearer).json()
        before_html = client.get(overview).text
    assert client.get(overview).text == before_html
    with _unkept():
        assert client.get(overview).text == before_html
    paths = {None: contextlib.nullcontext, "before": _before, "unkept": _unkept}
    requests = (
        ("ward_overview", overview, None, None),
        ("ward_overview_before", overview, None, "before"),
        ("ward_overview_unkept", overview, None, "unkept"),
        ("mar_week", week, None, None),
        # The JSON API's ward chart (the same ward_chart query, audited, with the PRN limits).
        ("api_ward_chart", api, bearer, None),
        ("api_ward_chart_before", api, bearer, "before"),
        ("api_ward_chart_unkept", api, bearer, "unkept"),
    )
    timings: dict[str, list[float]] = {name: [] for name, *_ in requests}
    cpu: dict[str, list[float]] = {name: [] for name in timings}
    for _ in range(iterations):  # interleaved, so noise hits all alike
        for name, path, headers, swapped in requests:
            with paths[swapped]():
                began, c0 = time.perf_counter(), time.process_time()
                answer = client.get(path, headers=headers)
                timings[name].append((time.perf_counter() - began) * 1000)
                cpu[name].append((time.process_time() - c0) * 1000)
            assert answer.status_code == 200, (name, answer.status_code)
    reads = compare_reads(engine, ward_id, patient, max(5, iterations // 3), at)
    weights = {}
    for name, path in pages.items():
        html = client.get(path)
        assert html.status_code == 200, (name, html.status_code)
        assets = re.findall(r'(?:href|src)="(/app/static/[^"]+)"', html.text)
        total = len(html.content) + sum(len(client.get(a).content) for a in assets)
        weights[name] = {"bytes": total, "assets": assets}
    engine.dispose()
    cpu_found = {k: percentiles(v) for k, v in cpu.items()}
    return {
        "residents": len(residents),
        "at": at.isoformat(),
        "doses_charted": charted,
        "iterations": iterations,
        "heap_settled": settle,
        "ward_overview": percentiles(timings["ward_overview"]),
        "mar_week": percentiles(timings["mar_week"]),
        "baseline_api_ward_chart": percentiles(timings["api_ward_chart"]),
        "wall_per_request": {k: percentiles(v) for k, v in timings.items()},
        "process_cpu_per_request": cpu_found,
        "cpu_ratio_before_over_now": {
            f"{name}{baseline}": {
                q: round(cpu_found[f"{name}{baseline}"][q] / cpu_found[name][q], 2)
                for q in ("p50_ms", "p99_ms")
            }
            for name in ("ward_overview", "api_ward_chart")
            for baseline in ("_before", "_unkept")
        },
        "reads_process_cpu_now_vs_before": reads,
        "page_weight": weights,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument(
        "--no-settle",
        action="store_true",
        help="leave the heap to the cyclic collector (medloop serve freezes it: settle_heap)",
    )
    parser.add_argument(
        "--afternoon",
        action="store_true",
        help="chart the 08:00 and 13:00 rounds first and measure at 13:05 (half the day charted)",
    )
    args = parser.parse_args()
    results: dict[str, object] = {"targets": TARGETS, "load_average_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = measure(
            f"sqlite:///{Path(folder) / 'pages.db'}",
            args.iterations,
            not args.no_settle,
            args.afternoon,
        )
    pg = os.environ.get("MEDLOOP_BENCH_POSTGRES_URL") or os.environ.get("MEDLOOP_TEST_POSTGRES_URL")
    if pg:
        url, drop = postgres_database(pg)
        try:
            results["postgresql"] = measure(
                url, args.iterations, not args.no_settle, args.afternoon
            )
        finally:
            drop()
    results["load_average_at_end"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
