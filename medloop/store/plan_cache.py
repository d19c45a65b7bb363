"""The ward chart's planned doses of a day, as last read, kept per engine so that the ward's
overview need not read and build ~1 000 planned doses from their stored records at every look.

A ward-day (``ward_id``, the day's bounds) maps each resident with planned doses on it to what
was read for them (``store.administration.planned_on_ward``) and derived from it alone (the
chart's lines before any charting: ``loop.administration.queries.ward_lines``), tagged with
the resident's *plan mark*: how many of their planned doses fall on that ward-day and how many
schedules they have. Both tables are append-only (migration 0005), so the mark only grows and an
unchanged mark is an unchanged set of rows: what is kept for a mark stays true while the mark
does, in this process or any other. Each read compares the marks (one query,
``ward_plan_marks``) and reads afresh only the residents whose mark moved (a changed dosage, a
roll-forward, a new resident); the chartings, which change all day, are read every time.

Only what a transaction that has written no planned dose or schedule read is put here (the
ward chart is a read: its transaction appends only audit records), so a rolled-back plan is
never kept. With ``MEDLOOP_VERIFY_STATE_CACHE`` (the test suite) every use is checked against
a fresh read, as the patients' state cache is.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Hashable, Mapping
from typing import Any

from sqlalchemy import Engine

from medloop.lru import Lru

CAPACITY = 16
"""Ward-days kept per engine (least recently used go first). A 60-resident ward's day of 960
doses takes ~2.3 MB kept with nothing charted and ~5 MB with half of it charted (tracemalloc,
2026-12-05), so at most ~80 MB: a nursing home's wards today, and a few other days asked for."""


class PlanCache(Lru[Hashable, Mapping[Any, Any]]):
    """The ward-days of one engine (``medloop.lru``: least recently used go first, safe across
    the app's threads); a value is never changed once put (a read that finds marks moved puts a
    new one)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        super().__init__(capacity)


_caches: weakref.WeakKeyDictionary[object, PlanCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def plan_cache_for(engine: Engine) -> PlanCache:
    """The cache of ``engine``'s database: one per connection pool (as ``state_cache.cache_for``),
    gone with it."""
    with _caches_lock:
        found = _caches.get(engine.pool)
        if found is None:
            found = _caches[engine.pool] = PlanCache()
        return found
