"""The canonical JSON of audit records and idempotency keys, and faster ways to the same result.

:func:`dumps` *is* the canonical form: the standard library's encoder with sorted keys, no
whitespace, non-ASCII text as it is (``ensure_ascii=False``), NaN and infinities refused. The
audit chain's hashes and the idempotency keys' fingerprints are over its exact text, and
``medloop audit verify`` recomputes them with it.

orjson writes and reads JSON several times faster, but it is not the same for every value: it
writes a UUID, an enum, a dataclass or a date-time instead of refusing it, NaN as ``null``, and
some floats in another form (``1e-05`` as ``0.00001``, ``1e-09`` as ``1e-9``); it refuses
integers beyond 64 bits, non-string keys and lone surrogates, which the standard library
writes, and reads integers beyond 64 bits as floats. So it is used only where it is shown to
give the same result:

- :func:`loads` reads text :func:`dumps` wrote with orjson unless the text holds a run of 19
  digits (where an integer beyond 64 bits could be) or is not UTF-8;
- :func:`written_alike` says whether orjson writes a value exactly as :func:`dumps` did (a
  comparison of the two texts), and :func:`dumps_alike` writes a value made of such values,
  strings, integers, booleans and ``None`` with orjson: a JSON object's text is its members'
  texts in key order, so what holds for the parts holds for the whole.

``tests/store/test_canonical_json.py`` compares them with the standard library over generated
values (hypothesis).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def dumps(value: Any) -> str:
    """The canonical JSON of ``value`` (raises ``TypeError`` or ``ValueError`` for what JSON
    cannot hold, as ``json`` does)."""
    return _ENCODER.encode(value)


# Every digit but 0 to 0, so that one search finds a run of 19 digits anywhere.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19


def loads(text: str) -> Any:
    """``json.loads(text)`` of a ``text`` that :func:`dumps` wrote."""
    try:
        raw = text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return json.loads(text)
    if raw.translate(_DIGITS_AS_ZERO).find(_LONG_RUN) < 0:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:  # nesting beyond orjson's 1024 levels
            pass
    return json.loads(text)


def round_trip(value: Any) -> tuple[str, Any]:
    """:func:`dumps` of ``value`` and the value read back from it (tuples become lists,
    non-string keys strings, the keys sorted): what storing ``value`` as JSON and reading it
    back gives."""
    text = dumps(value)
    return text, loads(text)


def written_alike(value: Any, text: bytes) -> bool:
    """Whether orjson writes ``value`` as ``text``, its :func:`dumps` encoded to UTF-8."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == text
    except orjson.JSONEncodeError:
        return False


def dumps_alike(value: Any) -> str:
    """:func:`dumps` of ``value``, written by orjson: for a ``value`` made only of dicts with
    string keys, lists, values :func:`written_alike` vouched for, ``str`` (exactly), integers,
    booleans and ``None`` (anything orjson refuses takes the standard library's way)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, a lone surrogate
        return dumps(value)
