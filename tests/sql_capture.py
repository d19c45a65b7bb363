"""Every distinct SQL statement the test suite sends to a database, with how often, one test
that sent it and where in medloop's code it comes from, so that
``tests/ops/test_citus_routing.py`` can check each one that touches a table of patient data
routes by patient (docs/scaling.md). Installed once for the session by ``tests/conftest.py``: one
listener on every engine; per statement a dict update and a walk up the stack to medloop's
innermost frames."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

REPO = str(Path(__file__).resolve().parent.parent) + os.sep
_CODE = tuple(REPO + package + os.sep for package in ("medloop", "fest", "interactions"))


@dataclass
class Seen:
    dialect: str
    statement: str  # the first text seen of this shape
    count: int
    test: str  # the test that sent it first
    #: where it was sent from: up to three of medloop's innermost frames, "path:function"
    #: joined by " < " (innermost first); "" when the test's own code sent it
    origins: set[str] = field(default_factory=set)


#: (dialect, shape) -> what was seen; the shape is the text with runs of placeholders in a list
#: (an expanded IN, a multi-row VALUES) collapsed, so that their lengths do not multiply entries.
STATEMENTS: dict[tuple[str, str], Seen] = {}

_PLACEHOLDER = r"(?:\?|%s|%\(\w+\)s|\$\d+)"
_RUN = re.compile(rf"\(\s*{_PLACEHOLDER}(?:\s*,\s*{_PLACEHOLDER})*\s*\)")
_ROWS = re.compile(r"\(…\)(?:\s*,\s*\(…\))+")
_SPACE = re.compile(r"\s+")


def shape(statement: str) -> str:
    return _ROWS.sub("(…)", _RUN.sub("(…)", _SPACE.sub(" ", statement).strip()))


#: Wrappers that send no statement of their own: left out of an origin, so that a decorated
#: read has the same origin as before it was decorated.
_TRANSPARENT = frozenset({"medloop/store/columns.py:named"})


def origin() -> str:
    """medloop's innermost frames on the stack (up to three, a decorator's wrapper skipped), or
    "" when none is."""
    frames: list[str] = []
    frame = sys._getframe(2)
    while frame is not None and len(frames) < 3:
        path = frame.f_code.co_filename
        if path.startswith(_CODE):
            where = f"{path[len(REPO) :]}:{frame.f_code.co_name}"
            if where not in _TRANSPARENT and (not frames or frames[-1] != where):
                frames.append(where)
        elif frames and path.startswith(REPO + "tests"):
            break
        frame = frame.f_back
    return " < ".join(frames)


def _seen(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
    key = (conn.dialect.name, shape(statement))
    found = STATEMENTS.get(key)
    if found is None:
        test = os.environ.get("PYTEST_CURRENT_TEST", "(outside a test)").rsplit(" ", 1)[0]
        found = STATEMENTS[key] = Seen(conn.dialect.name, statement, 0, test)
    found.count += 1
    found.origins.add(origin())


def install() -> None:
    if not event.contains(Engine, "before_cursor_execute", _seen):
        event.listen(Engine, "before_cursor_execute", _seen)


def report(directory: Path, worker: str) -> None:
    """Under pytest-xdist: this worker's share of the statements, for the controller."""
    shares = [
        {
            "dialect": seen.dialect,
            "statement": seen.statement,
            "count": seen.count,
            "test": seen.test,
            "origins": sorted(seen.origins),
        }
        for seen in STATEMENTS.values()
    ]
    (directory / f"sql-{worker}.json").write_text(json.dumps(shares))


def reported(directory: Path) -> list[Seen] | None:
    """Every worker's share merged (``None`` when no worker reported)."""
    paths = sorted(directory.glob("sql-*.json"))
    if not paths:
        return None
    merged: dict[tuple[str, str], Seen] = {}
    for path in paths:
        for item in json.loads(path.read_text()):
            key = (item["dialect"], shape(item["statement"]))
            found = merged.get(key)
            if found is None:
                merged[key] = Seen(
                    item["dialect"],
                    item["statement"],
                    item["count"],
                    item["test"],
                    set(item["origins"]),
                )
            else:
                found.count += item["count"]
                found.origins.update(item["origins"])
    return list(merged.values())
