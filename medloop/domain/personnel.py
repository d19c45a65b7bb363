"""Organisations and health personnel, and ``Actor``: a person acting for an organisation.

Health personnel are identified by their HPR number (``Helsepersonellregisteret``).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from medloop.domain._model import Frozen
from medloop.domain.codes import OrganisationKind, PersonnelRole
from medloop.domain.errors import InvalidValue

# -- errors ------------------------------------------------------------------------------------


class InvalidHprNumber(InvalidValue):
    code = "invalid-hpr-number"


class NotAPharmacy(InvalidValue):
    code = "not-a-pharmacy"


class NotAPharmacist(InvalidValue):
    code = "not-a-pharmacist"


_HPR_MAX_DIGITS = 9


class Organisation(Frozen):
    """A GP practice, pharmacy, nursing home or hospital; ``id`` is its HER-id or org number."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    kind: OrganisationKind


class HealthPersonnel(Frozen):
    """A doctor, nurse or pharmacist, by HPR number (digits only, at most nine)."""

    hpr_number: str
    name: str = Field(min_length=1)
    role: PersonnelRole

    @field_validator("hpr_number")
    @classmethod
    def _hpr_number_is_digits(cls, value: str) -> str:
        if not value.isascii() or not value.isdigit() or len(value) > _HPR_MAX_DIGITS:
            raise InvalidHprNumber(
                f"an HPR number is 1-{_HPR_MAX_DIGITS} digits, not {value!r}", hpr_number=value
            )
        return value


class Actor(Frozen):
    """Who did something, and for which organisation (the author of every change)."""

    personnel: HealthPersonnel
    organisation: Organisation
