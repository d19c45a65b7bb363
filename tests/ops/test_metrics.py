"""/metrics: Prometheus text exposition of requests, commands, alerts, overrides, jobs, the
catalogue, the pool and the state cache — with several workers too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from medloop.api.auth import issue_token
from tests.api.helpers import prescribe_body
from tests.loop.helpers import GP, KLARITROMYCIN, SIMVASTATIN_28


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    found: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def scrape(world) -> dict:
    response = world.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def test_requests_commands_alerts_and_overrides_are_counted_by_template_and_code(world):
    before = scrape(world)
    path = f"/patients/{world.patient_id}/prescriptions"
    assert world.write(path, prescribe_body(SIMVASTATIN_28)).status_code == 201
    body = prescribe_body(KLARITROMYCIN)
    refused = world.write(path, body)
    assert refused.status_code == 409
    overrides = dict.fromkeys(refused.json()["alert_keys"], "short course")
    assert world.write(path, {**body, "overrides": overrides}).status_code == 201
    after = scrape(world)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/patients/{patient_id}/prescriptions"
    assert (
        delta(
            "medloop_http_request_duration_seconds_count", route=route, method="POST", status="201"
        )
        == 2
    )
    assert (
        delta(
            "medloop_http_request_duration_seconds_count", route=route, method="POST", status="409"
        )
        == 1
    )
    # Each write read the list's ETag first.
    assert (
        delta(
            "medloop_http_request_duration_seconds_count",
            route="/patients/{patient_id}/list",
            method="GET",
            status="200",
        )
        == 3
    )
    assert delta("medloop_commands_total", command="prescribe", outcome="ok") == 2
    assert delta("medloop_commands_total", command="prescribe", outcome="override-required") == 1
    assert delta("medloop_alerts_total", kind="interaction", severity="avoid") >= 1
    assert delta("medloop_overrides_total", kind="interaction") == len(overrides)
    assert (
        delta("medloop_state_cache_lookups_total", result="hit")
        + delta("medloop_state_cache_lookups_total", result="miss")
        == 3
    )
    # No label holds a patient id: routes are templates.
    assert str(world.patient_id) not in world.client.get("/metrics").text


def test_the_catalogue_in_force_and_its_age_are_exported(world):
    found = scrape(world)
    assert value(found, "medloop_catalogue_version") >= 1
    assert value(found, "medloop_catalogue_age_seconds") > 0


def test_job_runs_are_counted_with_their_outcome(world):
    from medloop.jobs import run_job

    before = scrape(world)
    run_job(world.engine, "expire-prescriptions")
    after = scrape(world)
    name = "medloop_job_runs_total"
    labels = {"job": "expire-prescriptions", "outcome": "ok"}
    assert value(after, name, **labels) - value(before, name, **labels) == 1
    assert value(after, "medloop_job_duration_seconds_count", job="expire-prescriptions") >= 1


def test_metrics_ask_for_the_configured_token(world, monkeypatch):
    monkeypatch.setenv("MEDLOOP_METRICS_TOKEN", "s3cret")
    assert world.client.get("/metrics").status_code == 401
    wrong = world.client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = world.client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert right.status_code == 200 and "medloop_commands_total" in right.text


def _children(pid: int) -> list[int]:
    """uvicorn's worker processes: children of the server that wrote a live gauge file."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.postgres
