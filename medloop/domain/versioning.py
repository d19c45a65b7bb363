"""Structured diffs between two versions of a value, as JSON, so a store can append them as-is.

A diff lists the top-level fields whose JSON form differs, each with its value before and after
(``before`` is ``None`` for every field of a value that did not exist before). Nested values
(a dosage, a drug) are compared and recorded whole.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, JsonValue

from medloop.domain._model import Frozen


class FieldChange(Frozen):
    """One field that changed, with its JSON value before and after."""

    field: str
    before: JsonValue
    after: JsonValue


def diff(
    before: BaseModel | None, after: BaseModel, fields: Iterable[str]
) -> tuple[FieldChange, ...]:
    """The changes among ``fields`` from ``before`` (``None``: nothing) to ``after``."""
    old = {} if before is None else before.model_dump(mode="json")
    new = after.model_dump(mode="json")
    return tuple(
        FieldChange(field=name, before=old.get(name), after=new[name])
        for name in fields
        if old.get(name) != new[name]
    )
