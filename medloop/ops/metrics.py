"""Prometheus metrics (``prometheus-client``), exposed at ``/metrics`` in the text format.

Every serving process counts into the same metrics. With several workers ``medloop serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` to a fresh folder *before* this module is imported (the client picks
its storage at import), so each process writes memory-mapped files there and a scrape of any
worker adds them up (``MultiProcessCollector``). One process keeps them in memory.

Labels never carry patient data: routes are the route *templates* (``/patients/{patient_id}/list``),
commands their names, refusals their stable codes, alerts their kind and severity.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE_LATEST",
    "alerts_raised",
    "command_finished",
    "job_finished",
    "render",
    "request_finished",
    "state_cache_lookup",
]

_MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")

# Latency buckets in seconds: the API's targets are p99 of tens of milliseconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Histogram(
    "medloop_http_request_duration_seconds",
    "HTTP request latency by route template, method and status.",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
COMMANDS = Counter(
    "medloop_commands_total",
    "Commands run on patient lists, by name and outcome (ok, replayed, or the refusal code).",
    ["command", "outcome"],
)
ALERTS = Counter(
    "medloop_alerts_total",
    "Decision-support alerts in the results of commands that went through, by kind and severity.",
    ["kind", "severity"],
)
OVERRIDES = Counter(
    "medloop_overrides_total",
    "Alerts overridden with a reason, by alert kind (the rule family).",
    ["kind"],
)
JOB_RUNS = Counter(
    "medloop_job_runs_total", "Scheduled job runs by job and outcome.", ["job", "outcome"]
)
JOB_SECONDS = Histogram(
    "medloop_job_duration_seconds",
    "Scheduled job run time.",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)
STATE_CACHE = Counter(
    "medloop_state_cache_lookups_total",
    "Lookups of a patient's cached state by a command: hit or miss.",
    ["result"],
)
POOL_CHECKED_OUT = Gauge(
    "medloop_db_pool_checked_out",
    "Database connections in use, summed over the live serving processes.",
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "medloop_db_pool_size",
    "Database connections held by the pools, summed over the live serving processes.",
    multiprocess_mode="livesum",
)


def request_finished(route: str, method: str, status: int, seconds: float) -> None:
    # Once a request (issue #20): the child's values found in our own dict (``_observer``).
    # Its label values are few: route templates, the HTTP methods the parser knows, statuses.
    key = (route, method, status)
    found = _OBSERVERS.get(key)
    if found is None:
        found = _OBSERVERS[key] = _observer(_child(REQUESTS, route, method, str(status)))
    total, buckets, bounds = found
    if bounds is None:  # not the client's Histogram as pinned: its own observe
        total(seconds)
        return
    # What Histogram.observe does without an exemplar: the sum, then the first bucket whose
    # upper bound is >= seconds (the last is +Inf; NaN is in none), each by its value's inc.
    total.inc(seconds)
    at = bisect_left(bounds, seconds)
    if seconds <= bounds[at]:
        buckets[at].inc(1)


def _observer(child: Any) -> tuple[Any, Any, Any]:
    """A histogram child's sum value, bucket values and upper bounds (prometheus-client
    0.26's ``Histogram._sum``, ``._buckets``, ``._upper_bounds``), so that an observation
    is the two ``inc`` calls ``Histogram.observe`` makes, without its frame, its check that
    the child is observable (a child always is) and its linear scan of the bounds (issue
    #20). ``(child.observe, None, None)`` when the child is not of that shape."""
    total = getattr(child, "_sum", None)
    buckets = getattr(child, "_buckets", None)
    bounds = getattr(child, "_upper_bounds", None)
    if (
        type(child) is not Histogram
        or total is None
        or not isinstance(buckets, list)
        or not isinstance(bounds, list)
        or len(buckets) != len(bounds)
        or not bounds
        or bounds[-1] != float("inf")
        or bounds != sorted(bounds)
    ):
        return child.observe, None, None
    return total, buckets, bounds


_OBSERVERS: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}


