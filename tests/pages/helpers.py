"""Helpers for the pages' tests (browser and TestClient), shared by every page module's tests.

- ``PagesWorld`` / ``demo_app``: the demo world (``medloop.demo.build``) in a fresh database and
  the app with the demo sign-in on; ``serve`` runs it with uvicorn in a thread on a free port
  from ``MEDLOOP_TEST_PAGES_PORTS`` (default ``9100-9199``).
- ``sign_in(page, base_url, role)``: the demo sign-in as a person of that Norwegian role
  (``Lege``, ``Sykepleier``, ``Farmasøyt``, ``Pasient``), clicking the button by its accessible
  name, exactly as other tools drive the demo.
- ``assert_no_axe_violations(page)``: axe-core (``axe-playwright-python``) on the page as it is
  now; fails listing every violation with its nodes.
- ``screenshots(page, name)``: the page at 768 px and at 1280 px wide, full height, saved as
  ``<artifacts>/<name>-768.png`` and ``-1280.png`` (``test-artifacts/pages`` in the repository,
  gitignored; ``MEDLOOP_TEST_ARTIFACTS`` overrides the folder).
- ``client_signed_in(client, person)`` and ``csrf_of(html)``: TestClient sign-in for fast tests.
- ``bedside(client, world, index)``, ``chart_links(html)``, ``chart_link(html, drug)``,
  ``prn_link(html, drug)``, ``charting_form(client, link)`` and
  ``chart_given(client, link, pack)``: the nurse's steps at the bedside with a TestClient
  (the resident confirmed by wristband, a due dose's charting form, the dose given, scanned).
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from medloop import demo
from medloop.api.app import create_app
from medloop.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("MEDLOOP_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("MEDLOOP_TEST_ARTIFACTS") or REPO / "test-artifacts") / "pages"
WIDTHS = (768, 1280)


BUILT = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
"""When the test demo world is built (Sunday noon in Oslo): admitted, 48 h planned."""
MORNING = datetime(2026, 12, 7, 7, 5, tzinfo=UTC)
"""The morning round the tests walk: Monday 08:05 in Oslo, the 08:00 doses due."""


class Clock:
    """The app's clock in the tests: ``clock.at`` is now (set it to move time)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass
class PagesWorld:
    engine: Engine
    world: demo.DemoWorld
    app: Any
    clock: Clock
    base_url: str = ""

    def patient(self, index: int) -> tuple[str, Any]:
        """(national id, patient id) of ``demo.RESIDENTS[index]``."""
        national_id = demo.national_id(demo.RESIDENTS[index].birth, 100 + 37 * index)
        return national_id, self.world.patients[national_id]


def demo_app(
    engine: Engine,
    *,
    clock: Any = None,
    built_at: datetime = BUILT,
    now: datetime = MORNING,
    **settings: Any,
) -> PagesWorld:
    """The demo world on ``engine`` (built at ``built_at``) and the app over it with the demo
    sign-in, its clock at ``now`` (or ``clock``, a callable, as given)."""
    base = dataclasses.replace(Settings.from_env(), demo_sign_in=True, **settings)
    ticking = clock if isinstance(clock, Clock) else Clock(now)
    world = demo.build(engine, base.demo_catalogue, now=clock() if clock else built_at)
    app = create_app(base, engine=engine, clock=clock or ticking)
    return PagesWorld(engine, world, app, ticking)


def _port_range() -> range:
    low, _, high = os.environ.get("MEDLOOP_TEST_PAGES_PORTS", "9100-9199").partition("-")
    return range(int(low), int(high) + 1)


