"""Packing periods (rolls) with their order deadline (``bestillingsfrist``), urgent packs
(``hastepakk``), and the list a period is packed from (the list at the cutoff)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from uuid import UUID

from pydantic import AwareDatetime, Field

from medloop.domain._model import Frozen
from medloop.domain.codes import PersonnelRole
from medloop.domain.medication_list import ListChange, MedicationList
from medloop.domain.multidose.errors import (
    InvalidPackingPeriod,
    PackingPeriodOverlaps,
    UrgentPackRefused,
)
from medloop.domain.multidose.responsibility import Responsibility, require_pharmacist_of
from medloop.domain.multidose.rules import PackingRules
from medloop.domain.oslo import OSLO  # packing days, deadlines and a period's end
from medloop.domain.personnel import Actor, Organisation


class PackingPeriod(Frozen):
    """One packing period (roll): first and last dosing day and the order deadline set by the
    pharmacy for this patient."""

    id: UUID
    patient_id: UUID
    first_day: date
    last_day: date
    order_deadline: AwareDatetime
    pharmacy: Organisation
    opened_at: AwareDatetime
    opened_by: Actor

    @property
    def days(self) -> tuple[date, ...]:
        count = (self.last_day - self.first_day).days + 1
        return tuple(self.first_day + timedelta(days=n) for n in range(count))

    @property
    def ends_at(self) -> datetime:
        """The end of the last dosing day, Oslo time."""
        return datetime.combine(self.last_day + timedelta(days=1), time(), OSLO)

    @property
    def starts_at(self) -> datetime:
        return datetime.combine(self.first_day, time(), OSLO)


def open_period(
    existing: Iterable[PackingPeriod],
    responsibility: Responsibility | None,
    rules: PackingRules,
    *,
    period_id: UUID,
    patient_id: UUID,
    first_day: date,
    order_deadline: datetime,
    days: int | None,
    at: datetime,
    by: Actor,
) -> PackingPeriod:
    """A new packing period of ``days`` (default ``rules.period_days``) by the patient's
    multidose pharmacy; the deadline lies before the first dosing day and periods never
    overlap."""
    require_pharmacist_of(responsibility, by, first_day)
    length = rules.period_days if days is None else days
    if length < 1:
        raise InvalidPackingPeriod(f"a period has at least one day, not {length}", days=length)
    period = PackingPeriod(
        id=period_id,
        patient_id=patient_id,
        first_day=first_day,
        last_day=first_day + timedelta(days=length - 1),
        order_deadline=order_deadline,
        pharmacy=by.organisation,
        opened_at=at,
        opened_by=by,
    )
    if order_deadline >= period.starts_at:
        raise InvalidPackingPeriod(
            f"the order deadline {order_deadline.isoformat()} is not before the first dosing "
            f"day {first_day}",
            order_deadline=order_deadline,
            first_day=first_day,
        )
    for other in existing:
        if other.id == period_id:
            raise InvalidPackingPeriod(f"period {period_id} already exists", period_id=period_id)
        if other.first_day <= period.last_day and period.first_day <= other.last_day:
            raise PackingPeriodOverlaps(
                f"{first_day}–{period.last_day} overlaps period {other.first_day}–{other.last_day}",
                period_id=other.id,
            )
    return period


class UrgentPack(Frozen):
    """An urgent pack (``hastepakk``): the list as it stands at ``at`` is packed for the rest
    of the period, so changes after the deadline reach this period."""

    id: UUID
    period_id: UUID
    at: AwareDatetime
    by: Actor
    reason: str = Field(min_length=1)


def order_urgent_pack(
    period: PackingPeriod,
    responsibility: Responsibility | None,
    *,
    pack_id: UUID,
    at: datetime,
    by: Actor,
    reason: str | None,
) -> UrgentPack:
    """An urgent pack, ordered by a prescriber or by the multidose pharmacy after the order
    deadline and before the period ends."""
    if by.personnel.role is not PersonnelRole.DOCTOR:
        require_pharmacist_of(responsibility, by, period.first_day)
    if not (reason or "").strip():
        raise UrgentPackRefused("an urgent pack needs a reason")
    if at <= period.order_deadline:
        raise UrgentPackRefused(
            "the order deadline has not passed: the change reaches the period anyway",
            order_deadline=period.order_deadline,
        )
    if at >= period.ends_at:
        raise UrgentPackRefused(f"the period ended on {period.last_day}", last_day=period.last_day)
    return UrgentPack(id=pack_id, period_id=period.id, at=at, by=by, reason=reason or "")


def cutoff(period: PackingPeriod, urgent_packs: Iterable[UrgentPack]) -> datetime:
    """The moment whose list the period is packed from: the deadline, or the latest urgent
    pack."""
    return max([period.order_deadline, *(u.at for u in urgent_packs if u.period_id == period.id)])


def list_at(patient_id: UUID, changes: Sequence[ListChange], moment: datetime) -> MedicationList:
    """The list version in force at ``moment``: the changes made up to then, in version order
    (the first change made later ends the prefix, so versions are never skipped)."""
    taken = []
    for change in changes:
        if change.at > moment:
            break
        taken.append(change)
    return MedicationList.replay(patient_id, taken)
