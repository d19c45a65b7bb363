"""Every link a person's pages show leads somewhere that person may go: followed from every
page the person may open (the home page, and each kind of patient page for each patient), no
linked page answers a refusal, and no page answers a server error."""

from __future__ import annotations

import html
import re
from collections import deque

import pytest
from fastapi.testclient import TestClient

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


def _crawled(pages_world, person: str) -> tuple[set[str], list[tuple[str, int, str | None]]]:
    """The pages reached (GET only) and those that answered a refusal reached by a link, or
    an error: (path, status, the page that linked it)."""
    client = TestClient(pages_world.app, follow_redirects=False, raise_server_exceptions=False)
    client_signed_in(client, person)
    queue = deque((start, None, 0) for start in _starts(pages_world))
    seen: set[str] = set()
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
        if depth < _DEPTH and answer.headers["content-type"].startswith("text/html"):
            for link in _LINK.findall(answer.text):
                queue.append((html.unescape(link), path, depth + 1))
    return seen, bad


@pytest.mark.parametrize("person", ["nurse", "ward-admin", "gp", "pharmacist", "patient"])
def test_every_link_on_a_persons_pages_leads_where_that_person_may_go(pages_world, person):
    seen, bad = _crawled(pages_world, person)
    assert len(seen) > 3  # more than the start pages: the links were followed
    assert bad == []
