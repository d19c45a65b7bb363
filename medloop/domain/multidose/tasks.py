"""Tasks for the multidose doctor: one per class of discrepancy and entry from a
reconciliation, and their resolution (by a prescriber, with a note)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from uuid import UUID, uuid5

from pydantic import AwareDatetime, Field

from interactions.values import PositiveCount
from medloop.domain._model import Frozen
from medloop.domain.multidose.errors import TaskAlreadyResolved, TaskNoteRequired, TaskNotFound
from medloop.domain.multidose.reconciliation import PackReconciliation, ReconciledLine
from medloop.domain.multidose.responsibility import Responsibility, require_prescriber
from medloop.domain.multidose.rules import LineClass, PackingRules
from medloop.domain.personnel import Actor


class MultidoseTask(Frozen):
    """An open question for the multidose doctor from one reconciliation: one per class and
    entry (or packed varenr when no entry matched)."""

    id: UUID
    patient_id: UUID
    period_id: UUID
    reconciliation_id: UUID
    kind: LineClass
    entry_id: UUID | None
    varenr: str | None
    lines: PositiveCount
    first_day: date
    summary: str
    assigned_to: str | None
    opened_at: AwareDatetime


def tasks_for(
    result: PackReconciliation, rules: PackingRules, responsibility: Responsibility | None
) -> tuple[MultidoseTask, ...]:
    grouped: dict[tuple[LineClass, str], list[ReconciledLine]] = defaultdict(list)
    for line in result.lines:
        if line.line_class in rules.prescriber_task_classes:
            subject = str(line.entry_id) if line.entry_id is not None else f"varenr:{line.varenr}"
            grouped[(line.line_class, subject)].append(line)
    doctor = None if responsibility is None else responsibility.doctor.personnel.hpr_number
    return tuple(
        MultidoseTask(
            id=uuid5(result.id, f"{kind}/{subject}"),
            patient_id=result.patient_id,
            period_id=result.period_id,
            reconciliation_id=result.id,
            kind=kind,
            entry_id=lines[0].entry_id,
            varenr=lines[0].varenr,
            lines=len(lines),
            first_day=min(line.day for line in lines),
            summary=f"{kind.value}: {lines[0].detail or ''} ({len(lines)} line(s))",
            assigned_to=doctor,
            opened_at=result.reconciled_at,
        )
        for (kind, subject), lines in sorted(grouped.items())
    )


class TaskResolution(Frozen):
    task_id: UUID
    at: AwareDatetime
    by: Actor
    note: str = Field(min_length=1)


def resolve_task(
    task: MultidoseTask | None,
    resolved: bool,
    *,
    task_id: UUID,
    note: str | None,
    at: datetime,
    by: Actor,
) -> TaskResolution:
    require_prescriber(by)
    if task is None:
        raise TaskNotFound(f"there is no multidose task {task_id}", task_id=task_id)
    if resolved:
        raise TaskAlreadyResolved(f"task {task_id} is already resolved", task_id=task_id)
    if not (note or "").strip():
        raise TaskNoteRequired("resolving a task needs a note", task_id=task_id)
    return TaskResolution(task_id=task_id, at=at, by=by, note=note or "")
