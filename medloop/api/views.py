"""The response bodies the routes share, built from what the read side returns
(``medloop.queries`` and the loop's queries). Each builder gives the JSON of one response model
of ``medloop.api.schemas``; the routes only choose which to call. Pydantic values are embedded
as their own JSON (``schemas.dump``), not converted to dicts and encoded again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import Connection

from medloop import queries
from medloop.api.schemas import dump
from medloop.domain.codes import PrescriptionStatus
from medloop.domain.medication_list import EntryVersion
from medloop.loop import administration, multidose
from medloop.store.columns import StoredRecordUnreadable

DISPENSABLE = frozenset({PrescriptionStatus.DISPENSABLE, PrescriptionStatus.BEING_DISPENSED})
"""The statuses a pharmacy can dispense against (E: dispensable, U: being dispensed)."""


def list_view(conn: Connection, patient_id: UUID, at: datetime) -> tuple[bytes, int]:
    """``schemas.ListView`` as JSON, and the list version: the current list, its open alerts
    and the overrides on record. Rendered once per state (the patient's revision), catalogue
    version and set of entries visible at ``at`` (an entry discontinued a while ago drops out
    of the current list as time passes), and kept with the cached state
    (``queries.state_memo``): a list read of an unchanged list renders nothing again."""
    current = queries.current_list(conn, patient_id, at)
    memo = queries.state_memo(conn, patient_id)
    key = (queries.catalogue_key(conn), tuple(e.id for e in current.entries))
    found = memo.get(_LIST_VIEW)
    if found is None or found[0] != key:
        body = {
            "patient_id": str(patient_id),
            "list_version": current.list_version,
            "entries": dump(list(current.entries)),
            "open_alerts": dump(queries.open_alerts(conn, patient_id)),
            "overrides": dump(queries.overrides(conn, patient_id)),
        }
        # One rendering per state: the latest (memory stays one body per cached patient).
        found = memo[_LIST_VIEW] = (key, orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS))
    return found[1], current.list_version


_LIST_VIEW = "views.list_view"


def dispensable_view(conn: Connection, patient_id: UUID, at: datetime) -> dict[str, Any]:
    """``schemas.DispensableView``: the prescriptions a pharmacy may dispense (E or U) with
    their entries, and the overrides prescribers recorded."""
    current = queries.current_list(conn, patient_id, at)
    found = [p for p in queries.prescriptions(conn, patient_id) if p.status in DISPENSABLE]
    entry_ids = {p.entry_id for p in found}
    return {
        "patient_id": str(patient_id),
        "list_version": current.list_version,
        "prescriptions": dump(found),
        "entries": dump([e for e in current.entries if e.id in entry_ids]),
        "overrides": dump(queries.overrides(conn, patient_id)),
    }


def entry_history_view(entry_id: UUID, versions: Sequence[EntryVersion]) -> dict[str, Any]:
    """``schemas.EntryHistory``."""
    return {"entry_id": str(entry_id), "versions": dump(list(versions))}


def ward_chart_view(chart: administration.WardChart) -> dict[str, Any]:
    """``schemas.WardChartView``: every admitted patient's doses of the day."""
    return {
        "ward_id": str(chart.ward_id),
        "day": chart.day.isoformat(),
        "patients": [
            {
                "patient_id": str(p.patient_id),
                "admission_id": str(p.admission_id),
                "doses": [
                    {
                        "planned_dose_id": str(line.planned_dose_id),
                        "entry_id": str(line.entry_id),
                        "drug": line.drug,
                        "local_time": line.local_time.isoformat(),
                        "due_at": line.due_at.isoformat(),
                        "amount": dump(line.amount),
                        "status": line.status.value,
                        "late": line.late,
                        "multidose": line.multidose,
                        "charting": dump(line.charting),
                    }
                    for line in p.doses
                ],
                "as_needed": dump(list(p.as_needed)),
                "prn": [_prn_line(line) for line in p.prn],
                "unreadable": unreadable_view(p.unreadable),
            }
            for p in chart.patients
        ],
    }


def unreadable_view(error: StoredRecordUnreadable | None) -> dict[str, Any] | None:
    """``schemas.UnreadableRecord``: the record as the ``stored-record-unreadable`` problem
    names it."""
    if error is None:
        return None
    return {"table": error.table, "key": error.key, "detail": str(error)}


def _prn_line(line: administration.PrnLine) -> dict[str, Any]:
    """``schemas.PrnLine``."""
    status = line.status
    dose = status.dose
    return {
        "entry_id": str(line.entry_id),
        "drug": line.drug,
        "amount": dump(dose.amount),
        "limits": {
            "max_per_24h": dump(dose.max_per_24h),
            "max_per_period": dump(dose.max_per_period),
            "period": dump(dose.period),
            "min_interval": dump(dose.min_interval),
        },
        "given_last_24h": status.given_last_24h,
        "doses_remaining": status.doses_remaining,
        "next_allowed_at": (
            None if status.next_allowed_at is None else status.next_allowed_at.isoformat()
        ),
        "not_checked": list(status.not_checked),
    }


def administration_view(charted: Any) -> dict[str, Any]:
    """``schemas.AdministrationRecord``: a charting, its correction, whether it stands."""
    return {
        "administration": dump(charted.administration),
        "correction": dump(charted.correction),
        "stands": charted.stands,
    }


def multidose_overview(conn: Connection, patient_id: UUID) -> dict[str, Any]:
    """``schemas.MultidoseOverview``."""
    return {
        "responsibility": dump(multidose.responsibility(conn, patient_id)),
        "periods": [period_view(view) for view in multidose.periods(conn, patient_id)],
        "pending_proposals": dump(multidose.pending_proposals(conn, patient_id)),
        "open_tasks": dump(multidose.open_tasks(conn, patient_id)),
    }


def period_view(view: multidose.PeriodView) -> dict[str, Any]:
    """``schemas.PeriodOverview``: a packing period with what happened to it."""
    return {
        "period": dump(view.period),
        "urgent_packs": dump(list(view.urgent_packs)),
        "plan_list_version": view.plan_list_version,
        "deadline_flags": list(view.deadline_flags),
    }


ADMISSION = "medication-list.admit"
"""The audit action of an admission (its municipal decision is shown in the access log)."""


def access_event_view(event: Any) -> dict[str, Any]:
    """``schemas.AccessEvent``: one audit record as the patient sees it."""
    return {
        "seq": event.seq,
        "at": event.occurred_at.isoformat(),
        "actor": event.actor,
        "actor_role": event.actor_role,
        "organisation": event.organisation,
        "action": event.action,
        "outcome": str(event.outcome),
        "reason": event.reason,
        # An admission's municipal decision (what gave a nursing home access).
        "decision_reference": _decision_reference(event),
    }


def _decision_reference(event: Any) -> str | None:
    found = event.detail.get("decision_reference") if event.action == ADMISSION else None
    return found if isinstance(found, str) else None
