"""Bad input never gets in and never gets a 500 (issue #13): every case here answered 500 (or
was accepted and then broke the patient's list) before the shared value types, the strict
JSON reader and the body gate. Each runs on SQLite and PostgreSQL, and checks that the list
is unchanged and still loads."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient

from medloop.api.app import create_app
from medloop.api.cds import FEST_VARENR
from medloop.api.config import ApiSettings
from tests.api.helpers import (
    GP_TOKEN,
    NURSE_TOKEN,
    PATIENT_TOKEN,
    SIMVASTATIN_GENERIC_EAN,
    admitted,
    auth,
    draft,
    hook,
    make_world,
    prescribe_body,
)
from tests.loop.helpers import SIMVASTATIN_28

MORNING_DOSE = {
    "use": "regular",
    "fixed": [{"amount": {"value": 1, "unit": "tablett"}, "time_of_day": "morning"}],
}


@pytest.fixture
def world(engine):
    found = make_world(engine)
    found.client = TestClient(found.client.app, raise_server_exceptions=False)
    return found


def raw_write(world, path: str, text: str | bytes, token: str = GP_TOKEN, **headers: str):
    version = world.version()
    return world.client.post(
        path,
        content=text,
        headers=auth(
            token, **{"If-Match": f'"{version}"', "content-type": "application/json", **headers}
        ),
    )


def assert_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    if code is not None:
        assert body["code"] == code, body
    return body


def unchanged(world, before: bytes) -> None:
    after = world.get(f"/patients/{world.patient_id}/list")
    assert after.status_code == 200, after.text
    assert after.content == before


def current(world) -> bytes:
    found = world.get(f"/patients/{world.patient_id}/list")
    assert found.status_code == 200
    return found.content


def dosed_prescription(value: str) -> str:
    """A prescription whose dose amount is the JSON text ``value``."""
    body = prescribe_body(SIMVASTATIN_28, dosage=MORNING_DOSE)
    return json.dumps(body).replace('"value": 1,', f'"value": {value},', 1)


@pytest.mark.parametrize("value", ["1e309", "-1e309", "Infinity", "-Infinity", "NaN"])
def test_a_non_finite_dose_is_refused_and_the_list_still_loads(world, value):
    before = current(world)
    response = raw_write(
        world, f"/patients/{world.patient_id}/prescriptions", dosed_prescription(value)
    )
    assert_problem(response, 422, "malformed-json")
    unchanged(world, before)


@pytest.mark.parametrize("value", ["true", '"1"', "0", "-1", "1000001"])
def test_a_dose_that_is_not_a_number_or_out_of_bounds_is_refused(world, value):
    before = current(world)
    response = raw_write(
        world, f"/patients/{world.patient_id}/prescriptions", dosed_prescription(value)
    )
    body = assert_problem(response, 422, "invalid-request")
    assert any("amount" in fault["loc"] for fault in body["errors"]), body
    unchanged(world, before)


@pytest.mark.parametrize("packages", ["1e309", "true", '"1"', "100001"])
def test_a_package_count_that_is_not_a_finite_number_in_bounds_is_refused(world, packages):
    before = current(world)
    text = json.dumps(prescribe_body(SIMVASTATIN_28)).replace(
        '"packages": 1', f'"packages": {packages}'
    )
    response = raw_write(world, f"/patients/{world.patient_id}/prescriptions", text)
    assert response.status_code == 422, response.text
    unchanged(world, before)


def test_an_infinite_dose_charted_with_an_override_is_refused(world):
    ward_id, simvastatin, _ = admitted(world)
    body = {
        "administration_id": str(uuid.uuid4()),
        "entry_id": simvastatin,
        "outcome": "given",
        "given_at": "2026-11-21T07:05:00Z",
        "dose": {"value": 1, "unit": "tablett"},
        "scan": SIMVASTATIN_GENERIC_EAN,
        "limit_override": "ok",
    }
    text = json.dumps(body).replace('"value": 1', '"value": 1e309')
    response = world.client.post(
        f"/nursing/patients/{world.patient_id}/administrations",
        content=text,
        headers=auth(NURSE_TOKEN, **{"content-type": "application/json"}),
    )
    assert_problem(response, 422, "malformed-json")


@pytest.mark.parametrize("field", ["reason", "indication"])
@pytest.mark.parametrize("bad", ["\\u0000", "\\ud800", "\\udfff"])
def test_nul_and_lone_surrogates_in_texts_are_refused(world, field, bad):
    before = current(world)
    body = prescribe_body(SIMVASTATIN_28, **{field: "XX"})
    text = json.dumps(body).replace('"XX"', f'"a{bad}b"')
    response = raw_write(world, f"/patients/{world.patient_id}/prescriptions", text)
    problem = assert_problem(response, 422, "malformed-json")
    assert "\\u0000" in problem["detail"] or "surrogate" in problem["detail"]
    unchanged(world, before)


def test_nul_in_an_acknowledged_alert_key_is_refused(world):
    text = '{"alert_key": "a\\u0000", "reason": "seen"}'
    response = raw_write(world, f"/patients/{world.patient_id}/alerts/acknowledge", text)
    assert_problem(response, 422, "malformed-json")


@pytest.mark.parametrize("where", ["hookInstance", "patientId"])
def test_nul_in_a_cds_hook_request_is_refused(world, where):
    request = hook(
        "order-sign",
        str(world.patient_id),
        draft("rx1", FEST_VARENR, SIMVASTATIN_28, str(world.patient_id)),
    )
    if where == "hookInstance":
        request["hookInstance"] = "XX"
    else:
        request["context"]["patientId"] = "XX"
    text = json.dumps(request).replace('"XX"', '"a\\u0000"')
    response = world.client.post(
        "/cds-services/medloop-order-sign",
        content=text,
        headers=auth(GP_TOKEN, **{"content-type": "application/json"}),
    )
    assert_problem(response, 422, "malformed-json")


def test_a_deeply_nested_cds_extra_field_with_an_idempotency_key_is_refused(world):
    request = hook(
        "order-sign",
        str(world.patient_id),
        draft("rx1", FEST_VARENR, SIMVASTATIN_28, str(world.patient_id)),
    )
    text = json.dumps(request)[:-1] + ', "extra": ' + "[" * 500 + "]" * 500 + "}"
    response = world.client.post(
        "/cds-services/medloop-order-sign",
        content=text,
        headers=auth(GP_TOKEN, **{"content-type": "application/json", "Idempotency-Key": "k1"}),
    )
    body = assert_problem(response, 422, "malformed-json")
    assert "nesting deeper than" in body["detail"]


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_a_ward_chart_for_a_day_out_of_range_is_refused(world, day):
    ward_id, _, _ = admitted(world)
    response = world.get(f"/nursing/wards/{ward_id}/chart?day={day}", token=NURSE_TOKEN)
    assert_problem(response, 422, "invalid-request")


@pytest.mark.parametrize(
    "since", ["0001-01-01T00:00:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00"]
)
def test_an_administration_history_since_an_extreme_or_naive_time_is_refused(world, since):
    admitted(world)
    response = world.get(
        f"/nursing/patients/{world.patient_id}/administrations?since={since}".replace("+", "%2B"),
        token=NURSE_TOKEN,
    )
    assert_problem(response, 422, "invalid-request")


@pytest.mark.parametrize("before", ["9223372036854775808", "99999999999999999999999"])
def test_an_access_log_page_cursor_beyond_64_bits_is_refused(world, before):
    response = world.get(f"/me/access-log?before={before}", token=PATIENT_TOKEN)
    assert_problem(response, 422, "invalid-request")


@pytest.mark.parametrize(
    "change",
    [{"order_deadline": "9999-12-31T12:00:00Z"}, {"days": 100000}, {"days": 1e9}, {"days": True}],
)
def test_a_packing_period_out_of_range_is_refused(world, change):
    from tests.api.helpers import PHARMACIST_TOKEN, multidose_patient

    multidose_patient(world)
    period = {
        "period_id": str(uuid.uuid4()),
        "first_day": "2026-12-14",
        "order_deadline": "2026-12-09T12:00:00Z",
        **change,
    }
    response = world.post(
        f"/multidose/patients/{world.patient_id}/periods", period, token=PHARMACIST_TOKEN
    )
    assert_problem(response, 422, "invalid-request")


def test_a_50_mb_indication_is_refused_before_it_is_stored(world):
    before = current(world)
    body = prescribe_body(SIMVASTATIN_28, indication="x" * 20_000)
    response = world.write(f"/patients/{world.patient_id}/prescriptions", body)
    assert_problem(response, 422, "invalid-request")
    unchanged(world, before)


# -- the body gate -------------------------------------------------------------------------------


class Exploding:
    """A request body that fails the test if more than ``allowed`` bytes are read from it."""

    def __init__(self, total: int, allowed: int, chunk: int = 65_536) -> None:
        self.total, self.allowed, self.chunk, self.read = total, allowed, chunk, 0

    def __iter__(self):
        while self.read < self.total:
            assert self.read <= self.allowed, f"{self.read} bytes of the body were read"
            self.read += self.chunk
            yield b"x" * self.chunk


def test_an_unauthenticated_50_mb_body_gets_401_without_being_read(world):
    body = Exploding(50_000_000, allowed=0)
    response = world.client.post(
        f"/patients/{world.patient_id}/prescriptions",
        content=body,
        headers={"content-type": "application/json", "content-length": "50000000"},
    )
    assert_problem(response, 401, "unauthenticated")
    assert body.read == 0


def test_a_declared_body_over_the_limit_gets_413_without_being_read(world):
    body = Exploding(50_000_000, allowed=0)
    response = world.client.post(
        f"/patients/{world.patient_id}/prescriptions",
        content=body,
        headers=auth(
            GP_TOKEN, **{"content-type": "application/json", "content-length": "50000000"}
        ),
    )
    assert_problem(response, 413, "request-too-large")
    assert body.read == 0


def test_a_streamed_body_over_the_limit_gets_413_once_it_passes_the_limit(world):
    """Without Content-Length, through the app's own ASGI interface (the test client would read
    the whole body first): reading stops at the first chunk past the limit."""
    import anyio

    chunk, sent, answer = 65_536, [], []

    async def receive() -> dict:
        sent.append(chunk)
        return {"type": "http.request", "body": b"x" * chunk, "more_body": len(sent) < 800}

    async def send(message: dict) -> None:
        answer.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/patients/{world.patient_id}/prescriptions",
        "raw_path": b"",
        "query_string": b"",
        "root_path": "",
        "server": ("test", 80),
        "client": ("test", 1),
        "headers": [
            (b"authorization", f"Bearer {GP_TOKEN}".encode()),
            (b"content-type", b"application/json"),
            (b"if-match", b'"1"'),
        ],
    }
    anyio.run(world.client.app, scope, receive, send)
    assert answer[0]["status"] == 413
    assert json.loads(answer[1]["body"])["code"] == "request-too-large"
    assert sum(sent) <= 1024 * 1024 + chunk


def test_the_body_limit_is_configurable(world, monkeypatch):
    monkeypatch.setenv("MEDLOOP_MAX_BODY_BYTES", "2048")
    app = create_app(ApiSettings.from_env("sqlite://"), engine=world.engine, clock=world.clock)
    client = TestClient(app, raise_server_exceptions=False)
    body = prescribe_body(SIMVASTATIN_28, indication="x" * 3000)
    response = client.post(
        f"/patients/{world.patient_id}/prescriptions",
        json=body,
        headers=auth(GP_TOKEN, **{"If-Match": '"1"'}),
    )
    assert_problem(response, 413, "request-too-large")
    small = client.post(
        f"/patients/{world.patient_id}/prescriptions",
        json=prescribe_body(SIMVASTATIN_28),
        headers=auth(GP_TOKEN, **{"If-Match": f'"{world.version()}"'}),
    )
    assert small.status_code == 201, small.text


def test_the_openapi_document_publishes_the_bounds(world):
    schema = world.client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    quantity = components["Quantity"]["properties"]["value"]
    assert quantity["exclusiveMinimum"] == 0 and quantity["maximum"] == 1_000_000
    assert components["PrescribeRequest"]["properties"]["indication"]["anyOf"][0]["maxLength"]
    prescribe = schema["paths"]["/patients/{patient_id}/prescriptions"]["post"]
    assert "413" in prescribe["responses"]


# -- refused input is audited ------------------------------------------------------------------


def refusals(world) -> list[dict]:
    log = world.get("/me/access-log?limit=100", token=PATIENT_TOKEN).json()["events"]
    return [event for event in log if event["outcome"] == "refused"]


@pytest.mark.parametrize(
    "text",
    [
        '"reason": "a\\u0000b"',
        '"reason": "a\\ud800b"',
        '"indication": "' + "x" * 20_000 + '"',
    ],
)
def test_a_write_refused_for_its_input_is_audited_without_the_input(world, text):
    body = json.dumps(prescribe_body(SIMVASTATIN_28))[:-1] + ", " + text + "}"
    response = raw_write(world, f"/patients/{world.patient_id}/prescriptions", body)
    assert response.status_code == 422, response.text
    (refused,) = refusals(world)
    assert refused["action"] == "api.prescribe_drug"
    assert refused["actor"] == "431002737"
    with world.engine.connect() as conn:
        from sqlalchemy import text as sql

        details = conn.execute(sql("SELECT detail FROM audit_event")).scalars().all()
    stored = json.dumps([d if isinstance(d, dict) else json.loads(d) for d in details])
    assert "xxxxxxxxxx" not in stored and "\\u0000" not in stored.replace("\\\\u0000", "")


def test_a_read_refused_for_its_parameters_is_not_a_write_to_audit(world):
    assert (
        world.get("/me/access-log?before=9223372036854775808", token=PATIENT_TOKEN).status_code
        == 422
    )
    assert refusals(world) == []


@pytest.mark.parametrize(
    "content_type, named",
    [
        ("text/plain", "sent as text/plain"),
        ("application/xml", "sent as application/xml"),
        ("application/x-www-form-urlencoded", "sent as application/x-www-form-urlencoded"),
        (None, "sent without a Content-Type"),
    ],
)
def test_a_json_body_not_said_to_be_json_is_refused_naming_its_content_type(
    world, content_type, named
):
    """FastAPI reads a body as JSON only when its Content-Type says so; otherwise the route is
    given the raw bytes, and "1 invalid field(s)" at ``body`` would leave the client to guess
    why a good prescription was refused."""
    before = current(world)
    headers = auth(GP_TOKEN, **{"If-Match": f'"{world.version()}"'})
    if content_type is not None:
        headers["content-type"] = content_type
    response = world.client.post(
        f"/patients/{world.patient_id}/prescriptions",
        content=json.dumps(prescribe_body(SIMVASTATIN_28)),
        headers=headers,
    )
    problem = assert_problem(response, 422, "invalid-request")
    assert named in problem["detail"] and "application/json" in problem["detail"], problem
    unchanged(world, before)
    # a body that is JSON but not an object is still an invalid field, said as such
    response = raw_write(world, f"/patients/{world.patient_id}/prescriptions", "[1, 2]")
    assert assert_problem(response, 422, "invalid-request")["detail"] == "1 invalid field(s)"
