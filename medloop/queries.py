"""The read side of the loop: a patient's current list, an entry's history, prescriptions with
their status and dispensed totals, dispenses, open alerts, the overrides on record and
reconciliations.

Each function reads one patient in a fixed number of queries and returns plain values; none
writes. ``read_for`` runs one of them on behalf of a clinician and records the access in the
audit log (architecture invariant 6: every read of patient data leaves an audit record).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema
from sqlalchemy import Connection, Engine

from interactions import Alert
from medloop.domain.codes import PrescriptionStatus
from medloop.domain.dispense import Dispense, tally
from medloop.domain.entry import ListEntry
from medloop.domain.medication_list import EntryNotFound, EntryVersion
from medloop.domain.patient import Patient, PatientNotFound
from medloop.domain.personnel import Actor
from medloop.domain.prescription import PrescriptionNotFound
from medloop.domain.reconciliation import Reconciliation
from medloop.domain.state import PatientState
from medloop.domain.ward import Ward
from medloop.store import access, administration, audit, patients, state_cache
from medloop.store.patient_state import load_patient_state
from medloop.store.patients import accessed_in_transaction, read_patient_revision
from medloop.store.prescriptions import reconciliations_of
from medloop.store.state_cache import cache_for
from medloop.store.transaction import transaction_memo
from medloop.timeline import Timeline, timeline_of

Read = TypeVar("Read")


@dataclass(frozen=True)
class CurrentList:
    """The list as shown at a moment: active and on-hold entries, and entries discontinued
    within the last 90 days; ``list_version`` is what a change must name as its base."""

    patient_id: UUID
    list_version: int
    entries: tuple[ListEntry, ...]


class PrescriptionSummary(BaseModel):
    """A prescription as every reader sees it: its entry, drug and status, and what has been
    dispensed against it (the same shape over HTTP)."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    entry_id: UUID
    drug: str
    status: PrescriptionStatus
    issued: str
    expires: str
    allowed: float
    dispensed: float
    remaining: float
    unit: str


class OverrideOnRecord(BaseModel):
    """An alert let through with a reason: what, by whom, when, why, in which command (the
    same shape over HTTP)."""

    model_config = ConfigDict(frozen=True)

    key: str
    by: str
    hpr_number: str
    reason: str
    at: Annotated[
        datetime,
        # As the API has always written it (``isoformat``: ``+00:00``, not pydantic's ``Z``).
        PlainSerializer(datetime.isoformat, return_type=str, when_used="json"),
        WithJsonSchema({"type": "string", "format": "date-time"}),
    ]
    action: str
    alert: Alert


def read_for(
    engine: Engine,
    reader: Actor,
    patient_id: UUID,
    what: str,
    read: Callable[[Connection], Read],
    *,
    reason: str,
    request_id: str | None = None,
) -> Read:
    """``read(conn)`` for ``reader``, who states why (``tjenstlig behov``), with an audit record
    of the access in the same transaction (``medloop.store.access.read_audited``)."""
    who = access.Accessor(
        actor=reader.personnel.hpr_number,
        actor_role=reader.personnel.role.value,
        organisation=reader.organisation.id,
        request_id=request_id,
    )
    return access.read_audited(engine, who, patient_id, what, read, reason=reason)


def current_list(conn: Connection, patient_id: UUID, now: datetime) -> CurrentList:
    state = _state(conn, patient_id)
    listed = state.medication_list
    return CurrentList(patient_id, listed.version, listed.current_view(now))


def entry_history(conn: Connection, patient_id: UUID, entry_id: UUID) -> tuple[EntryVersion, ...]:
    """Every version of one entry, oldest first (who, when, why, what changed)."""
    state = _state(conn, patient_id)
    versions = tuple(
        v for change in state.changes for v in change.entry_versions if v.entry_id == entry_id
    )
    if not versions:
        raise EntryNotFound(f"the list has no entry {entry_id}", entry_id=entry_id)
    return versions


def prescriptions(conn: Connection, patient_id: UUID) -> list[PrescriptionSummary]:
    """The patient's prescriptions, issued order, with their dispensing tallies."""
    state = _state(conn, patient_id)
    found = []
    for prescription in state.prescriptions.values():
        counted = tally(prescription, state.dispenses_of(prescription.id))
        found.append(
            PrescriptionSummary(
                id=prescription.id,
                entry_id=prescription.entry_id,
                drug=prescription.drug.name,
                status=prescription.status,
                issued=prescription.issued.isoformat(),
                expires=prescription.expires.isoformat(),
                allowed=counted.allowed,
                dispensed=counted.dispensed,
                remaining=counted.remaining,
                unit=counted.unit,
            )
        )
    return sorted(found, key=lambda p: (p.issued, str(p.id)))


def prescription(conn: Connection, patient_id: UUID, prescription_id: UUID) -> PrescriptionSummary:
    """One of the patient's prescriptions with its dispensing tally; ``PrescriptionNotFound``
    when the patient has no such prescription."""
    for found in prescriptions(conn, patient_id):
        if found.id == prescription_id:
            return found
    raise PrescriptionNotFound(
        f"the patient has no prescription {prescription_id}", prescription_id=prescription_id
    )


