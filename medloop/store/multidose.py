"""Multidose tables and repository: responsibility versions, packing periods, urgent packs,
the list versions the pharmacy took its production plan from, deadline flags, reconciliations
of packing reports, the tasks they open and their resolutions, pharmacy proposals and the
prescriber's decisions.

All append-only (migration 0004 adds the triggers): a new responsibility is a new version, a
resolution or decision is a row of its own next to what it resolves. Domain records are stored
whole as ``model_dump(mode="json")`` beside the columns that index them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    func,
    select,
)

from fest.schema import metadata
from medloop.domain.medication_list import EntryVersion
from medloop.domain.multidose.periods import PackingPeriod, UrgentPack
from medloop.domain.multidose.proposals import Proposal, ProposalDecision
from medloop.domain.multidose.reconciliation import PackReconciliation
from medloop.domain.multidose.responsibility import Responsibility
from medloop.domain.multidose.tasks import MultidoseTask, TaskResolution
from medloop.store import attestation
from medloop.store.columns import (
    UUID_LENGTH,
    StoredRecordUnreadable,
    names_unreadable,
    parsed,
    shard_key,
    utc,
)
from medloop.store.list_changes import entry_version

APPEND_ONLY = (
    "multidose_responsibility",
    "multidose_period",
    "multidose_urgent_pack",
    "multidose_plan_taken",
    "multidose_deadline_flag",
    "multidose_reconciliation",
    "multidose_task",
    "multidose_task_resolution",
    "multidose_proposal",
    "multidose_proposal_decision",
)

responsibility = Table(
    "multidose_responsibility",
    metadata,
    attestation.command_column(),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the Responsibility
)

period = Table(
    "multidose_period",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("first_day", Date, nullable=False),
    Column("last_day", Date, nullable=False),
    Column("order_deadline", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the PackingPeriod
    Index("ix_multidose_period_patient", "patient_id", "first_day", unique=True),
    Index("ix_multidose_period_deadline", "order_deadline"),
)

urgent_pack = Table(
    "multidose_urgent_pack",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("period_id", String(UUID_LENGTH), ForeignKey("multidose_period.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the UrgentPack
    *shard_key("multidose_urgent_pack"),
    Index("ix_multidose_urgent_pack_period", "period_id"),
)

plan_taken = Table(
    "multidose_plan_taken",
    metadata,
    attestation.command_column(),
    Column("period_id", String(UUID_LENGTH), ForeignKey("multidose_period.id"), primary_key=True),
    Column("list_version", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # who took it
    *shard_key("multidose_plan_taken"),
)

deadline_flag = Table(
    "multidose_deadline_flag",
    metadata,
    attestation.command_column(),
    Column("period_id", String(UUID_LENGTH), ForeignKey("multidose_period.id"), primary_key=True),
    Column("list_version", Integer, primary_key=True, autoincrement=False),
    Column("flagged_at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the changes not in the plan
    *shard_key("multidose_deadline_flag"),
)

reconciliation = Table(
    "multidose_reconciliation",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("period_id", String(UUID_LENGTH), ForeignKey("multidose_period.id"), nullable=False),
    Column("list_version", Integer, nullable=False),
    Column("reconciled_at", DateTime(timezone=True), nullable=False),
    Column("report", JSON, nullable=False),  # the PackReport as received
    Column("record", JSON, nullable=False),  # the PackReconciliation
    Index("ix_multidose_reconciliation_patient", "patient_id", "period_id"),
)

task = Table(
    "multidose_task",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column(
        "reconciliation_id",
        String(UUID_LENGTH),
        ForeignKey("multidose_reconciliation.id"),
        nullable=False,
    ),
    Column("kind", String(48), nullable=False),
    Column("assigned_to", String(9), nullable=True),  # HPR number of the multidose doctor
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the MultidoseTask
    Index("ix_multidose_task_patient", "patient_id"),
    Index("ix_multidose_task_assigned", "assigned_to"),
)

task_resolution = Table(
    "multidose_task_resolution",
    metadata,
    attestation.command_column(),
    Column("task_id", String(UUID_LENGTH), ForeignKey("multidose_task.id"), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the TaskResolution
    *shard_key("multidose_task_resolution"),
)

proposal = Table(
    "multidose_proposal",
    metadata,
    attestation.command_column(),
    Column("id", String(UUID_LENGTH), primary_key=True),
    Column("patient_id", String(UUID_LENGTH), ForeignKey("patient.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("proposed_at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the Proposal
    Index("ix_multidose_proposal_patient", "patient_id", "proposed_at"),
)

proposal_decision = Table(
    "multidose_proposal_decision",
    metadata,
    attestation.command_column(),
    Column(
        "proposal_id", String(UUID_LENGTH), ForeignKey("multidose_proposal.id"), primary_key=True
    ),
    Column("accepted", Boolean, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("record", JSON, nullable=False),  # the ProposalDecision
    *shard_key("multidose_proposal_decision"),
)


def _json(record: Any) -> Any:
    return record.model_dump(mode="json")


# -- responsibility ----------------------------------------------------------------------------


@names_unreadable(responsibility)
def current_responsibility(conn: Connection, patient_id: UUID) -> Responsibility | None:
    found = conn.execute(
        select(responsibility.c.record)
        .where(responsibility.c.patient_id == str(patient_id))
        .order_by(responsibility.c.version.desc())
        .limit(1)
    ).scalar()
    return None if found is None else Responsibility.model_validate(found)


@names_unreadable(responsibility)
def responsibility_history(conn: Connection, patient_id: UUID) -> list[Responsibility]:
    return [
        Responsibility.model_validate(r)
        for r in conn.execute(
            select(responsibility.c.record)
            .where(responsibility.c.patient_id == str(patient_id))
            .order_by(responsibility.c.version)
        ).scalars()
    ]


def append_responsibility(conn: Connection, record: Responsibility) -> None:
    attestation.insert(
        conn,
        responsibility,
        patient_id=str(record.patient_id),
        version=record.version,
        valid_from=record.valid_from,
        valid_to=record.valid_to,
        recorded_at=record.recorded_at,
        record=_json(record),
    )


# -- periods, urgent packs, plans taken, flags -------------------------------------------------


@names_unreadable(period)
def periods_of(conn: Connection, patient_id: UUID) -> list[PackingPeriod]:
    return [
        PackingPeriod.model_validate(r)
        for r in conn.execute(
            select(period.c.record)
            .where(period.c.patient_id == str(patient_id))
            .order_by(period.c.first_day)
        ).scalars()
    ]


@names_unreadable(period)
def find_period(conn: Connection, patient_id: UUID, period_id: UUID) -> PackingPeriod | None:
    """The patient's packing period (``None``: the patient has none with that id)."""
    found = conn.execute(
        select(period.c.record).where(
            period.c.patient_id == str(patient_id), period.c.id == str(period_id)
        )
    ).scalar()
    return None if found is None else PackingPeriod.model_validate(found)


