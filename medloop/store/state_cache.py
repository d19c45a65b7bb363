"""Patients' states as last committed, kept per engine so that a command need not read and
parse a patient's whole history again.

A cached state is tagged with the patient's ``revision`` (``store.patients.patient``), which
every command bumps under the patient's row lock. A command that bumps the revision to ``r``
may use the state cached for ``r - 1``: no other transaction can have changed the patient in
between, in this process or any other. Reads use the state cached for the current revision.
A state is put only after the transaction that produced it committed, so a rolled-back
command leaves the cache as it was (and its bump undone).

Each cached state carries a ``memo``: a dict for what is derived from that state alone (the
API's rendered list body), kept as long as the state is and gone with it when a command puts
the next revision's state, so what is derived once per revision is derived once.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from uuid import UUID

from sqlalchemy import Engine

from medloop.domain.state import PatientState
from medloop.settings import current

VERIFY = current().ops.verify_state_cache
"""Test setting: every use of a cached state is checked against a fresh read of the tables."""

CAPACITY = 4096
"""Patients kept per engine (least recently used go first)."""


class StateCache:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._states: OrderedDict[UUID, tuple[int, PatientState, dict]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, patient_id: UUID, revision: int) -> PatientState | None:
        """The state cached for exactly ``revision``, or ``None``."""
        with self._lock:
            found = self._states.get(patient_id)
            if found is None or found[0] != revision:
                return None
            self._states.move_to_end(patient_id)
            return found[1]

    def put(self, patient_id: UUID, revision: int, state: PatientState) -> None:
        with self._lock:
            current = self._states.get(patient_id)
            if current is not None and current[0] >= revision:
                return  # the first state put for a revision stays: it is the command's own
            self._states[patient_id] = (revision, state, {})
            self._states.move_to_end(patient_id)
            while len(self._states) > self._capacity:
                self._states.popitem(last=False)

    def memo(self, patient_id: UUID, revision: int) -> dict | None:
        """The memo of the state cached for exactly ``revision`` (``None``: none is)."""
        with self._lock:
            found = self._states.get(patient_id)
            return None if found is None or found[0] != revision else found[2]

    def clear(self) -> None:
        with self._lock:
            self._states.clear()


_caches: weakref.WeakKeyDictionary[object, StateCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


class StateCacheDiverged(AssertionError):
    """A cached state differs from the stored one (only checked with ``VERIFY``)."""


def verified(cached: PatientState, fresh: PatientState) -> PatientState:
    if cached != fresh or cached.dispense_recorded_at != fresh.dispense_recorded_at:
        raise StateCacheDiverged(
            f"the cached state of patient {fresh.patient.id} differs from the stored one"
        )
    return cached


def cache_for(engine: Engine) -> StateCache:
    """The cache of ``engine``'s database: one per connection pool, which an engine shares with
    the engines ``execution_options`` derives from it, and gone with it."""
    pool = engine.pool
    # The last pool asked about and its cache, both held weakly (calling a weak reference is
    # no Python frame, ``WeakKeyDictionary.get`` is): a process's commands use one pool.
    last = _last
    if last[0]() is pool:
        found = last[1]()
        if found is not None:
            return found
    return _cache_of(pool)


def _cache_of(pool: object) -> StateCache:
    global _last
    with _caches_lock:
        found = _caches.get(pool)
        if found is None:
            found = _caches[pool] = StateCache()
        _last = (weakref.ref(pool), weakref.ref(found))
        return found


def _gone() -> None:
    return None


_last: tuple[Callable[[], object], Callable[[], StateCache | None]] = (_gone, _gone)
"""``(weak reference to a pool, weak reference to its cache)`` of the last ``_cache_of``
(as one tuple, replaced whole: a thread reads a pair that belongs together)."""
