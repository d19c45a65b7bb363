"""The patient: national id (``fødselsnummer`` or D-number), name, birth date, the clinical facts
checks need (weight, renal function, allergies/CAVE), and the bridge to decision support.

Weight and renal function carry the time they were measured and are never defaulted: an unknown
value stays ``None`` and checks report "not checked".
"""

from __future__ import annotations

import math
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import (
    ConfigDict,
    Field,
    RootModel,
    WithJsonSchema,
    model_validator,
)

from interactions.medication import Allergy
from interactions.medication import Patient as CheckedPatient
from interactions.medication import RenalFunction as CheckedRenal
from interactions.values import LabValue, Moment, WeightKg
from medloop.domain._model import Frozen
from medloop.domain.errors import DomainError, InvalidValue
from medloop.domain.oslo import local_date
from medloop.domain.oslo import today as oslo_today

# -- errors ------------------------------------------------------------------------------------


class InvalidNationalId(InvalidValue):
    code = "invalid-national-id"


class ObservationInvalid(InvalidValue):
    """A measurement that cannot be recorded: none given, measured in the future, or a value
    outside what a person can have."""

    code = "observation-invalid"


class PatientNotFound(DomainError):
    code = "patient-not-found"


class PatientAlreadyRegistered(DomainError):
    code = "patient-already-registered"


class ObservationOlderThanRecorded(DomainError):
    """A measurement older than the one on record: the newer value stays (record the newer
    one, or correct the record explicitly)."""

    code = "observation-older-than-recorded"


_LENGTH = 11
_FIRST_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_SECOND_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_D_NUMBER_DAY_OFFSET = 40
# Skatteetaten's synthetic test persons (Tenor) add 80 to the month.
_SYNTHETIC_MONTH_OFFSET = 80
_LEAP_YEAR = 2000


class NationalIdKind(StrEnum):
    FODSELSNUMMER = "fodselsnummer"
    D_NUMBER = "d-number"


def _check_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    check = (11 - remainder) % 11
    return None if check == 10 else check


def _century(year: int, individual: int) -> int | None:
    """The century of a two-digit birth year, from the individual number (000-999)."""
    if individual <= 499:
        return 1900
    if individual <= 749 and year >= 54:
        return 1800
    if year <= 39:
        return 2000
    if individual >= 900:
        return 1900
    return None


class NationalId(RootModel[str]):
    """A Norwegian national identity number: 11 digits, DDMMYY + individual number + two mod-11
    check digits. A D-number adds 40 to the day; a synthetic test number adds 80 to the month."""

    model_config = ConfigDict(frozen=True)

    # The validator below refuses anything else with its own error (InvalidNationalId); the
    # schema publishes the shape.
    root: Annotated[
        str,
        WithJsonSchema(
            {"type": "string", "minLength": _LENGTH, "maxLength": _LENGTH, "pattern": r"^\d{11}$"}
        ),
    ]

    @model_validator(mode="after")
    def _is_valid(self) -> NationalId:
        value = self.root
        if len(value) != _LENGTH or not value.isascii() or not value.isdigit():
            raise InvalidNationalId("a national id is 11 digits", national_id=value)
        first = _check_digit(value[:9], _FIRST_WEIGHTS)
        second = None if first is None else _check_digit(value[:10], _SECOND_WEIGHTS)
        if first is None or second is None or value[9:] != f"{first}{second}":
            raise InvalidNationalId("the check digits do not match", national_id=value)
        day, month, year = self._day_month_year()
        try:
            date(self._full_year(year) or _LEAP_YEAR, month, day)
        except ValueError:
            raise InvalidNationalId(
                "the first six digits are not a birth date", national_id=value
            ) from None
        return self

    def _day_month_year(self) -> tuple[int, int, int]:
        day, month, year = int(self.root[0:2]), int(self.root[2:4]), int(self.root[4:6])
        if day > _D_NUMBER_DAY_OFFSET:
            day -= _D_NUMBER_DAY_OFFSET
        if month > _SYNTHETIC_MONTH_OFFSET:
            month -= _SYNTHETIC_MONTH_OFFSET
        return day, month, year

    def _full_year(self, year: int) -> int | None:
        century = _century(year, int(self.root[6:9]))
        return None if century is None else century + year

    @property
    def kind(self) -> NationalIdKind:
        if int(self.root[0:2]) > _D_NUMBER_DAY_OFFSET:
            return NationalIdKind.D_NUMBER
        return NationalIdKind.FODSELSNUMMER

    @property
    def is_synthetic(self) -> bool:
        """A synthetic test person (month + 80); production may refuse these."""
        return int(self.root[2:4]) > _SYNTHETIC_MONTH_OFFSET

    @property
    def birth_date(self) -> date | None:
        """The birth date the number encodes, or ``None`` when the individual number does not
        determine the century."""
        day, month, year = self._day_month_year()
        full_year = self._full_year(year)
        return None if full_year is None else date(full_year, month, day)

    def __str__(self) -> str:
        return self.root


class Weight(Frozen):
    kg: WeightKg
    measured_at: Moment


