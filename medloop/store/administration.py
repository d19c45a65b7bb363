"""Tables and repository of nursing-home administration: wards and their configuration
versions, admissions and discharges, entry schedules and their planned doses, and chartings
(administrations) with their corrections.

Every table is append-only (migration 0005 adds the triggers): a ward's configuration changes by
a new ``ward_config`` version, a discharge is a row of its own, a changed dosage makes a new
``schedule`` for the entry whose planned doses take over from its ``effective_from``, and a
charting made in error gets an ``administration_error`` row. The domain records are stored
whole as JSON next to the columns that index them.
"""

from __future__ import annotations

import functools
import json
import threading
import weakref
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    cast,
    exists,
    false,
    func,
    or_,
    select,
)

from fest.schema import metadata
from interactions.dosage import Quantity, TimeOfDay
from medloop.domain.administration import (
    Administration,
    AdministrationCorrection,
    Outcome,
    PlannedDose,
)
from medloop.domain.personnel import Actor
from medloop.domain.ward import Admission, Ward, WardConfig
from medloop.store import attestation, batch
from medloop.store.alerts import alert
from medloop.store.columns import (
    UNREADABLE,
    UUID_LENGTH,
    StoredRecordUnreadable,
    aware,
    names_unreadable,
    parsed,
    shard_key,
    utc,
    why,
)

