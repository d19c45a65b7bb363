"""Expiry (``utløpt``, status F) of prescriptions past their last valid day, as a command of
the loop: one transaction per patient through ``run_command``, audited like any other change.

The scheduled job (``medloop.jobs``) runs it as ``SCHEDULER``; a dispensable prescription whose
``expires`` lies before the Oslo calendar day of ``call.at`` moves E → F. Prescriptions being
dispensed (U) keep their status until the pharmacy finishes or releases them.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, func, select

from medloop.domain.codes import OrganisationKind, PersonnelRole, PrescriptionStatus
from medloop.domain.personnel import Actor, HealthPersonnel, Organisation
from medloop.domain.prescription import expire
from medloop.loop.runner import Call, CommandResult, Context, Effect, run_command
from medloop.store import prescriptions
from medloop.store.columns import LOAD_FAILURES

SCHEDULER = Actor(
    personnel=HealthPersonnel(hpr_number="0", name="medloop scheduler", role=PersonnelRole.SYSTEM),
    # The kind is never recorded for a system change (expiry versions have no author).
    organisation=Organisation(id="medloop", name="medloop", kind=OrganisationKind.HOSPITAL),
)
"""Who the scheduled jobs act as: HPR "0", role ``system``."""


def expire_prescriptions(engine: Engine, patient_id: UUID, call: Call) -> CommandResult:
    """Expire every dispensable prescription of the patient past its last valid day; a second
    run expires nothing."""

    def decide(ctx: Context) -> Effect:
        today = call.day
        versions = []
        for prescription in ctx.state.prescriptions.values():
            dispensable = prescription.status is PrescriptionStatus.DISPENSABLE
            if dispensable and prescription.expires < today:
                _, version = expire(prescription, on=today, at=call.at)
                versions.append(version)
        return Effect(
            prescription_versions=tuple(versions),
            response={"expired": sorted(str(v.prescription_id) for v in versions)},
        )

    return run_command(
        engine,
        "expire-prescriptions",
        patient_id,
        call,
        decide,
        based_on=None,
        request={"on": call.day.isoformat()},
    )


def patients_with_expired_prescriptions(conn: Connection, call: Call) -> list[UUID]:
    """Patients with a dispensable prescription past its last valid day at ``call.at``."""
    today = call.day.isoformat()
    version = prescriptions.prescription_version
    latest = (
        select(version.c.prescription_id, func.max(version.c.version).label("version"))
        .group_by(version.c.prescription_id)
        .subquery()
    )
    rows = conn.execute(
        select(prescriptions.prescription.c.patient_id, version.c.record)
        .join(latest, latest.c.prescription_id == version.c.prescription_id)
        .join(
            prescriptions.prescription,
            prescriptions.prescription.c.id == version.c.prescription_id,
        )
        .where(version.c.version == latest.c.version)
        .where(version.c.to_status == PrescriptionStatus.DISPENSABLE.value)
    ).all()
    found = {UUID(r.patient_id) for r in rows if _expired_or_unreadable(r.record, today)}
    return sorted(found, key=str)


def _expired_or_unreadable(record: Any, today: str) -> bool:
    """Whether a stored prescription version expires before ``today`` (ISO days compare as
    text), or cannot be read: its patient's command then names the record (and the job skips
    the patient) rather than the listing failing for every patient."""
    try:
        return record["prescription"]["expires"] < today
    except LOAD_FAILURES:
        return True
