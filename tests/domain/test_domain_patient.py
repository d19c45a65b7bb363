"""Patients, national ids (mod-11), personnel and organisations."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from interactions.medication import Allergy
from medloop.domain.codes import OrganisationKind, PersonnelRole
from medloop.domain.patient import (
    InvalidNationalId,
    NationalId,
    NationalIdKind,
    Patient,
    RenalFunction,
    RenalFunctionKind,
    Weight,
)
from medloop.domain.personnel import HealthPersonnel, InvalidHprNumber, Organisation
from tests.domain.helpers import PATIENT_ID, T0

# The check digits make each full weighted sum divisible by 11 (the form the standard states the
# rule in, independent of how the code computes them).
_K1 = (3, 7, 6, 1, 8, 9, 4, 5, 2, 1)
_K2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1)


def with_check_digits(nine: str) -> str | None:
    """``nine`` plus the two check digits, or ``None`` when no digit satisfies mod 11."""
    for k1 in range(10):
        ten = f"{nine}{k1}"
        if sum(int(d) * w for d, w in zip(ten, _K1, strict=True)) % 11 == 0:
            for k2 in range(10):
                eleven = f"{ten}{k2}"
                if sum(int(d) * w for d, w in zip(eleven, _K2, strict=True)) % 11 == 0:
                    return eleven
    return None


def test_the_national_id_of_the_official_pll_example_is_valid() -> None:
    national_id = NationalId("21014605158")
    assert national_id.kind is NationalIdKind.FODSELSNUMMER
    assert national_id.birth_date == date(1946, 1, 21)
    assert not national_id.is_synthetic


@pytest.mark.parametrize(
    ("nine", "born"),
    [
        ("010190124", date(1990, 1, 1)),  # individual 000-499: 1900s
        ("311299499", date(1999, 12, 31)),
        ("290204512", date(2004, 2, 29)),  # 500-999 with year 00-39: 2000s
        ("150160601", date(1860, 1, 15)),  # 500-749 with year 54-99: 1800s
        ("150160950", date(1960, 1, 15)),  # 900-999 with year 40-99: 1900s
    ],
)
def test_a_fodselsnummer_with_both_check_digits_is_valid_and_encodes_the_birth_date(
    nine: str, born: date
) -> None:
    value = with_check_digits(nine)
    assert value is not None
    assert NationalId(value).birth_date == born


def test_a_d_number_adds_40_to_the_day() -> None:
    value = with_check_digits("410190123")
    assert value is not None
    national_id = NationalId(value)
    assert national_id.kind is NationalIdKind.D_NUMBER
    assert national_id.birth_date == date(1990, 1, 1)


def test_a_synthetic_test_number_adds_80_to_the_month_and_says_so() -> None:
    value = with_check_digits("018190123")
    assert value is not None
    national_id = NationalId(value)
    assert national_id.is_synthetic
    assert national_id.birth_date == date(1990, 1, 1)


def test_a_century_the_individual_number_does_not_fit_gives_no_birth_date() -> None:
    value = with_check_digits("010145800")  # 750-899 with year 40-99: no century
    assert value is not None
    assert NationalId(value).birth_date is None


@pytest.mark.parametrize(
    "value",
    [
        "21014605159",  # second check digit wrong
        "21014605148",  # first check digit wrong
        "2101460515",  # ten digits
        "210146051580",  # twelve digits
        "2101460515a",
        "",
    ],
)
def test_a_national_id_with_wrong_check_digits_or_shape_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="invalid|check digits|11 digits"):
        NationalId(value)


def test_a_national_id_whose_date_part_is_no_date_is_refused() -> None:
    value = with_check_digits("320190123")  # day 32
    assert value is not None
    with pytest.raises(ValidationError, match="birth date"):
        NationalId(value)


def test_a_number_whose_first_check_digit_would_be_10_is_never_valid() -> None:
    nine = next(
        f"0101901{n:02d}"
        for n in range(100)
        if sum(int(d) * w for d, w in zip(f"0101901{n:02d}", _K1[:9], strict=True)) % 11 == 1
    )
    assert with_check_digits(nine) is None
    for last in range(100):
        with pytest.raises(ValidationError):
            NationalId(f"{nine}{last:02d}")


@given(position=st.integers(0, 10), delta=st.integers(1, 9))
def test_changing_any_single_digit_of_a_valid_national_id_makes_it_invalid(
    position: int, delta: int
) -> None:
    valid = "21014605158"
    digit = (int(valid[position]) + delta) % 10
    changed = f"{valid[:position]}{digit}{valid[position + 1 :]}"
    with pytest.raises(ValidationError):
        NationalId(changed)


def test_the_invalid_national_id_error_carries_its_code() -> None:
    with pytest.raises(ValidationError) as caught:
        NationalId("21014605159")
    cause = caught.value.errors()[0]["ctx"]["error"]
    assert isinstance(cause, InvalidNationalId)
    assert cause.code == "invalid-national-id"


def patient(**fields: object) -> Patient:
    values: dict[str, object] = {
        "id": PATIENT_ID,
        "national_id": "21014605158",
        "given_name": "Ottar",
        "family_name": "Knutsen",
        "birth_date": date(1946, 1, 21),
    }
    values.update(fields)
    return Patient.model_validate(values)


def test_a_patient_whose_birth_date_differs_from_the_national_id_is_refused() -> None:
    with pytest.raises(ValidationError, match="encodes birth date 1946-01-21"):
        patient(birth_date=date(1946, 1, 22))


def test_weight_and_renal_function_stay_unknown_unless_measured() -> None:
    unmeasured = patient()
    assert unmeasured.weight is None and unmeasured.renal_function is None
    assert unmeasured.for_checks().weight_kg is None


def test_decision_support_sees_the_patients_measured_weight_and_allergies() -> None:
    measured = patient(
        weight=Weight(kg=71.5, measured_at=T0),
        renal_function=RenalFunction(kind=RenalFunctionKind.EGFR, value=48, measured_at=T0),
        allergies=(Allergy(atc="J01C", label="penicillin"), Allergy(substance_id="ID_SUBST")),
    )
    checked = measured.for_checks()
    assert checked.weight_kg == 71.5
    assert checked.allergies == measured.allergies
    assert measured.renal_function is not None
    assert measured.renal_function.kind.unit == "ml/min/1.73m2"


def test_a_patient_round_trips_through_json_with_the_national_id_as_a_string() -> None:
    original = patient(weight=Weight(kg=80, measured_at=T0))
    dumped = original.model_dump(mode="json")
    assert dumped["national_id"] == "21014605158"
    assert Patient.model_validate(dumped) == original


@pytest.mark.parametrize("hpr", ["", "12a45", "1234567890", "１２３"])
def test_an_hpr_number_is_one_to_nine_ascii_digits(hpr: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HealthPersonnel(hpr_number=hpr, name="X", role=PersonnelRole.NURSE)
    if hpr:
        assert isinstance(caught.value.errors()[0]["ctx"]["error"], InvalidHprNumber)


def test_organisations_have_one_of_four_kinds() -> None:
    assert {kind.value for kind in OrganisationKind} == {
        "gp-practice",
        "pharmacy",
        "nursing-home",
        "hospital",
    }
    with pytest.raises(ValidationError):
        Organisation(id="1", name="Legevakt", kind="out-of-hours")  # type: ignore[arg-type]


def test_decision_support_sees_age_on_the_day_and_renal_function_with_its_date() -> None:
    measured = patient(
        renal_function=RenalFunction(
            kind=RenalFunctionKind.CREATININE_CLEARANCE, value=38, measured_at=T0
        ),
        hepatic_risk=True,
    )
    assert measured.for_checks(date(2026, 1, 20)).age == 79  # the day before the birthday
    checked = measured.for_checks(date(2026, 1, 21))
    assert checked.age == 80
    assert checked.renal is not None
    assert (checked.renal.kind, checked.renal.value) == ("crcl", 38)
    assert checked.renal.measured == T0.date()
    assert checked.hepatic_risk is True
    egfr = patient(
        renal_function=RenalFunction(kind=RenalFunctionKind.EGFR, value=48, measured_at=T0)
    )
    renal = egfr.for_checks(date(2026, 1, 1)).renal
    assert renal is not None and renal.kind == "egfr"
    assert patient().for_checks(date(2026, 1, 1)).renal is None
    assert patient().for_checks(date(2026, 1, 1)).hepatic_risk is None
