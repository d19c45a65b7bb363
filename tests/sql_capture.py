"""Every distinct SQL statement the test suite sends to a database, with how often and one test
that sent it, so that ``tests/ops/test_citus_routing.py`` can check each one that touches a
table of patient data routes by patient (docs/scaling.md). Installed once for the session by
``tests/conftest.py``: one listener on every engine, a dict update per statement."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.engine import Engine


@dataclass
class Seen:
    dialect: str
    statement: str  # the first text seen of this shape
    count: int
    test: str  # the test that sent it first


#: (dialect, shape) -> what was seen; the shape is the text with runs of placeholders in a list
#: (an expanded IN, a multi-row VALUES) collapsed, so that their lengths do not multiply entries.
STATEMENTS: dict[tuple[str, str], Seen] = {}

_PLACEHOLDER = r"(?:\?|%s|%\(\w+\)s|\$\d+)"
_RUN = re.compile(rf"\(\s*{_PLACEHOLDER}(?:\s*,\s*{_PLACEHOLDER})*\s*\)")
_ROWS = re.compile(r"\(…\)(?:\s*,\s*\(…\))+")
_SPACE = re.compile(r"\s+")


def shape(statement: str) -> str:
    return _ROWS.sub("(…)", _RUN.sub("(…)", _SPACE.sub(" ", statement).strip()))


def _seen(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
    key = (conn.dialect.name, shape(statement))
    found = STATEMENTS.get(key)
    if found is None:
        test = os.environ.get("PYTEST_CURRENT_TEST", "(outside a test)").rsplit(" ", 1)[0]
        STATEMENTS[key] = Seen(conn.dialect.name, statement, 1, test)
    else:
        found.count += 1


def install() -> None:
    if not event.contains(Engine, "before_cursor_execute", _seen):
        event.listen(Engine, "before_cursor_execute", _seen)
