"""Domain records built without validating again what was validated a moment before
(``medloop.domain._model.constructed``): the list change and entry version of
``MedicationList.apply`` and the first version of ``prescription.issue`` are the instances
validating the same values gives (issue #20)."""

from __future__ import annotations

from datetime import datetime
from types import GetSetDescriptorType, MemberDescriptorType
from typing import Any

import pytest
from hypothesis import given as given_examples
from hypothesis import settings
from hypothesis import strategies as st
from pydantic import BaseModel

from medloop.domain import _model
from medloop.domain._model import built, constructed
from medloop.domain.entry import EntryEdit
from medloop.domain.medication_list import EditEntry, EntryVersion, ListChange, MedicationList
from medloop.domain.prescription import PrescriptionVersion, issue
from tests.built_models import assert_same_model
from tests.domain.helpers import DOCTOR, PATIENT_ID, T0, add, empty_list, request


def _validated(value: BaseModel) -> BaseModel:
    """``value``'s class validating ``value``'s own field values."""
    fields: dict[str, Any] = {name: getattr(value, name) for name in type(value).model_fields}
    return type(value)(**fields)


def _same_instance(made: BaseModel, validated: BaseModel) -> None:
    assert_same_model(made, validated)
    assert made.__pydantic_extra__ is None


def test_an_added_entrys_change_and_version_are_the_validated_instances() -> None:
    _, change, _ = add(empty_list(), reason="ny")
    assert type(change) is ListChange
    _same_instance(change, _validated(change))
    (version,) = change.entry_versions
    assert type(version) is EntryVersion
    _same_instance(version, _validated(version))


def test_an_edits_change_and_version_are_the_validated_instances() -> None:
    medication_list, _, entry = add(empty_list())
    _, change = medication_list.apply(
        EditEntry(author=DOCTOR, at=T0, entry_id=entry.id, edit=EntryEdit(indication="Annen"))
    )
    _same_instance(change, _validated(change))
    _same_instance(change.entry_versions[0], _validated(change.entry_versions[0]))


def test_an_issued_prescriptions_first_version_is_the_validated_instance() -> None:
    _, _, entry = add(empty_list(), dosage=None)
    _, version = issue(entry, PATIENT_ID, request(), at=T0, by=DOCTOR)
    assert type(version) is PrescriptionVersion
    _same_instance(version, _validated(version))
    assert version.author is version.prescription.prescriber


def test_an_issue_at_a_moment_not_yet_validated_is_validated() -> None:
    _, _, entry = add(empty_list(), dosage=None)
    _, version = issue(entry, PATIENT_ID, request(), at=T0.isoformat(), by=DOCTOR)  # type: ignore[arg-type]
    assert version.at == T0
    with pytest.raises(ValueError, match="timezone"):
        issue(entry, PATIENT_ID, request(), at=datetime(2026, 1, 1, 12), by=DOCTOR)


def test_construction_needs_every_field() -> None:
    _, change, _ = add(empty_list())
    fields = {name: getattr(change, name) for name in ListChange.model_fields}
    del fields["reason"]
    with pytest.raises(TypeError, match="every field"):
        constructed(ListChange, **fields)
    with pytest.raises(TypeError, match="every field"):
        constructed(ListChange, **fields, reason=None, extra=1)


def test_a_copy_of_a_constructed_record_gets_its_own_fields_set() -> None:
    _, change, _ = add(empty_list())
    _, other, _ = add(empty_list())
    assert change.model_fields_set is other.model_fields_set
    copied = change.model_copy(update={"reason": "x"})
    assert copied.model_fields_set is not change.model_fields_set
    assert change.model_fields_set == set(ListChange.model_fields)


def _fields_of(value: BaseModel) -> dict[str, Any]:
    return {name: getattr(value, name) for name in type(value).model_fields}


@given_examples(order=st.permutations(list(ListChange.model_fields)), reason=st.none() | st.text())
@settings(max_examples=60, deadline=None)
def test_built_is_the_constructed_instance_for_a_dict_in_any_order(
    order: list[str], reason: str | None
) -> None:
    """``built`` takes a dict in declared order as the instance's own ``__dict__``, and gives
    ``constructed``'s instance (fields in declared order) for a dict in any other order."""
    _, change, _ = add(empty_list())
    fields = {**_fields_of(change), "reason": reason}
    values = {name: fields[name] for name in order}
    made = built(ListChange, values)
    expected = constructed(ListChange, **fields)
    _same_instance(made, expected)
    _same_instance(made, _validated(made))
    assert made.model_fields_set is expected.model_fields_set
    assert (made.__dict__ is values) == (order == list(ListChange.model_fields))


def test_built_needs_every_field() -> None:
    _, change, _ = add(empty_list())
    fields = _fields_of(change)
    del fields["reason"]
    with pytest.raises(TypeError, match="every field"):
        built(ListChange, fields)
    with pytest.raises(TypeError, match="every field"):
        built(ListChange, {**fields, "reason": None, "extra": 1})


def test_an_applied_list_is_model_constructs_instance() -> None:
    """``apply`` (and ``followed_by`` on another list object) build the list after the change
    as ``model_construct`` does, the same value validating it gives."""
    first = empty_list()
    medication_list, change, _ = add(first)
    for made in (medication_list, first.model_copy().followed_by(change)):
        assert type(made) is MedicationList
        _same_instance(made, MedicationList.model_construct(**_fields_of(made)))
        _same_instance(made, _validated(made))
    edited, change = medication_list.apply(
        EditEntry(
            author=DOCTOR,
            at=T0,
            entry_id=medication_list.entries[0].id,
            edit=EntryEdit(indication="Annen"),
        )
    )
    for made in (edited, medication_list.model_copy().followed_by(change)):
        _same_instance(made, MedicationList.model_construct(**_fields_of(made)))
        _same_instance(made, _validated(made))


def test_the_slot_setters_are_pydantics_own_descriptors_in_this_pydantic() -> None:
    """``_model``'s setters are ``BaseModel``'s own ``__dict__`` and ``__pydantic_*__`` slot
    descriptors in the pinned pydantic (2.14): if pydantic lays its instances out otherwise,
    this fails, and the setters fall back to ``object.__setattr__`` (the next test)."""
    from pydantic import BaseModel as Base

    assert _model.set_dict == Base.__dict__["__dict__"].__set__
    assert isinstance(Base.__dict__["__dict__"], GetSetDescriptorType)
    for name, setter in (
        ("__pydantic_fields_set__", _model.set_fields_set),
        ("__pydantic_extra__", _model.set_extra),
        ("__pydantic_private__", _model.set_private),
    ):
        descriptor = Base.__dict__[name]
        assert isinstance(descriptor, MemberDescriptorType), name
        assert setter == descriptor.__set__, name


def test_the_slot_setters_set_what_object_setattr_sets_and_fall_back_to_it() -> None:
    _, change, _ = add(empty_list())
    fields = _fields_of(change)
    names = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
    fallbacks = [_model._slot_setter(name, type(None)) for name in names]  # never that kind
    for setters in (
        (_model.set_dict, _model.set_fields_set, _model.set_extra, _model.set_private),
        fallbacks,
    ):
        assert all(not isinstance(s, type(_model.set_dict)) for s in fallbacks)
        made = object.__new__(ListChange)
        values = dict(fields)
        fields_set = set(fields)
        for setter, value in zip(setters, (values, fields_set, None, None), strict=True):
            setter(made, value)
        assert made.__dict__ is values
        assert made.model_fields_set is fields_set
        _same_instance(made, change)
        _same_instance(made, _validated(made))
