"""Dispensing (``utlevering``, reported in M10): what a pharmacy handed out against a
prescription, annulment (``annullering``) of an earlier dispense, the arithmetic of partial
dispensing and repeats, and the closed-loop rule ``check_dispensable`` (architecture
invariant 4).

A dispense is immutable; annulling it adds an ``Annulment`` (store it as its own append-only
row) and the dispense stops counting. Quantities are counted in the prescription's own measure:
packages when it prescribes packages, else its amount unit (mg and g, tablett and tabletter are
converted; different dimensions never are).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from interactions.catalogue import Package, SubstitutionGroup
from interactions.dosage import Quantity
from interactions.units import unit_info
from interactions.values import Packages
from medloop.domain._model import Frozen, replace
from medloop.domain.codes import EntryStatus, OrganisationKind, PersonnelRole, PrescriptionStatus
from medloop.domain.entry import ListEntry
from medloop.domain.errors import DomainError, NotDispensable
from medloop.domain.medication_list import EntryNotActive, PrescriptionNotOnEntry
from medloop.domain.personnel import (
    Actor,
    HealthPersonnel,
    NotAPharmacist,
    NotAPharmacy,
    Organisation,
)
from medloop.domain.prescription import (
    Prescription,
    PrescriptionExpired,
    PrescriptionFullyDispensed,
    PrescriptionVersion,
    after_dispensing,
    check_lock_holder,
    check_transition,
)

# -- errors ------------------------------------------------------------------------------------


class PackageNotSubstitutable(NotDispensable):
    code = "package-not-substitutable"


class SubstitutionReserved(NotDispensable):
    code = "substitution-reserved"


class SubstitutionGroupNotValid(NotDispensable):
    code = "substitution-group-not-valid-on-date"


class QuantityExceedsRemaining(NotDispensable):
    code = "quantity-exceeds-remaining"


class QuantityUnitMismatch(NotDispensable):
    code = "quantity-unit-mismatch"


class PackExpired(NotDispensable):
    code = "pack-expired"


class DispenseError(DomainError):
    """An operation on a recorded dispense is refused."""


class DispenseAlreadyAnnulled(DispenseError):
    code = "dispense-already-annulled"


class DispenseNotOnPrescription(DispenseError):
    code = "dispense-not-on-prescription"


class AnnulmentByAnotherPharmacy(DispenseError):
    code = "annulment-by-another-pharmacy"


class DispenseNotFound(DomainError):
    code = "dispense-not-found"


PACKAGES = "package"
"""The unit of a tally that counts packages."""

_EPSILON = 1e-9


class DispenseQuantity(Frozen):
    """What was handed out: packages (``Antall``) and, when known, the amount they hold."""

    packages: Packages
    amount: Quantity | None = None


class DispensedPackage(Frozen):
    """The package actually handed out: FEST package id and varenr (``Varenr``)."""

    package_id: str = Field(min_length=1)
    varenr: str = Field(min_length=1)
    name: str

    @classmethod
    def of(cls, package: Package) -> DispensedPackage:
        return cls(package_id=package.id, varenr=package.varenr, name=package.name)


class Annulment(Frozen):
    at: AwareDatetime
    by: Actor
    reason: str = Field(min_length=1)


NOT_CARRIED_BY_M10 = "ikke oppgitt i M10"
"""How a pack detail an M10 does not carry is shown (batch when no ``Batchnr``; expiry always)."""

DispenseSource = Literal["M10"]
"""Where a dispense was reported from when not at our own dispensing: ``M10``, an external
pharmacy's dispensing report (``Utleveringsrapport``)."""


def _pack_details(
    reported_in: DispenseSource | None, batch: str | None, expiry: date | None
) -> None:
    """Batch and expiry are required, except in a dispense reported through M10, which carries
    no expiry (and the batch only when it has ``Batchnr``): the one source that may lack them."""
    if reported_in is None and (batch is None or expiry is None):
        raise ValueError(
            "a dispense records the pack's batch and expiry; only a dispense reported in an "
            "M10 (reported_in='M10') may lack them"
        )


