"""Prescriptions (``resept``): what was prescribed for which list entry, how much, how many
repeats (``reiterasjon``), until when, and the status lifecycle of code system 7408.

Statuses and allowed transitions (``ALLOWED_TRANSITIONS``)::

    E dispensable ──lock──▶ U being dispensed ──partial──▶ E
      │  │  │                 └──full──▶ R fully dispensed ──annulment──▶ E
      │  │  └──full dispense without a lock──▶ R
      │  └──recall (tilbakekalling)──▶ T recalled      (T and F are final)
      └──past expiry──▶ F expired

Every operation returns the new prescription and one immutable ``PrescriptionVersion`` (kind,
who, when, status before/after, structured diff, full snapshot), to be appended by the store
like entry versions. A prescription keeps its own copy of the drug it authorises, so editing the
entry never changes what may be dispensed.
"""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from pydantic import (
    AwareDatetime,
    Field,
    model_validator,
)

from interactions.dosage import Quantity
from interactions.values import Count, Packages, PositiveCount
from medloop.domain._model import Frozen, built, given_values, replace
from medloop.domain.codes import (
    GROUPS_WITHOUT_REPEATS,
    OrganisationKind,
    PrescriptionChangeKind,
    PrescriptionStatus,
    RecallReason,
)
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.entry import ListEntry
from medloop.domain.errors import DomainError, NotDispensable
from medloop.domain.personnel import Actor, NotAPharmacy, Organisation
from medloop.domain.validity import DEFAULT_VALIDITY, ValidityPolicy, max_validity
from medloop.domain.versioning import FieldChange, diff, share_dumps

# -- errors ------------------------------------------------------------------------------------


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


class PrescriptionNotRecalled(PrescriptionError):
    """A recall message asked for a prescription that is not recalled."""

    code = "prescription-not-recalled"


class PrescriptionNotFound(DomainError):
    """No such prescription for this patient (also when it belongs to another patient)."""

    code = "prescription-not-found"


E, U, R, T, F = (
    PrescriptionStatus.DISPENSABLE,
    PrescriptionStatus.BEING_DISPENSED,
    PrescriptionStatus.FULLY_DISPENSED,
    PrescriptionStatus.RECALLED,
    PrescriptionStatus.EXPIRED,
)

ALLOWED_TRANSITIONS: dict[PrescriptionStatus, frozenset[PrescriptionStatus]] = {
    E: frozenset({U, R, T, F}),
    U: frozenset({E, R}),
    R: frozenset({E}),
    T: frozenset(),
    F: frozenset(),
}


class PrescribedQuantity(Frozen):
    """How much is prescribed per dispensing round: a number of packages (``Antall``) or an
    amount such as 100 tablett."""

    packages: Packages | None = None
    amount: Quantity | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> PrescribedQuantity:
        if (self.packages is None) == (self.amount is None):
            raise ValueError("a prescribed quantity is a number of packages or an amount")
        return self


class Recall(Frozen):
    """A recall (``tilbakekalling``, M5): reason (7500), who, when, note, and the renewal that
    replaced the prescription, if any."""

    reason: RecallReason
    at: AwareDatetime
    by: Actor
    note: str | None = None
    replaced_by: UUID | None = None


