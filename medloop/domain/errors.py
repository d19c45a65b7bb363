"""Every refusal the domain makes, as an exception with a stable machine ``code``.

The codes are a public contract: the API maps each one to an RFC 9457 problem type
(``…/problems/<code>``) in one place. Never rename or reuse a code; add a class instead.
``detail`` is a sentence for people; ``context`` holds the ids and values involved, as JSON-able
scalars.

Families (catch the family when the precise cause does not matter):

- ``InvalidValue``: a value that cannot exist (also a ``ValueError``, so pydantic reports it);
- ``ListError`` and its ``EntryTransitionRefused``: the medication list refuses a change;
- ``PrescriptionError``: a prescription refuses an operation or a status transition;
- ``NotDispensable``: the closed-loop dispensing rules refuse a dispense (a marker shared with
  the prescription and entry errors that also stop a dispense);
- ``DispenseError``: operations on recorded dispenses;
- ``ReconciliationError``: a reconciliation record that does not fit the list;
- the command layer's refusals (``medloop.loop``): unknown patient, prescription, dispense or
  drug, no catalogue in force, and ``OverrideRequired``.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, ClassVar
from uuid import UUID

if TYPE_CHECKING:
    from collections.abc import Sequence

    from interactions import Alert

_CODES: dict[str, type[DomainError]] = {}


def _jsonable(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID | date | datetime):
        return str(value) if isinstance(value, UUID) else value.isoformat()
    if isinstance(value, tuple | list | set | frozenset):
        return [_jsonable(item) for item in value]
    return value


class DomainError(Exception):
    """A refusal by the domain. Concrete subclasses set a unique ``code``."""

    code: ClassVar[str] = "domain-error"

    def __init__(self, detail: str, **context: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = {name: _jsonable(value) for name, value in context.items()}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            if cls.code in _CODES:
                raise TypeError(f"error code {cls.code!r} is already used by {_CODES[cls.code]}")
            _CODES[cls.code] = cls


def error_codes() -> dict[str, type[DomainError]]:
    """Every concrete error code and its class."""
    return dict(_CODES)


# -- values ------------------------------------------------------------------------------------


class InvalidValue(DomainError, ValueError):
    """A value that cannot exist."""


class InvalidNationalId(InvalidValue):
    code = "invalid-national-id"


class InvalidHprNumber(InvalidValue):
    code = "invalid-hpr-number"


class InvalidDuration(InvalidValue):
    code = "invalid-duration"


class NotAPharmacy(InvalidValue):
    code = "not-a-pharmacy"


class NotAPharmacist(InvalidValue):
    code = "not-a-pharmacist"


class ObservationInvalid(InvalidValue):
    """A measurement that cannot be recorded: none given, measured in the future, or a value
    outside what a person can have."""

    code = "observation-invalid"


# -- the medication list -----------------------------------------------------------------------


class ListError(DomainError):
    """The medication list refuses a change."""


class NotDispensable(DomainError):
    """Marker: the error stops a dispense (raised by the closed-loop dispensing checks)."""


class StaleListVersion(ListError):
    code = "stale-list-version"


class BrokenHistory(ListError):
    code = "broken-history"


class EntryNotFound(ListError):
    code = "entry-not-found"


class EntryAlreadyExists(ListError):
    code = "entry-already-exists"


class EmptyChange(ListError):
    code = "empty-change"


class InvalidEntry(ListError):
    code = "invalid-entry"


class PrescriptionBacksAnotherEntry(ListError):
    code = "prescription-backs-another-entry"


class PrescriptionNotOnEntry(ListError, NotDispensable):
    code = "prescription-not-on-entry"


class EntryTransitionRefused(ListError):
    """The entry's status does not allow this change."""


class EntryEnteredInError(EntryTransitionRefused):
    code = "entry-entered-in-error"


class EntryDiscontinued(EntryTransitionRefused):
    code = "entry-discontinued"


class EntryAlreadyDiscontinued(EntryTransitionRefused):
    code = "entry-already-discontinued"