def append_period(conn: Connection, record: PackingPeriod) -> None:
    attestation.insert(
        conn,
        period,
        id=str(record.id),
        patient_id=str(record.patient_id),
        first_day=record.first_day,
        last_day=record.last_day,
        order_deadline=utc(record.order_deadline),
        record=_json(record),
    )


@names_unreadable(urgent_pack)
def urgent_packs_of(
    conn: Connection, patient_id: UUID, period_ids: Iterable[UUID]
) -> list[UrgentPack]:
    ids = [str(p) for p in period_ids]
    if not ids:
        return []
    return [
        UrgentPack.model_validate(r)
        for r in conn.execute(
            select(urgent_pack.c.record)
            .where(urgent_pack.c.patient_id == str(patient_id))
            .where(urgent_pack.c.period_id.in_(ids))
            .order_by(urgent_pack.c.at)
        ).scalars()
    ]


def append_urgent_pack(conn: Connection, patient_id: UUID, record: UrgentPack) -> None:
    attestation.insert(
        conn,
        urgent_pack,
        patient_id=str(patient_id),
        id=str(record.id),
        period_id=str(record.period_id),
        at=utc(record.at),
        record=_json(record),
    )


def plan_taken_version(conn: Connection, patient_id: UUID, period_id: UUID) -> int | None:
    """The newest list version the pharmacy took the period's production plan from."""
    return conn.execute(
        select(func.max(plan_taken.c.list_version)).where(
            plan_taken.c.patient_id == str(patient_id), plan_taken.c.period_id == str(period_id)
        )
    ).scalar()


def append_plan_taken(
    conn: Connection, patient_id: UUID, period_id: UUID, list_version: int, at: datetime, by: Any
) -> None:
    attestation.insert(
        conn,
        plan_taken,
        patient_id=str(patient_id),
        period_id=str(period_id),
        list_version=list_version,
        at=at,
        record={"by": _json(by), "at": at.isoformat()},
    )