def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, the same child the client keeps, found in a dict of our own:
    the client's ``labels`` validates and converts the values and takes a lock on every call,
    three times a command (issue #20). The label values of these counters are few (commands,
    outcomes, alert kinds and severities, hit or miss)."""
    key = (id(metric), labels)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*labels)
    return found


_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def _counting(metric: Any, *labels: str) -> Any:
    """What ``metric.labels(*labels).inc`` does for an increment of 1, kept per metric and
    label values: the child's own value's ``inc`` (prometheus-client 0.26's ``Counter._value``:
    ``Counter.inc`` is ``_raise_if_not_observable``, which a child passes, the check that the
    amount is not negative, that ``inc`` and no exemplar), without ``Counter.inc``'s two Python
    frames of checks, two or three times a command (issue #20). The child's own ``inc`` when it
    is not the client's ``Counter`` with such a value."""
    key = (id(metric), labels)
    found = _INCS.get(key)
    if found is None:
        child = _child(metric, *labels)
        value = getattr(child, "_value", None)
        found = (
            value.inc
            if type(child) is Counter
            and child._labelvalues
            and callable(getattr(value, "inc", None))
            else child.inc
        )
        _INCS[key] = found
    return found


_INCS: dict[tuple[int, tuple[str, ...]], Any] = {}


def command_finished(command: str, outcome: str) -> None:
    (_INCS.get((id(COMMANDS), (command, outcome))) or _counting(COMMANDS, command, outcome))(1)


def alerts_raised(alerts: Iterable[Any], overrides: Mapping[str, str]) -> None:
    """Count a command's alerts (objects with ``kind``, ``severity`` and ``key``), and the
    overridden ones by kind."""
    for alert in alerts:
        kind, severity = str(alert.kind), str(alert.severity)
        _counting(ALERTS, kind, severity)(1)
        if alert.key in overrides:
            _counting(OVERRIDES, kind)(1)


def job_finished(job: str, outcome: str, seconds: float) -> None:
    JOB_RUNS.labels(job, outcome).inc()
    JOB_SECONDS.labels(job).observe(seconds)


def state_cache_lookup(hit: bool) -> None:
    _counting(STATE_CACHE, "hit" if hit else "miss")(1)


def pool_in_use(checked_out: int, size: int) -> None:
    """Set the pool gauges (once a request, issue #20): each only when its value is not the one
    this process last set it to, which the gauge holds already (nothing else sets them). In
    multiprocess mode a ``set`` is a lock, a ``getpid`` and a write to the memory-mapped file;
    the pool's size hardly ever changes, nor, between one request's end and the next, the
    connections in use. A forked child forgets what its parent set (its values are its own)."""
    last = _POOL_LAST
    if last.get(POOL_CHECKED_OUT) != checked_out:
        POOL_CHECKED_OUT.set(checked_out)
        last[POOL_CHECKED_OUT] = checked_out
    if last.get(POOL_SIZE) != size:
        POOL_SIZE.set(size)
        last[POOL_SIZE] = size


_POOL_LAST: dict[Any, int] = {}
"""What ``pool_in_use`` last set each gauge to in this process."""
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_POOL_LAST.clear)


class CatalogueCollector(Collector):
    """The catalogue version in force and its age, read from the database at scrape time."""

    def __init__(self, read: Any) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        version = GaugeMetricFamily(
            "medloop_catalogue_version", "Id of the FEST catalogue version in force (0: none)."
        )
        age = GaugeMetricFamily(
            "medloop_catalogue_age_seconds",
            "Seconds since the catalogue in force was fetched from DMP (HentetDato).",
        )
        found = self._read()
        if found is None:
            version.add_metric([], 0)
        else:
            version.add_metric([], found[0])
            age.add_metric([], found[1])
        yield version
        yield age


def render(extra: Collector | None = None) -> bytes:
    """The exposition text of every process's metrics (plus ``extra``, read now)."""
    if _MULTIPROCESS_DIR is None:
        from prometheus_client import REGISTRY

        if extra is None:
            return generate_latest(REGISTRY)
        registry = CollectorRegistry()
        registry.register(_Forward(REGISTRY))
        registry.register(extra)
        return generate_latest(registry)
    _forget_dead_processes(Path(_MULTIPROCESS_DIR))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    if extra is not None:
        registry.register(extra)
    return generate_latest(registry)


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Any]:
        return self._registry.collect()


_LIVE_FILE = re.compile(r"^gauge_live\w*_(\d+)\.db$")


def _forget_dead_processes(directory: Path) -> None:
    """Drop the live-gauge files of worker processes that are gone (a worker killed with -9
    never says so), so ``livesum`` gauges count live processes only."""
    for path in directory.glob("gauge_live*_*.db"):
        match = _LIVE_FILE.match(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(directory))
        except PermissionError:
            pass
