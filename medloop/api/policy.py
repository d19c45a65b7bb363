"""Who may do what: the role × action matrix, enforced in this ONE place.

Each action lists the roles allowed and the scope each role has over patients:

- ``ANY``: any patient (doctors prescribing, pharmacies dispensing — the national model lets
  any pharmacy dispense any prescription; every access is audited);
- ``ADMITTED``: only patients admitted to the caller's organisation at the time of the request,
  and only what lies within that admission (``read_window``: a nurse's history read cannot
  reach before the admission began; after the discharge every read is refused);
- ``SELF``: only the patient the token names (patients, read-only);
- ``MULTIDOSE_PHARMACY``: only patients whose registered multidose pharmacy is the caller's;
- ``WARD_ADMIN``: a nurse whose token carries the ``ward_admin`` claim, for wards of her own
  organisation (create, configure) and the patient lookup that precedes an admission;
- ``ADMITTING``: a ward admin admitting or discharging — what gives a nursing home access, so a
  stronger permission than charting; the command refuses a ward of another organisation, a
  second concurrent admission and an admission overlapping an earlier stay.

Anything not in the matrix is refused (403, audited when a patient is named); the 403 body
carries no patient data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import NoReturn
from uuid import UUID

from sqlalchemy import Connection, Engine

from medloop.api.auth import Principal, Role
from medloop.api.problems import Forbidden
from medloop.domain.oslo import local_date
from medloop.store.access import Accessor, audit_refused
from medloop.store.db import reader
from medloop.store.patients import national_id_of


class Action(StrEnum):
    LIST_READ = "list.read"  # the whole list, alerts and overrides
    LIST_WRITE = "list.write"  # prescribe, change, hold, discontinue, renew, reconcile, alerts …
    CHECK = "list.check"  # dry-run decision support, CDS Hooks
    PATIENT_LOOKUP = "patient.lookup"  # national id → patient id
    DISPENSING_READ = "dispensing.read"  # a patient's dispensable prescriptions
    DISPENSE = "dispensing.write"  # dispense, annul, lock, release
    MULTIDOSE_READ = "multidose.read"
    MULTIDOSE_WRITE = "multidose.write"  # periods, packed reports, proposals
    PROPOSAL_DECIDE = "multidose.decide"  # accept / reject a pharmacy's proposal
    CHART_READ = "chart.read"  # ward chart, administration history
    CHART_WRITE = "chart.write"  # given / not given / refused / held / PRN / entered-in-error
    MULTIDOSE_REGISTER = "multidose.register"  # the patient's multidose doctor and pharmacy
    WARD_ADMIN = "ward.admin"  # create and configure a ward of the caller's organisation
    WARD_READ = "ward.read"  # a ward's chart for a day
    ADMIT = "ward.admit"  # admit a patient to a ward of the caller's organisation
    DISCHARGE = "ward.discharge"  # end a patient's stay on a ward of the caller's organisation
    OWN_RECORD = "own-record.read"  # a patient's own list and access log
    CATALOGUE_READ = "catalogue.read"
    OBSERVATION_WRITE = "patient.observation"  # weight, kidney function, hepatic risk factors
    REPORT_WARD = "report.ward"  # a ward's quality report (names the ward's current residents)
    REPORT_PRESCRIBER = "report.prescriber"  # the caller's own prescribing, aggregated
    REPORT_PHARMACY = "report.pharmacy"  # the caller's pharmacy's multidose periods, aggregated
    BULK_EXPORT = "fhir.export"  # FHIR $export: every patient, or a ward of the organisation


class Scope(StrEnum):
    ANY = "any"
    ADMITTED = "admitted"
    SELF = "self"
    MULTIDOSE_PHARMACY = "multidose-pharmacy"
    OWN_WARD = "own-ward"  # a ward of the caller's organisation
    NO_PATIENT = "no-patient"
    WARD_ADMIN = "ward-admin"  # ward_admin claim; no patient, or a ward of the organisation
    ADMITTING = "admitting"  # ward_admin claim; the command checks ward and other stays


NEEDS_WARD_ADMIN = frozenset({Scope.WARD_ADMIN, Scope.ADMITTING})
"""Scopes that only a token with the ``ward_admin`` claim has."""


MATRIX: dict[Action, dict[Role, Scope]] = {
    Action.LIST_READ: {Role.GP: Scope.ANY, Role.NURSE: Scope.ADMITTED},
    Action.LIST_WRITE: {Role.GP: Scope.ANY},
    Action.CHECK: {Role.GP: Scope.ANY},
    # A nurse finds a patient by national id only to admit them (a ward admin); once admitted,
    # the ward chart names the patient. Every lookup that finds someone is audited.
    Action.PATIENT_LOOKUP: {
        Role.GP: Scope.NO_PATIENT,
        Role.PHARMACIST: Scope.NO_PATIENT,
        Role.NURSE: Scope.WARD_ADMIN,
    },
    Action.DISPENSING_READ: {Role.PHARMACIST: Scope.ANY},
    Action.DISPENSE: {Role.PHARMACIST: Scope.ANY},
    Action.MULTIDOSE_READ: {
        Role.PHARMACIST: Scope.MULTIDOSE_PHARMACY,
        Role.GP: Scope.ANY,
        Role.NURSE: Scope.ADMITTED,
    },
    Action.MULTIDOSE_WRITE: {Role.PHARMACIST: Scope.MULTIDOSE_PHARMACY},
    Action.PROPOSAL_DECIDE: {Role.GP: Scope.ANY},
    Action.CHART_READ: {Role.NURSE: Scope.ADMITTED, Role.GP: Scope.ANY},
    Action.CHART_WRITE: {Role.NURSE: Scope.ADMITTED},
    Action.MULTIDOSE_REGISTER: {Role.GP: Scope.ANY},
    Action.WARD_ADMIN: {Role.NURSE: Scope.WARD_ADMIN},
    Action.WARD_READ: {Role.NURSE: Scope.OWN_WARD},
    # The admission is what gives a nursing home access: a ward admin only; the command
    # refuses a ward of another organisation and a second concurrent admission.
    Action.ADMIT: {Role.NURSE: Scope.ADMITTING},
    Action.DISCHARGE: {Role.NURSE: Scope.ADMITTING},
    Action.OWN_RECORD: {Role.PATIENT: Scope.SELF},
    Action.OBSERVATION_WRITE: {Role.GP: Scope.ANY, Role.NURSE: Scope.ADMITTED},
    # Reports: a ward's for the nurses of its organisation; a doctor's and a pharmacy's are
    # aggregates over the caller's own prescribing / own pharmacy (the query is keyed by the
    # token's HPR number / organisation) and name no patient.
    Action.REPORT_WARD: {Role.NURSE: Scope.OWN_WARD},
    Action.REPORT_PRESCRIBER: {Role.GP: Scope.NO_PATIENT},
    Action.REPORT_PHARMACY: {Role.PHARMACIST: Scope.NO_PATIENT},
    # A registry's system client; a Group (ward) export only of a ward of its organisation.
    Action.BULK_EXPORT: {Role.EXPORTER: Scope.NO_PATIENT},
    Action.CATALOGUE_READ: {
        Role.GP: Scope.NO_PATIENT,
        Role.NURSE: Scope.NO_PATIENT,
        Role.PHARMACIST: Scope.NO_PATIENT,
        Role.PATIENT: Scope.NO_PATIENT,
    },
}


def accessor(principal: Principal, request_id: str | None) -> Accessor:
    return Accessor(
        actor=principal.subject,
        actor_role=principal.audit_role,
        organisation=principal.organisation,
        request_id=request_id,
    )


def authorize(
    engine: Engine,
    principal: Principal,
    action: Action,
    patient_id: UUID | None,
    *,
    at: datetime,
    request_id: str | None,
) -> None:
    """Refuse with ``Forbidden`` (and an audit record when a patient is named) unless the
    matrix allows ``principal`` to do ``action`` for ``patient_id``."""
    scope = MATRIX[action].get(principal.role)
    why = _refusal(engine, principal, scope, patient_id, at)
    if why is None:
        return
    _refuse(engine, principal, action, patient_id, why, request_id)


def permits(
    engine: Engine, principal: Principal, action: Action, patient_id: UUID, *, at: datetime
) -> bool:
    """Whether the matrix allows ``principal`` to do ``action`` for ``patient_id``, refusing
    nothing and auditing nothing: for choosing, among records that name someone, one the
    caller may read (``medloop.fhir`` Practitioner and Organization); the read that follows
    is authorised and audited as every read."""
    return _refusal(engine, principal, MATRIX[action].get(principal.role), patient_id, at) is None


def _refuse(
    engine: Engine,
    principal: Principal,
    action: Action,
    patient_id: UUID | None,
    why: str,
    request_id: str | None,
) -> NoReturn:
    if patient_id is not None:
        audit_refused(engine, accessor(principal, request_id), patient_id, action.value, why)
    if why == _NO_WARD_ADMIN:
        raise Forbidden(f"{action.value} needs a ward-admin token (claim ward_admin)")
    raise Forbidden(f"a {principal.role.value} may not do {action.value} here")


_NO_WARD_ADMIN = "ward_admin claim required"


def audit_refusal(
    engine: Engine,
    principal: Principal,
    what: str,
    patient_id: UUID,
    why: str,
    request_id: str | None,
) -> None:
    """Record a refused write on ``patient_id`` (bad input) as every refusal is recorded."""
    audit_refused(engine, accessor(principal, request_id), patient_id, what, why[:2000])


def refuse_scope(
    engine: Engine,
    principal: Principal,
    what: str,
    patient_id: UUID | None,
    why: str,
    request_id: str | None,
) -> NoReturn:
    """Refuse what the token's SMART scopes do not grant (``medloop.fhir.scopes`` decides):
    audited like a refusal of the matrix when a patient is named, ``Forbidden`` without
    patient data."""
    if patient_id is not None:
        audit_refused(engine, accessor(principal, request_id), patient_id, what, why)
    raise Forbidden(f"the token's scopes do not grant {what}: {why}")


def organisation_seen(principal: Principal, action: Action) -> str | None:
    """The organisation whose records of a patient ``principal`` may see under ``action``:
    its own for the ``ADMITTED`` scope (a nurse sees her organisation's stays), ``None`` (any)
    for the other scopes. Call after ``authorize``."""
    if MATRIX[action].get(principal.role) is Scope.ADMITTED:
        return principal.organisation
    return None


def read_window(
    engine: Engine,
    principal: Principal,
    action: Action,
    patient_id: UUID,
    since: datetime | None,
    until: datetime | None,
    *,
    at: datetime,
    request_id: str | None,
) -> tuple[datetime | None, datetime | None]:
    """``authorize`` for a read of the patient's records over ``[since, until)``, and the
    window the caller may see. For the ``ADMITTED`` scope that is the admission to the
    caller's organisation covering ``at``: an open ``since`` starts at the admission, a
    ``since`` before it is refused (403, audited, no patient data), ``until`` ends at the
    discharge. Other scopes get the window as asked."""
    authorize(engine, principal, action, patient_id, at=at, request_id=request_id)
    if MATRIX[action].get(principal.role) is not Scope.ADMITTED:
        return since, until
    from medloop.store import administration

    with reader(engine).connect() as conn:
        stay = next(
            (
                a
                for a in administration.admissions_of(conn, patient_id)
                if a.organisation_id == principal.organisation and a.covers(at)
            ),
            None,
        )
    if stay is None:  # discharged between the two reads
        _refuse(engine, principal, action, patient_id, "outside scope admitted", request_id)
    if since is not None and since < stay.admitted_at:
        _refuse(engine, principal, action, patient_id, "before the admission", request_id)
    start = stay.admitted_at if since is None else since
    end = until
    if stay.discharged_at is not None and (end is None or end > stay.discharged_at):
        end = stay.discharged_at
    return start, end


def own_record(principal: Principal) -> str:
    """The national id of the record ``principal`` may read as their own (``OWN_RECORD``,
    scope ``SELF``): the token's subject; reads keyed by it cannot reach anyone else's.
    ``Forbidden`` for the roles the matrix does not give the action."""
    if MATRIX[Action.OWN_RECORD].get(principal.role) is not Scope.SELF:
        raise Forbidden(f"a {principal.role.value} may not do {Action.OWN_RECORD.value} here")
    return principal.subject


def authorize_ward(
    engine: Engine,
    principal: Principal,
    action: Action,
    ward_organisation: str | None,
    *,
    request_id: str | None,
) -> None:
    """Refuse with ``Forbidden`` unless ``principal`` may do ``action`` on a ward of
    ``ward_organisation`` (``None``: no such ward, refused alike so that ward ids of other
    organisations are not revealed)."""
    scope = MATRIX[action].get(principal.role)
    own = ward_organisation is not None and ward_organisation == principal.organisation
    if own and scope is Scope.OWN_WARD:
        return
    if own and scope is Scope.WARD_ADMIN:
        if principal.ward_admin:
            return
        raise Forbidden(f"{action.value} needs a ward-admin token (claim ward_admin)")
    raise Forbidden(f"a {principal.role.value} may not do {action.value} on this ward")


WITNESS_ROLES = frozenset({Role.NURSE, Role.GP})
"""Who may witness (double-sign) a dose, for the API, FHIR and the pages alike: another nurse
or a doctor of the performer's organisation. In Norwegian nursing homes the second check is
done by another authorised health worker, and a doctor on the ward qualifies; a pharmacist
or a patient does not. Narrowing this (to nurses only, say) is a clinical decision, made here
and nowhere else."""


def authorize_witness(performer: Principal, witness: Principal) -> None:
    """A witness (double signature) is another health professional of the performer's
    organisation; the domain checks the ward's policy and that the two people differ."""
    if witness.role not in WITNESS_ROLES or witness.organisation != performer.organisation:
        raise Forbidden("the witness must be a nurse or doctor of the same organisation")


def _refusal(
    engine: Engine,
    principal: Principal,
    scope: Scope | None,
    patient_id: UUID | None,
    at: datetime,
) -> str | None:
    if scope is None:
        return "role not allowed"
    if scope in NEEDS_WARD_ADMIN and not principal.ward_admin:
        return _NO_WARD_ADMIN
    if scope in (Scope.NO_PATIENT, Scope.ANY, Scope.WARD_ADMIN, Scope.ADMITTING):
        return None
    if patient_id is None:
        return "no patient named"
    check = _SCOPE_CHECKS.get(scope)
    if check is None:
        return f"scope {scope.value} is not about one patient"
    with reader(engine).connect() as conn:
        return None if check(conn, principal, patient_id, at) else f"outside scope {scope.value}"


def _is_self(conn: Connection, principal: Principal, patient_id: UUID, at: datetime) -> bool:
    return national_id_of(conn, patient_id) == principal.subject


def _is_admitted(conn: Connection, principal: Principal, patient_id: UUID, at: datetime) -> bool:
    """Admitted to the nurse's organisation at ``at`` (a caller without one: never)."""
    from medloop.store import administration

    if principal.organisation is None:
        return False
    return administration.is_admitted(conn, patient_id, principal.organisation, at)


def _is_multidose_pharmacy(
    conn: Connection, principal: Principal, patient_id: UUID, at: datetime
) -> bool:
    """The caller's pharmacy is the patient's registered multidose pharmacy at ``at``; refused
    while no multidose register exists (fail closed)."""
    from medloop.store import multidose

    current = getattr(multidose, "current_responsibility", None)
    found = None if current is None else current(conn, patient_id)
    return (
        found is not None
        and found.pharmacy.id == principal.organisation
        and found.in_force(local_date(at))
    )


_SCOPE_CHECKS: dict[Scope, Callable[[Connection, Principal, UUID, datetime], bool]] = {
    Scope.SELF: _is_self,
    Scope.ADMITTED: _is_admitted,
    Scope.MULTIDOSE_PHARMACY: _is_multidose_pharmacy,
}