@names_unreadable(period)
def periods_with_deadline_between(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    unreadable: list[tuple[str, StoredRecordUnreadable]] | None = None,
) -> list[PackingPeriod]:
    """The packing periods whose order deadline falls in ``[start, end]``, by deadline. With
    ``unreadable``: a period whose stored record does not load is left out and added there
    (its patient's id and the error naming it); without, it is raised."""
    rows = conn.execute(
        select(period.c.id, period.c.patient_id, period.c.record)
        .where(period.c.order_deadline >= utc(start))
        .where(period.c.order_deadline <= utc(end))
        .order_by(period.c.order_deadline, period.c.id)
    ).all()
    if unreadable is None:
        return [PackingPeriod.model_validate(r.record) for r in rows]
    found = []
    for r in rows:
        try:
            found.append(parsed(PackingPeriod, r.record, period, {"id": r.id}))
        except StoredRecordUnreadable as error:
            unreadable.append((r.patient_id, error))
    return found


@names_unreadable(entry_version)
def entry_versions_after(
    conn: Connection, patient_id: UUID, list_version: int
) -> list[EntryVersion]:
    return [
        EntryVersion.model_validate(r)
        for r in conn.execute(
            select(entry_version.c.record)
            .where(entry_version.c.patient_id == str(patient_id))
            .where(entry_version.c.list_version > list_version)
            .order_by(entry_version.c.list_version)
        ).scalars()
    ]


def deadline_flagged(
    conn: Connection, patient_id: UUID, period_id: UUID, list_version: int
) -> bool:
    return (
        conn.execute(
            select(deadline_flag.c.period_id)
            .where(deadline_flag.c.patient_id == str(patient_id))
            .where(deadline_flag.c.period_id == str(period_id))
            .where(deadline_flag.c.list_version == list_version)
        ).first()
        is not None
    )


def append_deadline_flag(
    conn: Connection,
    patient_id: UUID,
    period_id: UUID,
    list_version: int,
    at: datetime,
    record: dict[str, Any],
) -> None:
    attestation.insert(
        conn,
        deadline_flag,
        patient_id=str(patient_id),
        period_id=str(period_id),
        list_version=list_version,
        flagged_at=at,
        record=record,
    )


def deadline_flags(conn: Connection, patient_id: UUID, period_id: UUID) -> list[dict[str, Any]]:
    return [
        {"list_version": row.list_version, "flagged_at": utc(row.flagged_at), **row.record}
        for row in conn.execute(
            select(deadline_flag)
            .where(deadline_flag.c.patient_id == str(patient_id))
            .where(deadline_flag.c.period_id == str(period_id))
            .order_by(deadline_flag.c.list_version)
        )
    ]


# -- reconciliations and tasks -----------------------------------------------------------------


def append_reconciliation(
    conn: Connection, result: PackReconciliation, report: dict[str, Any]
) -> None:
    """The result and the report it was made from (as JSON, ``PackReport.model_dump``)."""
    attestation.insert(
        conn,
        reconciliation,
        id=str(result.id),
        patient_id=str(result.patient_id),
        period_id=str(result.period_id),
        list_version=result.list_version,
        reconciled_at=utc(result.reconciled_at),
        report=report,
        record=_json(result),
    )


@names_unreadable(reconciliation)
def reconciliations_of(
    conn: Connection, patient_id: UUID, period_id: UUID | None = None
) -> list[PackReconciliation]:
    query = select(reconciliation.c.record).where(reconciliation.c.patient_id == str(patient_id))
    if period_id is not None:
        query = query.where(reconciliation.c.period_id == str(period_id))
    return [
        PackReconciliation.model_validate(r)
        for r in conn.execute(query.order_by(reconciliation.c.reconciled_at)).scalars()
    ]


@names_unreadable(reconciliation)
def reconciliation_of(
    conn: Connection, patient_id: UUID, reconciliation_id: UUID
) -> PackReconciliation | None:
    """One of the patient's packing reconciliations (``None``: none with that id for them)."""
    found = conn.execute(
        select(reconciliation.c.record).where(
            reconciliation.c.patient_id == str(patient_id),
            reconciliation.c.id == str(reconciliation_id),
        )
    ).scalar()
    return None if found is None else PackReconciliation.model_validate(found)


