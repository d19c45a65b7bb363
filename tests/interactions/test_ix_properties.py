"""Properties of ``check`` over arbitrary lists drawn from the fixture catalogue."""

from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from interactions import Alert, Allergy, Kind, Medication, Patient, check
from tests.interactions.drawn import DRUGS, entries
from tests.interactions.helpers import knowledge, med

UNRELATED = ("P_ARNICA", "P_BETANEKOL", "P_GALAFOLD")
PAIRWISE = (Kind.INTERACTION, Kind.DUPLICATE)
PATIENT = Patient(allergies=(Allergy(atc="N02B"),), weight_kg=70)


def run(medications: list[Medication], proposed: list[str] | None = None) -> list[Alert]:
    return check(knowledge(), medications, patient=PATIENT, include_all=True, proposed=proposed)


@settings(max_examples=60, deadline=None)
@given(entries(), st.randoms(use_true_random=False))
def test_result_is_independent_of_list_order(medications: list[Medication], random: Random) -> None:
    shuffled = list(medications)
    random.shuffle(shuffled)
    assert run(shuffled) == run(medications)


@settings(max_examples=60, deadline=None)
@given(entries(tuple(d for d in DRUGS if d not in UNRELATED)), st.sampled_from(UNRELATED))
def test_adding_an_unrelated_drug_never_removes_an_alert(
    medications: list[Medication], unrelated: str
) -> None:
    before = {a.key for a in run(medications)}
    after = {a.key for a in run([*medications, med(unrelated)])}
    assert before <= after


@settings(max_examples=60, deadline=None)
@given(entries(), st.sampled_from(DRUGS))
def test_adding_any_drug_never_removes_a_non_dose_alert(
    medications: list[Medication], extra: str
) -> None:
    if extra in {m.id for m in medications}:
        return
    before = {a.key for a in run(medications) if a.kind is not Kind.DOSE}
    after = {a.key for a in run([*medications, med(extra)])}
    assert before <= after


@settings(max_examples=60, deadline=None)
@given(entries())
def test_an_entry_never_pairs_with_itself(medications: list[Medication]) -> None:
    for alert in run(medications):
        if alert.kind in PAIRWISE:
            assert len(set(alert.medications)) == 2
    for medication in medications:
        assert not [a for a in run([medication]) if a.kind in PAIRWISE]


@settings(max_examples=60, deadline=None)
@given(entries(), st.data())
def test_checking_a_proposed_entry_equals_the_full_check_restricted_to_it(
    medications: list[Medication], data: st.DataObject
) -> None:
    if not medications:
        return
    new = data.draw(st.sampled_from([m.id for m in medications]))
    fast = [a for a in run(medications, proposed=[new]) if a.kind is not Kind.DOSE]
    full = [a for a in run(medications) if new in a.medications and a.kind is not Kind.DOSE]
    assert fast == full
