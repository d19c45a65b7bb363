"""The canonical JSON of audit records and idempotency keys, and a faster way to the same text.

:func:`dumps` *is* the canonical form: the standard library's encoder with sorted keys, no
whitespace, non-ASCII text as it is (``ensure_ascii=False``), NaN and infinities refused. The
audit chain's hashes and the idempotency keys' fingerprints are over its exact text, and
``medloop audit verify`` recomputes them with it.

orjson writes and reads JSON several times faster (the standard library's encoder was 5 % of a
prescribe's instructions, issue #20), but not the same for every value: it writes a UUID, an
enum, a dataclass, a date-time or an ``orjson.Fragment`` instead of refusing it, NaN and the
infinities as ``null``, a float below 1e-4 otherwise than ``repr`` (``1e-05`` as ``0.00001``,
``1e-09`` as ``1e-9``; every other float as ``repr`` does); it refuses integers beyond 64 bits,
non-string keys, lone surrogates and what nests deeper than 255 levels, which the standard
library writes. So :func:`fast_dumps` and :func:`round_trip` take orjson's text only when

1. ``marshal`` takes the value: it is made of the built-in types themselves (no subclass, no
   enum, UUID, date-time, dataclass or fragment); of those orjson refuses what JSON cannot
   hold (bytes, sets, complex numbers) and what is listed above;
2. orjson writes no float below 1e-4 (a number with ``e-`` or ``0.0000`` in it);
3. the value orjson reads back equals the value: a NaN or infinity, written as ``null``, reads
   back as ``None`` (and a tuple as a list, which only costs the slow way);

and otherwise the standard library's, with its own result or error. ``dumps_alike`` writes with
orjson a value made of values :func:`round_trip` vouched for (``alike``), exact strings,
integers and ``None``: a JSON object's text is its members' texts in key order, so what holds
for the parts holds for the whole. ``tests/store/test_canonical_json.py`` compares them with
the standard library over generated values (hypothesis) and every power of ten.
"""

from __future__ import annotations

import json
import marshal
from typing import Any

import orjson

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)

# Subclasses of str, int, dict and list, dataclasses and date-times go to ``default`` (none:
# refused) instead of being written (marshal refuses them before, this is belt and braces).
_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)
_NUMERAL = frozenset(b"0123456789.")
_BEFORE_A_NUMBER = frozenset(b"[:,")


def dumps(value: Any) -> str:
    """The canonical JSON of ``value`` (raises ``TypeError`` or ``ValueError`` for what JSON
    cannot hold, as ``json`` does)."""
    return _ENCODER.encode(value)


def fast_dumps(value: Any) -> bytes:
    """``dumps(value).encode()``: orjson's text when it is the same (see the module
    docstring), else the standard library's (and its errors)."""
    found = _written(value)
    return dumps(value).encode() if found is None else found[0]


def round_trip(value: Any) -> tuple[str, Any, bool]:
    """:func:`dumps` of ``value``, the value read back from it (tuples become lists, non-string
    keys strings, the keys sorted: what storing ``value`` as JSON and reading it back gives),
    and whether orjson wrote that text (so that :func:`dumps_alike` may write the value read
    back, and values holding it)."""
    text, loaded, written = round_trip_written(value)
    return text, loaded, written is not None


def round_trip_written(value: Any) -> tuple[str, Any, bytes | None]:
    """:func:`round_trip` with, in place of ``alike``, orjson's text (UTF-8) when orjson wrote
    it, else ``None``. That text is also what ``orjson.dumps`` writes of the value read back,
    whose keys are in the text's (sorted) order: the JSON ``store.batch`` sends of it."""
    found = _written(value)
    if found is None:
        text = dumps(value)
        return text, json.loads(text), None
    return found[0].decode(), found[1], found[0]


def dumps_alike(value: Any) -> str:
    """:func:`dumps` of ``value``, written by orjson: for a ``value`` made only of dicts with
    ``str`` keys, lists, values :func:`round_trip` read back with ``alike``, ``str``, ``int``
    and ``None`` (exactly those types; anything orjson refuses takes the standard library's
    way)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, a lone surrogate
        return dumps(value)


def _written(value: Any) -> tuple[bytes, Any] | None:
    """orjson's text of ``value`` and the value read back from it, when the text is
    :func:`dumps`'s; ``None`` when that is not shown."""
    try:
        marshal.dumps(value)
        written = orjson.dumps(value, option=_OPTIONS)
    except (ValueError, TypeError):  # orjson.JSONEncodeError is a TypeError
        return None
    # ``_small_float_in(written)`` written out: each text looked through once for each mark
    # (it looked again for both), without a Python call (three a prescribe, each text with
    # an ``e-`` closing a UUID's group; tests/store/test_canonical_json.py).
    if b"0.0000" in written:
        return None
    at = written.find(b"e-")
    while at > 0:
        start = at
        while start > 0 and written[start - 1] in _NUMERAL:
            start -= 1
        if start < at:
            if start > 0 and written[start - 1] == 45:  # "-"
                start -= 1
            if start == 0 or written[start - 1] in _BEFORE_A_NUMBER:
                return None
        at = written.find(b"e-", at + 2)
    loaded = orjson.loads(written)
    if loaded != value:
        return None
    return written, loaded


#: ``_written`` for the store's writers (``audit``, ``idempotency``): orjson's text (UTF-8)
#: and the value read back when the text is :func:`dumps`'s, else ``None`` (then
#: ``dumps`` and ``json.loads`` as :func:`round_trip_written` goes), without the text decoded
#: to a ``str`` that only :func:`round_trip` needs.
written_and_loaded = _written


def _small_float_in(written: bytes) -> bool:
    """Whether orjson's text ``written`` may hold a float below 1e-4 (``0.0000…`` or a
    negative exponent); the same characters in a string are a false alarm (the slow way).
    ``_written`` asks the same, written out."""
    if b"0.0000" in written:
        return True
    at = written.find(b"e-")
    while at > 0:
        start = at
        while start > 0 and written[start - 1] in _NUMERAL:
            start -= 1
        if start < at:  # digits before the ``e``: a number if nothing but a sign precedes them
            if start > 0 and written[start - 1] == 45:  # "-"
                start -= 1
            if start == 0 or written[start - 1] in _BEFORE_A_NUMBER:
                return True
        at = written.find(b"e-", at + 2)
    return False