class Prescription(Frozen):
    """One prescription. ``issued`` is ``Forskrivningsdato``, ``expires`` ``Utloper`` (last valid
    day), ``repeats`` ``Reiterasjon`` (rounds after the first), ``reserved_against_substitution``
    the prescriber's ``BytteresRekvirent``, ``reimbursed`` a blue prescription. ``locked_by`` is
    the pharmacy holding a prescription in status U."""

    id: UUID
    patient_id: UUID
    entry_id: UUID
    drug: CatalogueDrug
    issued: date
    expires: date
    quantity: PrescribedQuantity
    repeats: Count = 0
    reserved_against_substitution: bool = False
    reimbursed: bool = False
    prescriber: Actor
    status: PrescriptionStatus = E
    locked_by: str | None = None
    recall: Recall | None = None
    version: PositiveCount = 1

    @model_validator(mode="after")
    def _is_consistent(self) -> Prescription:
        if self.expires < self.issued:
            raise ValueError(f"expires {self.expires} is before issued {self.issued}")
        if self.repeats and self.drug.resolved.prescription_group in GROUPS_WITHOUT_REPEATS:
            raise ValueError("prescription groups A and B have no repeats")
        if (self.status is U) != (self.locked_by is not None):
            raise ValueError("a prescription is locked by a pharmacy exactly when in status U")
        if (self.status is T) != (self.recall is not None):
            raise ValueError("a prescription records its recall exactly when in status T")
        return self

    @property
    def rounds(self) -> int:
        """How many times the quantity may be dispensed: the first round plus the repeats."""
        return self.repeats + 1

    def valid_on(self, on: date) -> bool:
        return self.issued <= on <= self.expires


TRACKED_FIELDS = tuple(name for name in Prescription.model_fields if name != "version")

_ISSUED_FIELDS = {
    "id",
    "patient_id",
    "entry_id",
    "drug",
    "issued",
    "expires",
    "quantity",
    "repeats",
    "reserved_against_substitution",
    "reimbursed",
    "prescriber",
}
"""The fields ``issue`` gives a prescription (the rest take their defaults): its fields-set,
shared by every prescription ``issue`` builds without validating (never changed)."""


# A prescription's drug and prescriber are the same objects from command to command (#20).
share_dumps(Prescription, "drug", "prescriber")


class PrescriptionVersion(Frozen):
    """One immutable version of a prescription; ``author`` is ``None`` for system changes
    (expiry)."""

    prescription_id: UUID
    version: PositiveCount
    kind: PrescriptionChangeKind
    at: AwareDatetime
    author: Actor | None
    from_status: PrescriptionStatus | None
    to_status: PrescriptionStatus
    note: str | None = None
    diff: tuple[FieldChange, ...]
    prescription: Prescription


share_dumps(PrescriptionVersion, "author")


class PrescriptionRequest(Frozen):
    """What a prescriber asks for; the drug is the entry's. ``expires`` may shorten the validity
    the rules allow, never lengthen it. ``product_validity`` is the prescribed product's
    ``Product.prescription_validity`` from the catalogue."""

    id: UUID
    issued: date
    quantity: PrescribedQuantity
    repeats: Count = 0
    reserved_against_substitution: bool = False
    reimbursed: bool = False
    expires: date | None = None
    product_validity: tuple[str, ...] = Field(default=())


Transition = tuple[Prescription, PrescriptionVersion]


def check_transition(prescription: Prescription, to: PrescriptionStatus) -> None:
    """Raise the precise ``PrescriptionError`` when ``prescription`` may not move to ``to``."""
    current = prescription.status
    if to in ALLOWED_TRANSITIONS[current]:
        return
    context = {"prescription_id": prescription.id, "status": current, "to": to}
    name = f"prescription {prescription.id}"
    if current is T:
        raise PrescriptionRecalled(f"{name} is recalled", **context)
    if current is F:
        raise PrescriptionExpired(f"{name} has expired", **context)
    if current is R:
        raise PrescriptionFullyDispensed(f"{name} is fully dispensed", **context)
    if current is U:
        raise PrescriptionLocked(
            f"{name} is being dispensed by pharmacy {prescription.locked_by}",
            pharmacy_id=prescription.locked_by,
            **context,
        )
    raise PrescriptionTransitionRefused(f"{name} cannot go from {current} to {to}", **context)


