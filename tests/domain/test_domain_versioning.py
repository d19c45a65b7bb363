"""Diffs between versions (``medloop.domain.versioning``): built from validated values without
validating them again, and serialised exactly as ``JsonValue`` would serialise them (the
stored records and their digests depend on it; issue #20)."""

from __future__ import annotations

import json
import threading
from typing import Any

import orjson
import pytest
from hypothesis import given as given_examples
from hypothesis import settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, JsonValue, ValidationError, computed_field

from medloop.domain import versioning
from medloop.domain._model import Frozen
from medloop.domain.entry import EntryEdit
from medloop.domain.medication_list import EditEntry, EntryVersion
from medloop.domain.prescription import TRACKED_FIELDS, PrescriptionVersion, issue
from medloop.domain.versioning import FieldChange, diff, record
from tests.domain.helpers import DOCTOR, PATIENT_ID, T0, add, empty_list, prescribed, request


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


def test_a_diff_s_changes_are_the_instances_model_construct_makes() -> None:
    medication_list, entry, prescription = prescribed()
    later = prescription.model_copy(update={"repeats": 2})
    for before, after in ((None, prescription), (prescription, later)):
        for change in diff(before, after, TRACKED_FIELDS):
            made = FieldChange.model_construct(
                field=change.field, before=change.before, after=change.after
            )
            assert type(change) is FieldChange
            for attribute in (
                "__dict__",
                "__pydantic_fields_set__",
                "__pydantic_extra__",
                "__pydantic_private__",
            ):
                assert getattr(change, attribute) == getattr(made, attribute), attribute
            with pytest.raises(ValidationError):  # frozen, as every domain value
                change.field = "other"  # type: ignore[misc]


@pytest.mark.parametrize("value", [float("nan"), object(), {1: "x"}, b"bytes"])
def test_a_field_change_still_accepts_only_json_values(value: Any) -> None:
    with pytest.raises(ValidationError):
        FieldChange(field="x", before=None, after=value)


def test_the_json_schema_of_a_field_change_is_jsonvalues() -> None:
    for mode in ("validation", "serialization"):
        ours = FieldChange.model_json_schema(mode=mode)["properties"]
        reference = _AsJsonValue.model_json_schema(mode=mode)["properties"]
        assert ours == reference


# -- the stored record of a version (issue #20: the value's dump is made once) -----------------


def _versions() -> list[tuple[BaseModel, str]]:
    """An entry's first version, its edit (a diff with values before) and a prescription's
    first version, each made in this thread, with the name of its snapshot field."""
    medication_list, change, entry = add(empty_list())
    edited, edit = medication_list.apply(
        EditEntry(author=DOCTOR, at=T0, entry_id=entry.id, edit=EntryEdit(indication="Annet"))
    )
    _, version = issue(edited.entry(entry.id), PATIENT_ID, request(), at=T0, by=DOCTOR)
    return [
        (change.entry_versions[0], "entry"),
        (edit.entry_versions[0], "entry"),
        (version, "prescription"),
    ]


def _same_json(found: dict[str, Any], version: BaseModel) -> None:
    whole = version.model_dump(mode="json")
    assert found == whole
    # Key for key in the same order: the stored bytes and their digests depend on it.
    assert orjson.dumps(found) == orjson.dumps(whole)
    assert json.dumps(found) == json.dumps(whole)


def _compound_changes(found: dict[str, Any]) -> list[dict[str, Any]]:
    """The changes whose value after is an object (a drug, a quantity): dumped anew, they are
    equal but not the same dict."""
    return [change for change in found["diff"] if isinstance(change["after"], dict)]


def test_a_fresh_version_s_record_is_its_dump_made_from_the_dump_its_diff_compared() -> None:
    checked = 0
    for version, snapshot in _versions():
        found = record(version, "diff", snapshot)
        _same_json(found, version)
        # The snapshot in the record is the very dump the diff took its values from.
        for change in _compound_changes(found):
            assert change["after"] is found[snapshot][change["field"]]
            checked += 1
    assert checked


def test_a_version_read_back_or_made_in_another_thread_is_dumped_whole() -> None:
    for version, snapshot in _versions():
        read_back = type(version).model_validate(version.model_dump(mode="json"))
        found = record(read_back, "diff", snapshot)
        _same_json(found, read_back)
        for change in _compound_changes(found):
            assert change["after"] is not found[snapshot][change["field"]]
    made: list[list[tuple[BaseModel, str]]] = []
    thread = threading.Thread(target=lambda: made.append(_versions()))
    thread.start()
    thread.join()
    for version, snapshot in made[0]:
        _same_json(record(version, "diff", snapshot), version)


