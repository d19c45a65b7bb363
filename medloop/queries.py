"""The read side of the loop: a patient's current list, an entry's history, prescriptions with
their status and dispensed totals, dispenses, open alerts, the overrides on record and
reconciliations.

Each function reads one patient in a fixed number of queries and returns plain values; none
writes. ``read_for`` runs one of them on behalf of a clinician and records the access in the
audit log (architecture invariant 6: every read of patient data leaves an audit record).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Annotated, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema
from sqlalchemy import Connection, Engine

from interactions import Alert
from medloop.domain.codes import PrescriptionStatus
from medloop.domain.dispense import Dispense, DispenseNotFound, tally
from medloop.domain.entry import ListEntry
from medloop.domain.medication_list import EntryNotFound, EntryVersion
from medloop.domain.messages import OutboxMessage
from medloop.domain.multidose.proposals import ProposalAnswer
from medloop.domain.patient import Patient, PatientNotFound
from medloop.domain.personnel import Actor
from medloop.domain.prescription import PrescriptionNotFound
from medloop.domain.reconciliation import Reconciliation, ReconciliationNotFound
from medloop.domain.review import Assessment, MedicationReview, ReviewNotFound, SinceLast
from medloop.domain.state import PatientState, StoredAlert
from medloop.domain.ward import Ward
from medloop.loop.catalogue import catalogue_in_force
from medloop.loop.review import current_review
from medloop.store import (
    access,
    administration,
    alerts,
    audit,
    directory,
    patients,
    state_cache,
)
from medloop.store.columns import names_unreadable
from medloop.store.patient_state import load_patient_state, patient_state_at
from medloop.store.patients import accessed_in_transaction, read_patient_revision
from medloop.store.prescriptions import reconciliation_of, reconciliations_of
from medloop.store.reviews import review_of, reviews_of
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


def entry(conn: Connection, patient_id: UUID, entry_id: UUID) -> ListEntry:
    """One entry of the patient's list as it stands now (entered in error and long
    discontinued included); ``EntryNotFound`` when the list has no such entry."""
    return _state(conn, patient_id).medication_list.entry(entry_id)


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


def dispense(conn: Connection, patient_id: UUID, dispense_id: UUID) -> Dispense:
    """One of the patient's dispenses (with its annulment, if annulled); ``DispenseNotFound``
    when the patient has none with that id."""
    for found in dispenses(conn, patient_id):
        if found.id == dispense_id:
            return found
    raise DispenseNotFound(f"the patient has no dispense {dispense_id}", dispense_id=dispense_id)


@names_unreadable(alerts.alert)
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


@names_unreadable(alerts.alert)
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


@dataclass(frozen=True)
class AlertOnRecord:
    """An alert stored for the patient as raised (``stored``), loaded as its model, and the
    author of the override that let its command through, if any."""

    stored: StoredAlert
    alert: Alert
    override_by: Actor | None


@names_unreadable(alerts.alert)
def alerts_on_record(conn: Connection, patient_id: UUID) -> list[AlertOnRecord]:
    """Every alert stored for the patient, in the order raised, each loaded as its model (the
    FHIR DetectedIssues): one that no longer loads is named, never shown with a guessed
    severity."""
    return [
        AlertOnRecord(
            row,
            Alert.model_validate(row.record),
            None if row.override_by is None else Actor.model_validate(row.override_by),
        )
        for row in _state(conn, patient_id).alerts
    ]


def state_memo(conn: Connection, patient_id: UUID) -> dict:
    """The memo kept with the patient's cached state for the revision this transaction read
    (``store.state_cache``): for what is derived from that state alone, derived once per
    revision. Call it after a query of this transaction read the state; a throwaway dict
    when that state is not (or no longer) the one cached."""
    revision = patients.read_revision(conn, patient_id)
    found = None if revision is None else cache_for(conn.engine).memo(patient_id, revision)
    return {} if found is None else found


def catalogue_key(conn: Connection) -> tuple[int, str] | None:
    """Id and file hash of the catalogue version in force (read with the patient in an
    audited read: no round trip)."""
    return patients.catalogue_key_in_force(conn)


def timeline(conn: Connection, patient_id: UUID) -> Timeline:
    """The patient's medication timeline (``medloop.timeline``): the list's history, the
    dispenses not annulled and the chartings not entered in error."""
    state = _state(conn, patient_id)
    chartings = administration.chartings_of_patient(conn, patient_id)
    return timeline_of(state, (c.administration for c in chartings if c.stands))


def timeline_mark(conn: Connection, patient_id: UUID) -> tuple[int, int, int] | None:
    """What the patient's timeline is drawn from, as a high-water mark: the patient's revision
    (every command on the list, dispenses and chartings included, bumps it) and the chartings
    mark (``store.administration.chartings_mark``: also the missed doses the system marks
    without a command). ``None`` for an unknown patient. Read it before the timeline in the
    same transaction, so a picture stored under a mark is never older than the mark."""
    revision = patients.read_revision(conn, patient_id)
    if revision is None:
        return None
    return (revision, *administration.chartings_mark(conn, patient_id))


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
    if accessed_in_transaction(conn, patient_id) and not state_cache.VERIFY:
        # An audited read knows the revision already (no round trip). The state cached for
        # exactly that revision carries the patient's record as of it (whatever changes the
        # record bumps the revision; the runner relies on the same), so the record read
        # with the revision need not be parsed again.
        revision = patients.read_revision(conn, patient_id)
        cached = None if revision is None else cache_for(conn.engine).get(patient_id, revision)
        if cached is not None:
            return cached
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
    state = patient_state_at(conn, patient, revision)
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


def reconciliation(conn: Connection, patient_id: UUID, reconciliation_id: UUID) -> Reconciliation:
    """One reconciliation of the patient's list; ``ReconciliationNotFound`` when the patient
    has none with that id (another patient's included)."""
    _state(conn, patient_id)
    found = reconciliation_of(conn, patient_id, reconciliation_id)
    if found is None:
        raise ReconciliationNotFound(
            f"patient {patient_id} has no reconciliation {reconciliation_id}",
            reconciliation_id=reconciliation_id,
        )
    return found


def review_assessment(
    conn: Connection, patient_id: UUID, today: date
) -> tuple[Assessment, SinceLast | None]:
    """The review criteria on the patient's list now (what a review meeting starts from), and
    what changed since the last signed review."""
    state = _state(conn, patient_id)
    return current_review(conn, catalogue_in_force(conn), state, today)


def medication_reviews(conn: Connection, patient_id: UUID) -> list[MedicationReview]:
    """The patient's signed reviews, oldest first."""
    _state(conn, patient_id)
    return reviews_of(conn, patient_id)


def medication_review(conn: Connection, patient_id: UUID, review_id: UUID) -> MedicationReview:
    """One signed review; ``ReviewNotFound`` when the patient has no review with that id."""
    _state(conn, patient_id)
    found = review_of(conn, patient_id, review_id)
    if found is None:
        raise ReviewNotFound(f"patient {patient_id} has no review {review_id}", review_id=review_id)
    return found


# -- reads without patient data, or of the audit log ------------------------------------------

ACCESS_LOG_PAGE = audit.MAX_PAGE
"""The most records one page of a patient's access log holds."""


def find_patient_id(conn: Connection, national_id: str) -> UUID | None:
    """The id of the list kept for ``national_id``; ``None`` when none is kept."""
    return patients.find_patient_id(conn, national_id)


def access_log(
    conn: Connection,
    national_id: str,
    *,
    limit: int,
    before: int | None = None,
    patient_id: UUID | None = None,
) -> audit.PatientAccessPage:
    """Who did what with the patient's data, newest first (``store.audit.events_for_patient``);
    ``patient_id`` (the patient's id) routes the read by patient."""
    return audit.events_for_patient(
        conn, national_id, limit=limit, before=before, patient_id=patient_id
    )


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


def ward_state(conn: Connection, ward_id: UUID) -> administration.WardState | None:
    """A ward with its current configuration and its version; ``None`` for an unknown ward."""
    return administration.read_ward(conn, ward_id)


def residents(conn: Connection, patient_ids: Sequence[UUID]) -> dict[UUID, Patient]:
    """The patients' records (names, birth dates) by id, for a chart that shows them; read
    inside the caller's audited read (one query, whatever the number of patients)."""
    return patients.read_patients(conn, patient_ids)


def open_alert_counts(conn: Connection, patient_ids: Sequence[UUID]) -> dict[UUID, int]:
    """How many alerts ``open_alerts`` lists for each of the patients (0 when none), in one
    query for a ward rather than one patient state each; read inside the caller's audited
    read."""
    counts = alerts.open_alert_counts(conn, patient_ids)
    return {p: counts.get(p, 0) for p in patient_ids}


# -- e-prescription messages out (M25.1, M1) ----------------------------------------------------

_VARENRS: dict[int, dict[str, str]] = {}


def _varenrs(conn: Connection) -> dict[str, str]:
    """The catalogue in force's varenr of each package id (to name a package in a message)."""
    from medloop.loop.catalogue import catalogue_in_force  # noqa: PLC0415 - builds on first use

    catalogue = catalogue_in_force(conn)
    found = _VARENRS.get(catalogue.version)
    if found is None:
        found = {
            package.id: varenr
            for varenr, packages in catalogue.packages_by_varenr.items()
            for package in packages
        }
        _VARENRS.clear()
        _VARENRS[catalogue.version] = found
    return found


def list_author(conn: Connection, patient_id: UUID) -> Actor | None:
    """Who made the latest change of the list (``None``: nobody yet)."""
    state = _state(conn, patient_id)
    authors = [
        e.prescriber
        for e in sorted(state.medication_list.entries, key=lambda e: e.changed_at)
        if e.prescriber is not None
    ]
    return authors[-1] if authors else None


def list_as_m25_1(
    conn: Connection, patient_id: UUID, sender: Actor, *, msg_id: str, at: datetime
) -> bytes:
    """The patient's current list (active, on-hold and recently discontinued entries) as one
    M25.1 message from ``sender``."""
    from medloop import eresept_export as writing  # noqa: PLC0415

    state = _state(conn, patient_id)
    return writing.m25_1(
        state.patient,
        state.medication_list.current_view(at),
        state.prescriptions,
        sender=sender,
        msg_id=msg_id,
        at=at,
        varenrs=_varenrs(conn),
    )


def prescription_as_m1(
    conn: Connection, patient_id: UUID, prescription_id: UUID, sender: Actor, *, at: datetime
) -> bytes:
    """One of the patient's prescriptions as an M1; ``PrescriptionNotFound`` otherwise."""
    from medloop import eresept_export as writing  # noqa: PLC0415

    state = _state(conn, patient_id)
    found = state.prescriptions.get(prescription_id)
    if found is None:
        raise PrescriptionNotFound(
            f"patient {patient_id} has no prescription {prescription_id}",
            prescription_id=prescription_id,
            patient_id=patient_id,
        )
    entry = state.medication_list.entry(found.entry_id)
    return writing.m1(state.patient, found, entry, sender=sender, at=at, varenrs=_varenrs(conn))


def recall_as_m5(
    conn: Connection, patient_id: UUID, prescription_id: UUID, sender: Actor, *, at: datetime
) -> bytes:
    """A recalled prescription's recall as an M5 (its reason and note); ``PrescriptionNotFound``
    for a prescription the patient does not have, ``PrescriptionNotRecalled`` for one that is
    not recalled."""
    from medloop import eresept_export as writing  # noqa: PLC0415
    from medloop.domain.prescription import PrescriptionNotRecalled  # noqa: PLC0415

    state = _state(conn, patient_id)
    found = state.prescriptions.get(prescription_id)
    if found is None:
        raise PrescriptionNotFound(
            f"patient {patient_id} has no prescription {prescription_id}",
            prescription_id=prescription_id,
            patient_id=patient_id,
        )
    if found.recall is None:
        raise PrescriptionNotRecalled(
            f"prescription {prescription_id} is {found.status.value}, not recalled",
            prescription_id=prescription_id,
            status=found.status,
        )
    return writing.m5(
        state.patient,
        found.id,
        reason=found.recall.reason,
        note=found.recall.note,
        sender=sender,
        msg_id=str(uuid.uuid5(found.id, "recall")),
        at=at,
    )


class MessageNotFound(Exception):
    """No message was received under this MsgId for this patient."""


def received_message(conn: Connection, patient_id: UUID, msg_id: str) -> bytes:
    """The bytes of a message received for the patient, exactly as received (the SHA-256 the
    receipt named is theirs); ``MessageNotFound`` otherwise (also for another patient's)."""
    from medloop.store import messages  # noqa: PLC0415

    _state(conn, patient_id)
    found = messages.find_received(conn, msg_id)
    if found is None or found.patient_id != patient_id:
        raise MessageNotFound(f"no message {msg_id} was received for this patient")
    data = messages.original_of(conn, msg_id)
    assert data is not None
    return data


# -- the outbox: messages medloop sends (the answers to M25.2 proposals) ----------------------


def proposal_answer_as_m25_1(
    conn: Connection, state: PatientState, answer: ProposalAnswer
) -> bytes:
    """The multidose doctor's answer to an M25.2's proposal as the M25.1 of ``state`` (the
    patient's state after the decision); spelled by ``eresept_export.proposal_answer`` for the
    decision's command (``loop.multidose``), which stores it in its own transaction."""
    from medloop import eresept_export as writing  # noqa: PLC0415

    return writing.proposal_answer(
        state.patient,
        state.medication_list.current_view(answer.decided_at),
        state.prescriptions,
        answer,
        varenrs=_varenrs(conn),
    )


def outbox(conn: Connection, patient_id: UUID, organisation_id: str) -> list[OutboxMessage]:
    """The patient's outgoing messages that organisation ``organisation_id`` sends (its
    doctors' answers), oldest first, each ``ready`` or ``sent``."""
    from medloop.store import outbox as stored  # noqa: PLC0415

    return [m for m in stored.messages_of(conn, patient_id) if m.sent_from(organisation_id)]


def outbox_message(conn: Connection, patient_id: UUID, msg_id: str, organisation_id: str) -> bytes:
    """The bytes of one of the patient's outgoing messages that ``organisation_id`` sends;
    ``MessageNotFound`` otherwise (another patient's, another organisation's)."""
    from medloop.store import outbox as stored  # noqa: PLC0415

    found = stored.find_message(conn, patient_id, msg_id)
    if found is None or not found.sent_from(organisation_id):
        raise MessageNotFound(f"there is no message {msg_id} to send for this patient")
    data = stored.content_of(conn, patient_id, msg_id)
    assert data is not None
    return data


def outbox_ready(conn: Connection) -> tuple[list[tuple[OutboxMessage, str]], list[UUID]]:
    """Every outgoing message not yet marked sent, across patients, with its patient's
    national id, and the patients they are about (to audit each: ``store.access.audited_many``).
    The operator's list (``medloop eresept outbox``)."""
    from medloop.store import outbox as stored  # noqa: PLC0415
    from medloop.store.patients import national_ids_of  # noqa: PLC0415

    found = stored.ready(conn)
    patients = sorted({m.patient_id for m in found}, key=str)
    national = national_ids_of(conn, patients)
    return [(m, national[m.patient_id]) for m in found], patients


def patient_of_prescription(conn: Connection, prescription_id: UUID) -> UUID | None:
    """The patient a prescription belongs to (``None``: no such prescription)."""
    from medloop.store.prescriptions import patient_of_prescription as owner  # noqa: PLC0415

    return owner(conn, prescription_id)


def patient_of(conn: Connection, kind: str, resource_id: UUID) -> UUID | None:
    """The patient a list entry, prescription or dispense (``kind``: ``entry``,
    ``prescription``, ``dispense``) belongs to; ``None`` when there is none. Reads no patient
    data: it only finds whose record to read (and authorise, and audit)."""
    from medloop.store import list_changes
    from medloop.store import prescriptions as stored

    finders = {
        "entry": list_changes.patient_of_entry,
        "prescription": stored.patient_of_prescription,
        "dispense": stored.patient_of_dispense,
    }
    return finders[kind](conn, resource_id)


def patient_state_uncached(conn: Connection, patient_id: UUID) -> PatientState:
    """The patient's state read from the tables and not kept in the process's state cache: a
    bulk export reads every patient once, and caching them would grow its memory with the
    export instead of one patient."""
    found = read_patient_revision(conn, patient_id)
    if found is None:
        raise PatientNotFound(f"there is no patient {patient_id}", patient_id=patient_id)
    return load_patient_state(conn, found[0])


def namings(
    conn: Connection, kind: str, key: str, *, limit: int, organisation: str | None = None
) -> list[directory.Naming]:
    """Records naming the health professional (``kind`` ``practitioner``, by HPR number), the
    organisation (``organisation``, by id) or the professional ``key`` acting for an
    organisation (``role``; for ``organisation`` only, when given) ``key``, with the patients
    they belong to: the candidates a caller is authorised against before a FHIR Practitioner,
    Organization or PractitionerRole is shown (``store.directory``). Reads no patient data
    beyond whose records name ``key``."""
    return directory.namings(conn, kind, key, limit=limit, organisation=organisation)  # type: ignore[arg-type]