def test_several_workers_add_up_into_one_scrape_and_dead_workers_leave_the_pool_gauge(
    postgres_url, tmp_path
):
    """``medloop serve --workers 2``: every worker counts into the shared folder, any worker's
    scrape sums them, and the live gauges forget a worker killed with -9."""
    port = _free_port()
    env = {
        **os.environ,
        "MEDLOOP_ALLOW_DEV_KEYS": "1",
        "MEDLOOP_SCHEDULER": "off",
        "MEDLOOP_DATABASE_URL": postgres_url,
        "PYTHONUNBUFFERED": "1",
    }
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from medloop.cli import app; app()",
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=env,
        stdout=log,
        stderr=log,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    token = issue_token("gp", GP.personnel.hpr_number, GP.organisation.id)
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/health/live", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                time.sleep(0.1)
        requests = 40
        with httpx.Client(base_url=base, timeout=5) as client:
            for _ in range(requests):
                # A new connection each time, so both workers take some.
                response = httpx.get(
                    f"{base}/catalogue", headers={"Authorization": f"Bearer {token}"}, timeout=5
                )
                assert response.status_code == 503  # no catalogue imported in this database
            counts = [
                value(
                    samples(client.get("/metrics").text),
                    "medloop_http_request_duration_seconds_count",
                    route="/catalogue",
                    method="GET",
                    status="503",
                )
                for _ in range(6)
            ]
        # Whichever worker answered the scrape, the sum is every worker's requests.
        assert set(counts) == {requests}

        workers = [
            child
            for child in _children(server.pid)
            if (metrics_dir / f"gauge_livesum_{child}.db").exists()
        ]
        assert len(workers) == 2
        victim = workers[0]
        assert (metrics_dir / f"gauge_livesum_{victim}.db").exists()
        os.kill(victim, signal.SIGKILL)
        for _ in range(100):
            try:
                scraped = httpx.get(f"{base}/metrics", timeout=2)
                if not (metrics_dir / f"gauge_livesum_{victim}.db").exists():
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert scraped.status_code == 200
        assert not (metrics_dir / f"gauge_livesum_{victim}.db").exists()
        # The dead worker's counts stay in the sum: a counter never goes down.
        assert (
            value(
                samples(scraped.text),
                "medloop_http_request_duration_seconds_count",
                route="/catalogue",
                method="GET",
                status="503",
            )
            == requests
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.postgres
def test_serve_with_two_workers_and_no_metrics_folder_starts_and_answers_health(
    postgres_url, tmp_path
):
    """A regression of e99b10c: without ``PROMETHEUS_MULTIPROC_DIR`` ``medloop serve
    --workers 2`` makes a metrics folder of its own, and every worker must start after it is
    set (importing prometheus_client earlier made the server refuse to start)."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    env |= {
        "MEDLOOP_ALLOW_DEV_KEYS": "1",
        "MEDLOOP_SCHEDULER": "off",
        "MEDLOOP_DATABASE_URL": postgres_url,
        "PYTHONUNBUFFERED": "1",
    }
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from medloop.cli import app; app()",
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=env,
        stdout=log,
        stderr=log,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        live = None
        for _ in range(300):
            try:
                live = httpx.get(f"{base}/health/live", timeout=1)
                break
            except httpx.HTTPError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                time.sleep(0.1)
        assert live is not None and live.status_code == 200, (tmp_path / "server.log").read_text()
        ready = httpx.get(f"{base}/health/ready", timeout=5)
        assert ready.status_code in (200, 503) and ready.json()  # answered, by a live worker
        assert "prometheus_client was imported" not in (tmp_path / "server.log").read_text()
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def test_a_kept_counter_child_is_the_clients_own_and_counts_there():
    from medloop.ops import metrics

    before = metrics.COMMANDS.labels("kept-child-test", "ok")._value.get()
    metrics.command_finished("kept-child-test", "ok")
    metrics.command_finished("kept-child-test", "ok")
    assert metrics._child(metrics.COMMANDS, "kept-child-test", "ok") is metrics.COMMANDS.labels(
        "kept-child-test", "ok"
    )
    assert metrics.COMMANDS.labels("kept-child-test", "ok")._value.get() == before + 2


def test_the_pool_gauges_are_written_when_their_value_changes_and_hold_the_last(monkeypatch):
    from prometheus_client import Gauge

    from medloop.ops import metrics

    writes: list[tuple[str, float]] = []
    original = Gauge.set

    def counted(self, value):
        writes.append((self._name, value))
        original(self, value)

    monkeypatch.setattr(Gauge, "set", counted)
    metrics._POOL_LAST.clear()
    for checked_out, size in ((3, 20), (3, 20), (4, 20), (4, 20), (0, 21), (0, 21)):
        metrics.pool_in_use(checked_out, size)
    checked, pooled = metrics.POOL_CHECKED_OUT._name, metrics.POOL_SIZE._name
    assert writes == [(checked, 3), (pooled, 20), (checked, 4), (checked, 0), (pooled, 21)]
    assert metrics.POOL_CHECKED_OUT._value.get() == 0
    assert metrics.POOL_SIZE._value.get() == 21


def _histogram_state(histogram) -> list[tuple[str, dict, float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in histogram.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]


def test_a_request_is_observed_as_the_clients_histogram_observe_would():
    """``request_finished`` does ``Histogram.observe``'s two ``inc`` calls on the child's own
    values (prometheus-client 0.26's ``_sum``, ``_buckets``, ``_upper_bounds``): every bucket,
    count and sum ends as a histogram fed by ``observe`` itself, bounds, NaN and -0.0 too."""
    from prometheus_client import CollectorRegistry, Histogram

    from medloop.ops import metrics

    child = metrics.REQUESTS.labels("/equivalence-test", "POST", "201")
    assert type(child._sum).inc and len(child._buckets) == len(child._upper_bounds)
    assert child._upper_bounds == [*metrics._LATENCY_BUCKETS, float("inf")]
    reference = Histogram(
        "medloop_http_request_duration_seconds",
        "reference",
        ["route", "method", "status"],
        buckets=metrics._LATENCY_BUCKETS,
        registry=CollectorRegistry(),
    )
    amounts = [b + d for b in metrics._LATENCY_BUCKETS for d in (-1e-9, 0.0, 1e-9)]
    amounts += [0.0, -0.0, -1.0, 1e-7, 0.0012, 99.0, float("inf"), float("nan")]
    before = _histogram_state(metrics.REQUESTS)
    for amount in amounts:
        metrics.request_finished("/equivalence-test", "POST", 201, amount)
        reference.labels("/equivalence-test", "POST", "201").observe(amount)
    ours = [
        s for s in _histogram_state(metrics.REQUESTS) if s[1].get("route") == "/equivalence-test"
    ]
    theirs = _histogram_state(reference)
    assert all(v == 0 for _, lab, v in before if lab.get("route") == "/equivalence-test")
    assert [(n, lab) for n, lab, _ in ours] == [(n, lab) for n, lab, _ in theirs]
    for (_, _, got), (_, _, want) in zip(ours, theirs, strict=True):
        assert got == want or (got != got and want != want)


def test_a_request_falls_back_to_observe_when_the_child_is_not_the_clients_histogram():
    from medloop.ops import metrics

    seen: list[float] = []

    class Other:
        def observe(self, amount: float) -> None:
            seen.append(amount)

    total, buckets, bounds = metrics._observer(Other())
    assert buckets is None and bounds is None
    total(0.5)
    assert seen == [0.5]
    histogram = metrics.REQUESTS.labels("/fallback-test", "GET", "200")
    assert metrics._observer(histogram)[2] is histogram._upper_bounds


def test_a_counted_increment_is_the_clients_counter_inc():
    """``_counting`` increments a Counter child through its own value (prometheus-client
    0.26's ``Counter._value``): the commands', alerts', overrides' and state cache's counters
    end as the client's ``inc`` leaves them, in the registry's own samples."""
    from prometheus_client import Counter

    from medloop.ops import metrics

    child = metrics.COMMANDS.labels("counting-test", "ok")
    assert type(child) is Counter and callable(child._value.inc)
    assert metrics._counting(metrics.COMMANDS, "counting-test", "ok") == child._value.inc
    before = child._value.get()
    for _ in range(3):
        metrics.command_finished("counting-test", "ok")
    child.inc()
    assert child._value.get() == before + 4

    alert = type("Alert", (), {"kind": "counting-kind", "severity": "high", "key": "k"})
    ours = metrics.ALERTS.labels("counting-kind", "high")
    overridden = metrics.OVERRIDES.labels("counting-kind")
    base = (ours._value.get(), overridden._value.get())
    metrics.alerts_raised([alert, alert], {"k": "why"})
    metrics.alerts_raised([alert], {})
    assert (ours._value.get(), overridden._value.get()) == (base[0] + 3, base[1] + 2)

    hit, miss = metrics.STATE_CACHE.labels("hit"), metrics.STATE_CACHE.labels("miss")
    counts = (hit._value.get(), miss._value.get())
    for found in (True, True, False):
        metrics.state_cache_lookup(found)
    assert (hit._value.get(), miss._value.get()) == (counts[0] + 2, counts[1] + 1)


def test_a_counted_increment_falls_back_to_inc_when_the_child_is_not_the_clients_counter(
    monkeypatch,
):
    from medloop.ops import metrics

    seen: list[float] = []

    class Other:
        _value = None

        def inc(self, amount: float = 1) -> None:
            seen.append(amount)

    class Metric:
        def labels(self, *labels: str) -> Other:
            return Other()

    monkeypatch.setattr(metrics, "_INCS", {})
    monkeypatch.setattr(metrics, "_CHILDREN", {})
    metric = Metric()
    metrics._counting(metric, "x")(1)
    metrics._counting(metric, "x")(1)
    assert seen == [1, 1]
