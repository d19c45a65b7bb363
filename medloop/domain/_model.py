"""The base of every domain value: a frozen pydantic model, and a validated copy-with-changes."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from interactions.values import MODEL_CONFIG

Model = TypeVar("Model", bound=BaseModel)


class Frozen(BaseModel):
    """An immutable value: no attribute can be reassigned, unknown fields are refused, every
    string is bounded and every float finite (``interactions.values``)."""

    model_config = MODEL_CONFIG


def replace(model: Model, **changes: Any) -> Model:
    """A copy of ``model`` with ``changes``, validated like a new instance.

    ``model_copy(update=...)`` skips validation; the domain never wants an unvalidated value.
    """
    fields = {name: getattr(model, name) for name in type(model).model_fields}
    return type(model).model_validate({**fields, **changes})
