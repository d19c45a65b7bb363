"""A bounded least-recently-used map, safe across the app's threads: what a process keeps of
what it read or drew (the ward chart's plans, ``store.plan_cache``; the timeline's pictures,
``pages.timeline.DRAWN``). It imports nothing of medloop, so that any layer may keep with it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    """At most ``capacity`` values by key; a put beyond it drops the least recently used (a get
    or a put uses a key). A value is kept as given, never copied: keep only what no one
    changes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._found: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._found[key] = value
            self._found.move_to_end(key)
            while len(self._found) > self.capacity:
                self._found.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._found.clear()

    def __len__(self) -> int:
        return len(self._found)
