"""The checks' fast paths (issue #20) give what the general paths give, for every input."""

from dataclasses import FrozenInstanceError, fields
from datetime import date
from types import GetSetDescriptorType, MemberDescriptorType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from interactions import Allergy, Medication, Patient
from interactions.alerts import (
    SUMMARY_LENGTH,
    Alert,
    DoseNotCheckedDetail,
    Kind,
    Severity,
    dose_not_checked_alert,
)
from interactions.checks import context as context_module
from interactions.checks.context import CheckContext, Entry
from interactions.checks.dose import _components, _dose_alerts, dose_alerts
from interactions.checks.duplicate import _any_in_focus, duplicate_alerts
from interactions.checks.interaction import _interaction_alerts, interaction_alerts
from tests.built_models import assert_same_model
from tests.interactions.drawn import DOSAGES as DRAWN_DOSAGES
from tests.interactions.drawn import entries as drawn_entries
from tests.interactions.helpers import fixed, knowledge, med

DOSAGES = (*DRAWN_DOSAGES, fixed(8))
PATIENTS = (
    Patient(),
    Patient(allergies=(Allergy(atc="N02B"),), weight_kg=70),
    Patient(age=80, weight_kg=40),
)


def entries() -> st.SearchStrategy[list[Medication]]:
    """Lists drawn from the fixture catalogue, as ``test_ix_properties`` draws them, with one
    dosage more (eight tablets, over some substances' dose limits)."""
    return drawn_entries(dosages=DOSAGES)


def contexts(
    medications: list[Medication], data: st.DataObject, include_all: bool, patient: Patient
) -> CheckContext:
    """A context with one drawn entry in focus, or all of them, or none."""
    ids = [m.id for m in medications]
    proposed = data.draw(
        st.one_of(
            st.none(),
            st.sampled_from(ids).map(lambda one: [one]) if ids else st.just([]),
            st.lists(st.sampled_from(ids), unique=True) if ids else st.just([]),
        )
    )
    return CheckContext.create(
        knowledge(), medications, patient, include_all, proposed, today=date(2026, 1, 20)
    )


@settings(max_examples=150, deadline=None)
@given(entries(), st.data(), st.booleans(), st.sampled_from(PATIENTS))
def test_duplicates_of_one_focus_entry_are_the_general_paths(
    medications: list[Medication], data: st.DataObject, include_all: bool, patient: Patient
) -> None:
    context = contexts(medications, data, include_all, patient)
    assert list(duplicate_alerts(context)) == list(_any_in_focus(context, context.entries))


@settings(max_examples=150, deadline=None)
@given(entries(), st.data(), st.booleans(), st.sampled_from(PATIENTS))
def test_interactions_without_a_shown_focus_side_are_the_general_paths(
    medications: list[Medication], data: st.DataObject, include_all: bool, patient: Patient
) -> None:
    context = contexts(medications, data, include_all, patient)
    hidden = frozenset() if include_all else context.knowledge.no_action_sides
    assert list(interaction_alerts(context)) == list(_interaction_alerts(context, hidden))


@settings(max_examples=150, deadline=None)
@given(entries(), st.data(), st.booleans(), st.sampled_from(PATIENTS))
def test_doses_over_the_ruled_substances_only_are_the_general_paths(
    medications: list[Medication], data: st.DataObject, include_all: bool, patient: Patient
) -> None:
    context = contexts(medications, data, include_all, patient)
    # What the dose check looked at before: every substance of every focus entry.
    every = {c.atc for entry in context.focus for c in _components(entry.medication.drug)}
    assert list(dose_alerts(context)) == list(_dose_alerts(context, every))


def test_an_entry_and_a_context_made_without_init_equal_the_dataclass_made() -> None:
    medication = med("PK_PARACET")
    profile = knowledge().profile(medication.drug)
    for in_focus in (True, False):
        made = context_module._entry(medication, profile, in_focus)
        expected = Entry(medication, profile, in_focus)
        assert type(made) is Entry
        assert made == expected and hash(made) == hash(expected)
        assert [getattr(made, f.name) for f in fields(Entry)] == [medication, profile, in_focus]
        with pytest.raises(FrozenInstanceError):
            made.in_focus = not in_focus  # type: ignore[misc]
    values = (knowledge(), (expected,), Patient(), True, date(2026, 1, 1), 30, (expected,))
    made = context_module._context(*values)
    assert type(made) is CheckContext
    assert made == CheckContext(*values)
    assert [getattr(made, f.name) for f in fields(CheckContext)] == list(values)
    with pytest.raises(FrozenInstanceError):
        made.include_all = False  # type: ignore[misc]


def test_the_classes_made_without_init_have_the_fields_and_no_post_init_it_assumes() -> None:
    # ``_entry`` and ``_context`` set exactly these slots: a field added or a ``__post_init__``
    # must be added to them too.
    assert [f.name for f in fields(Entry)] == ["medication", "profile", "in_focus"]
    assert [f.name for f in fields(CheckContext)] == [
        "knowledge",
        "entries",
        "patient",
        "include_all",
        "today",
        "renal_max_age_days",
        "focused",
    ]
    assert not hasattr(Entry, "__post_init__") and not hasattr(CheckContext, "__post_init__")