def append_tasks(conn: Connection, tasks: Iterable[MultidoseTask]) -> None:
    rows = [
        {
            "id": str(t.id),
            "patient_id": str(t.patient_id),
            "reconciliation_id": str(t.reconciliation_id),
            "kind": t.kind.value,
            "assigned_to": t.assigned_to,
            "opened_at": utc(t.opened_at),
            "record": _json(t),
        }
        for t in tasks
    ]
    if rows:
        conn.execute(task.insert(), attestation.stamp(conn, task, rows))


@names_unreadable(task)
def find_task(
    conn: Connection, patient_id: UUID, task_id: UUID
) -> tuple[MultidoseTask, bool] | None:
    """The patient's task and whether it is resolved (``None``: the patient has no such task)."""
    row = conn.execute(
        select(task.c.record, task_resolution.c.task_id.label("resolved"))
        .outerjoin(task_resolution, _RESOLUTION_OF_TASK)
        .where(task.c.patient_id == str(patient_id), task.c.id == str(task_id))
    ).first()
    if row is None:
        return None
    return MultidoseTask.model_validate(row.record), row.resolved is not None


@names_unreadable(task)
def open_tasks(
    conn: Connection, *, patient_id: UUID | None = None, assigned_to: str | None = None
) -> list[MultidoseTask]:
    query = (
        select(task.c.record)
        .outerjoin(task_resolution, _RESOLUTION_OF_TASK)
        .where(task_resolution.c.task_id.is_(None))
    )
    if patient_id is not None:
        query = query.where(task.c.patient_id == str(patient_id))
    if assigned_to is not None:
        query = query.where(task.c.assigned_to == assigned_to)
    return [
        MultidoseTask.model_validate(r)
        for r in conn.execute(query.order_by(task.c.opened_at, task.c.id)).scalars()
    ]


#: A task's resolution, joined on the shard key too (co-located rows: docs/scaling.md).
_RESOLUTION_OF_TASK = (task_resolution.c.task_id == task.c.id) & (
    task_resolution.c.patient_id == task.c.patient_id
)


def append_task_resolution(conn: Connection, patient_id: UUID, record: TaskResolution) -> None:
    attestation.insert(
        conn,
        task_resolution,
        task_id=str(record.task_id),
        at=record.at,
        record=_json(record),
        patient_id=str(patient_id),
    )


# -- proposals ---------------------------------------------------------------------------------


def append_proposal(conn: Connection, record: Proposal) -> None:
    attestation.insert(
        conn,
        proposal,
        id=str(record.id),
        patient_id=str(record.patient_id),
        kind=record.kind.value,
        proposed_at=utc(record.proposed_at),
        record=_json(record),
    )


#: A proposal's decision, joined on the shard key too (co-located rows: docs/scaling.md).
_DECISION_OF_PROPOSAL = (proposal_decision.c.proposal_id == proposal.c.id) & (
    proposal_decision.c.patient_id == proposal.c.patient_id
)


@names_unreadable(proposal, proposal_decision)
def find_proposal(
    conn: Connection, patient_id: UUID, proposal_id: UUID
) -> tuple[Proposal, ProposalDecision | None] | None:
    row = conn.execute(
        select(proposal.c.record, proposal_decision.c.record.label("decision"))
        .outerjoin(proposal_decision, _DECISION_OF_PROPOSAL)
        .where(proposal.c.patient_id == str(patient_id), proposal.c.id == str(proposal_id))
    ).first()
    if row is None:
        return None
    decision = None if row.decision is None else ProposalDecision.model_validate(row.decision)
    return Proposal.model_validate(row.record), decision


@names_unreadable(proposal, proposal_decision)
def proposals_of(
    conn: Connection, patient_id: UUID, *, pending_only: bool
) -> list[tuple[Proposal, ProposalDecision | None]]:
    query = (
        select(proposal.c.record, proposal_decision.c.record.label("decision"))
        .outerjoin(proposal_decision, _DECISION_OF_PROPOSAL)
        .where(proposal.c.patient_id == str(patient_id))
    )
    if pending_only:
        query = query.where(proposal_decision.c.proposal_id.is_(None))
    return [
        (
            Proposal.model_validate(row.record),
            None if row.decision is None else ProposalDecision.model_validate(row.decision),
        )
        for row in conn.execute(query.order_by(proposal.c.proposed_at, proposal.c.id))
    ]


def append_decision(conn: Connection, patient_id: UUID, record: ProposalDecision) -> None:
    attestation.insert(
        conn,
        proposal_decision,
        patient_id=str(patient_id),
        proposal_id=str(record.proposal_id),
        accepted=record.accepted,
        at=record.at,
        record=_json(record),
    )