class RenalFunctionKind(StrEnum):
    """eGFR is in ml/min/1.73 m², creatinine clearance (Cockcroft-Gault) in ml/min."""

    EGFR = "egfr"
    CREATININE_CLEARANCE = "creatinine-clearance"

    @property
    def unit(self) -> str:
        return "ml/min/1.73m2" if self is RenalFunctionKind.EGFR else "ml/min"


class RenalFunction(Frozen):
    kind: RenalFunctionKind
    value: LabValue
    # Within the years every date input may name (1900-2199): a kidney function measured in
    # the year 478 is a typing error, and decision support could not judge its age.
    measured_at: Moment


_MAX_WEIGHT_KG = 400.0
_MAX_RENAL = 250.0


class Observation(Frozen):
    """New measurements of a patient, each with the time it was measured: weight, kidney
    function (eGFR or creatinine clearance) and whether there are risk factors for liver
    injury. At least one is given."""

    weight: Weight | None = None
    renal_function: RenalFunction | None = None
    hepatic_risk: bool | None = None


def _plausible(
    name: str, value: float, maximum: float, measured_at: datetime, at: datetime
) -> None:
    if not math.isfinite(value) or value > maximum:
        raise ObservationInvalid(
            f"a {name} of {value:g} is not plausible (at most {maximum:g})", value=value
        )
    if measured_at > at:
        raise ObservationInvalid(
            f"the {name} is measured in the future ({measured_at.isoformat()})",
            measured_at=measured_at,
        )


def _not_older(name: str, measured_at: datetime, recorded: Weight | RenalFunction | None) -> None:
    if recorded is not None and measured_at < recorded.measured_at:
        raise ObservationOlderThanRecorded(
            f"the {name} measured {measured_at.isoformat()} is older than the one on record "
            f"({recorded.measured_at.isoformat()})",
            measured_at=measured_at,
            recorded_at=recorded.measured_at,
        )


class Patient(Frozen):
    """A patient. ``id`` is ours and stable; the national id may change (D-number → fnr).

    ``allergies`` are allergies/CAVE by ATC code (any level) or FEST substance id, reusing the
    decision-support ``Allergy`` so checks see exactly what is recorded.
    """

    id: UUID
    national_id: NationalId
    given_name: str = Field(min_length=1)
    family_name: str = Field(min_length=1)
    birth_date: date
    weight: Weight | None = None
    renal_function: RenalFunction | None = None
    allergies: tuple[Allergy, ...] = ()
    hepatic_risk: bool | None = None
    """Risk factors for liver injury (hepatic impairment, chronic alcohol use, malnutrition,
    dehydration): ``None`` while nobody has recorded either way."""

    @model_validator(mode="after")
    def _birth_date_matches_national_id(self) -> Patient:
        encoded = self.national_id.birth_date
        if encoded is not None and encoded != self.birth_date:
            raise InvalidNationalId(
                f"the national id encodes birth date {encoded}, not {self.birth_date}",
                national_id=str(self.national_id),
            )
        return self

    def with_observation(self, observation: Observation, at: datetime) -> Patient:
        """The patient with ``observation`` recorded at ``at``. Refuses a measurement in the
        future or outside what a person can have (``ObservationInvalid``), and one older than
        the value on record (``ObservationOlderThanRecorded``)."""
        update: dict[str, object] = {}
        if observation.weight is not None:
            weight = observation.weight
            _plausible("weight", weight.kg, _MAX_WEIGHT_KG, weight.measured_at, at)
            _not_older("weight", weight.measured_at, self.weight)
            update["weight"] = weight
        if observation.renal_function is not None:
            renal = observation.renal_function
            _plausible("renal function", renal.value, _MAX_RENAL, renal.measured_at, at)
            _not_older("renal function", renal.measured_at, self.renal_function)
            update["renal_function"] = renal
        if observation.hepatic_risk is not None:
            update["hepatic_risk"] = observation.hepatic_risk
        if not update:
            raise ObservationInvalid("the observation records nothing")
        return self.model_copy(update=update)

    def age_on(self, day: date) -> int:
        """Age in whole years on ``day``."""
        birthday_passed = (day.month, day.day) >= (self.birth_date.month, self.birth_date.day)
        return day.year - self.birth_date.year - (0 if birthday_passed else 1)

    def for_checks(self, on: date | None = None) -> CheckedPatient:
        """The patient as decision support sees it on ``on`` (default: today in Oslo): age from the
        birth date, the recorded weight, renal function with the day it was measured (its age
        is judged by the check) and hepatic risk factors; nothing is defaulted."""
        day = on or oslo_today()
        renal = self.renal_function
        return CheckedPatient(
            allergies=self.allergies,
            weight_kg=None if self.weight is None else self.weight.kg,
            age=max(0, self.age_on(day)),
            renal=None
            if renal is None
            else CheckedRenal.model_validate(
                {
                    "egfr" if renal.kind is RenalFunctionKind.EGFR else "crcl": renal.value,
                    "measured": local_date(renal.measured_at),
                }
            ),
            hepatic_risk=self.hepatic_risk,
        )