def test_the_diff_and_the_snapshot_are_the_last_fields_of_a_version_in_that_order() -> None:
    # record() appends them after the other fields' dump: the order of the stored JSON.
    assert list(EntryVersion.model_fields)[-2:] == ["diff", "entry"]
    assert list(PrescriptionVersion.model_fields)[-2:] == ["diff", "prescription"]


def test_a_fresh_version_s_record_reuses_its_dump_whatever_was_diffed_before_in_the_thread() -> (
    None
):
    """The thread keeps the dumps of the values it diffed last: a command's own diffs are
    recalled however many values the thread diffed before (it used to forget all of them at
    once when full, the first of a command's diffs with them)."""
    _, _, prescription = prescribed()
    for earlier in range(2 * versioning._RECENT):
        others = [prescription.model_copy(update={"repeats": n}) for n in range(earlier)]
        for other in others:
            diff(None, other, TRACKED_FIELDS)
        for version, snapshot in _versions():
            found = record(version, "diff", snapshot)
            for change in _compound_changes(found):
                assert change["after"] is found[snapshot][change["field"]], earlier


# -- dumps with the recurring actors' and drugs' JSON made once per object (issue #20) ---------


def _values() -> list[BaseModel]:
    from medloop.domain.drug_reference import NonCatalogueItem

    _, entry, prescription = prescribed()
    changes = list(diff(None, prescription, TRACKED_FIELDS))
    _, new_version = issue(entry, PATIENT_ID, request(), at=T0, by=DOCTOR)
    system = new_version.model_copy(update={"author": None})  # an expiry: no author
    no_prescriber = entry.model_copy(update={"prescriber": None, "instituted_by": None})
    item = entry.model_copy(update={"drug": NonCatalogueItem(name="Tran"), "prescription_ids": ()})
    return [entry, prescription, new_version, system, no_prescriber, item, *changes]


def test_a_dump_with_shared_parts_is_the_models_own_dump_key_for_key():
    for value in _values():
        mine, own = versioning.dump(value), value.model_dump(mode="json")
        assert mine == own
        assert orjson.dumps(mine) == orjson.dumps(own)  # the same keys in the same order
        leaving = frozenset({"diff"}) & frozenset(type(value).model_fields)
        if leaving:
            assert orjson.dumps(versioning.dump(value, leaving)) == orjson.dumps(
                value.model_dump(mode="json", exclude=set(leaving))
            )


def test_a_version_record_with_shared_parts_is_the_versions_own_dump():
    _, entry, _ = prescribed()
    _, version = issue(entry, PATIENT_ID, request(), at=T0, by=DOCTOR)
    got = record(version, "diff", "prescription")
    assert orjson.dumps(got) == orjson.dumps(version.model_dump(mode="json"))


def test_a_kept_dump_is_the_objects_own_and_an_equal_object_gets_its_own():
    first = DOCTOR.model_copy()
    second = DOCTOR.model_copy()
    assert first == second and first is not second
    kept = versioning.dumped(first)
    assert kept == first.model_dump(mode="json")
    assert versioning.dumped(first) is kept
    assert versioning.dumped(second) is not kept
    assert versioning.dumped(second) == kept


def test_kept_dumps_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(versioning, "_DUMPED", {})
    monkeypatch.setattr(versioning, "_KEPT_DUMPS", {})
    monkeypatch.setattr(versioning, "_DUMPED_KEPT", 3)
    values = [DOCTOR.model_copy() for _ in range(10)]
    for value in values:
        assert versioning.dumped(value) == value.model_dump(mode="json")
        assert len(versioning._DUMPED) <= 3


def test_only_a_models_own_fields_can_be_shared() -> None:
    with pytest.raises(ValueError, match="no fields"):
        versioning.share_dumps(FieldChange, "nonexistent")


def test_field_changes_share_one_fields_set_and_a_copy_gets_its_own() -> None:
    _, _, prescription = prescribed()
    changes = diff(None, prescription, TRACKED_FIELDS)
    first, second = changes[0], changes[1]
    assert first.model_fields_set is second.model_fields_set
    assert first.model_fields_set == {"field", "before", "after"}
    copied = first.model_copy(update={"after": "x"})
    assert copied.model_fields_set is not first.model_fields_set
    assert second.model_fields_set == {"field", "before", "after"}