class EntryAlreadyOnHold(EntryTransitionRefused):
    code = "entry-already-on-hold"


class EntryNotOnHold(EntryTransitionRefused):
    code = "entry-not-on-hold"


class EntryNotActive(EntryTransitionRefused, NotDispensable):
    code = "entry-not-active"


# -- prescriptions -----------------------------------------------------------------------------


class PrescriptionError(DomainError):
    """A prescription refuses an operation."""


class PrescriptionTransitionRefused(PrescriptionError):
    code = "prescription-transition-refused"


class PrescriptionRecalled(PrescriptionTransitionRefused, NotDispensable):
    code = "prescription-recalled"


class PrescriptionExpired(PrescriptionTransitionRefused, NotDispensable):
    code = "prescription-expired"


class PrescriptionFullyDispensed(PrescriptionTransitionRefused, NotDispensable):
    code = "prescription-fully-dispensed"


class PrescriptionLocked(PrescriptionTransitionRefused, NotDispensable):
    code = "prescription-locked"


class PrescriptionStillValid(PrescriptionTransitionRefused):
    code = "prescription-still-valid"


class RepeatsNotAllowed(PrescriptionError):
    code = "repeats-not-allowed"


class ValidityTooLong(PrescriptionError):
    code = "validity-too-long"


class ExpiryBeforeIssue(PrescriptionError):
    code = "expiry-before-issue"


class EntryNotPrescribable(PrescriptionError):
    code = "entry-not-prescribable"


class NonCatalogueItemNotPrescribable(PrescriptionError):
    code = "non-catalogue-item-not-prescribable"


# -- dispensing --------------------------------------------------------------------------------


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


# -- reconciliation ----------------------------------------------------------------------------


class ReconciliationError(DomainError):
    """A reconciliation record does not fit the list it reconciles."""


class ReconciliationNeedsSource(ReconciliationError):
    code = "reconciliation-needs-a-source"


class ReconciliationUnknownEntry(ReconciliationError):
    code = "reconciliation-unknown-entry"


class ReconciliationDuplicateOutcome(ReconciliationError):
    code = "reconciliation-duplicate-outcome"


class ReconciliationIncomplete(ReconciliationError):
    code = "reconciliation-incomplete"


class ReconciliationOutcomeContradictsEntry(ReconciliationError):
    code = "reconciliation-outcome-contradicts-entry"


# -- the command layer -------------------------------------------------------------------------


class PatientNotFound(DomainError):
    code = "patient-not-found"


class PatientAlreadyRegistered(DomainError):
    code = "patient-already-registered"


class ObservationOlderThanRecorded(DomainError):
    """A measurement older than the one on record: the newer value stays (record the newer
    one, or correct the record explicitly)."""

    code = "observation-older-than-recorded"


class PrescriptionNotFound(DomainError):
    """No such prescription for this patient (also when it belongs to another patient)."""

    code = "prescription-not-found"


class DispenseNotFound(DomainError):
    code = "dispense-not-found"


class IdAlreadyUsed(DomainError):
    """A client-chosen id (entry, prescription, dispense) is already taken."""

    code = "id-already-used"


class UnknownDrug(DomainError):
    """The drug reference is not in the catalogue version in force."""

    code = "unknown-drug"


class NoCatalogueInForce(DomainError):
    code = "no-catalogue-in-force"


class ReasonRequired(DomainError):
    code = "reason-required"


class OverrideRequired(DomainError):
    """Alerts that need an override with a reason came up; ``alerts`` lists them (their keys
    are what the retried call names as overridden)."""

    code = "override-required"

    def __init__(self, alerts: Sequence[Alert]) -> None:
        keys = [a.key for a in alerts]
        super().__init__(
            f"{len(alerts)} alert(s) need an override with a reason: {', '.join(keys)}",
            alert_keys=keys,
            alerts=[a.model_dump(mode="json") for a in alerts],
        )
        self.alerts = tuple(alerts)