class Dispense(Frozen):
    """One dispense. ``substituted`` says the package differs from the prescribed one (generic
    substitution, ``generisk bytte``); ``patient_refused_substitution`` is
    ``ByttereservasjonKunde``; ``finished`` (``Avsluttet``) says the pharmacy closed the
    prescription; ``expiry`` and ``batch`` are the pack's. ``reported_in`` is ``"M10"`` for a
    dispense an external pharmacy reported through an M10: only then may ``batch`` and
    ``expiry`` be absent (``not_carried`` names them; shown as :data:`NOT_CARRIED_BY_M10`)."""

    id: UUID
    prescription_id: UUID
    entry_id: UUID
    dispensed_on: date
    package: DispensedPackage
    quantity: DispenseQuantity
    batch: str | None = Field(default=None, min_length=1)
    expiry: date | None = None
    pharmacy: Organisation
    pharmacist: HealthPersonnel
    substituted: bool
    patient_refused_substitution: bool = False
    finished: bool = False
    annulment: Annulment | None = None
    reported_in: DispenseSource | None = None

    @model_validator(mode="after")
    def _by_a_pharmacist_at_a_pharmacy(self) -> Dispense:
        if self.pharmacy.kind is not OrganisationKind.PHARMACY:
            raise NotAPharmacy(f"{self.pharmacy.name} is not a pharmacy")
        if self.pharmacist.role is not PersonnelRole.PHARMACIST:
            raise NotAPharmacist(f"{self.pharmacist.name} is not a pharmacist")
        _pack_details(self.reported_in, self.batch, self.expiry)
        return self

    @property
    def not_carried(self) -> tuple[str, ...]:
        """The pack details absent because the M10 that reported the dispense does not carry
        them (``batch``, ``expiry``)."""
        details = (("batch", self.batch), ("expiry", self.expiry))
        return tuple(name for name, value in details if value is None)

    @property
    def counts(self) -> bool:
        """Whether the dispense counts against the prescription (it is not annulled)."""
        return self.annulment is None


@dataclass(frozen=True, slots=True)
class DispensingTally:
    """Where a prescription stands: ``allowed`` is the quantity times the rounds (first plus
    repeats), ``dispensed`` the sum of dispenses that count, both in ``unit``."""

    unit: str
    per_round: float
    rounds: int
    allowed: float
    dispensed: float
    closed_by_pharmacy: bool

    @property
    def remaining(self) -> float:
        return max(0.0, self.allowed - self.dispensed)

    @property
    def rounds_started(self) -> int:
        return math.ceil(self.dispensed / self.per_round - _EPSILON) if self.dispensed else 0

    @property
    def repeats_used(self) -> int:
        return min(self.rounds - 1, max(0, self.rounds_started - 1))

    @property
    def repeats_left(self) -> int:
        return self.rounds - 1 - self.repeats_used

    @property
    def finished(self) -> bool:
        """Nothing more may be dispensed: all of it was, or the pharmacy closed it."""
        return self.closed_by_pharmacy or self.remaining <= _EPSILON


def tally(prescription: Prescription, dispenses: Iterable[Dispense]) -> DispensingTally:
    """The tally of ``prescription`` over its ``dispenses`` (annulled ones do not count)."""
    unit, per_round = _measure(prescription)
    counting = [d for d in _own(prescription, dispenses) if d.counts]
    return DispensingTally(
        unit=unit,
        per_round=per_round,
        rounds=prescription.rounds,
        allowed=per_round * prescription.rounds,
        dispensed=sum(_in_measure(prescription, d.quantity) for d in counting),
        closed_by_pharmacy=any(d.finished for d in counting),
    )


@dataclass(frozen=True, slots=True)
class Dispensable:
    """A dispense the rules allow: whether it substitutes, under which substitution group (with
    its ``restricted`` remark, ``MerknadTilByttbarhet``), and what remains after it."""

    substituted: bool
    substitution_group: SubstitutionGroup | None
    remaining_after: float
    unit: str