ward = Table(
    "ward",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("organisation_id", String(64), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the Ward
)

ward_config = Table(
    "ward_config",
    metadata,
    attestation.command_column(),
    Column("ward_id", String(UUID_LENGTH), ForeignKey("ward.id"), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("author", JSON, nullable=False),
    Column("record", JSON, nullable=False),  # the WardConfig
)

admission = Table(
    "admission",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("ward_id", String(UUID_LENGTH), ForeignKey("ward.id"), nullable=False),
    Column("organisation_id", String(64), nullable=False),
    Column("admitted_at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the Admission as admitted
    Index("ix_admission_patient", "patient_id", "admitted_at"),
    Index("ix_admission_ward", "ward_id", "admitted_at"),
)

discharge = Table(
    "discharge",
    metadata,
    attestation.command_column(),
    Column("admission_id", String(UUID_LENGTH), ForeignKey("admission.id"), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("author", JSON, nullable=False),
    *shard_key("discharge"),
)

wristband = Table(
    # The GS1 GSRN on the resident's wristband for a stay (migration 0018); the latest counts.
    "wristband",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("admission_id", String(UUID_LENGTH), ForeignKey("admission.id"), nullable=False),
    Column("gsrn", String(18), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("author", JSON, nullable=False),
    UniqueConstraint("gsrn", name="uq_wristband_gsrn"),
    Index("ix_wristband_admission", "admission_id", "at"),
    *shard_key("wristband"),
)

schedule = Table(
    "schedule",
    metadata,
    attestation.command_column(),
    Column("entry_id", String(UUID_LENGTH), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("entry_version", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("generated_at", DateTime(timezone=True), nullable=False),
    Index("ix_schedule_patient", "patient_id"),
)

planned_dose = Table(
    "planned_dose",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("ward_id", String(UUID_LENGTH), ForeignKey("ward.id"), nullable=False),
    Column("entry_id", String(UUID_LENGTH), nullable=False),
    Column("schedule_version", Integer, nullable=False),
    Column("local_time", String(16), nullable=False),  # intended Oslo wall time, minutes
    Column("dose_index", Integer, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the PlannedDose
    ForeignKeyConstraint(
        ["entry_id", "schedule_version"], ["schedule.entry_id", "schedule.version"]
    ),
    UniqueConstraint(
        "entry_id", "schedule_version", "local_time", "dose_index", name="uq_planned_dose_intake"
    ),
    Index("ix_planned_dose_patient", "patient_id", "due_at"),
    Index("ix_planned_dose_ward", "ward_id", "due_at"),
)

administration = Table(
    "administration",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("entry_id", String(UUID_LENGTH), nullable=False),
    Column("planned_dose_id", String(UUID_LENGTH), ForeignKey("planned_dose.id"), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the Administration
    # What the ward report counts, as the record says it (migration 0017 filled older rows):
    # a projection of ``record``, left out of the row digest (``attestation.ATTESTED``).
    Column("late", Boolean, nullable=False, server_default=false()),
    Column("scanned", Boolean, nullable=False, server_default=false()),  # a pack was scanned
    Column("scan_skipped", String(32), nullable=True),  # why none was (``ScanSkipReason``)
    Column("reason", Text, nullable=True),  # why the dose was not given
    Index("ix_administration_patient", "patient_id", "at"),
    Index("ix_administration_planned_dose", "planned_dose_id"),
)

administration_error = Table(
    "administration_error",
    metadata,
    attestation.command_column(),
    Column(
        "administration_id", String(UUID_LENGTH), ForeignKey("administration.id"), primary_key=True
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the AdministrationCorrection
    *shard_key("administration_error"),
)

#: A child row joined to its parent on the shard key too (co-located rows: docs/scaling.md).
_DISCHARGE_OF_ADMISSION = (discharge.c.admission_id == admission.c.id) & (
    discharge.c.patient_id == admission.c.patient_id
)
_ERROR_OF_CHARTING = (administration_error.c.administration_id == administration.c.id) & (
    administration_error.c.patient_id == administration.c.patient_id
)
_ADMINISTRATION = administration
"""The table, by a name a reader of ``StandingCharting.administration`` (the method) cannot
take for the method."""

_CHARTING_OF_DOSE = (administration.c.patient_id == planned_dose.c.patient_id) & (
    administration.c.planned_dose_id == planned_dose.c.id
)
_NOT_IN_ERROR = ~exists().where(_ERROR_OF_CHARTING)
"""A charting that no correction entered in error."""

APPEND_ONLY = (
    "ward",
    "ward_config",
    "admission",
    "discharge",
    "schedule",
    "planned_dose",
    "administration",
    "administration_error",
)


# -- wards and admissions ----------------------------------------------------------------------


@dataclass(frozen=True)
class WardState:
    ward: Ward
    config: WardConfig
    config_version: int


def add_ward(conn: Connection, new: Ward, config: WardConfig, by: Actor, at: datetime) -> None:
    attestation.insert(
        conn,
        ward,
        id=str(new.id),
        organisation_id=new.organisation_id,
        created_at=utc(at),
        record=new.model_dump(mode="json"),
    )
    add_ward_config(conn, new.id, 1, config, by, at)


def add_ward_config(
    conn: Connection, ward_id: UUID, version: int, config: WardConfig, by: Actor, at: datetime
) -> None:
    attestation.insert(
        conn,
        ward_config,
        ward_id=str(ward_id),
        version=version,
        at=utc(at),
        author=by.model_dump(mode="json"),
        record=config.model_dump(mode="json"),
    )


@names_unreadable(ward, ward_config)
def read_ward(conn: Connection, ward_id: UUID) -> WardState | None:
    row = conn.execute(select(ward.c.record).where(ward.c.id == str(ward_id))).first()
    if row is None:
        return None
    latest = conn.execute(
        select(ward_config.c.version, ward_config.c.record)
        .where(ward_config.c.ward_id == str(ward_id))
        .order_by(ward_config.c.version.desc())
        .limit(1)
    ).one()
    return WardState(
        Ward.model_validate(row.record), WardConfig.model_validate(latest.record), latest.version
    )


@names_unreadable(ward)
def wards_of_organisation(conn: Connection, organisation_id: str) -> list[Ward]:
    """The wards of an organisation, by name (no patient data)."""
    rows = conn.execute(select(ward.c.record).where(ward.c.organisation_id == organisation_id))
    return sorted((Ward.model_validate(r.record) for r in rows), key=lambda w: (w.name, w.id))


@names_unreadable(ward, ward_config)
def ward_configs(conn: Connection, ward_ids: Iterable[UUID]) -> dict[UUID, WardState]:
    """The current state of each of ``ward_ids`` in two queries."""
    ids = [str(w) for w in ward_ids]
    if not ids:
        return {}
    wards = {
        r.id: Ward.model_validate(r.record)
        for r in conn.execute(select(ward.c.id, ward.c.record).where(ward.c.id.in_(ids)))
    }
    found: dict[UUID, WardState] = {}
    for row in conn.execute(
        select(ward_config.c.ward_id, ward_config.c.version, ward_config.c.record)
        .where(ward_config.c.ward_id.in_(ids))
        .order_by(ward_config.c.ward_id, ward_config.c.version)
    ):
        found[UUID(row.ward_id)] = WardState(
            wards[row.ward_id], WardConfig.model_validate(row.record), row.version
        )
    return found


def add_admission(conn: Connection, record: Admission) -> None:
    attestation.insert(
        conn,
        admission,
        id=str(record.id),
        patient_id=str(record.patient_id),
        ward_id=str(record.ward_id),
        organisation_id=record.organisation_id,
        admitted_at=utc(record.admitted_at),
        record=record.model_dump(mode="json"),
    )


def add_discharge(
    conn: Connection, patient_id: UUID, admission_id: UUID, at: datetime, by: Actor
) -> None:
    attestation.insert(
        conn,
        discharge,
        patient_id=str(patient_id),
        admission_id=str(admission_id),
        at=utc(at),
        author=by.model_dump(mode="json"),
    )


def add_wristband(
    conn: Connection, patient_id: UUID, admission_id: UUID, gsrn: str, at: datetime, by: Actor
) -> None:
    attestation.insert(
        conn,
        wristband,
        id=str(uuid4()),
        patient_id=str(patient_id),
        admission_id=str(admission_id),
        gsrn=gsrn,
        at=utc(at),
        author=by.model_dump(mode="json"),
    )


def wristband_gsrn(conn: Connection, patient_id: UUID, admission_id: UUID) -> str | None:
    """The GSRN registered last for the stay ``admission_id``; ``None`` when none is."""
    return conn.execute(
        select(wristband.c.gsrn)
        .where(
            wristband.c.patient_id == str(patient_id),
            wristband.c.admission_id == str(admission_id),
        )
        .order_by(wristband.c.at.desc(), wristband.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def gsrn_admission(conn: Connection, gsrn: str) -> UUID | None:
    """The stay a GSRN is registered for, if any (a lookup across patients, like the one by
    national id: registration's check that a GSRN names one stay)."""
    found = conn.execute(
        select(wristband.c.admission_id).where(wristband.c.gsrn == gsrn)
    ).scalar_one_or_none()
    return None if found is None else UUID(found)


@names_unreadable(admission)
def _admissions(
    conn: Connection,
    where: Any,
    unreadable: list[tuple[str, StoredRecordUnreadable]] | None = None,
    within: tuple[datetime, datetime] | None = None,
) -> list[Admission]:
    rows = conn.execute(
        select(
            admission.c.id,
            admission.c.patient_id,
            admission.c.admitted_at,
            admission.c.record,
            discharge.c.at.label("discharged_at"),
            discharge.c.author,
        )
        .outerjoin(discharge, _DISCHARGE_OF_ADMISSION)
        .where(where)
        .order_by(admission.c.admitted_at, admission.c.id)
    ).all()
    found = []
    for row in rows:
        if unreadable is None:
            record = Admission.model_validate(row.record)
        else:
            try:
                record = Admission.model_validate(row.record)
            except UNREADABLE as error:
                if within is None or _stay_overlaps(row, *within):
                    named = StoredRecordUnreadable(admission.name, {"id": row.id}, why(error))
                    unreadable.append((row.patient_id, named))
                continue
        if row.discharged_at is not None:
            record = record.model_copy(update={"discharged_at": aware(row.discharged_at)})
        found.append(record)
    return found


def _stay_overlaps(row: Any, start: datetime, end: datetime) -> bool:
    """Whether the admission row's stay (by its columns, which are the record's times) overlaps
    ``[start, end)``."""
    return aware(row.admitted_at) < end and (
        row.discharged_at is None or aware(row.discharged_at) > start
    )


def admissions_of(conn: Connection, patient_id: UUID) -> list[Admission]:
    """The patient's admissions, oldest first, with their discharges."""
    return _admissions(conn, admission.c.patient_id == str(patient_id))


def admissions_of_patients(
    conn: Connection, patient_ids: Sequence[UUID]
) -> dict[UUID, list[Admission]]:
    """``admissions_of`` for several patients, in one query per 500 of them."""
    found: dict[UUID, list[Admission]] = {p: [] for p in patient_ids}
    ids = sorted({str(p) for p in patient_ids})
    for start in range(0, len(ids), 500):
        for record in _admissions(conn, admission.c.patient_id.in_(ids[start : start + 500])):
            found[record.patient_id].append(record)
    return found


def admissions_to(
    conn: Connection,
    ward_id: UUID,
    *,
    unreadable: list[tuple[str, StoredRecordUnreadable]] | None = None,
    within: tuple[datetime, datetime] | None = None,
) -> list[Admission]:
    """Every admission to the ward, oldest first. With ``unreadable``: one whose stored record
    does not load is left out and added there (as ``current_admissions`` does), only when its
    stay overlaps ``within`` (by the row's admission and discharge times) if that is given."""
    return _admissions(conn, admission.c.ward_id == str(ward_id), unreadable, within)


def current_admissions(
    conn: Connection,
    at: datetime,
    *,
    unreadable: list[tuple[str, StoredRecordUnreadable]] | None = None,
) -> list[Admission]:
    """Every admission that covers ``at``. With ``unreadable`` (a job going through every
    resident): an admission whose stored record does not load is left out and added there
    (its patient's id and the error naming it), so one resident's record holds up no other's;
    without, it is raised (``StoredRecordUnreadable``)."""
    found = _admissions(conn, admission.c.admitted_at <= utc(at), unreadable)
    return [a for a in found if a.covers(at)]


def is_admitted(conn: Connection, patient_id: UUID, organisation_id: str, at: datetime) -> bool:
    """Whether the patient is admitted to a ward of ``organisation_id`` at ``at``."""
    return any(
        a.organisation_id == organisation_id and a.covers(at)
        for a in admissions_of(conn, patient_id)
    )


# -- schedules and planned doses ---------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleRow:
    entry_id: UUID
    version: int
    entry_version: int
    fingerprint: str
    effective_from: datetime


def schedules_of(conn: Connection, patient_ids: Sequence[UUID]) -> dict[UUID, list[ScheduleRow]]:
    """Every schedule of the patients' entries, per entry, oldest first."""
    found: dict[UUID, list[ScheduleRow]] = defaultdict(list)
    if not patient_ids:
        return found
    for row in conn.execute(_SCHEDULES_OF_PATIENTS, {"ids": [str(p) for p in patient_ids]}):
        entry_id = UUID(row.entry_id)
        found[entry_id].append(
            ScheduleRow(
                entry_id, row.version, row.entry_version, row.fingerprint, aware(row.effective_from)
            )
        )
    return found


_SCHEDULES_OF_PATIENTS = (
    select(schedule)
    .where(schedule.c.patient_id.in_(bindparam("ids", expanding=True)))
    .order_by(schedule.c.entry_id, schedule.c.version)
)


def add_schedules(
    conn: Connection, rows: Sequence[tuple[UUID, ScheduleRow]], generated_at: datetime
) -> None:
    """New schedules, each of (patient id, schedule); queued with a command's other appends
    (``store.batch``)."""
    batch.insert(
        conn,
        schedule,
        [
            {
                "entry_id": str(row.entry_id),
                "version": row.version,
                "patient_id": str(patient_id),
                "entry_version": row.entry_version,
                "fingerprint": row.fingerprint,
                "effective_from": utc(row.effective_from),
                "generated_at": utc(generated_at),
            }
            for patient_id, row in rows
        ],
    )


def add_planned_doses(conn: Connection, doses: Sequence[PlannedDose]) -> None:
    """New planned doses; queued with a command's other appends (``store.batch``)."""
    batch.insert(
        conn,
        planned_dose,
        [
            {
                "id": str(d.id),
                "patient_id": str(d.patient_id),
                "ward_id": str(d.ward_id),
                "entry_id": str(d.entry_id),
                "schedule_version": d.schedule_version,
                "local_time": d.local_time.strftime("%Y-%m-%dT%H:%M"),
                "dose_index": d.dose_index,
                "due_at": utc(d.due_at),
                "record": d.model_dump(mode="json"),
            }
            for d in doses
        ],
    )


@names_unreadable(planned_dose)
def planned_doses(
    conn: Connection,
    *,
    patient_ids: Sequence[UUID] | None = None,
    ward_id: UUID | None = None,
    start: datetime,
    end: datetime,
) -> list[PlannedDose]:
    """Planned doses due in ``[start, end)`` of the patients or of the ward, every schedule
    version (``medloop.domain.administration.dose_in_force`` tells which stand)."""
    query = select(planned_dose.c.record).where(
        planned_dose.c.due_at >= utc(start), planned_dose.c.due_at < utc(end)
    )
    if patient_ids is not None:
        query = query.where(planned_dose.c.patient_id.in_([str(p) for p in patient_ids]))
    if ward_id is not None:
        query = query.where(planned_dose.c.ward_id == str(ward_id))
    return [
        PlannedDose.model_validate(r)
        for r in conn.execute(query.order_by(planned_dose.c.due_at, planned_dose.c.id)).scalars()
    ]


@dataclass(frozen=True, slots=True)
class StandingCharting:
    """A charting of a planned dose that was not entered in error, as the chart reads it: the
    columns ``effective_charting`` compares and the stored record, validated only for the one
    charting that stands (``administration``)."""

    id: str
    recorded_at: datetime
    outcome: Outcome
    record: dict[str, Any] | str
    """The stored record, or its JSON text as stored (``chartings_on_ward``: parsed only when
    validated)."""

    def administration(self) -> Administration:
        """The stored record as the ``Administration`` it holds; ``StoredRecordUnreadable``
        naming the row when it no longer loads."""
        record = json.loads(self.record) if isinstance(self.record, str) else self.record
        return parsed(Administration, record, _ADMINISTRATION, {"id": self.id})


@dataclass(frozen=True, slots=True)
class DoseOnChart:
    dose: PlannedDose
    chartings: tuple[StandingCharting, ...]


def _stored_dose(record: dict[str, Any], uuids: dict[str, UUID]) -> PlannedDose:
    """A planned dose from the record the planning command stored (``model_dump(mode="json")``
    of a validated ``PlannedDose``), built without validating it again: a ward's day has ~1 000
    of them. Fields added to ``PlannedDose`` since a record was written take their defaults.
    ``uuids``: the patient, ward and entry ids parsed so far (a few, each on many doses)."""
    amount = record["amount"]
    time_of_day = record.get("time_of_day")
    patient_id, ward_id, entry_id = record["patient_id"], record["ward_id"], record["entry_id"]
    return PlannedDose.model_construct(
        id=UUID(record["id"]),
        patient_id=uuids.get(patient_id) or uuids.setdefault(patient_id, UUID(patient_id)),
        ward_id=uuids.get(ward_id) or uuids.setdefault(ward_id, UUID(ward_id)),
        entry_id=uuids.get(entry_id) or uuids.setdefault(entry_id, UUID(entry_id)),
        schedule_version=record["schedule_version"],
        drug=record["drug"],
        local_time=datetime.fromisoformat(record["local_time"]),
        due_at=datetime.fromisoformat(record["due_at"]),
        dose_index=record["dose_index"],
        amount=_quantity(float(amount["value"]), amount["unit"]),
        time_of_day=None if time_of_day is None else TimeOfDay(time_of_day),
        exact=record.get("exact", False),
        shifted=record.get("shifted", False),
        multidose=record.get("multidose", False),
    )


@functools.lru_cache(maxsize=1024)
def _quantity(value: float, unit: str) -> Quantity:
    """A stored dose amount (frozen, so one object serves every dose of that amount)."""
    return Quantity.model_construct(value=value, unit=unit)


_DOSES_ON_CHART = (
    select(
        planned_dose.c.id,
        planned_dose.c.record,
        administration.c.id.label("charting_id"),
        administration.c.recorded_at,
        administration.c.outcome,
        administration.c.record.label("charting"),
    )
    .select_from(planned_dose.outerjoin(administration, _CHARTING_OF_DOSE & _NOT_IN_ERROR))
    .where(
        planned_dose.c.due_at >= bindparam("start", type_=planned_dose.c.due_at.type),
        planned_dose.c.due_at < bindparam("end", type_=planned_dose.c.due_at.type),
    )
    .order_by(
        planned_dose.c.due_at,
        planned_dose.c.id,
        administration.c.at,
        administration.c.recorded_at,
        administration.c.id,
    )
)
_DOSES_OF_WARD = _DOSES_ON_CHART.where(planned_dose.c.ward_id == bindparam("ward_id"))
_DOSES_OF_PATIENTS = _DOSES_ON_CHART.where(
    planned_dose.c.patient_id.in_(bindparam("patient_ids", expanding=True))
)


@names_unreadable(planned_dose)
def doses_on_chart(
    conn: Connection,
    *,
    patient_ids: Sequence[UUID] | None = None,
    ward_id: UUID | None = None,
    start: datetime,
    end: datetime,
) -> list[DoseOnChart]:
    """In one query: the planned doses due in ``[start, end)`` of the ward (or else of the
    patients), every schedule version, with the chartings of each that were not entered in
    error, oldest first (``planned_doses`` and ``chartings_of_doses`` of the chart, without
    validating every stored record again)."""
    bounds = {"start": utc(start), "end": utc(end)}
    if ward_id is not None:
        rows = conn.execute(_DOSES_OF_WARD, {**bounds, "ward_id": str(ward_id)})
    elif patient_ids:
        rows = conn.execute(
            _DOSES_OF_PATIENTS, {**bounds, "patient_ids": [str(p) for p in patient_ids]}
        )
    else:
        return []
    found: list[DoseOnChart] = []
    uuids: dict[str, UUID] = {}
    current: str | None = None
    dose: PlannedDose | None = None
    chartings: list[StandingCharting] = []
    for r in rows:
        if r.id != current:
            if dose is not None:
                found.append(DoseOnChart(dose, tuple(chartings)))
            current, dose, chartings = r.id, _stored_dose(r.record, uuids), []
        if r.charting_id is not None:
            chartings.append(
                StandingCharting(
                    r.charting_id, aware(r.recorded_at), Outcome(r.outcome), r.charting
                )
            )
    if dose is not None:
        found.append(DoseOnChart(dose, tuple(chartings)))
    return found


# The ward chart's day in parts (``loop.administration.queries.ward_lines``): what the planned
# doses and schedules are (kept between reads while the marks stay) and, read every time, the
# chartings that stand. Both tables of the plan are append-only, so a patient's count of rows
# only grows, and an unchanged count is an unchanged set of rows.
_SCHEDULE_COUNT = (
    select(func.count())
    .select_from(schedule)
    .where(schedule.c.patient_id == planned_dose.c.patient_id)
    .scalar_subquery()
)
_WARD_PLAN_MARKS = (
    select(
        planned_dose.c.patient_id,
        func.count().label("doses"),
        _SCHEDULE_COUNT.label("schedules"),
    )
    .where(
        planned_dose.c.ward_id == bindparam("ward_id"),
        planned_dose.c.due_at >= bindparam("start", type_=planned_dose.c.due_at.type),
        planned_dose.c.due_at < bindparam("end", type_=planned_dose.c.due_at.type),
    )
    .group_by(planned_dose.c.patient_id)
)


def ward_plan_marks(
    conn: Connection, ward_id: UUID, start: datetime, end: datetime
) -> dict[UUID, tuple[int, int]]:
    """Per patient with planned doses on the ward due in ``[start, end)``: (how many such doses,
    how many schedules the patient has), in one query. ``planned_on_ward`` read for a patient
    gives the same pair while nothing was added to either table for them."""
    return {
        UUID(r.patient_id): (r.doses, r.schedules)
        for r in conn.execute(
            _WARD_PLAN_MARKS, {"ward_id": str(ward_id), "start": utc(start), "end": utc(end)}
        )
    }


_PLANNED_ON_WARD = (
    select(planned_dose.c.record)
    .where(
        planned_dose.c.ward_id == bindparam("ward_id"),
        planned_dose.c.patient_id.in_(bindparam("patient_ids", expanding=True)),
        planned_dose.c.due_at >= bindparam("start", type_=planned_dose.c.due_at.type),
        planned_dose.c.due_at < bindparam("end", type_=planned_dose.c.due_at.type),
    )
    .order_by(planned_dose.c.due_at, planned_dose.c.id)
)


@dataclass(frozen=True)
class PlannedOnWard:
    """A patient's planned doses on a ward due in a window (every schedule version, in the
    chart's order: due time, then id) and every schedule of the patient's entries, with the
    mark they were read at (``ward_plan_marks``)."""

    doses: tuple[PlannedDose, ...]
    schedules: Mapping[UUID, Sequence[ScheduleRow]]

    @property
    def mark(self) -> tuple[int, int]:
        return len(self.doses), sum(len(s) for s in self.schedules.values())


@names_unreadable(planned_dose)
def planned_on_ward(
    conn: Connection, ward_id: UUID, patient_ids: Sequence[UUID], start: datetime, end: datetime
) -> dict[UUID, PlannedOnWard]:
    """The patients' planned doses on the ward due in ``[start, end)`` and their schedules, in
    two queries; the doses' stored records are not validated again (``_stored_dose``). A
    patient without such doses is left out."""
    if not patient_ids:
        return {}
    ids = [str(p) for p in patient_ids]
    doses: dict[UUID, list[PlannedDose]] = defaultdict(list)
    uuids: dict[str, UUID] = {}
    for record in conn.execute(
        _PLANNED_ON_WARD,
        {"ward_id": str(ward_id), "patient_ids": ids, "start": utc(start), "end": utc(end)},
    ).scalars():
        dose = _stored_dose(record, uuids)
        doses[dose.patient_id].append(dose)
    schedules: dict[UUID, dict[UUID, list[ScheduleRow]]] = defaultdict(lambda: defaultdict(list))
    for row in conn.execute(_SCHEDULES_OF_PATIENTS, {"ids": ids}):
        entry_id = UUID(row.entry_id)
        schedules[UUID(row.patient_id)][entry_id].append(
            ScheduleRow(
                entry_id, row.version, row.entry_version, row.fingerprint, aware(row.effective_from)
            )
        )
    return {
        patient_id: PlannedOnWard(tuple(found), dict(schedules.get(patient_id, {})))
        for patient_id, found in doses.items()
    }


_CHARTINGS_ON_WARD = (
    select(
        administration.c.planned_dose_id,
        administration.c.id,
        administration.c.recorded_at,
        administration.c.outcome,
        # As stored, not parsed: the chart keeps the validated record of each charting it has
        # shown (``ward_lines``), so most reads need none of them parsed.
        cast(administration.c.record, Text).label("record"),
    )
    .select_from(planned_dose.join(administration, _CHARTING_OF_DOSE))
    .where(
        planned_dose.c.ward_id == bindparam("ward_id"),
        planned_dose.c.due_at >= bindparam("start", type_=planned_dose.c.due_at.type),
        planned_dose.c.due_at < bindparam("end", type_=planned_dose.c.due_at.type),
        _NOT_IN_ERROR,
    )
    .order_by(administration.c.at, administration.c.recorded_at, administration.c.id)
)


def chartings_on_ward(
    conn: Connection, ward_id: UUID, start: datetime, end: datetime
) -> dict[UUID, tuple[StandingCharting, ...]]:
    """By planned dose: the chartings not entered in error of the ward's planned doses due in
    ``[start, end)``, oldest first (as ``doses_on_chart`` has them), in one query; each record
    as its stored JSON text (``StandingCharting.administration`` parses it)."""
    found: dict[UUID, list[StandingCharting]] = defaultdict(list)
    uuids: dict[str, UUID] = {}
    for r in conn.execute(
        _CHARTINGS_ON_WARD, {"ward_id": str(ward_id), "start": utc(start), "end": utc(end)}
    ):
        dose_id = uuids.get(r.planned_dose_id) or uuids.setdefault(
            r.planned_dose_id, UUID(r.planned_dose_id)
        )
        found[dose_id].append(
            StandingCharting(r.id, aware(r.recorded_at), Outcome(r.outcome), r.record)
        )
    return {dose_id: tuple(chartings) for dose_id, chartings in found.items()}


# -- chartings ---------------------------------------------------------------------------------


def add_administration(conn: Connection, record: Administration) -> None:
    conn.execute(
        _ADD_ADMINISTRATION,
        attestation.stamp(conn, administration, [administration_values(record)])[0],
    )


def add_administrations(conn: Connection, records: Sequence[Administration]) -> None:
    if not records:
        return
    conn.execute(
        _ADD_ADMINISTRATION,
        attestation.stamp(conn, administration, [administration_values(r) for r in records]),
    )


def add_correction(
    conn: Connection, patient_id: UUID, correction: AdministrationCorrection
) -> None:
    attestation.insert(
        conn,
        administration_error,
        patient_id=str(patient_id),
        administration_id=str(correction.administration_id),
        at=utc(correction.at),
        record=correction.model_dump(mode="json"),
    )


@dataclass(frozen=True)
class Charted:
    """A charting as read back, with its correction when it was entered in error."""

    administration: Administration
    correction: AdministrationCorrection | None

    @property
    def stands(self) -> bool:
        return self.correction is None


@names_unreadable(administration, administration_error)
def _chartings(conn: Connection, *where: Any) -> list[Charted]:
    rows = conn.execute(
        select(administration.c.record, administration_error.c.record.label("correction"))
        .outerjoin(
            administration_error,
            _ERROR_OF_CHARTING,
        )
        .where(*where)
        .order_by(administration.c.at, administration.c.recorded_at, administration.c.id)
    ).all()
    return [
        Charted(
            Administration.model_validate(r.record),
            None if r.correction is None else AdministrationCorrection.model_validate(r.correction),
        )
        for r in rows
    ]


def chartings_of_patient(
    conn: Connection,
    patient_id: UUID,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    as_needed_only: bool = False,
) -> list[Charted]:
    """The patient's chartings (of moments in ``[since, until)``), oldest first; with
    ``as_needed_only`` only those of no planned dose (PRN doses)."""
    where = [administration.c.patient_id == str(patient_id)]
    if since is not None:
        where.append(administration.c.at >= utc(since))
    if until is not None:
        where.append(administration.c.at < utc(until))
    if as_needed_only:
        where.append(administration.c.planned_dose_id.is_(None))
    return _chartings(conn, *where)


def chartings_mark(conn: Connection, patient_id: UUID) -> tuple[int, int]:
    """The patient's chartings high-water mark: how many chartings and how many corrections
    (entered in error) are stored. Both tables are append-only, so the pair grows with every
    charting, correction and missed dose marked by the system (which does not bump the
    patient's revision): a picture drawn for one mark is current while the mark is."""
    charted = (
        select(func.count())
        .select_from(administration)
        .where(administration.c.patient_id == str(patient_id))
        .scalar_subquery()
    )
    corrected = (
        select(func.count())
        .select_from(administration_error)
        .where(administration_error.c.patient_id == str(patient_id))
        .scalar_subquery()
    )
    found = conn.execute(select(charted, corrected)).one()
    return int(found[0]), int(found[1])


def chartings_of_doses(conn: Connection, dose_ids: Sequence[UUID]) -> dict[UUID, list[Charted]]:
    found: dict[UUID, list[Charted]] = defaultdict(list)
    ids = [str(d) for d in dose_ids]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for charted in _chartings(conn, administration.c.planned_dose_id.in_(chunk)):
            assert charted.administration.planned_dose_id is not None
            found[charted.administration.planned_dose_id].append(charted)
    return found


def chartings_of_patients(
    conn: Connection,
    patient_ids: Sequence[UUID],
    since: datetime,
    until: datetime,
    *,
    as_needed_only: bool = False,
) -> list[Charted]:
    """The patients' chartings of moments in ``[since, until)``, oldest first; with
    ``as_needed_only`` only those of no planned dose (PRN doses)."""
    if not patient_ids:
        return []
    where = [
        administration.c.patient_id.in_([str(p) for p in patient_ids]),
        administration.c.at >= utc(since),
        administration.c.at < utc(until),
    ]
    if as_needed_only:
        where.append(administration.c.planned_dose_id.is_(None))
    return _chartings(conn, *where)


def administration_by_id(
    conn: Connection, patient_id: UUID, administration_id: UUID
) -> Charted | None:
    """The patient's charting (``None``: the patient has none with that id)."""
    found = _chartings(
        conn,
        administration.c.patient_id == str(patient_id),
        administration.c.id == str(administration_id),
    )
    return found[0] if found else None


def count_missed(conn: Connection) -> int:
    return int(
        conn.execute(
            select(func.count()).where(administration.c.outcome == Outcome.MISSED.value)
        ).scalar_one()
    )


# -- what the commands read, in as few round trips as possible ---------------------------------
# The statements are built once: SQLAlchemy then neither rebuilds nor re-keys them per call.

_ADMISSIONS_WITH_CONFIG = (
    select(
        admission.c.record,
        discharge.c.at.label("discharged_at"),
        select(func.max(ward_config.c.version))
        .where(ward_config.c.ward_id == admission.c.ward_id)
        .scalar_subquery()
        .label("config_version"),
    )
    .outerjoin(discharge, _DISCHARGE_OF_ADMISSION)
    .where(admission.c.patient_id == bindparam("patient_id"))
    .order_by(admission.c.admitted_at, admission.c.id)
)


_STAY_TO_PLAN = (
    _ADMISSIONS_WITH_CONFIG.where(
        admission.c.admitted_at < bindparam("until", type_=admission.c.admitted_at.type),
        or_(
            discharge.c.at.is_(None),
            discharge.c.at > bindparam("at", type_=discharge.c.at.type),
        ),
    )
    .order_by(None)
    .order_by(admission.c.admitted_at.desc(), admission.c.id.desc())
    .limit(1)
)


@names_unreadable(admission)
def stay_to_plan(
    conn: Connection, patient_id: UUID, at: datetime, until: datetime
) -> tuple[Admission, int | None] | None:
    """The patient's latest admission that begins before ``until`` and has not ended by
    ``at``, with its ward's configuration version in force, in one round trip (on PostgreSQL
    the same one as the command's queued appends); ``None`` when there is none."""
    row = batch.first_row(
        conn, _STAY_TO_PLAN, {"patient_id": str(patient_id), "at": utc(at), "until": utc(until)}
    )
    if row is None:
        return None
    record = Admission.model_validate(row.record)
    if row.discharged_at is not None:
        record = record.model_copy(update={"discharged_at": aware(row.discharged_at)})
    return record, row.config_version


@names_unreadable(admission)
def admissions_with_config(conn: Connection, patient_id: UUID) -> list[tuple[Admission, int]]:
    """The patient's admissions, oldest first, with their discharges, each with the version of
    its ward's configuration in force (read in the same statement)."""
    found = []
    for row in conn.execute(_ADMISSIONS_WITH_CONFIG, {"patient_id": str(patient_id)}):
        record = Admission.model_validate(row.record)
        if row.discharged_at is not None:
            record = record.model_copy(update={"discharged_at": aware(row.discharged_at)})
        found.append((record, row.config_version))
    return found


_WARD_VERSION = (
    select(ward.c.record, ward_config.c.record.label("config"))
    .join(ward_config, ward_config.c.ward_id == ward.c.id)
    .where(ward.c.id == bindparam("ward_id"), ward_config.c.version == bindparam("version"))
)

_KEEP_WARD_VERSIONS = 256
_ward_versions: weakref.WeakKeyDictionary[object, dict[tuple[str, int], WardState]] = (
    weakref.WeakKeyDictionary()
)
_ward_versions_lock = threading.Lock()


@names_unreadable(ward, ward_config)
def ward_at_version(conn: Connection, ward_id: UUID, version: int) -> WardState | None:
    """The ward with its configuration ``version``. Both are append-only, so a (ward, version)
    never changes in a database: it is parsed once per database (connection pool) in this
    process. The caller reads ``version`` (the one in force) in its own transaction."""
    key = (str(ward_id), version)
    pool = conn.engine.pool
    with _ward_versions_lock:
        known = _ward_versions.get(pool)
        found = None if known is None else known.get(key)
    if found is not None:
        return found
    row = conn.execute(_WARD_VERSION, {"ward_id": key[0], "version": version}).first()
    if row is None:
        return None
    found = WardState(
        Ward.model_validate(row.record), WardConfig.model_validate(row.config), version
    )
    with _ward_versions_lock:
        known = _ward_versions.setdefault(pool, {})
        if len(known) >= _KEEP_WARD_VERSIONS:
            known.clear()
        known[key] = found
    return found


_SCHEDULES_OF_ENTRY = (
    select(schedule)
    .where(
        schedule.c.patient_id == bindparam("patient_id"),
        schedule.c.entry_id == bindparam("entry_id"),
    )
    .order_by(schedule.c.version)
)


def schedules_of_entry(conn: Connection, patient_id: UUID, entry_id: UUID) -> list[ScheduleRow]:
    """The schedules of one of the patient's entries, oldest first."""
    return [
        ScheduleRow(
            entry_id, row.version, row.entry_version, row.fingerprint, aware(row.effective_from)
        )
        for row in conn.execute(
            _SCHEDULES_OF_ENTRY, {"patient_id": str(patient_id), "entry_id": str(entry_id)}
        )
    ]


_PLANNED_DOSE_BY_ID = select(planned_dose.c.record).where(
    planned_dose.c.patient_id == bindparam("patient_id"), planned_dose.c.id == bindparam("id")
)


@names_unreadable(planned_dose)
def planned_dose_by_id(conn: Connection, patient_id: UUID, dose_id: UUID) -> PlannedDose | None:
    """The patient's planned dose (``None``: the patient has none with that id)."""
    record = conn.execute(
        _PLANNED_DOSE_BY_ID, {"patient_id": str(patient_id), "id": str(dose_id)}
    ).scalar_one_or_none()
    return None if record is None else PlannedDose.model_validate(record)


_STANDING_CHARTING = (
    exists()
    .where(
        administration.c.planned_dose_id == planned_dose.c.id,
        administration.c.outcome != Outcome.MISSED.value,
    )
    .where(administration.c.patient_id == planned_dose.c.patient_id)
    .where(_NOT_IN_ERROR)
)

_PLANNED_SINCE = select(
    planned_dose.c.entry_id,
    planned_dose.c.schedule_version,
    planned_dose.c.local_time,
    planned_dose.c.dose_index,
    planned_dose.c.due_at,
    _STANDING_CHARTING.label("charted"),
).where(
    planned_dose.c.patient_id == bindparam("patient_id"),
    planned_dose.c.due_at >= bindparam("since", type_=planned_dose.c.due_at.type),
)


def planned_since(
    conn: Connection, patient_id: UUID, since: datetime, charted_until: datetime
) -> tuple[set[tuple[str, int, str, int]], set[tuple[str, str, int]]]:
    """In one query: (entry, schedule version, local time, dose index) of the patient's planned
    doses due from ``since``, and (entry, local time, dose index) of those among them due
    before ``charted_until`` that a person charted (a standing charting other than
    ``missed``)."""
    keys: set[tuple[str, int, str, int]] = set()
    charted: set[tuple[str, str, int]] = set()
    until = utc(charted_until)
    for r in conn.execute(_PLANNED_SINCE, {"patient_id": str(patient_id), "since": utc(since)}):
        keys.add((r.entry_id, r.schedule_version, r.local_time, r.dose_index))
        if r.charted and aware(r.due_at) < until:
            charted.add((r.entry_id, r.local_time, r.dose_index))
    return keys, charted


@dataclass(frozen=True)
class RecentCharting:
    """What the checks of a new charting need of the patient's other chartings, read from the
    stored record without validating it again (it was validated when written)."""

    entry_id: UUID
    outcome: Outcome
    at: datetime
    dose: tuple[float, str] | None
    stands: bool


_CHARTING_COLUMNS = (
    administration.c.planned_dose_id,
    administration.c.patient_id,
    administration.c.entry_id,
    administration.c.outcome,
    administration.c.at,
    administration.c.record,
    administration_error.c.record.label("correction"),
)
_CHARTING_ORDER = (administration.c.at, administration.c.recorded_at, administration.c.id)
_ERROR_JOIN = administration.outerjoin(administration_error, _ERROR_OF_CHARTING)
_CHARTINGS_OF_DOSE = (
    select(*_CHARTING_COLUMNS)
    .select_from(_ERROR_JOIN)
    .where(administration.c.patient_id == bindparam("patient_id"))
    .where(administration.c.planned_dose_id == bindparam("dose_id"))
    .order_by(*_CHARTING_ORDER)
)
_CHARTINGS_OF_DOSE_AND_PATIENT = (
    select(*_CHARTING_COLUMNS)
    .select_from(_ERROR_JOIN)
    .where(
        administration.c.patient_id == bindparam("patient_id"),
        or_(
            administration.c.planned_dose_id == bindparam("dose_id"),
            administration.c.at >= bindparam("since", type_=administration.c.at.type),
        ),
    )
    .order_by(*_CHARTING_ORDER)
)


@names_unreadable(administration, administration_error)
def chartings_for_charting(
    conn: Connection, patient_id: UUID, dose_id: UUID | None, since: datetime | None
) -> tuple[list[Charted], list[RecentCharting]]:
    """In one query: the chartings of the planned dose ``dose_id`` (none for ``None``) and the
    patient's chartings from ``since`` on (none for ``None``), both oldest first."""
    if dose_id is None and since is None:
        return [], []
    dose = None if dose_id is None else str(dose_id)
    if since is None:
        rows = conn.execute(_CHARTINGS_OF_DOSE, {"dose_id": dose, "patient_id": str(patient_id)})
    else:
        rows = conn.execute(
            _CHARTINGS_OF_DOSE_AND_PATIENT,
            {"dose_id": dose, "patient_id": str(patient_id), "since": utc(since)},
        )
    pid = str(patient_id)
    start = None if since is None else utc(since)
    of_dose: list[Charted] = []
    recent: list[RecentCharting] = []
    for r in rows:
        if dose is not None and r.planned_dose_id == dose:
            of_dose.append(
                Charted(
                    Administration.model_validate(r.record),
                    None
                    if r.correction is None
                    else AdministrationCorrection.model_validate(r.correction),
                )
            )
        at = aware(r.at)
        if start is not None and r.patient_id == pid and at >= start:
            given = r.record.get("dose")
            recent.append(
                RecentCharting(
                    UUID(r.entry_id),
                    Outcome(r.outcome),
                    at,
                    None if given is None else (float(given["value"]), given["unit"]),
                    r.correction is None,
                )
            )
    return of_dose, recent


_OVERRIDES_OF_PATIENT = (
    select(
        alert.c.key,
        alert.c.override_by,
        alert.c.override_reason,
        alert.c.raised_at,
        alert.c.action,
        alert.c.record,
    )
    .where(alert.c.patient_id == bindparam("patient_id"), alert.c.override_reason.is_not(None))
    .order_by(alert.c.id)
)


def overridden_alerts(conn: Connection, patient_id: UUID) -> list[Any]:
    """The patient's stored alerts that were overridden, oldest first."""
    return list(conn.execute(_OVERRIDES_OF_PATIENT, {"patient_id": str(patient_id)}).all())


_ADD_ADMINISTRATION = administration.insert()


def administration_values(record: Administration) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "patient_id": str(record.patient_id),
        "entry_id": str(record.entry_id),
        "planned_dose_id": None if record.planned_dose_id is None else str(record.planned_dose_id),
        "outcome": record.outcome.value,
        "at": utc(record.at),
        "recorded_at": utc(record.recorded_at),
        "record": record.model_dump(mode="json"),
        "late": record.late,
        "scanned": record.scan is not None,
        "scan_skipped": None if record.scan_skipped is None else record.scan_skipped.value,
        "reason": record.reason,
    }


def projection_mismatches(conn: Connection, limit: int) -> tuple[int, list[str]]:
    """The chartings whose report columns (``late``, ``scanned``, ``scan_skipped``,
    ``reason``) are not what their record says: (how many, the first ``limit`` ids). The
    columns are left out of the row digest, so ``audit verify`` checks them against the
    attested record here."""
    record = administration.c.record
    differs = or_(
        administration.c.late.is_distinct_from(func.coalesce(record["late"].as_boolean(), False)),
        administration.c.scanned.is_distinct_from(record["scan"]["gtin"].as_string().is_not(None)),
        administration.c.scan_skipped.is_distinct_from(record["scan_skipped"].as_string()),
        administration.c.reason.is_distinct_from(record["reason"].as_string()),
    )
    count = conn.execute(select(func.count()).where(differs)).scalar_one()
    if not count:
        return 0, []
    ids = conn.execute(
        select(administration.c.id).where(differs).order_by(administration.c.id).limit(limit)
    ).scalars()
    return int(count), list(ids)


def patient_of_administration(conn: Connection, administration_id: UUID) -> UUID | None:
    """The patient of a charting (``None``: no such charting)."""
    found = conn.execute(
        select(administration.c.patient_id).where(administration.c.id == str(administration_id))
    ).scalar_one_or_none()
    return None if found is None else UUID(found)
