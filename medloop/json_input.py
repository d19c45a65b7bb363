"""JSON as every boundary reads it (the HTTP API's request bodies, ``medloop check``'s stdin).

``loads`` refuses what JSON parsers commonly let through and what could then not be stored or
loaded again:

- ``NaN``, ``Infinity`` and numbers that overflow a double (``1e309``) — Python's ``json`` turns
  them into non-finite floats, which PostgreSQL's ``jsonb`` cannot hold;
- lone surrogates (``"\\ud800"``) and invalid UTF-8 — they cannot be encoded for the database;
- NUL characters in strings or keys (``"\\u0000"``) — PostgreSQL's text cannot hold them;
- nesting deeper than ``MAX_DEPTH`` — nothing the API takes is that deep, and deep values cost
  recursion in every later step (validation, fingerprints, serialisation).

Each refusal is a ``json.JSONDecodeError`` (FastAPI answers it as a 422 ``malformed-json``
problem; ``medloop check`` as its problem object) whose message names where the fault is. The
checks cost two byte searches on an ordinary body: the walk that finds a NUL or measures the
depth only runs when a body could hold one.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

MAX_DEPTH = 64
"""The deepest nesting of arrays and objects any input may have."""

_NUL = b"\\u0000"


class InvalidJson(json.JSONDecodeError):
    """JSON that is well-formed but holds something no input may hold."""


def loads(data: bytes | str) -> Any:
    """The value of the JSON document ``data`` (see the module docstring for what it refuses)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise InvalidJson(error.msg, error.doc, error.pos) from None
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    doc = raw.decode("utf-8", "replace")
    if _NUL in raw:
        path = _nul_path(value)
        if path is not None:
            raise InvalidJson(
                f"a NUL character (\\u0000) is not allowed in strings, at {path}",
                doc,
                raw.find(_NUL),
            )
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:
        path = _too_deep(value)
        if path is not None:
            raise InvalidJson(
                f"nesting deeper than {MAX_DEPTH} levels is not allowed, at {path}", doc, 0
            )
    return value


def _pointer(path: list[str | int]) -> str:
    """A JSON Pointer (RFC 6901) to ``path``."""
    return (
        "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in path)
        if path
        else "/"
    )


def _nul_path(value: Any) -> str | None:
    """The pointer to the first string (value or key) in ``value`` holding a NUL."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return _pointer(path)
        elif isinstance(item, dict):
            for key, inner in item.items():
                if "\x00" in key:
                    return _pointer([*path, key.replace("\x00", "\\u0000")])
                stack.append((inner, [*path, key]))
        elif isinstance(item, list):
            stack.extend((inner, [*path, index]) for index, inner in enumerate(item))
    return None


def _too_deep(value: Any) -> str | None:
    """The pointer to an array or object nested in more than ``MAX_DEPTH`` levels, if any."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict | list) and len(path) >= MAX_DEPTH:
            return _pointer(path)
        if isinstance(item, dict):
            stack.extend((inner, [*path, key]) for key, inner in item.items())
        elif isinstance(item, list):
            stack.extend((inner, [*path, index]) for index, inner in enumerate(item))
    return None