def free_port() -> int:
    for port in _port_range():
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {os.environ.get('MEDLOOP_TEST_PAGES_PORTS', '9100-9199')}")


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a thread; yields its base URL (no trailing slash)."""
    import uvicorn

    for _ in range(5):
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if server.started:
            break
        server.should_exit = True
        thread.join(5)
    else:
        raise RuntimeError("the pages server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def sign_in(page: Any, base_url: str, role: str, name: str | None = None) -> None:
    """Open ``/`` signed out, land on the demo sign-in and press the button of the person whose
    accessible name has ``role`` (Norwegian) and, when given, ``name``."""
    page.goto(base_url + "/")
    pattern = re.escape(role) if name is None else f"{re.escape(name)}.*{re.escape(role)}"
    page.get_by_role("button", name=re.compile(pattern)).first.click()
    # the click returns before the landing page has replaced the sign-in page
    page.wait_for_url(lambda address: "/app/sign-in" not in address)
    page.wait_for_load_state()


def assert_no_axe_violations(page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    violations = results.response.get("violations", [])
    if violations:
        lines = [f"{page.url}: {len(violations)} axe violation(s)"]
        for found in violations:
            lines.append(f"- {found['id']} ({found['impact']}): {found['help']}")
            for node in found["nodes"][:5]:
                lines.append(f"    {node['target']}: {node.get('failureSummary', '')[:300]}")
        raise AssertionError("\n".join(lines))


def screenshots(page: Any, name: str, folder: Path | None = None) -> list[Path]:
    """The page at each width in ``WIDTHS`` (full height); the viewport is restored after."""
    target = folder or ARTIFACTS
    target.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    saved = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        path = target / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        saved.append(path)
    if before:
        page.set_viewport_size(before)
    return saved


_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


def client_signed_in(client: Any, person: str) -> Any:
    """Sign ``client`` (a TestClient) in through the demo sign-in as ``person`` (a key of
    ``medloop.pages.signin.demo_people``: nurse, ward-admin, gp, pharmacist, patient)."""
    page = client.get("/app/sign-in")
    answer = client.post(
        "/app/sign-in/demo",
        data={"csrf_token": csrf_of(page.text), "person": person},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return client


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


_CHART_LINK = re.compile(
    r'href="(/app/nurse/[^"]+/chart\?dose=[^"]+)"[^>]*aria-label="Dokumenter ([^"]+)"'
)


def bedside(client: Any, world: PagesWorld, index: int) -> tuple[str, str]:
    """Demo resident ``index`` confirmed by wristband (their national id, as a scanner types
    it) by the nurse ``client`` is signed in as: (the bedside page's html, the patient id)."""
    national_id, patient_id = world.patient(index)
    page = client.get(f"/app/nurse/residents/{patient_id}/bedside")
    answer = client.post(
        f"/app/nurse/residents/{patient_id}/bedside",
        data={"csrf_token": csrf_of(page.text), "wristband": national_id},
    )
    assert answer.status_code == 303, answer.text[:2000]
    return client.get(answer.headers["location"]).text, str(patient_id)


def chart_links(html: str) -> list[tuple[str, str]]:
    """The bedside page's charting links of planned doses: (address, the medicine's name)."""
    return [(link.replace("&amp;", "&"), name) for link, name in _CHART_LINK.findall(html)]


def chart_link(html: str, drug: str) -> str:
    """The charting address of the first dose whose medicine's name starts with ``drug``."""
    return next(link for link, name in chart_links(html) if name.startswith(drug))


_PRN_LINK = re.compile(r'href="([^"]+/chart\?identity=scan)">Gi ved behov: ([^<]+)<')


def prn_link(html: str, drug: str) -> str:
    """The bedside page's address of the PRN charting form of the first as-needed medicine
    whose name starts with ``drug``."""
    return next(
        link.replace("&amp;", "&")
        for link, name in _PRN_LINK.findall(html)
        if name.startswith(drug)
    )


def charting_address(link: str) -> str:
    """Where the charting form at ``link`` is saved: its address without the ``identity`` the
    bedside page passes on (the form carries it)."""
    parts = urllib.parse.urlsplit(link)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "identity"]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def charting_form(client: Any, link: str) -> tuple[str, str]:
    """The charting form at ``link``: (its html, the address it is saved to)."""
    answer = client.get(link)
    assert answer.status_code == 200, answer.text[:2000]
    return answer.text, charting_address(link)


def chart_given(client: Any, link: str, pack: str) -> Any:
    """The dose of the charting form at ``link`` saved as given, the pack ``pack`` scanned;
    the answer."""
    form, target = charting_form(client, link)
    charting = re.search(r'name="administration_id" value="([^"]*)"', form)
    return client.post(
        target,
        data={
            "csrf_token": csrf_of(form),
            "identity": "scan",
            "outcome": "given",
            "pack": pack,
            "administration_id": (charting[1] if charting else "") or str(uuid.uuid4()),
        },
    )
