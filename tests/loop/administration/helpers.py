"""Builders for the administration tests: a nursing home with one ward, a nurse and a second
nurse (the witness), a demo patient admitted there, and prescriptions with structured dosages.

Demo catalogue (seeds/README.md): simvastatin 20 mg 090436 / 090470 share substitution group
900104, atorvastatin 090487 is another group; oksykodon 5 mg 091099 is reseptgruppe A; insulin
glargin 090572 is ATC A10AE04. EANs are 704626 + varenr + check digit.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import event

from interactions.dosage import AsNeededDose, Dosage, FixedDose, Period, Quantity, TimeOfDay, Use
from medloop.domain.administration import ChartRequest, Outcome, ScanSkipReason
from medloop.domain.codes import OrganisationKind, PersonnelRole
from medloop.domain.personnel import Organisation
from medloop.domain.prescription import PrescribedQuantity
from medloop.loop import administration
from medloop.loop.administration.queries import ChartLine, WardChart
from medloop.loop.catalogue import DrugOrder
from medloop.loop.change import change_dosage
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms, prescribe
from medloop.store.administration import planned_doses as stored_planned_doses
from medloop.store.list_changes import list_version
from tests.loop.helpers import GP, actor, call, demo_world

SOLHEIM = Organisation(id="8012345", name="Solheim sykehjem", kind=OrganisationKind.NURSING_HOME)
OTHER_HOME = Organisation(id="8012399", name="Lia sykehjem", kind=OrganisationKind.NURSING_HOME)
NURSE = actor("1234567", "Nina Sykepleier", PersonnelRole.NURSE, SOLHEIM)
SECOND_NURSE = actor("1234568", "Siri Sykepleier", PersonnelRole.NURSE, SOLHEIM)
OTHER_NURSE = actor("1234569", "Ola Sykepleier", PersonnelRole.NURSE, OTHER_HOME)

SIMVASTATIN = "090436"
SIMVASTATIN_GENERIC_EAN = "7046260904705"  # 090470, Nordkyst, same substitution group
SIMVASTATIN_EAN = "7046260904361"
ATORVASTATIN_EAN = "7046260904873"
OKSYKODON = "091099"
OKSYKODON_EAN = "7046260910997"
GLARGIN = "090572"

ADMITTED = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)


def daily(*slots: TimeOfDay, amount: float = 1, unit: str = "tablett") -> Dosage:
    return Dosage(
        use=Use.REGULAR,
        fixed=tuple(
            FixedDose(amount=Quantity(value=amount, unit=unit), time_of_day=s) for s in slots
        ),
    )


def at_clock(*times: time, amount: float = 1, unit: str = "tablett") -> Dosage:
    return Dosage(
        use=Use.REGULAR,
        fixed=tuple(
            FixedDose(amount=Quantity(value=amount, unit=unit), clock_time=t) for t in times
        ),
    )


def as_needed(
    amount: float = 1,
    *,
    max_24h: float | None = 4,
    min_hours: float | None = 4,
    max_period: float | None = None,
    period_hours: float | None = None,
    unit: str = "kapsel",
) -> Dosage:
    return Dosage(
        use=Use.AS_NEEDED,
        as_needed=(
            AsNeededDose(
                amount=Quantity(value=amount, unit=unit),
                max_per_24h=None if max_24h is None else Quantity(value=max_24h, unit=unit),
                min_interval=None if min_hours is None else Period(value=min_hours, unit="hour"),
                max_per_period=(
                    None if max_period is None else Quantity(value=max_period, unit=unit)
                ),
                period=None if period_hours is None else Period(value=period_hours, unit="hour"),
            ),
        ),
    )


def prescribe_with(
    engine,
    patient_id: UUID,
    varenr: str,
    dosage: Dosage,
    *,
    at: datetime = ADMITTED,
    start: date | None = None,
    overrides: dict[str, str] | None = None,
    entry_id: UUID | None = None,
) -> UUID:
    """Prescribe ``varenr`` with ``dosage``; returns the entry id."""
    with engine.connect() as conn:
        version = list_version(conn, patient_id)
    order = PrescribeOrder(
        entry_id=entry_id or uuid.uuid4(),
        drug=DrugOrder(varenr=varenr),
        use=dosage.use,
        dosage=dosage,
        start=start or at.date(),
        terms=PrescriptionTerms(
            prescription_id=uuid.uuid4(), quantity=PrescribedQuantity(packages=1)
        ),
    )
    prescribe(
        engine, patient_id, order, call(GP, at=at, overrides=overrides or {}), based_on=version
    )
    return order.entry_id


def admission_order(
    ward_id: UUID, admitted: datetime = ADMITTED, **changes: Any
) -> administration.AdmissionOrder:
    """An admission to ``ward_id`` at ``admitted`` with a reason and a municipal decision."""
    return administration.AdmissionOrder(
        **{
            "admission_id": uuid.uuid4(),
            "ward_id": ward_id,
            "admitted_at": admitted,
            "reason": "Korttidsopphold etter sykehusinnleggelse",
            "decision_reference": "Vedtak 2026/0815",
            **changes,
        }
    )


def nursing_home(engine, *, admitted: datetime = ADMITTED) -> tuple[UUID, UUID]:
    """The demo catalogue, a patient and a ward of Solheim with the patient admitted; returns
    (patient id, ward id)."""
    patient_id = demo_world(engine)
    ward_id = uuid.uuid4()
    administration.create_ward(
        engine,
        administration.WardOrder(ward_id=ward_id, name="Avdeling 2"),
        call(NURSE, at=admitted),
    )
    administration.admit(
        engine,
        patient_id,
        admission_order(ward_id, admitted),
        call(NURSE, at=admitted),
    )
    return patient_id, ward_id


PLANNED_AT = ADMITTED + timedelta(minutes=30)


def planned_doses(engine, patient_id, entry_id):
    with engine.connect() as conn:
        found = stored_planned_doses(
            conn,
            patient_ids=[patient_id],
            start=ADMITTED - timedelta(days=1),
            end=ADMITTED + timedelta(days=3),
        )
    return [d for d in found if d.entry_id == entry_id]


def simvastatin_planned(engine, *slots: TimeOfDay) -> tuple[UUID, UUID, UUID]:
    """``nursing_home`` with simvastatin prescribed daily at ``slots`` and the ward's doses
    planned (the roll-forward at ``PLANNED_AT``); returns (patient id, ward id, entry id)."""
    patient_id, ward_id = nursing_home(engine)
    entry_id = prescribe_with(engine, patient_id, SIMVASTATIN, daily(*slots))
    administration.roll_forward(engine, PLANNED_AT)
    return patient_id, ward_id, entry_id


def simvastatin_world(engine):
    patient_id, ward_id, entry_id = simvastatin_planned(engine, TimeOfDay.MORNING)
    first = planned_doses(engine, patient_id, entry_id)[0]  # 20 Nov 08:00 Oslo = 07:00 UTC
    return patient_id, ward_id, entry_id, first


def version_of(engine, patient_id: UUID) -> int:
    with engine.connect() as conn:
        return list_version(conn, patient_id)


def change_dosage_at(engine, patient_id: UUID, entry_id: UUID, dosage: Dosage, at: datetime):
    """The GP changes the entry's dosage at ``at``, on the list's current version."""
    return change_dosage(
        engine,
        patient_id,
        entry_id,
        dosage,
        call(GP, at=at),
        based_on=version_of(engine, patient_id),
    )


def ward_chart(engine, ward_id: UUID, day: date, now: datetime) -> WardChart:
    with engine.connect() as conn:
        return administration.ward_chart(conn, ward_id, day, now)


def give(engine, patient_id: UUID, entry_id: UUID, line: ChartLine, at: datetime) -> UUID:
    """The chart's ``line`` charted as given at ``at`` (one tablet, no barcode to scan) by the
    nurse; returns the charting's id."""
    charting_id = uuid.uuid4()
    administration.chart(
        engine,
        patient_id,
        ChartRequest(
            administration_id=charting_id,
            entry_id=entry_id,
            planned_dose_id=line.planned_dose_id,
            outcome=Outcome.GIVEN,
            given_at=at,
            dose=Quantity(value=1, unit="tablett"),
            scan_skipped=ScanSkipReason.NO_BARCODE,
        ),
        call(NURSE, at=at),
    )
    return charting_id


@contextmanager
def statements(engine) -> Iterator[list[str]]:
    """Every statement sent on ``engine`` in the block, its white space folded."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def reads_of(seen: list[str], table: str) -> int:
    """How many of the statements ``seen`` select from ``table``."""
    return sum(
        1 for s in seen if s.upper().startswith("SELECT") and re.search(rf"\bFROM {table}\b", s)
    )


def given(
    entry_id,
    dose,
    *,
    at=None,
    amount=1.0,
    scan=SIMVASTATIN_EAN,
    skipped=None,
    override=None,
    unit="tablett",
):
    return ChartRequest(
        administration_id=uuid.uuid4(),
        entry_id=entry_id,
        planned_dose_id=None if dose is None else dose.id,
        outcome=Outcome.GIVEN,
        given_at=at if at is not None else dose.due_at,
        dose=Quantity(value=amount, unit=unit),
        scan=None if skipped else scan,
        scan_skipped=skipped,
        limit_override=override,
    )