def check_dispensable(
    prescription: Prescription,
    entry: ListEntry,
    package: Package,
    substitution_groups: Iterable[SubstitutionGroup],
    on: date,
    already_dispensed: Iterable[Dispense],
    *,
    quantity: DispenseQuantity,
    pharmacy: Organisation | None = None,
) -> Dispensable:
    """Whether ``quantity`` of ``package`` may be dispensed on ``on`` against ``prescription``;
    raises the precise ``NotDispensable`` error otherwise.

    The rules: the prescription backs ``entry`` and is dispensable (not recalled, expired, fully
    dispensed or locked by another pharmacy than ``pharmacy``) and valid on ``on``; the entry is
    active; the package is the prescribed one, or — unless the prescriber reserved against
    substitution — in one of the prescribed drug's substitution groups, with both the group and
    the package's membership valid on ``on``; the quantity is within what remains.
    ``substitution_groups`` are the catalogue's groups in force (at least the package's).
    """
    if prescription.entry_id != entry.id or prescription.id not in entry.prescription_ids:
        raise PrescriptionNotOnEntry(
            f"prescription {prescription.id} does not back entry {entry.id}",
            prescription_id=prescription.id,
            entry_id=entry.id,
        )
    check_transition(prescription, PrescriptionStatus.FULLY_DISPENSED)
    if pharmacy is not None:
        check_lock_holder(prescription, pharmacy)
    if on > prescription.expires:
        raise PrescriptionExpired(
            f"prescription {prescription.id} expired on {prescription.expires}",
            prescription_id=prescription.id,
            expires=prescription.expires,
        )
    if entry.status is not EntryStatus.ACTIVE:
        raise EntryNotActive(
            f"entry {entry.id} is {entry.status}; only an active entry is dispensed",
            entry_id=entry.id,
            status=entry.status,
        )
    substituted, group = _substitution(prescription, package, substitution_groups, on)
    current = tally(prescription, already_dispensed)
    if current.finished:
        raise PrescriptionFullyDispensed(
            f"prescription {prescription.id} is fully dispensed", prescription_id=prescription.id
        )
    wanted = _in_measure(prescription, quantity)
    if wanted > current.remaining + _EPSILON:
        raise QuantityExceedsRemaining(
            f"{wanted:g} {current.unit} asked, {current.remaining:g} {current.unit} remain",
            prescription_id=prescription.id,
            asked=wanted,
            remaining=current.remaining,
            unit=current.unit,
        )
    return Dispensable(
        substituted=substituted,
        substitution_group=group,
        remaining_after=max(0.0, current.remaining - wanted),
        unit=current.unit,
    )


class DispenseRequest(Frozen):
    """What the pharmacy reports handing out (the M10 ``Utlevering``); batch and expiry may be
    absent only when ``reported_in`` is ``"M10"`` (see :class:`Dispense`)."""

    id: UUID
    dispensed_on: date
    quantity: DispenseQuantity
    batch: str | None = Field(default=None, min_length=1)
    expiry: date | None = None
    patient_refused_substitution: bool = False
    finished: bool = False
    reported_in: DispenseSource | None = None

    @model_validator(mode="after")
    def _pack_details_unless_m10(self) -> DispenseRequest:
        _pack_details(self.reported_in, self.batch, self.expiry)
        return self


@dataclass(frozen=True, slots=True)
class DispenseOutcome:
    """A recorded (or annulled) dispense and the prescription after it; ``prescription_version``
    is ``None`` when the prescription's status did not change. ``substitution_group`` is the
    group a substitution was made within (its ``restricted`` remark needs the pharmacist's
    decision: ``interactions.checks.substitution``)."""

    dispense: Dispense
    prescription: Prescription
    prescription_version: PrescriptionVersion | None
    substitution_group: SubstitutionGroup | None = None


def dispense(
    prescription: Prescription,
    entry: ListEntry,
    package: Package,
    substitution_groups: Iterable[SubstitutionGroup],
    already_dispensed: Iterable[Dispense],
    request: DispenseRequest,
    *,
    at: AwareDatetime,
    by: Actor,
) -> DispenseOutcome:
    """Record a dispense by ``by`` (a pharmacist at a pharmacy) after ``check_dispensable``; the
    prescription becomes fully dispensed when nothing remains or the pharmacy finishes it, and
    stays dispensable after a partial dispense."""
    earlier = tuple(already_dispensed)
    verdict = check_dispensable(
        prescription,
        entry,
        package,
        substitution_groups,
        request.dispensed_on,
        earlier,
        quantity=request.quantity,
        pharmacy=by.organisation,
    )
    if request.expiry is not None and request.expiry < request.dispensed_on:
        raise PackExpired(
            f"the pack expired on {request.expiry}", batch=request.batch, expiry=request.expiry
        )
    record = Dispense(
        id=request.id,
        prescription_id=prescription.id,
        entry_id=entry.id,
        dispensed_on=request.dispensed_on,
        package=DispensedPackage.of(package),
        quantity=request.quantity,
        batch=request.batch,
        expiry=request.expiry,
        pharmacy=by.organisation,
        pharmacist=by.personnel,
        substituted=verdict.substituted,
        patient_refused_substitution=request.patient_refused_substitution,
        finished=request.finished,
        reported_in=request.reported_in,
    )
    finished = tally(prescription, (*earlier, record)).finished
    after, version = after_dispensing(prescription, finished=finished, at=at, by=by)
    return DispenseOutcome(record, after, version, verdict.substitution_group)


