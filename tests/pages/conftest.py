"""Fixtures of the pages' tests (browser and TestClient): see ``tests/pages/helpers.py``.

Browser tests use Playwright driving Debian's chromium (``/usr/bin/chromium``, installed by
``.ci/run``; Playwright's own browser download is not used). Without chromium they skip —
except in CI (``CI`` set), where that is a failure: the browser tests must run there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect

from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.pages.helpers import CHROMIUM, PagesWorld, demo_app, serve


@pytest.fixture
def pages_world(engine) -> PagesWorld:
    """The demo world in a fresh database (SQLite, and PostgreSQL when configured) and the
    app with the demo sign-in."""
    return demo_app(engine)


@pytest.fixture
def browser_world(sqlite_url: str) -> Iterator[PagesWorld]:
    """The demo world in a fresh SQLite database, for the browser tests."""
    found = make_engine(sqlite_url)
    upgrade(found)
    try:
        yield demo_app(found)
    finally:
        found.dispose()


@pytest.fixture
def client(pages_world: PagesWorld) -> Iterator[TestClient]:
    with TestClient(pages_world.app, follow_redirects=False) as found:
        yield found


@pytest.fixture
def live_world(browser_world: PagesWorld) -> Iterator[PagesWorld]:
    """``browser_world`` served on a free port (``live_world.base_url``)."""
    with serve(browser_world.app) as base_url:
        browser_world.base_url = base_url
        yield browser_world


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Per module, not per session: while Playwright's sync API runs, its event loop is this
    # thread's running loop, and a later test in the same process (under pytest-xdist any
    # test may follow a page test) could not call asyncio.run().
    if not Path(CHROMIUM).exists():
        message = f"chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + ": the browser tests must run in CI")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, live_world: PagesWorld) -> Iterator[Any]:
    """A fresh browser context (1280×900, nb-NO, Europe/Oslo) on the live demo world."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="nb-NO", timezone_id="Europe/Oslo"
    )
    context.set_default_timeout(15_000)
    # expect(...)'s retrying assertions wait as long as the actions (Playwright's default is 5 s)
    expect.set_options(timeout=15_000)
    opened = context.new_page()
    # Every browser test also guards the pages' Content-Security-Policy: a script, style,
    # picture or fetch the policy refuses is reported by Chromium on the console, and fails
    # the test that met it, unless it sets ``page.csp_refusals_expected`` and reads
    # ``page.csp_refusals`` itself (``test_security_headers_browser.py``).
    refused: list[str] = []
    opened.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    opened.csp_refusals = refused
    try:
        yield opened
    finally:
        context.close()
    if not getattr(opened, "csp_refusals_expected", False):
        assert not refused, f"the pages' Content-Security-Policy refused: {refused}"
