"""Every log record the test suite emits, kept raw (before the formatter's last-guard
redaction) so that ``tests/ops/test_logs.py`` can prove no call site logs a national id
or a name. Installed on the root logger for the whole session by ``tests/conftest.py``.

Under pytest-xdist each worker process captures its own share: at the end of the session
every worker scans what it captured and writes its findings to the directory the controller
handed it (``report``), and the controller fails the run on any finding (``verdict``), so the
guarantee still covers the whole suite."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from medloop.domain.patient import NationalId

RECORDS: list[str] = []


class Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        parts = [repr(record.msg), repr(record.args)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
            parts.append(logging.Formatter().formatException(record.exc_info))
        RECORDS.append(" ".join(parts))


def install() -> None:
    from medloop.ops import logs

    logs.configure()
    handler = Capture(level=logging.DEBUG)
    handler.set_name("medloop-test-capture")
    logging.getLogger().addHandler(handler)


# -- the scan -------------------------------------------------------------------------------

_ELEVEN = re.compile(r"(?<!\d)\d{11}(?!\d)")


def names_in_test_data() -> list[str]:
    """The names of the people the tests and the demo create."""
    from medloop import demo
    from tests.loop import helpers as loop_helpers

    found = {"Kari Nordmann", "Nordmann"}
    for resident in demo.RESIDENTS:
        found.add(f"{resident.given_name} {resident.family_name}")
        found.add(resident.family_name)
    for module in (demo, loop_helpers):
        for value in vars(module).values():
            personnel = getattr(value, "personnel", None)
            if personnel is not None:
                found.add(personnel.name)
    return sorted(found)


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def national_ids_in(line: str) -> list[str]:
    # A UUID's last group can hold eleven digits that pass the checksum (a request id ending
    # in 27096921468b did): an identifier, not a person. Scan the rest.
    line = _UUID.sub("<uuid>", line)
    found = []
    for candidate in _ELEVEN.findall(line):
        try:
            NationalId(candidate)
        except Exception:  # noqa: BLE001 - not a valid national id
            continue
        found.append(candidate)
    return found


def names_pattern(names: list[str]) -> re.Pattern[str]:
    """Any of ``names`` as a word of its own: a random token (an OpenID Connect nonce such as
    ``nzJH7mAQ2SWBergY3I0q``) that happens to hold a short family name is not that name."""
    words = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{words})(?!\w)")


def leaks(records: list[str]) -> list[str]:
    named = names_pattern(names_in_test_data())
    return [record for record in records if national_ids_in(record) or named.search(record)]


def report(directory: Path, worker: str) -> None:
    """This worker's share: how many records it captured and those that leak."""
    found = {"records": len(RECORDS), "leaks": leaks(RECORDS)}
    (directory / f"logs-{worker}.json").write_text(json.dumps(found))


def verdict(directory: Path) -> str | None:
    """What the workers found together: ``None`` when the logs are clean, else why not."""
    shares = [json.loads(path.read_text()) for path in sorted(directory.glob("logs-*.json"))]
    if not shares:
        return "no worker reported its captured log records"
    found = [record for share in shares for record in share["leaks"]]
    # (That something was captured at all is the ``last`` test's assertion, in its worker: a
    # run of a few tests that log nothing is not a failure.)
    if found:
        return f"{len(found)} log record(s) hold a national id or a name: {found[:3]!r}"
    return None
