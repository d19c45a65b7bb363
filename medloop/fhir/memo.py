"""Small memos of pure functions, for the FHIR layer's per-request work that repeats (the
dosages prescribers send, the searches clients repeat): ``Memo``, an LRU of answers by a key
that is the input's exact content, shared by the threads of a process."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock
from typing import Any, Generic, TypeVar

Found = TypeVar("Found")


class Memo(Generic[Found]):
    """What a pure function answered for the last ``size`` distinct inputs, by a key that is
    the input's exact content (``content_key``); only answers are kept (a refusal is computed
    again). Answers are shared by every request of the process: they must never be changed.
    An input larger than ``largest`` (its ``weight``: characters or bytes) is computed and not
    kept, so that what the memo holds stays small whatever clients send."""

    def __init__(self, size: int, largest: int = 4096) -> None:
        self.size = size
        self.largest = largest
        self._found: OrderedDict[Hashable, Found] = OrderedDict()
        self._lock = Lock()

    def get(self, key: Hashable, compute: Callable[[], Found], weight: int = 0) -> Found:
        if weight > self.largest:
            return compute()
        with self._lock:
            found = self._found.get(key, _ABSENT)
            if found is not _ABSENT:
                self._found.move_to_end(key)
                return found  # type: ignore[return-value]
        found = compute()
        with self._lock:
            self._found[key] = found
            if len(self._found) > self.size:
                self._found.popitem(last=False)
        return found


_ABSENT = object()


def content_key(value: Any) -> str:
    """The exact content of a value parsed from JSON, as a key: ``repr`` tells every JSON
    type apart (``1``, ``1.0``, ``True`` and ``"1"``; a float to its last bit)."""
    return repr(value)
