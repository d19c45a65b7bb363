"""The counters' kept increments (``metrics._increment``, issue #20) count where the client's
own ``child.inc()`` counts, and rely on the pinned prometheus-client's ``Counter`` child keeping
its value as ``_value`` with an ``inc(amount)`` (what ``Counter.inc`` calls after its checks):
this fails when the pinned client changes that, and anything but the client's ``Counter`` child
takes the child's public ``inc``."""

from __future__ import annotations

from importlib.metadata import version

from prometheus_client import CollectorRegistry, Counter

from medloop.ops import metrics


def test_the_pinned_clients_counter_child_keeps_its_value_as_value_with_inc():
    assert version("prometheus-client") == "0.26.0"
    registry = CollectorRegistry()
    counter = Counter("kept_increment_test", "test", ["a"], registry=registry)
    child = counter.labels("x")
    assert callable(child._value.inc)
    inc = metrics._increment(counter, "x")
    assert inc == child._value.inc
    inc(1)
    child.inc()
    inc(1)
    assert registry.get_sample_value("kept_increment_test_total", {"a": "x"}) == 3
    assert metrics._INCREMENTS[(counter, "x")] is inc


def test_the_command_counters_count_where_the_clients_children_count():
    def value(metric, *labels):
        return metric.labels(*labels)._value.get()

    before = (
        value(metrics.COMMANDS, "kept-inc-test", "ok"),
        value(metrics.STATE_CACHE, "hit"),
        value(metrics.STATE_CACHE, "miss"),
        value(metrics.ALERTS, "interaction", "avoid"),
        value(metrics.OVERRIDES, "interaction"),
    )

    class _Alert:
        kind, severity = "interaction", "avoid"

        def __init__(self, key):
            self.key = key

    for _ in range(2):
        metrics.command_finished("kept-inc-test", "ok")
        metrics.state_cache_lookup(True)
        metrics.alerts_raised([_Alert("a"), _Alert("b")], {"b": "why"})
    metrics.state_cache_lookup(False)
    after = (
        value(metrics.COMMANDS, "kept-inc-test", "ok"),
        value(metrics.STATE_CACHE, "hit"),
        value(metrics.STATE_CACHE, "miss"),
        value(metrics.ALERTS, "interaction", "avoid"),
        value(metrics.OVERRIDES, "interaction"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2, 1, 4, 2]


def test_anything_but_the_clients_counter_child_takes_its_own_inc():
    counted = []

    class _Child:
        _value = None

        def inc(self, amount=1):
            counted.append(amount)

    class _Metric:
        def labels(self, *labels):
            return _Child()

    metric = _Metric()
    metrics._increment(metric, "y")(1)
    metrics._INCREMENTS[(metric, "y")](1)
    assert counted == [1, 1]
