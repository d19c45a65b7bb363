"""Two apps over two copies of one database, for tests that hold a fast path to the path it
stands in for: the same requests to both must leave the same rows behind
(``tests/api/test_api_hot_routes.py``, ``tests/fhir/test_fhir_lean_reads.py``)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from medloop.store.db import normalise_url


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