def annul(
    dispense: Dispense,
    prescription: Prescription,
    dispenses: Iterable[Dispense],
    *,
    reason: str,
    at: AwareDatetime,
    by: Actor,
) -> DispenseOutcome:
    """Annul an earlier dispense (only the pharmacy that made it may); it stops counting and a
    fully dispensed prescription reopens when something remains."""
    if dispense.prescription_id != prescription.id:
        raise DispenseNotOnPrescription(
            f"dispense {dispense.id} is not on prescription {prescription.id}",
            dispense_id=dispense.id,
            prescription_id=prescription.id,
        )
    if dispense.annulment is not None:
        raise DispenseAlreadyAnnulled(
            f"dispense {dispense.id} was annulled at {dispense.annulment.at}",
            dispense_id=dispense.id,
        )
    if by.organisation.id != dispense.pharmacy.id:
        raise AnnulmentByAnotherPharmacy(
            f"dispense {dispense.id} was made by {dispense.pharmacy.name}",
            dispense_id=dispense.id,
            pharmacy_id=dispense.pharmacy.id,
        )
    annulled = replace(dispense, annulment=Annulment(at=at, by=by, reason=reason))
    others = [d for d in dispenses if d.id != dispense.id]
    finished = tally(prescription, (*others, annulled)).finished
    after, version = after_dispensing(prescription, finished=finished, at=at, by=by)
    return DispenseOutcome(annulled, after, version)


def _substitution(
    prescription: Prescription,
    package: Package,
    substitution_groups: Iterable[SubstitutionGroup],
    on: date,
) -> tuple[bool, SubstitutionGroup | None]:
    if prescription.drug.names_package(package):
        return False, None
    context = {"prescription_id": prescription.id, "package_id": package.id}
    if prescription.reserved_against_substitution:
        raise SubstitutionReserved(
            f"the prescriber reserved against substitution; {package.name} is not the prescribed "
            f"{prescription.drug.name}",
            **context,
        )
    group_id = package.substitution_group_id
    if group_id is None or group_id not in prescription.drug.resolved.substitution_group_ids:
        raise PackageNotSubstitutable(
            f"{package.name} is not in a substitution group of {prescription.drug.name}",
            substitution_group_id=group_id,
            **context,
        )
    group = next((g for g in substitution_groups if g.id == group_id), None)
    if group is None:
        raise SubstitutionGroupNotValid(
            f"substitution group {group_id} is not in the catalogue in force",
            substitution_group_id=group_id,
            on=on,
            **context,
        )
    for what, start, end in (
        (f"substitution group {group.code}", group.valid_from, group.valid_to),
        (
            f"{package.name}'s membership of group {group.code}",
            package.substitution_valid_from,
            package.substitution_valid_to,
        ),
    ):
        if (start is not None and on < start) or (end is not None and on > end):
            raise SubstitutionGroupNotValid(
                f"{what} is valid {start or '…'} to {end or '…'}, not on {on}",
                substitution_group_id=group_id,
                on=on,
                **context,
            )
    return True, group


def _own(prescription: Prescription, dispenses: Iterable[Dispense]) -> list[Dispense]:
    own = list(dispenses)
    for d in own:
        if d.prescription_id != prescription.id:
            raise DispenseNotOnPrescription(
                f"dispense {d.id} is not on prescription {prescription.id}",
                dispense_id=d.id,
                prescription_id=prescription.id,
            )
    return own


def _measure(prescription: Prescription) -> tuple[str, float]:
    quantity = prescription.quantity
    if quantity.packages is not None:
        return PACKAGES, quantity.packages
    assert quantity.amount is not None
    return quantity.amount.unit, quantity.amount.value


def _in_measure(prescription: Prescription, quantity: DispenseQuantity) -> float:
    unit, _ = _measure(prescription)
    if unit == PACKAGES:
        return quantity.packages
    if quantity.amount is None:
        raise QuantityUnitMismatch(
            f"the prescription counts {unit}; the dispense gives only packages",
            prescription_id=prescription.id,
            unit=unit,
        )
    return _convert(quantity.amount, unit, prescription.id)


def _convert(amount: Quantity, unit: str, prescription_id: UUID) -> float:
    if amount.unit == unit:
        return amount.value
    given, wanted = unit_info(amount.unit), unit_info(unit)
    if given is None or wanted is None or given.canonical != wanted.canonical:
        raise QuantityUnitMismatch(
            f"{amount.unit} cannot be counted as {unit}",
            prescription_id=prescription_id,
            unit=unit,
            given_unit=amount.unit,
        )
    return amount.value * given.factor / wanted.factor