def test_an_ids_kept_text_is_its_own_and_the_kept_texts_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from uuid import UUID, uuid4

    from medloop.domain import _model

    monkeypatch.setattr(_model, "_ID_TEXTS", {})
    monkeypatch.setattr(_model, "_ID_TEXTS_KEPT", 3)
    ids = [uuid4() for _ in range(10)]
    for _ in range(2):
        for value in ids:
            assert _model.id_text(value) == str(value)
            assert len(_model._ID_TEXTS) <= 3
    same_number = UUID(str(ids[0]))
    assert _model.id_text(same_number) == str(ids[0])
    assert _model.id_text("not an id") == "not an id"
    assert _model.id_text(None) == "None"


def test_a_change_between_recurring_values_is_one_shared_instance() -> None:
    _, _, first = prescribed()
    _, _, second = prescribed()
    one = {c.field: c for c in diff(None, first, TRACKED_FIELDS)}
    two = {c.field: c for c in diff(None, second, TRACKED_FIELDS)}
    # The same drug and prescriber (kept dumps), repeats, status: one instance each.
    for name in ("drug", "prescriber", "repeats", "status", "issued"):
        assert one[name] is two[name]
    # Each prescription's own id: its own change.
    assert one["id"] is not two["id"] and one["id"] != two["id"]
    for change in (*one.values(), *two.values()):
        made = versioning._made(change.field, change.before, change.after)
        assert made == change
        assert type(made.before) is type(change.before)
        assert type(made.after) is type(change.after)


def test_a_shared_change_keeps_its_values_type() -> None:
    found = [versioning._change("repeats", None, value) for value in (1, True, "1", 1)]
    assert [type(c.after) for c in found] == [int, bool, str, int]
    assert found[0] is found[3]
    assert len({id(c) for c in found}) == 3


def test_a_change_to_a_fresh_dict_or_a_float_is_not_shared() -> None:
    fresh = {"packages": 1}
    first = versioning._change("quantity", None, fresh)
    second = versioning._change("quantity", None, dict(fresh))
    assert first is not second and first == second
    assert versioning._change("x", None, 0.0) is not versioning._change("x", None, 0.0)
    negative = versioning._change("x", None, -0.0)
    assert orjson.dumps(negative.after) == b"-0.0"


def test_shared_changes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(versioning, "_CHANGES", {})
    monkeypatch.setattr(versioning, "_CHANGES_KEPT", 3)
    for n in range(10):
        change = versioning._change("version", None, n)
        assert change.after == n
        assert len(versioning._CHANGES) <= 3


