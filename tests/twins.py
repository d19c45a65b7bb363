"""Two apps over two copies of one database, for tests that hold a fast path to the path it
stands in for: the same requests to both must leave the same rows behind
(``tests/api/test_api_hot_routes.py``, ``tests/api/test_api_lean_routes.py``,
``tests/fhir/test_fhir_lean_reads.py``, ``tests/fhir/test_fhir_lean_creates.py``)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from medloop.api.app import create_app
from medloop.api.config import ApiSettings
from medloop.store.db import make_engine, normalise_url


class Ticking:
    """A clock one second further than ``start`` at each call: two apps each given one see
    the same moments for the same requests."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return self.start + timedelta(seconds=self.calls)


@dataclass
class Served:
    """What ``lean_and_fastapi`` saw: each app's answers, whether each request took the lean
    path, and each database's rows afterwards."""

    answers: dict[str, list]
    took: dict[str, list[bool]]
    rows: dict[str, dict[str, list[tuple]]]


def _unused() -> None:
    """A dependency no route has: overriding it changes nothing but the handler taken."""


def lean_and_fastapi(
    db_url: str,
    suffix: str,
    start: datetime,
    requests: Sequence[Callable[[TestClient, int], Any]],
    served: list,
    volatile: frozenset[str],
    mask: Callable[[Any], Callable[[Any], Any]],
) -> Served:
    """Two apps over the database at ``db_url`` and a copy of it, each with its own
    ``Ticking`` clock from ``start``: one serving as it does, one with a dependency override
    (any at all sends every route through FastAPI's handler). Each of ``requests`` is made to
    the FastAPI one, then to the lean one; a request took the lean path when it added one
    item to ``served`` (the test's counter on the lean path). ``mask(engine)`` masks that
    database's values for ``table_rows``."""
    with twin_database(db_url, suffix) as twin_url:
        engines = {"lean": make_engine(db_url), "fastapi": make_engine(twin_url)}
        try:
            apps = {
                which: create_app(
                    ApiSettings.from_env("sqlite://"), engine=found, clock=Ticking(start)
                )
                for which, found in engines.items()
            }
            apps["fastapi"].dependency_overrides[_unused] = _unused
            answers: dict[str, list] = {"lean": [], "fastapi": []}
            took: dict[str, list[bool]] = {"lean": [], "fastapi": []}
            with TestClient(apps["lean"]) as lean, TestClient(apps["fastapi"]) as plain:
                for n, request in enumerate(requests):
                    for which, client in (("fastapi", plain), ("lean", lean)):
                        before = len(served)
                        answers[which].append(request(client, n))
                        took[which].append(len(served) == before + 1)
            rows = {
                which: table_rows(found, volatile, mask(found)) for which, found in engines.items()
            }
        finally:
            for found in engines.values():
                found.dispose()
    return Served(answers, took, rows)


@contextmanager
def twin_database(db_url: str, suffix: str = "twin") -> Iterator[str]:
    """The URL of a copy of the database at ``db_url`` (its engines disposed first), dropped
    afterwards: a copied file on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        copy = f"{url.database}.{suffix}"
        shutil.copyfile(str(url.database), copy)
        yield url.set(database=copy).render_as_string(hide_password=False)
        return
    admin = create_engine(normalise_url(db_url), isolation_level="AUTOCOMMIT")
    name = f"{url.database}_{suffix}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def table_rows(
    engine, volatile: frozenset[str], mask: Callable[[Any], Any] = lambda value: value
) -> dict[str, list[tuple]]:
    """Every row of every table in a stable order, the ``volatile`` columns left out and every
    other value passed through ``mask``."""
    found = {}
    with engine.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            result = conn.execute(text(f'SELECT * FROM "{table}"'))
            names = list(result.keys())
            rows = [
                tuple(
                    mask(value)
                    for name, value in zip(names, row, strict=True)
                    if name not in volatile
                )
                for row in result
            ]
            found[table] = sorted(rows, key=repr)
    return found


COMMAND_ID = re.compile(r"\b[0-9a-f]{32}\b")
"""A command's random id as it appears inside stored text (its hex form)."""


def masked(value: Any) -> Any:
    """``value`` with every command id in its strings put as ``<command>`` (dicts and lists
    walked): what two runs of the same requests differ in inside JSON values."""
    if isinstance(value, str):
        return COMMAND_ID.sub("<command>", value)
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value