def issue(
    entry: ListEntry,
    patient_id: UUID,
    request: PrescriptionRequest,
    *,
    at: AwareDatetime,
    by: Actor,
    policy: ValidityPolicy = DEFAULT_VALIDITY,
) -> Transition:
    """A new dispensable prescription for ``entry`` (which must be active or on hold and name a
    catalogue drug), its expiry set by the validity rules."""
    if not entry.status.is_live:
        raise EntryNotPrescribable(
            f"entry {entry.id} is {entry.status}; only a live entry can be prescribed",
            entry_id=entry.id,
            status=entry.status,
        )
    drug = entry.drug
    if not isinstance(drug, CatalogueDrug):
        raise NonCatalogueItemNotPrescribable(
            f"entry {entry.id} names {drug.name!r}, which is not in the catalogue",
            entry_id=entry.id,
        )
    group = drug.resolved.prescription_group
    if request.repeats and group in GROUPS_WITHOUT_REPEATS:
        raise RepeatsNotAllowed(
            f"prescription group {group} allows no repeats", prescription_group=group
        )
    validity = max_validity(
        drug,
        reimbursed=request.reimbursed,
        product_validity=request.product_validity,
        issued=request.issued,
        policy=policy,
    )
    longest = validity.expires(request.issued)
    expires = longest if request.expires is None else request.expires
    if expires < request.issued:
        raise ExpiryBeforeIssue(
            f"expiry {expires} is before the issue date {request.issued}",
            expires=expires,
            issued=request.issued,
        )
    if expires > longest:
        raise ValidityTooLong(
            f"the prescription may be valid until {longest} ({validity.basis}: "
            f"{validity.duration}), not {expires}",
            expires=expires,
            longest=longest,
            basis=validity.basis,
        )
    fields = {
        "id": request.id,
        "patient_id": patient_id,
        "entry_id": entry.id,
        "drug": drug,
        "issued": request.issued,
        "expires": expires,
        "quantity": request.quantity,
        "repeats": request.repeats,
        "reserved_against_substitution": request.reserved_against_substitution,
        "reimbursed": request.reimbursed,
        "prescriber": by,
    }
    prescription = None
    if (
        type(request) is PrescriptionRequest
        and type(patient_id) is UUID
        and type(by) is Actor
        and type(expires) is date
        and type(drug) is CatalogueDrug
        and type(entry) is ListEntry
    ):
        # Every value is a validated one of the prescription's own field type (a validated
        # request's, a validated entry's, an id, an actor, a day): the prescription is built
        # without validating them again, and only its own check runs (issue #20). When that
        # check refuses, validation gives the error, as before.
        prescription = given_values(Prescription, _ISSUED_FIELDS, fields)
        try:
            prescription._is_consistent()
        except ValueError:
            prescription = None
    if prescription is None:
        prescription = Prescription(**fields)
    # Every value is validated already (the new prescription, its prescriber as ``by``): with
    # an aware moment its first version is built without validating them again (#20).
    validated = type(at) is datetime and at.utcoffset() is not None
    return prescription, _version(
        None, prescription, PrescriptionChangeKind.ISSUED, at, by, validated=validated
    )


def lock(
    prescription: Prescription,
    pharmacy: Organisation,
    *,
    on: date,
    at: AwareDatetime,
    by: Actor,
) -> Transition:
    """Lock a dispensable prescription for one pharmacy (E → U)."""
    check_transition(prescription, U)
    _refuse_if_expired(prescription, on)
    if pharmacy.kind is not OrganisationKind.PHARMACY:
        raise NotAPharmacy(f"{pharmacy.name} is not a pharmacy", organisation_id=pharmacy.id)
    return _move(prescription, U, PrescriptionChangeKind.LOCKED, at, by, locked_by=pharmacy.id)


def unlock(
    prescription: Prescription, pharmacy: Organisation, *, at: AwareDatetime, by: Actor
) -> Transition:
    """Release a lock without dispensing (U → E); only the pharmacy holding it may."""
    check_transition(prescription, E)
    if prescription.status is not U:
        raise PrescriptionTransitionRefused(
            f"prescription {prescription.id} is not locked",
            prescription_id=prescription.id,
            status=prescription.status,
            to=E,
        )
    check_lock_holder(prescription, pharmacy)
    return _move(prescription, E, PrescriptionChangeKind.UNLOCKED, at, by, locked_by=None)


