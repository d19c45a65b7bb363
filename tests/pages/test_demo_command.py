"""``medloop demo`` as a person meets it: the first thing it prints is the address to open and
who to sign in as, and a signed-out browser opening that address reaches the DEMO sign-in."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx

from tests.pages.helpers import free_port


def _demo(tmp_path) -> tuple[int, httpx.Response | None, str]:
    """``medloop demo`` on a free port: the port, the page at ``/`` (``None`` when another test
    process took the port between its choice and the bind: ours ended, or the page was not
    ours), and what the process printed."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from medloop.cli import app; app()", "demo", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    page = None
    try:
        for _ in range(300):
            if process.poll() is not None:
                break
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=True, timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        if process.poll() is not None:  # the answer, if any, came from another process
            page = None
    finally:
        process.terminate()
        output, errors = process.communicate(timeout=10)
    # The demo prints its address before it serves: a page fetched before it printed came from
    # another test process that took the port meanwhile (seen in CI: an empty output).
    taken = f"http://127.0.0.1:{port}/" not in output
    if taken:
        page = None
    assert page is not None or taken or "address already in use" in errors.lower(), errors
    return port, page, output


def test_demo_prints_the_address_first_and_serves_the_demo_sign_in(tmp_path):
    for _ in range(3):  # a port taken by a parallel test process is chosen again
        port, page, output = _demo(tmp_path)
        if page is not None:
            break
    assert page is not None and page.status_code == 200
    assert str(page.url).endswith("/app/sign-in")
    for role in ("Lege", "Sykepleier", "Farmasøyt", "Pasient"):
        assert f'<span class="person-role">{role}' in page.text
    first = next(line for line in output.splitlines() if line.strip())
    assert (
        first == f"Open http://127.0.0.1:{port}/ in a browser and sign in as a demo person "
        "(DEMO sign-in, no password):"
    )
    assert re.search(r"^\s+Sykepleier\s+Nina Nilsen", output, re.M)
    assert output.index("Open http://") < output.index("Bearer tokens")