def dispenses(conn: Connection, patient_id: UUID) -> tuple[Dispense, ...]:
    """Everything dispensed to the patient, in dispensing order; an annulled dispense carries
    its annulment (and no longer counts)."""
    return _state(conn, patient_id).dispenses


def open_alerts(conn: Connection, patient_id: UUID) -> list[Alert]:
    """Alerts raised for the patient that nobody has handled or overridden, newest raising of
    each key."""
    state = _state(conn, patient_id)
    handled = {h.key for h in state.handled}
    latest: dict[str, Alert] = {}
    for row in state.alerts:
        if row.key not in handled:
            latest[row.key] = Alert.model_validate(row.record)
    return list(latest.values())


def overrides(conn: Connection, patient_id: UUID) -> list[OverrideOnRecord]:
    """Every override on record for the patient, oldest first (shown to pharmacist and
    nurse)."""
    state = _state(conn, patient_id)
    return [
        OverrideOnRecord(
            key=row.key,
            by=row.override_by["personnel"]["name"],
            hpr_number=row.override_by["personnel"]["hpr_number"],
            reason=row.override_reason,
            at=row.raised_at,
            action=row.action,
            alert=Alert.model_validate(row.record),
        )
        for row in state.alerts
        if row.override_reason is not None
    ]


def timeline(conn: Connection, patient_id: UUID) -> Timeline:
    """The patient's medication timeline (``medloop.timeline``): the list's history, the
    dispenses not annulled and the chartings not entered in error."""
    state = _state(conn, patient_id)
    chartings = administration.chartings_of_patient(conn, patient_id)
    return timeline_of(state, (c.administration for c in chartings if c.stands))


def patient_state(conn: Connection, patient_id: UUID) -> PatientState:
    """The patient's whole state as last committed (from this process's cache when it is
    current); ``PatientNotFound`` for an unknown patient."""
    return _state(conn, patient_id)


def _state(conn: Connection, patient_id: UUID) -> PatientState:
    # Several queries of one audited read (a list with its alerts and overrides) share one
    # state; a transaction that may also write to the patient reads it afresh each time.
    if not (conn.in_transaction() and accessed_in_transaction(conn, patient_id)):
        return _read_state(conn, patient_id)
    memo = transaction_memo(conn)
    found = memo.get((_STATE, patient_id))
    if found is None:
        found = memo[(_STATE, patient_id)] = _read_state(conn, patient_id)
    return found


_STATE = "queries.state"


def _read_state(conn: Connection, patient_id: UUID) -> PatientState:
    found = read_patient_revision(conn, patient_id)
    if found is None:
        raise PatientNotFound(f"there is no patient {patient_id}", patient_id=patient_id)
    patient, revision = found
    cache = cache_for(conn.engine)
    cached = cache.get(patient_id, revision)
    if cached is not None:
        state = replace(cached, patient=patient)
        if state_cache.VERIFY:
            state_cache.verified(state, load_patient_state(conn, patient))
        return state
    state = load_patient_state(conn, patient)
    # Under READ COMMITTED a command may commit between reading the revision and the rows, so
    # the state may be newer than ``revision``. Tagged ``revision`` it is still safe: a command
    # only uses the state of the revision just below the one it bumped to, and the revision
    # after ``revision`` is already taken by the command whose rows were read.
    cache.put(patient_id, revision, state)
    return state


def reconciliations(conn: Connection, patient_id: UUID) -> list[Reconciliation]:
    """The patient's reconciliations, oldest first; an outcome whose ``entry_version`` is below
    the entry's current version no longer covers that entry."""
    _state(conn, patient_id)
    return reconciliations_of(conn, patient_id)


# -- reads without patient data, or of the audit log ------------------------------------------

ACCESS_LOG_PAGE = audit.MAX_PAGE
"""The most records one page of a patient's access log holds."""


def find_patient_id(conn: Connection, national_id: str) -> UUID | None:
    """The id of the list kept for ``national_id``; ``None`` when none is kept."""
    return patients.find_patient_id(conn, national_id)


def access_log(
    conn: Connection, national_id: str, *, limit: int, before: int | None = None
) -> audit.PatientAccessPage:
    """Who did what with the patient's data, newest first (``store.audit.events_for_patient``)."""
    return audit.events_for_patient(conn, national_id, limit=limit, before=before)


def ward_organisation(conn: Connection, ward_id: UUID) -> str | None:
    """The organisation a ward belongs to; ``None`` for an unknown ward."""
    found = administration.read_ward(conn, ward_id)
    return None if found is None else found.ward.organisation_id


def wards_of(conn: Connection, organisation_id: str) -> list[Ward]:
    """The wards of an organisation, by name (no patient data: not audited)."""
    return administration.wards_of_organisation(conn, organisation_id)


def ward_of(conn: Connection, ward_id: UUID) -> Ward | None:
    """A ward (name, organisation); ``None`` for an unknown ward."""
    found = administration.read_ward(conn, ward_id)
    return None if found is None else found.ward


def residents(conn: Connection, patient_ids: Sequence[UUID]) -> dict[UUID, Patient]:
    """The patients' records (names, birth dates) by id, for a chart that shows them; read
    inside the caller's audited read."""
    found = {}
    for patient_id in patient_ids:
        patient = patients.read_patient(conn, patient_id)
        if patient is not None:
            found[patient_id] = patient
    return found
