"""Domain values built from validated parts without validating them again
(``medloop.domain._model.given``): an added entry (``MedicationList.apply`` of an ``AddEntry``)
and an issued prescription (``prescription.issue``) are the instances validation gives, and a
value validation refuses is refused with the same error (issue #20)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given as given_examples
from hypothesis import settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from interactions.dosage import Use
from medloop.domain import medication_list as medication_list_module
from medloop.domain._model import Frozen, given, given_values
from medloop.domain.entry import ListEntry
from medloop.domain.medication_list import AddEntry, InvalidEntry, _build
from medloop.domain.prescription import (
    _ISSUED_FIELDS,
    PrescribedQuantity,
    Prescription,
    issue,
)
from tests.built_models import assert_same_model
from tests.domain.helpers import (
    D0,
    DOCTOR,
    EVENING,
    FISH_OIL,
    NURSE,
    PATIENT_ID,
    T0,
    ZOCOR_BRAND,
    ZOCOR_PACKAGE,
    add,
    empty_list,
    new_id,
    request,
)


def _same_instance(made: BaseModel, validated: BaseModel) -> None:
    assert_same_model(made, validated)
    assert made.__dict__ == validated.__dict__
    assert made.__pydantic_extra__ is None


def _entry_fields(command: AddEntry) -> dict[str, Any]:
    """What ``_added`` gave ``_build`` (validation) before the fast path."""
    return {
        "id": command.entry_id,
        "version": 1,
        "drug": command.drug,
        "dosage": command.dosage,
        "use": command.use,
        "indication": command.indication,
        "start": command.start,
        "stop": command.stop,
        "multidose": command.multidose,
        "prescriber": command.prescriber,
        "instituted_by": command.instituted_by,
        "prescription_ids": command.prescription_ids,
        "changed_at": command.at,
    }


_IDS = [new_id() for _ in range(3)]


@settings(max_examples=300, deadline=None)
@given_examples(
    stop_days=st.none() | st.integers(-3, 3),
    dosage=st.sampled_from([None, EVENING]),
    use=st.sampled_from(list(Use)),
    ids=st.lists(st.sampled_from(_IDS), max_size=3).map(tuple),
    drug=st.sampled_from([ZOCOR_PACKAGE, ZOCOR_BRAND, FISH_OIL]),
    indication=st.none() | st.text(max_size=5),
    multidose=st.booleans(),
    prescriber=st.sampled_from([None, DOCTOR]),
    instituted_by=st.sampled_from([None, NURSE]),
)
def test_an_added_entry_is_the_validated_one_or_the_same_error(
    stop_days: int | None,
    dosage: Any,
    use: Use,
    ids: tuple[UUID, ...],
    drug: Any,
    indication: str | None,
    multidose: bool,
    prescriber: Any,
    instituted_by: Any,
) -> None:
    command = AddEntry(
        author=DOCTOR,
        at=T0,
        entry_id=new_id(),
        drug=drug,
        dosage=dosage,
        use=use,
        indication=indication,
        start=D0,
        stop=None if stop_days is None else D0 + timedelta(days=stop_days),
        multidose=multidose,
        prescriber=prescriber,
        instituted_by=instituted_by,
        prescription_ids=ids,
    )
    try:
        validated = _build(**_entry_fields(command))
    except InvalidEntry as error:
        with pytest.raises(InvalidEntry) as refused:
            empty_list()._added(command)
        assert str(refused.value) == str(error)
        assert refused.value.context == error.context
        return
    made = empty_list()._added(command)
    _same_instance(made, validated)
    assert made.model_fields_set is medication_list_module._ADDED_FIELDS


def test_an_added_entry_refused_by_its_own_check_gets_validations_error() -> None:
    command = AddEntry(
        author=DOCTOR,
        at=T0,
        entry_id=new_id(),
        drug=ZOCOR_PACKAGE,
        dosage=EVENING,
        use=Use.AS_NEEDED,
        start=D0,
    )
    with pytest.raises(InvalidEntry, match="the dosage is for use"):
        empty_list().apply(command)


def test_an_add_entry_subclass_is_validated() -> None:
    class Odd(AddEntry):
        pass

    command = Odd(
        author=DOCTOR, at=T0, entry_id=new_id(), drug=ZOCOR_PACKAGE, use=Use.REGULAR, start=D0
    )
    made = empty_list()._added(command)
    _same_instance(made, _build(**_entry_fields(command)))
    assert made.model_fields_set is not medication_list_module._ADDED_FIELDS


def _prescription_fields(prescription: Prescription) -> dict[str, Any]:
    return {name: getattr(prescription, name) for name in _ISSUED_FIELDS}


@settings(max_examples=100, deadline=None)
@given_examples(
    quantity=st.sampled_from([PrescribedQuantity(packages=1), PrescribedQuantity(packages=3)]),
    repeats=st.integers(0, 3),
    reserved=st.booleans(),
    reimbursed=st.booleans(),
    drug=st.sampled_from([ZOCOR_PACKAGE, ZOCOR_BRAND]),
    expires_days=st.none() | st.integers(0, 30),
)
def test_an_issued_prescription_is_the_validated_one(
    quantity: PrescribedQuantity,
    repeats: int,
    reserved: bool,
    reimbursed: bool,
    drug: Any,
    expires_days: int | None,
) -> None:
    _, _, entry = add(empty_list(), drug=drug, dosage=None)
    asked = request(
        quantity=quantity,
        repeats=repeats,
        reserved_against_substitution=reserved,
        reimbursed=reimbursed,
        expires=None if expires_days is None else D0 + timedelta(days=expires_days),
    )
    prescription, version = issue(entry, PATIENT_ID, asked, at=T0, by=DOCTOR)
    validated = Prescription(**_prescription_fields(prescription))
    _same_instance(prescription, validated)
    assert version.prescription is prescription
    assert prescription.model_fields_set is _ISSUED_FIELDS


def test_an_issue_with_values_not_yet_validated_validates_them() -> None:
    _, _, entry = add(empty_list(), dosage=None)
    asked = request()
    made, _ = issue(entry, PATIENT_ID, asked, at=T0, by=DOCTOR)
    # The patient's id as text, the prescriber as a dict: validated, as before.
    from_text, _ = issue(entry, str(PATIENT_ID), asked, at=T0, by=DOCTOR)  # type: ignore[arg-type]
    from_dict, _ = issue(entry, PATIENT_ID, asked, at=T0, by=DOCTOR.model_dump())  # type: ignore[arg-type]
    for validated in (from_text, from_dict):
        assert validated == made
        assert validated.model_fields_set is not _ISSUED_FIELDS
        assert validated.model_fields_set == _ISSUED_FIELDS


class _Sample(Frozen):
    a: int
    b: str = "x"
    c: tuple[int, ...] = ()


def test_given_is_validation_for_validated_values() -> None:
    fields_set = {"a"}
    made = given(_Sample, fields_set, a=1)
    _same_instance(made, _Sample(a=1))
    assert made.model_fields_set is fields_set
    copied = made.model_copy(update={"b": "y"})
    assert copied.model_fields_set is not fields_set and fields_set == {"a"}


def test_given_needs_the_required_fields_and_no_others() -> None:
    with pytest.raises(TypeError):
        given(_Sample, {"b"}, b="y")
    with pytest.raises(TypeError):
        given(_Sample, {"a", "d"}, a=1, d=2)
    with pytest.raises(TypeError):
        given(_Sample, {"a", "b"}, a=1)


def test_given_refuses_a_default_it_cannot_share() -> None:
    class Mutable(Frozen):
        a: int
        b: list[int] = Field(default_factory=list)

    with pytest.raises(TypeError, match="not shareable"):
        given(Mutable, {"a"}, a=1)


def test_an_entry_and_a_prescription_have_only_shareable_defaults() -> None:
    given(
        ListEntry,
        medication_list_module._ADDED_FIELDS,
        **_entry_fields(
            AddEntry(
                author=DOCTOR,
                at=T0,
                entry_id=new_id(),
                drug=ZOCOR_PACKAGE,
                use=Use.REGULAR,
                start=D0,
            )
        ),
    )


@given_examples(
    names=st.sets(st.sampled_from(["a", "b", "c", "d"])),
    a=st.integers(-3, 3),
    b=st.text(max_size=3),
    c=st.lists(st.integers(0, 2), max_size=2).map(tuple),
)
@settings(max_examples=80, deadline=None)
def test_given_values_is_given_for_the_same_values(
    names: set[str], a: int, b: str, c: tuple[int, ...]
) -> None:
    """``given_values`` (a dict, as ``issue`` and ``MedicationList.apply`` pass it) makes the
    instance ``given`` makes from the same values as keywords, and refuses what it refuses."""
    pool: dict[str, Any] = {"a": a, "b": b, "c": c, "d": 0}
    values = {name: pool[name] for name in sorted(names)}
    fields_set = set(names)
    try:
        expected = given(_Sample, fields_set, **values)
    except TypeError:
        with pytest.raises(TypeError):
            given_values(_Sample, fields_set, values)
        return
    made = given_values(_Sample, fields_set, dict(values))
    _same_instance(made, expected)
    _same_instance(made, _Sample(**values))
    assert made.model_fields_set is fields_set
