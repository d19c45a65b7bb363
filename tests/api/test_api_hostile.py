"""Property-based attacks on the API (issue #13): strategies that produce exactly the classes of
input that once gave 500s or broke a patient's list — NUL characters, lone surrogates, extreme
dates and integers, non-finite numbers, deep nesting, huge strings and values of the wrong JSON
type — put anywhere in otherwise valid requests. Whatever comes of it: never a 5xx, a refusal
changes nothing, and whatever is accepted loads again. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medloop.api.cds import FEST_VARENR
from tests.api.helpers import GP_TOKEN, PATIENT_TOKEN, auth, draft, hook, make_world, prescribe_body
from tests.loop.helpers import SIMVASTATIN_28

_RAW = "\x01raw:"
"""A string standing for a JSON token written as is (``1e309``, ``NaN`` …)."""

nul_texts = st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=5), st.text(max_size=5))
surrogates = st.builds(
    lambda a, s: f"{a}{chr(s)}", st.text(max_size=5), st.integers(0xD800, 0xDFFF)
)
extreme_dates = st.sampled_from(
    [
        "0001-01-01",
        "9999-12-31",
        "0001-01-01T00:00:00",
        "9999-12-31T23:59:59+14:00",
        "0001-01-01T00:00:00-14:00",
        "2026-02-30",
        "1899-12-31",
        "2200-01-01T00:00:00Z",
        "",
    ]
)
extreme_numbers = st.one_of(
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30, -1, 0, 1e-400, 5e-324, 1e300]),
    st.sampled_from(["1e309", "-1e309", "NaN", "Infinity", "-Infinity", "1" + "0" * 400]).map(
        lambda token: _RAW + token
    ),
)
deep = st.integers(65, 600).map(lambda depth: _RAW + "[" * depth + "]" * depth)
huge = st.sampled_from([200_000, 600_000]).map(lambda size: "x" * size)
wrong_types = st.sampled_from([True, False, None, "1", "true", [], {}, [1], {"a": 1}, 1.5])
hostile = st.one_of(nul_texts, surrogates, extreme_dates, extreme_numbers, deep, huge, wrong_types)


def _paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Every place in ``value`` a hostile value can go (each key's value, each item, and a new
    key at each object)."""
    found = [path]
    if isinstance(value, dict):
        found.append((*path, "\x00extra"))
        for key, inner in value.items():
            found += _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*path, index))
    return found


def _with(value: Any, path: tuple, leaf: Any) -> Any:
    if not path:
        return leaf
    head, *rest = path
    if isinstance(value, dict) and isinstance(head, str):
        key = "extra" if head == "\x00extra" else head
        return {**value, key: _with(value.get(key), tuple(rest), leaf)}
    if isinstance(value, list) and isinstance(head, int) and head < len(value):
        return [_with(v, tuple(rest), leaf) if i == head else v for i, v in enumerate(value)]
    return leaf  # an earlier change replaced what the path went through


def _text(value: Any) -> str:
    """The JSON text of ``value`` with every raw token written as is."""
    raws: list[str] = []

    def placeholder(item: Any) -> Any:
        if isinstance(item, str) and item.startswith(_RAW):
            raws.append(item[len(_RAW) :])
            return f"\x02{len(raws) - 1}\x02"
        if isinstance(item, dict):
            return {k: placeholder(v) for k, v in item.items()}
        if isinstance(item, list):
            return [placeholder(v) for v in item]
        return item

    text = json.dumps(placeholder(value))
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x02{index}\x02"), raw)
    return text


_SETTINGS = settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


@pytest.fixture
def world(engine):
    found = make_world(engine)
    found.client = TestClient(found.client.app, raise_server_exceptions=False)
    return found


def _snapshot(world) -> bytes:
    response = world.get(f"/patients/{world.patient_id}/list")
    assert response.status_code == 200, response.text
    return response.content