def test_clearing_the_shared_changes_keeps_the_models_whose_dumps_are_shared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The change memo filling up (and being cleared) must not make ``dump`` forget which
    models' fields it takes from ``dumped``: the drug and actors would then be dumped afresh in
    every value, and no change holding them would be shared again."""
    registered = dict(versioning._SHARED)
    assert registered, "share_dumps registered no model"
    monkeypatch.setattr(versioning, "_CHANGES", {})
    monkeypatch.setattr(versioning, "_CHANGES_KEPT", 3)
    for n in range(10):
        versioning._change("version", None, n)
    assert versioning._SHARED == registered
    _, _, first = prescribed()
    _, _, second = prescribed()
    one = {c.field: c for c in diff(None, first, TRACKED_FIELDS)}
    two = {c.field: c for c in diff(None, second, TRACKED_FIELDS)}
    assert one["drug"].after is two["drug"].after


def test_a_kept_dump_is_shared_only_while_it_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(versioning, "_DUMPED", {})
    monkeypatch.setattr(versioning, "_KEPT_DUMPS", {})
    doctor = DOCTOR.model_copy()
    kept = versioning.dumped(doctor)
    assert versioning._change("author", None, kept) is versioning._change("author", None, kept)
    versioning._DUMPED.clear()
    versioning._KEPT_DUMPS.clear()
    assert versioning._change("author", None, kept) is not versioning._change("author", None, kept)


class _Part(Frozen):
    n: int


class _LeavesOneOut(Frozen):
    shared: _Part | None = None
    hidden: int = Field(default=0, exclude=True)
    shown: str = "x"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def doubled(self) -> str:
        return self.shown * 2


class _Whole(Frozen):
    first: int = 1
    shared: _Part | None = None
    last: str = "z"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def after(self) -> str:
        return self.last + "!"


versioning.share_dumps(_LeavesOneOut, "shared")
versioning.share_dumps(_Whole, "shared")


@pytest.mark.parametrize(
    "value",
    [
        _LeavesOneOut(shared=_Part(n=1), hidden=3),
        _LeavesOneOut(),
        _Whole(shared=_Part(n=2)),
        _Whole(),
    ],
)
@pytest.mark.parametrize(
    "exclude", [frozenset(), frozenset({"last"}), frozenset({"first", "shown"})]
)
def test_a_dump_put_together_from_its_template_is_the_models_own_dump(
    value: BaseModel, exclude: frozenset[str]
) -> None:
    # The template of the fields in order (``versioning._ORDERS``) gives the model's own dump,
    # key for key, computed fields last; a model whose dump leaves a field out (``hidden``)
    # is put together field by field.
    for _ in range(2):  # the template made, then the template kept
        made = versioning.dump(value, exclude)
        own = value.model_dump(mode="json", exclude=exclude or None)
        assert made == own
        assert list(made) == list(own)


def test_the_serialisers_to_python_is_model_dump_in_this_pydantic() -> None:
    # ``versioning.dump`` and ``dumped`` call ``__pydantic_serializer__.to_python`` (what
    # ``model_dump`` calls with its defaults, pydantic 2.14): the same dicts, key for key.
    for value in _values():
        serializer = type(value).__pydantic_serializer__
        for exclude in (None, {"diff"} & set(type(value).model_fields) or None):
            own = value.model_dump(mode="json", exclude=exclude)
            assert orjson.dumps(serializer.to_python(value, mode="json", exclude=exclude)) == (
                orjson.dumps(own)
            )


def test_a_records_changes_are_each_changes_fields_in_order() -> None:
    # ``record`` gives each change's own ``__dict__`` as its dump: the three fields in order,
    # equal to the change's dump, made or validated.
    for value in _values():
        if isinstance(value, (EntryVersion, PrescriptionVersion)):
            snapshot = "entry" if isinstance(value, EntryVersion) else "prescription"
            versioning.diff(None, getattr(value, snapshot), ())  # its dump recalled
            got = record(value, "diff", snapshot)["diff"]
            assert got == [change.model_dump(mode="json") for change in value.diff]
            assert all(list(item) == ["field", "before", "after"] for item in got)
    validated = FieldChange.model_validate({"field": "a", "before": None, "after": [1]})
    assert list(vars(validated)) == ["field", "before", "after"]


class _Mixed(Frozen):
    """Fields of every kind a diff meets: recurring scalars, floats, a nested value."""

    text: str | None = None
    number: int | None = None
    flag: bool | None = None
    ratio: float | None = None
    part: _Part | None = None
    items: tuple[int, ...] = ()


_MIXED_FIELDS = tuple(_Mixed.model_fields)
_SCALARS = st.none() | st.text(max_size=4) | st.integers(-3, 3) | st.booleans()


@given_examples(
    text=st.none() | st.sampled_from(["1", "", "a"]),
    number=st.none() | st.integers(-2, 2),
    flag=st.none() | st.booleans(),
    ratio=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    items=st.lists(st.integers(0, 3), max_size=2).map(tuple),
    part=st.none() | st.integers(0, 2).map(lambda n: _Part(n=n)),
    other=_SCALARS,
)
@settings(max_examples=150, deadline=None)
def test_a_new_values_diff_is_each_fields_change_from_nothing(
    text: str | None,
    number: int | None,
    flag: bool | None,
    ratio: float | None,
    items: tuple[int, ...],
    part: _Part | None,
    other: Any,
) -> None:
    """``diff(None, value)`` (its own memo key for a value new in its version) gives, field by
    field, the change ``_change(name, None, now)`` and ``model_construct`` give: the same
    values of the same types, shared when the value recurs, never one of another type (``1``,
    ``True`` and ``"1"`` each their own)."""
    value = _Mixed(text=text, number=number, flag=flag, ratio=ratio, part=part, items=items)
    dumped = value.model_dump(mode="json")
    changes = diff(None, value, _MIXED_FIELDS)
    expected = [
        FieldChange.model_construct(field=name, before=None, after=dumped[name])
        for name in _MIXED_FIELDS
        if dumped[name] is not None
    ]
    assert list(changes) == expected
    for change, made in zip(changes, expected, strict=True):
        assert type(change.after) is type(made.after)
        assert change.__dict__ == made.__dict__
        assert list(change.__dict__) == ["field", "before", "after"]
        general = versioning._change(change.field, None, change.after)
        assert general == change and type(general.after) is type(change.after)
    again = diff(
        None,
        _Mixed(text=text, number=number, flag=flag, ratio=ratio, part=part, items=items),
        _MIXED_FIELDS,
    )
    for first, second in zip(changes, again, strict=True):
        assert first == second
        if type(first.after) in (str, int, bool):
            assert first is second
    # A recurring scalar of another type is never taken for this one.
    if other is not None:
        mixed = diff(None, _Mixed(text=str(other)), ("text",))
        assert type(mixed[0].after) is str and mixed[0].after == str(other)
