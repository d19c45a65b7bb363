"""The independent FHIR validator: ``@medplum/core``'s ``validateResource`` run with the
machine's Node.js (``validator/validate.mjs``, installed by ``./dev`` with ``npm ci`` from the
pinned ``validator/package-lock.json``), one long-lived process for the whole test session.

``check(resource)`` raises ``AssertionError`` with the validator's issues when it refuses the
resource. Without Node.js or the installed packages it is unavailable: the FHIR tests then
validate with ``fhir.resources`` only and ``test_the_independent_validator_runs`` skips —
except under CI (``CI`` set), where it fails instead.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "validator"
SCRIPT = HERE / "validate.mjs"


def missing() -> str | None:
    """Why the validator cannot run here (``None``: it can)."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HERE / "node_modules" / "@medplum" / "core").is_dir():
        return f"run `npm ci` in {HERE} (./dev does)"
    return None


class Validator:
    def __init__(self) -> None:
        self._process = subprocess.Popen(
            ["node", str(SCRIPT)],
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        ready = self._process.stdout.readline()  # type: ignore[union-attr]
        if json.loads(ready or "{}").get("ready") is not True:
            raise RuntimeError(f"the FHIR validator did not start: {ready!r}")
        atexit.register(self.close)

    def issues(self, resource: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            assert self._process.stdin is not None and self._process.stdout is not None
            self._process.stdin.write(json.dumps(resource) + "\n")
            self._process.stdin.flush()
            answer = json.loads(self._process.stdout.readline())
        return [] if answer["ok"] else answer["issues"]

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()  # type: ignore[union-attr]
            self._process.wait(timeout=10)


_validator: Validator | None = None
_start = threading.Lock()


def validator() -> Validator | None:
    """The session's validator; ``None`` when it cannot run here (outside CI)."""
    global _validator
    why = missing()
    if why is not None:
        if os.environ.get("CI"):
            raise AssertionError(f"the independent FHIR validator must run in CI: {why}")
        return None
    with _start:
        if _validator is None:
            _validator = Validator()
    return _validator


def check(resource: dict[str, Any]) -> None:
    found = validator()
    if found is None:
        return
    issues = found.issues(resource)
    assert not issues, f"{resource.get('resourceType')}/{resource.get('id')}: {issues}"
