"""Structured diffs between two versions of a value, as JSON, so a store can append them as-is.

A diff lists the top-level fields whose JSON form differs, each with its value before and after
(``before`` is ``None`` for every field of a value that did not exist before). Nested values
(a dosage, a drug) are compared and recorded whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel, GetPydanticSchema, JsonValue

from medloop.domain._model import Frozen


def _serialised_as_is(source: Any, handler: Any) -> Any:
    # Validated as ``JsonValue`` (and so documented in every JSON schema), serialised by type
    # inference: a value that passed ``JsonValue`` is JSON already, and both give the same
    # output for it, but pydantic's serialiser of the ``JsonValue`` union tries its members
    # value by value, three times as slow (every list change and prescription version stores
    # a diff; issue #20).
    return {**handler(source), "serialization": {"type": "any"}}  # a SimpleSerSchema


Json = Annotated[JsonValue, GetPydanticSchema(_serialised_as_is)]


class FieldChange(Frozen):
    """One field that changed, with its JSON value before and after."""

    field: str
    before: Json
    after: Json


def diff(
    before: BaseModel | None, after: BaseModel, fields: Iterable[str]
) -> tuple[FieldChange, ...]:
    """The changes among ``fields`` from ``before`` (``None``: nothing) to ``after``.

    The values are the JSON dumps of two validated domain values (bounded strings, finite
    numbers), so the changes are built without validating them a second time."""
    old = {} if before is None else before.model_dump(mode="json")
    new = after.model_dump(mode="json")
    return tuple(
        FieldChange.model_construct(field=name, before=old.get(name), after=new[name])
        for name in fields
        if old.get(name) != new[name]
    )
