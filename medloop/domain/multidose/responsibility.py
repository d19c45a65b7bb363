"""Who is responsible: the patient's multidose doctor and multidose pharmacy (M27.1), its
versions, and the checks that an actor is the pharmacist of that pharmacy or a prescriber."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from uuid import UUID

from pydantic import AwareDatetime

from interactions.values import PositiveCount
from medloop.domain._model import Frozen
from medloop.domain.codes import (
    OrganisationKind,
    PersonnelRole,
)
from medloop.domain.multidose.errors import (
    InvalidResponsibility,
    NoMultidoseResponsibility,
    NotTheMultidosePharmacy,
    PharmacistRequired,
    PrescriberRequired,
)
from medloop.domain.personnel import Actor, Organisation


class Responsibility(Frozen):
    """The patient's multidose doctor and multidose pharmacy (M27.1), one version of it."""

    patient_id: UUID
    version: PositiveCount
    doctor: Actor
    pharmacy: Organisation
    valid_from: date
    valid_to: date | None = None
    recorded_at: AwareDatetime
    recorded_by: Actor
    reason: str | None = None

    def in_force(self, on: date) -> bool:
        return self.valid_from <= on and (self.valid_to is None or on <= self.valid_to)


def assign_responsibility(
    current: Responsibility | None,
    patient_id: UUID,
    *,
    doctor: Actor | None,
    pharmacy: Organisation | None,
    valid_from: date,
    valid_to: date | None,
    at: datetime,
    by: Actor,
    reason: str | None = None,
) -> Responsibility:
    """The next version of the responsibility: a new doctor, a new pharmacy, or both (what is
    not given is kept). Only health personnel acting for a GP practice, hospital, nursing
    home or pharmacy register it; the doctor must be a doctor, the pharmacy a pharmacy."""
    if by.personnel.role not in (PersonnelRole.DOCTOR, PersonnelRole.PHARMACIST):
        raise InvalidResponsibility(
            f"a {by.personnel.role} cannot change the multidose responsibility",
            role=by.personnel.role,
        )
    doctor = doctor or (current.doctor if current else None)
    pharmacy = pharmacy or (current.pharmacy if current else None)
    if doctor is None or pharmacy is None:
        raise InvalidResponsibility("a first registration names both doctor and pharmacy")
    if doctor.personnel.role is not PersonnelRole.DOCTOR:
        raise InvalidResponsibility(
            f"{doctor.personnel.name} is not a doctor", hpr_number=doctor.personnel.hpr_number
        )
    if pharmacy.kind is not OrganisationKind.PHARMACY:
        raise InvalidResponsibility(f"{pharmacy.name} is not a pharmacy", organisation=pharmacy.id)
    if valid_to is not None and valid_to < valid_from:
        raise InvalidResponsibility(
            f"valid to {valid_to} is before valid from {valid_from}",
            valid_from=valid_from,
            valid_to=valid_to,
        )
    if current is not None and (
        current.doctor,
        current.pharmacy,
        current.valid_from,
        current.valid_to,
    ) == (doctor, pharmacy, valid_from, valid_to):
        raise InvalidResponsibility("the responsibility is already registered like this")
    return Responsibility(
        patient_id=patient_id,
        version=1 if current is None else current.version + 1,
        doctor=doctor,
        pharmacy=pharmacy,
        valid_from=valid_from,
        valid_to=valid_to,
        recorded_at=at,
        recorded_by=by,
        reason=reason,
    )


def responsibility_on(history: Iterable[Responsibility], on: date) -> Responsibility | None:
    """The newest version of the responsibility that is in force on ``on``."""
    return max((r for r in history if r.in_force(on)), key=lambda r: r.version, default=None)


def require_pharmacist_of(responsibility: Responsibility | None, by: Actor, on: date) -> None:
    """Refuse unless ``by`` is a pharmacist of the patient's multidose pharmacy on ``on``."""
    if by.personnel.role is not PersonnelRole.PHARMACIST:
        raise PharmacistRequired(
            f"{by.personnel.name} is a {by.personnel.role}, not a pharmacist",
            role=by.personnel.role,
        )
    if responsibility is None or not responsibility.in_force(on):
        raise NoMultidoseResponsibility(f"the patient has no multidose pharmacy on {on}", on=on)
    if responsibility.pharmacy.id != by.organisation.id:
        raise NotTheMultidosePharmacy(
            f"{by.organisation.name} is not the patient's multidose pharmacy "
            f"({responsibility.pharmacy.name})",
            organisation=by.organisation.id,
            multidose_pharmacy=responsibility.pharmacy.id,
        )


def require_prescriber(by: Actor) -> None:
    if by.personnel.role is not PersonnelRole.DOCTOR:
        raise PrescriberRequired(
            f"{by.personnel.name} is a {by.personnel.role}; only a prescriber may do this",
            role=by.personnel.role,
        )
