"""The checks' fast paths (issue #20) give what the general paths give, for every input."""

from dataclasses import FrozenInstanceError, fields
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interactions import Allergy, Medication, Patient
from interactions.checks import context as context_module
from interactions.checks.context import CheckContext, Entry
from interactions.checks.dose import _components, _dose_alerts, dose_alerts
from interactions.checks.duplicate import _any_in_focus, duplicate_alerts
from interactions.checks.interaction import _interaction_alerts, interaction_alerts
from tests.interactions.helpers import as_needed, fixed, knowledge, med

DRUGS = (
    "PK_MAREVAN",
    "PK_IBUX",
    "PK_VOLTAREN",
    "PK_PARACET",
    "PK_PARALGIN_FORTE",
    "PK_ZOCOR",
    "PK_SIMVASTATIN_KRKA",
    "GG_SIMVASTATIN_20",
    "PK_KLACID",
    "P_PERIKUM",
    "P_GINKGO",
    "P_ARNICA",
    "PK_ZYRTEC",
    "PK_NORVASC",
    "PK_IMOVANE",
    "PK_ZYPREXA",
    "P_SEROQUEL",
    "PK_METHOTREXATE",
    "PK_INHIXA",
    "P_DIVISUN",
    "P_BETANEKOL",
    "P_GALAFOLD",
    "ID_CODEINE",
    "DU_PARACET",
)
DOSAGES = (None, fixed(1), fixed(2), fixed(8), as_needed(2, max_per_24h=8), fixed(1, "ml"))
PATIENTS = (
    Patient(),
    Patient(allergies=(Allergy(atc="N02B"),), weight_kg=70),
    Patient(age=80, weight_kg=40),
)
days = st.one_of(st.none(), st.integers(0, 60).map(lambda n: date(2026, 1, 1) + timedelta(n)))


@st.composite
def entries(draw: st.DrawFn) -> list[Medication]:
    """Lists drawn from the fixture catalogue, as ``test_ix_properties`` draws them."""
    drugs = draw(st.lists(st.sampled_from(DRUGS), unique=True, max_size=8))
    medications = []
    for drug in drugs:
        start = draw(days)
        stop = draw(days)
        if start and stop and stop < start:
            start, stop = stop, start
        medications.append(med(drug, dosage=draw(st.sampled_from(DOSAGES)), start=start, stop=stop))
    return medications


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
