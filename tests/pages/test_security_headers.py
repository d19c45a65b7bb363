"""Every HTML response under ``/app/`` carries the pages' security headers (a Content-Security-
Policy allowing only the pages' own files, no framing, no MIME sniffing, the referrer kept to
the pages' own origin): pages, redirects, refusals and error pages, signed in or out. Their
other files (scripts, style sheets) get no sniffing and the referrer policy only. The JSON API
and FHIR answer as before, without them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from medloop.api.app import PAGE_FILE_HEADERS, PAGE_SECURITY_HEADERS
from tests.api.helpers import GP_TOKEN, auth
from tests.pages.helpers import client_signed_in, csrf_of

EXPECTED = {name.decode(): value.decode() for name, value in PAGE_SECURITY_HEADERS}
FILE = {name.decode(): value.decode() for name, value in PAGE_FILE_HEADERS}


def _protected(answer, expected: dict[str, str] = EXPECTED) -> None:
    found = {name: answer.headers.get(name) for name in EXPECTED}
    wanted = {name: expected.get(name) for name in EXPECTED}
    assert found == wanted, (answer.request.url, answer.status_code, found)


def test_the_policy_allows_the_pages_own_files_only_and_no_framing():
    """What the headers say (the browser test shows Chromium enforcing it)."""
    policy = dict(
        part.strip().split(" ", 1) for part in EXPECTED["content-security-policy"].split(";")
    )
    assert policy["default-src"] == policy["script-src"] == policy["style-src"] == "'self'"
    assert policy["object-src"] == policy["base-uri"] == policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in EXPECTED["content-security-policy"]
    assert EXPECTED["x-frame-options"] == "DENY"
    assert EXPECTED["x-content-type-options"] == "nosniff"


def test_every_kind_of_page_response_carries_the_security_headers(client, pages_world):
    _, patient_id = pages_world.patient(0)
    signed_out = [
        client.get("/app/sign-in"),
        client.get("/app/home"),  # a redirect to the sign-in
        client.get("/app/no-such-page"),
        client.post("/app/sign-in/demo", data={"person": "gp"}),  # no CSRF token: refused
    ]
    assert [a.status_code for a in signed_out] == [200, 303, 404, 403]
    files = [client.get("/app/static/medloop.css"), client.get("/app/static/gp.js")]
    assert [a.status_code for a in files] == [200, 200]
    for answer in files:  # no page: no page policy
        _protected(answer, FILE)
    client_signed_in(client, "gp")
    home = client.get("/app/home")
    signed_in = [
        home,
        client.get(f"/app/gp/patients/{patient_id}"),
        client.get(f"/app/gp/patients/{patient_id}/timeline"),
        client.get(f"/app/pharmacy/patients/{patient_id}"),  # a pharmacist's page: refused
        client.get("/app/gp/patients/not-a-patient"),
        client.post("/app/sign-out", data={"csrf_token": csrf_of(home.text)}),
    ]
    assert [a.status_code for a in signed_in] == [200, 200, 200, 403, 422, 303]
    for answer in (*signed_out, *signed_in):
        _protected(answer)


def test_the_api_and_fhir_answer_without_the_pages_headers(client, pages_world):
    """The pages' policy is for browsers reading HTML: the JSON API's and FHIR's answers,
    the hot routes' included, carry none of it, only the ``nosniff`` every answer carries
    (and ``no-store``: ``tests/api/test_api_http_manners.py``)."""
    _, patient_id = pages_world.patient(0)
    answers = [
        client.get("/health/live"),
        client.get(f"/patients/{patient_id}/list", headers=auth(GP_TOKEN)),
        client.get("/fhir/metadata"),
        client.get("/"),  # the root's redirect to the pages is not a page
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 303]
    for answer in answers:
        found = {name for name in EXPECTED if name in answer.headers}
        assert found == {"x-content-type-options"}, answer.request.url
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"]


def test_the_error_page_of_an_unexpected_failure_carries_them_too(pages_world):
    """An unexpected failure is answered by Starlette's server-error layer, outside the layer
    that adds the headers: its error page adds them itself, once."""

    def broken() -> None:
        raise RuntimeError("a bug")

    pages_world.app.add_api_route("/app/broken", broken)
    client = TestClient(pages_world.app, raise_server_exceptions=False)
    answer = client.get("/app/broken")
    assert answer.status_code == 500
    assert "text/html" in answer.headers["content-type"]
    _protected(answer)
    assert answer.headers.get_list("x-frame-options") == ["DENY"]
    request_id = answer.headers.get_list("x-request-id")
    assert len(request_id) == 1 and f"<code>{request_id[0]}</code>" in answer.text