def recall(
    prescription: Prescription,
    reason: RecallReason,
    *,
    at: AwareDatetime,
    by: Actor,
    note: str | None = None,
    replaced_by: UUID | None = None,
) -> Transition:
    """Recall a dispensable prescription (E → T); a prescription being dispensed cannot be."""
    check_transition(prescription, T)
    record = Recall(reason=reason, at=at, by=by, note=note, replaced_by=replaced_by)
    return _move(prescription, T, PrescriptionChangeKind.RECALLED, at, by, note, recall=record)


def expire(prescription: Prescription, *, on: date, at: AwareDatetime) -> Transition:
    """Mark a dispensable prescription expired once ``on`` is past its expiry date (E → F)."""
    check_transition(prescription, F)
    if on <= prescription.expires:
        raise PrescriptionStillValid(
            f"prescription {prescription.id} is valid until {prescription.expires}",
            prescription_id=prescription.id,
            expires=prescription.expires,
        )
    return _move(prescription, F, PrescriptionChangeKind.EXPIRED, at, None)


def after_dispensing(
    prescription: Prescription, *, finished: bool, at: AwareDatetime, by: Actor
) -> tuple[Prescription, PrescriptionVersion | None]:
    """The prescription once its dispenses say it is ``finished`` or not: fully dispensed (→ R),
    still open after a partial dispense (U → E), or reopened by an annulment (R → E). Recalled
    and expired prescriptions keep their status. ``None`` when nothing changes."""
    current = prescription.status
    if current in (T, F):
        return prescription, None
    if finished:
        if current is R:
            return prescription, None
        kind = PrescriptionChangeKind.FULLY_DISPENSED
        return _move(prescription, R, kind, at, by, locked_by=None)
    if current is E:
        return prescription, None
    if current is U:
        kind = PrescriptionChangeKind.PARTIALLY_DISPENSED
    else:
        kind = PrescriptionChangeKind.REOPENED
    return _move(prescription, E, kind, at, by, locked_by=None)


def _refuse_if_expired(prescription: Prescription, on: date) -> None:
    if on > prescription.expires:
        raise PrescriptionExpired(
            f"prescription {prescription.id} expired on {prescription.expires}",
            prescription_id=prescription.id,
            expires=prescription.expires,
        )


def check_lock_holder(prescription: Prescription, pharmacy: Organisation) -> None:
    """Raise ``PrescriptionLocked`` when another pharmacy holds the prescription."""
    if prescription.status is U and prescription.locked_by != pharmacy.id:
        raise PrescriptionLocked(
            f"prescription {prescription.id} is being dispensed by pharmacy "
            f"{prescription.locked_by}",
            prescription_id=prescription.id,
            pharmacy_id=prescription.locked_by,
        )


def _move(
    prescription: Prescription,
    to: PrescriptionStatus,
    kind: PrescriptionChangeKind,
    at: AwareDatetime,
    by: Actor | None,
    note: str | None = None,
    **changes: object,
) -> Transition:
    check_transition(prescription, to)
    after = replace(prescription, status=to, version=prescription.version + 1, **changes)
    return after, _version(prescription, after, kind, at, by, note)


def _version(
    before: Prescription | None,
    after: Prescription,
    kind: PrescriptionChangeKind,
    at: AwareDatetime,
    by: Actor | None,
    note: str | None = None,
    *,
    validated: bool = False,
) -> PrescriptionVersion:
    """The version ``after`` is; built without validation (``constructed``) when the caller
    knows every value is validated already."""
    values = {
        "prescription_id": after.id,
        "version": after.version,
        "kind": kind,
        "at": at,
        "author": by,
        "from_status": None if before is None else before.status,
        "to_status": after.status,
        "note": note,
        "diff": diff(before, after, TRACKED_FIELDS),
        "prescription": after,
    }
    if validated:
        return built(PrescriptionVersion, values)
    return PrescriptionVersion(**values)
