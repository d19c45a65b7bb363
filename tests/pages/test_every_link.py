"""Every link and form a person's pages show lead somewhere that person may go: followed from
every page the person may open (the home page, and each kind of patient page for each
patient), no linked page answers a refusal, no page answers a server error, and no form
shown, submitted as shown, is refused."""

from __future__ import annotations

import html
import re
from collections import deque

import pytest
from fastapi.testclient import TestClient
from lxml import html as lxml_html

from tests.pages.helpers import client_signed_in

_LINK = re.compile(r'href="(/app[^"#]*)"')
_DEPTH = 4
"""Links followed from a start page: the home page reaches every page of a role within four."""


def _starts(pages_world) -> list[str]:
    """Every kind of page, for each of the demo's patients: whichever of them a person may
    open (a form finds a patient, and an address can be typed) are where the links start.
    Those the person may not open answer a refusal, which is no link's fault."""
    patients = [str(p) for p in pages_world.world.patients.values()]
    starts = ["/app/", "/app/reports", f"/app/reports/wards/{pages_world.world.ward_id}"]
    for p in patients:
        starts += [
            f"/app/gp/patients/{p}",
            f"/app/gp/patients/{p}/timeline",
            f"/app/pharmacy/patients/{p}",
            f"/app/pharmacy/patients/{p}/multidose",
            f"/app/nurse/residents/{p}",
            f"/app/nurse/residents/{p}/wristband",
        ]
    return starts


def _crawled(
    client: TestClient, pages_world
) -> tuple[dict[str, str], list[tuple[str, int, str | None]]]:
    """The pages reached (GET only) with their HTML, and those that answered a refusal reached
    by a link, or an error: (path, status, the page that linked it)."""
    queue = deque((start, None, 0) for start in _starts(pages_world))
    seen: set[str] = set()
    pages: dict[str, str] = {}
    bad: list[tuple[str, int, str | None]] = []
    while queue:
        path, linked_from, depth = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        answer = client.get(path)
        if answer.is_redirect:
            target = answer.headers["location"]
            if target.startswith("/app"):
                queue.append((target, linked_from, depth))
            continue
        if answer.status_code >= 500 or (answer.status_code >= 400 and linked_from is not None):
            bad.append((path, answer.status_code, linked_from))
            continue
        if answer.status_code >= 400:  # a start page this person may not open
            continue
        assert answer.status_code == 200, (path, answer.status_code)
        if answer.headers["content-type"].startswith("text/html"):
            pages[path] = answer.text
        if depth < _DEPTH and answer.headers["content-type"].startswith("text/html"):
            for link in _LINK.findall(answer.text):
                queue.append((html.unescape(link), path, depth + 1))
    return pages, bad


def _signed_in(pages_world, person: str) -> TestClient:
    client = TestClient(pages_world.app, follow_redirects=False, raise_server_exceptions=False)
    return client_signed_in(client, person)


PEOPLE = ["nurse", "ward-admin", "gp", "pharmacist", "patient"]

_EVERYONES = ("/app/sign-out", "/app/language", "/app/sign-in")
"""Forms every page has (or the signed-out one): not about what the reader may do."""


@pytest.mark.parametrize("person", PEOPLE)
def test_every_link_on_a_persons_pages_leads_where_that_person_may_go(pages_world, person):
    pages, bad = _crawled(_signed_in(pages_world, person), pages_world)
    assert len(pages) > 1  # more than the page a person lands on: the links were followed
    assert bad == []


@pytest.mark.parametrize("person", PEOPLE)
def test_every_form_on_a_persons_pages_is_one_that_person_may_submit(pages_world, person):
    """Each form submitted as the page shows it (its own values, the session's CSRF token):
    it may be refused for its content (422, 409, 412) or saved, never refused for who sent
    it (403). Writes the reader may do are made; the answers are what is checked."""
    client = _signed_in(pages_world, person)
    pages, _ = _crawled(client, pages_world)
    refused = []
    submitted = 0
    for path, text in pages.items():
        for form in lxml_html.fromstring(text).forms:
            action = form.action or path
            if (form.method or "GET").upper() != "POST" or action.startswith(_EVERYONES):
                continue
            submitted += 1
            answer = client.post(action, data=dict(form.form_values()))
            assert answer.status_code < 500, (action, answer.status_code, path)
            if answer.status_code == 403:
                refused.append((action, path))
    assert refused == []
    if person != "patient":  # a patient's own pages only read
        assert submitted > 0
