"""The check that a pydantic instance built without validation (the fast paths of issue #20:
``domain._model.built``, ``order_of``, ``Caller.call``, the check context's alerts) is the
instance validation gives: shared by the tests that hold each fast path to validation."""

from __future__ import annotations

import orjson
from pydantic import BaseModel


def assert_same_model(made: BaseModel, validated: BaseModel) -> None:
    """``made`` equals ``validated`` in every part pydantic keeps: its class, its values and
    their order, the fields set, the extras and private attributes, and both dumps byte for
    byte (orjson's text of the JSON-mode dump tells ``1``, ``1.0`` and ``True`` apart)."""
    assert type(made) is type(validated)
    assert made == validated
    assert list(vars(made)) == list(vars(validated))
    assert made.model_fields_set == validated.model_fields_set
    assert made.__pydantic_extra__ == validated.__pydantic_extra__
    assert made.__pydantic_private__ == validated.__pydantic_private__
    assert made.model_dump_json() == validated.model_dump_json()
    assert orjson.dumps(made.model_dump(mode="json")) == orjson.dumps(
        validated.model_dump(mode="json")
    )