class _Subclass(CheckContext):
    __slots__ = ()


def test_a_subclass_of_the_context_is_still_made_by_its_own_class() -> None:
    found = _Subclass.create(knowledge(), [med("PK_PARACET")], Patient(), False, None)
    assert type(found) is _Subclass


def _validated_not_checked(*parts: object) -> Alert:
    medication, substance, atc, reason_code, reason, rule_id, summary, source = parts
    return Alert(
        severity=Severity.INFO,
        medications=(medication,),
        summary=summary,
        detail=DoseNotCheckedDetail(
            substance=substance, atc=atc, reason_code=reason_code, reason=reason, rule_id=rule_id
        ),
        source=source,
    )


def _same_instance(made: Alert, validated: Alert) -> None:
    """Equal, and equal in every part pydantic keeps: values in order, fields set, no extras."""
    assert_same_model(made, validated)
    assert_same_model(made.detail, validated.detail)
    assert made.model_dump() == validated.model_dump()
    assert made.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)
    assert (made.key, made.kind, made.requires_override) == (
        validated.key,
        validated.kind,
        validated.requires_override,
    )
    assert hash(made) == hash(validated)
    assert made.model_copy() == validated.model_copy()
    with pytest.raises(ValidationError):
        made.summary = "changed"  # type: ignore[misc]


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=40),
    st.text(max_size=40),
    st.text(max_size=10),
    st.sampled_from(["age-unknown", "no-dosage", "indication-unknown", "x"]),
    st.text(max_size=80),
    st.text(max_size=20),
    st.text(max_size=160),
    st.sampled_from([None, "rule-1"]),
)
def test_a_dose_not_checked_alert_made_from_parts_is_the_validated_one(
    medication: str,
    substance: str,
    atc: str,
    reason_code: str,
    reason: str,
    rule_id: str,
    summary: str,
    source_rule: str | None,
) -> None:
    source = knowledge().source(rule_id=source_rule)
    parts = (medication, substance, atc, reason_code, reason, rule_id, summary, source)
    if len(summary) > SUMMARY_LENGTH:  # not made: validated, and refused as before
        with pytest.raises(ValidationError):
            dose_not_checked_alert(*parts)
        with pytest.raises(ValidationError):
            _validated_not_checked(*parts)
        return
    _same_instance(dose_not_checked_alert(*parts), _validated_not_checked(*parts))


class _Text(str):
    pass


def test_a_dose_not_checked_alert_of_other_part_types_is_validated() -> None:
    source = knowledge().source(rule_id="r")
    parts = ("m1", _Text("paracetamol"), "N02BE01", "no-dosage", "why", "r", "summary", source)
    made = dose_not_checked_alert(*parts)
    _same_instance(made, _validated_not_checked(*parts))
    assert type(made.detail.substance) is str  # validated: the subclass became a str
    with pytest.raises(ValidationError):
        dose_not_checked_alert("m1", "s", "a", "c", "r", "r", "s", {"catalogue_version": 1})  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(entries(), st.data(), st.booleans(), st.sampled_from(PATIENTS))
def test_the_dose_checks_not_checked_alerts_are_the_validated_ones(
    medications: list[Medication], data: st.DataObject, include_all: bool, patient: Patient
) -> None:
    context = contexts(medications, data, include_all, patient)
    for alert in dose_alerts(context):
        if alert.kind is Kind.DOSE_NOT_CHECKED:
            detail = alert.detail
            assert isinstance(detail, DoseNotCheckedDetail)
            parts = (
                alert.medications[0],
                detail.substance,
                detail.atc,
                detail.reason_code,
                detail.reason,
                detail.rule_id,
                alert.summary,
                alert.source,
            )
            assert len(alert.medications) == 1
            _same_instance(alert, _validated_not_checked(*parts))


def test_the_slot_setters_are_pydantics_own_descriptors() -> None:
    """The pinned pydantic's ``BaseModel`` slots the alerts are made through; on a change the
    setters fall back to ``object.__setattr__`` (and this test names the change)."""
    for name in ("__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"):
        found = BaseModel.__dict__[name]
        assert type(found) is MemberDescriptorType and found.__objclass__ is BaseModel
    found = BaseModel.__dict__["__dict__"]
    assert type(found) is GetSetDescriptorType and found.__objclass__ is BaseModel
    assert DoseNotCheckedDetail.model_fields["kind"].default == "dose-not-checked"
    assert tuple(DoseNotCheckedDetail.model_fields) == (
        "kind",
        "substance",
        "atc",
        "reason_code",
        "reason",
        "rule_id",
    )
    assert tuple(Alert.model_fields) == ("severity", "medications", "summary", "detail", "source")
