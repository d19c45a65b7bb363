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
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import threading
import time
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
