"""Diffs between versions (``medloop.domain.versioning``): built from validated values without
validating them again, and serialised exactly as ``JsonValue`` would serialise them (the
stored records and their digests depend on it; issue #20)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import JsonValue, ValidationError

from medloop.domain._model import Frozen
from medloop.domain.prescription import TRACKED_FIELDS
from medloop.domain.versioning import FieldChange, diff
from tests.domain.helpers import prescribed


class _AsJsonValue(Frozen):
    """``FieldChange`` as it was declared before: plain ``JsonValue`` fields, serialised by
    pydantic's own ``JsonValue`` serialiser."""

    field: str
    before: JsonValue
    after: JsonValue


def test_a_diff_is_serialised_as_jsonvalue_serialises_it() -> None:
    medication_list, entry, prescription = prescribed()
    later = prescription.model_copy(update={"repeats": 2})
    for before, after in ((None, prescription), (prescription, later)):
        changes = diff(before, after, TRACKED_FIELDS)
        assert changes
        for change in changes:
            reference = _AsJsonValue(**dict(change))
            for mode in ("json", "python"):
                assert change.model_dump(mode=mode) == reference.model_dump(mode=mode)
            assert change.model_dump_json() == reference.model_dump_json()


def test_a_diff_built_without_validation_equals_the_validated_one() -> None:
    _, _, prescription = prescribed()
    for change in diff(None, prescription, TRACKED_FIELDS):
        validated = FieldChange.model_validate(change.model_dump(mode="json"))
        assert validated == change
        assert validated.model_fields_set == change.model_fields_set


@pytest.mark.parametrize("value", [float("nan"), object(), {1: "x"}, b"bytes"])
def test_a_field_change_still_accepts_only_json_values(value: Any) -> None:
    with pytest.raises(ValidationError):
        FieldChange(field="x", before=None, after=value)


def test_the_json_schema_of_a_field_change_is_jsonvalues() -> None:
    for mode in ("validation", "serialization"):
        ours = FieldChange.model_json_schema(mode=mode)["properties"]
        reference = _AsJsonValue.model_json_schema(mode=mode)["properties"]
        assert ours == reference