def _bodies(world) -> dict[str, tuple[str, dict[str, Any]]]:
    pid = str(world.patient_id)
    dosage = {
        "use": "regular",
        "fixed": [
            {
                "amount": {"value": 1, "unit": "tablett"},
                "time_of_day": "morning",
                "weekdays": ["monday"],
            }
        ],
    }
    return {
        "prescribe": (
            f"/patients/{pid}/prescriptions",
            prescribe_body(
                SIMVASTATIN_28, dosage=dosage, indication="kolesterol", reason="ny", overrides={}
            ),
        ),
        "add-entry": (
            f"/patients/{pid}/list/entries",
            {
                "entry_id": str(uuid.uuid4()),
                "item": {"name": "Tran", "text": "5 ml"},
                "use": "regular",
                "start": "2026-11-01",
            },
        ),
        "acknowledge": (
            f"/patients/{pid}/alerts/acknowledge",
            {"alert_key": "interaction/X/a,b", "reason": "known"},
        ),
        "cds": (
            "/cds-services/medloop-order-sign",
            hook(
                "order-sign",
                pid,
                draft(
                    "rx1",
                    FEST_VARENR,
                    SIMVASTATIN_28,
                    pid,
                    {
                        "text": "1 tablett om kvelden",
                        "timing": {
                            "repeat": {
                                "frequency": 1,
                                "period": 1,
                                "periodUnit": "d",
                                "boundsPeriod": {"start": "2026-11-20"},
                            }
                        },
                        "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablett"}}],
                    },
                ),
            ),
        ),
    }


@pytest.mark.parametrize("name", ["prescribe", "add-entry", "acknowledge", "cds"])
def test_hostile_values_anywhere_in_a_write_never_get_a_5xx_or_change_a_refused_list(world, name):
    path, body = _bodies(world)[name]
    places = _paths(body)

    @_SETTINGS
    @given(data=st.data())
    def attacked(data):
        value = body
        if name in ("prescribe", "add-entry"):  # fresh ids: an accepted one must not clash
            value = {**value, "entry_id": str(uuid.uuid4())}
            if "terms" in value:
                value["terms"] = {**value["terms"], "prescription_id": str(uuid.uuid4())}
        for place in data.draw(st.lists(st.sampled_from(places), min_size=1, max_size=2)):
            value = _with(value, place, data.draw(hostile))
        before = _snapshot(world)
        version = world.version()
        response = world.client.post(
            path,
            content=_text(value).encode("utf-8", "surrogatepass"),
            headers=auth(
                GP_TOKEN,
                **{
                    "If-Match": f'"{version}"',
                    "content-type": "application/json",
                    "Idempotency-Key": str(uuid.uuid4()),
                },
            ),
        )
        assert response.status_code < 500, response.text
        assert response.headers["content-type"].split(";")[0] in (
            "application/json",
            "application/problem+json",
        )
        if response.status_code >= 400:
            assert _snapshot(world) == before
        else:
            _snapshot(world)  # what was accepted loads again

    attacked()


@pytest.mark.parametrize(
    ("path", "parameter", "token"),
    [
        ("/catalogue/packages", "name", GP_TOKEN),
        ("/me/access-log", "before", PATIENT_TOKEN),
        ("/me/access-log", "limit", PATIENT_TOKEN),
        ("/patients", "national_id", GP_TOKEN),
        ("/nursing/patients/{pid}/administrations", "since", GP_TOKEN),
    ],
)
def test_hostile_query_parameters_never_get_a_5xx(world, path, parameter, token):
    path = path.replace("{pid}", str(world.patient_id))

    @_SETTINGS
    @given(
        value=st.one_of(
            nul_texts,
            surrogates,
            extreme_dates,
            extreme_numbers,
            st.text(),
            wrong_types.filter(lambda v: not isinstance(v, list | dict)),
        )
    )
    def asked(value):
        text = (
            value[len(_RAW) :]
            if isinstance(value, str) and value.startswith(_RAW)
            else (json.dumps(value) if not isinstance(value, str) else value)
        )
        encoded = quote(text.encode("utf-8", "surrogatepass"), safe="")
        response = world.client.get(f"{path}?{parameter}={encoded}", headers=auth(token))
        assert response.status_code < 500, response.text

    asked()
