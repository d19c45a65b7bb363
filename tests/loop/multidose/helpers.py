"""Builders for the multidose tests: a patient with a multidose doctor (the GP) and pharmacy,
multidose orders for demo-catalogue drugs, one 14-day period, and packing reports made from a
production plan.

Demo drugs used (seeds/README.md): simvastatin 090436 (tablet, group 900104, with 090470 from
another firm), atorvastatin 090487 (another group), metoprolol depot tablet 090283, omeprazol
enteric capsule 090861, amlodipin 090334, allopurinol 090997, furosemid 090402, sertralin
090623 (tablets and capsules: packable) and laktulose mixture 090912 (form 9 Mikstur: not
packable).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from uuid import UUID

from interactions.dosage import Dosage, FixedDose, Quantity, TimeOfDay, Use
from medloop.domain.codes import OrganisationKind, PersonnelRole
from medloop.domain.multidose.plan import ProductionPlan
from medloop.domain.multidose.reconciliation import PackedBag, PackedLine, PackReport
from medloop.domain.personnel import Organisation
from medloop.domain.prescription import PrescribedQuantity
from medloop.loop.catalogue import DrugOrder
from medloop.loop.multidose import (
    PeriodOrder,
    ResponsibilityOrder,
    open_packing_period,
    set_responsibility,
)
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms, prescribe
from tests.loop.helpers import GP, NOW, PHARMACIST, actor, call

SIMVASTATIN = "090436"
SIMVASTATIN_NORDKYST = "090470"
ATORVASTATIN = "090487"
METOPROLOL = "090283"
OMEPRAZOL = "090861"
AMLODIPIN = "090334"
ALLOPURINOL = "090997"
FUROSEMID = "090402"
SERTRALIN = "090623"
LAKTULOSE = "090912"

FIRST_DAY = date(2026, 11, 30)
LAST_DAY = date(2026, 12, 13)
DEADLINE = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BEFORE_DEADLINE = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
AFTER_DEADLINE = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

NURSE = actor(
    "1234567",
    "Nina Sykepleier",
    PersonnelRole.NURSE,
    Organisation(id="974600951", name="Ski sykehjem", kind=OrganisationKind.NURSING_HOME),
)
OTHER_PHARMACIST = actor(
    "7654321",
    "Ola Farmasøyt",
    PersonnelRole.PHARMACIST,
    Organisation(id="8090699", name="Apotek 1 Ås", kind=OrganisationKind.PHARMACY),
)


def dosage(*times: TimeOfDay, amount: float = 1, unit: str = "tablett") -> Dosage:
    return Dosage(
        use=Use.REGULAR,
        fixed=tuple(
            FixedDose(amount=Quantity(value=amount, unit=unit), time_of_day=t) for t in times
        ),
    )


def multidose_order(
    varenr: str, the_dosage: Dosage, *, expires: date | None = None, multidose: bool = True
) -> PrescribeOrder:
    return PrescribeOrder(
        entry_id=uuid.uuid4(),
        drug=DrugOrder(varenr=varenr),
        use=Use.REGULAR,
        dosage=the_dosage,
        start=NOW.date(),
        multidose=multidose,
        terms=PrescriptionTerms(
            prescription_id=uuid.uuid4(),
            quantity=PrescribedQuantity(packages=1),
            repeats=3,
            expires=expires,
        ),
    )


def prescribe_all(engine, patient_id: UUID, orders, *, version: int = 0, at=NOW) -> int:
    """Prescribe each order in turn; returns the list version after them."""
    for order in orders:
        version = prescribe(engine, patient_id, order, call(at=at), based_on=version).list_version
    return version


def with_responsibility(engine, patient_id: UUID) -> None:
    set_responsibility(
        engine,
        patient_id,
        ResponsibilityOrder(doctor=GP, pharmacy=PHARMACIST.organisation, valid_from=NOW.date()),
        call(GP),
    )


def open_period(
    engine,
    patient_id: UUID,
    *,
    period_id: UUID | None = None,
    first_day: date = FIRST_DAY,
    deadline: datetime = DEADLINE,
) -> UUID:
    period_id = period_id or uuid.uuid4()
    open_packing_period(
        engine,
        patient_id,
        PeriodOrder(period_id=period_id, first_day=first_day, order_deadline=deadline),
        call(PHARMACIST),
    )
    return period_id


def report_from(plan: ProductionPlan, *, report_id: UUID | None = None) -> dict:
    """A packing report that packs exactly the plan, as a mutable mapping
    {(day, intake): [line dicts]} to edit before ``as_report``."""
    bags: dict = {}
    for bag in plan.bags:
        bags[(bag.day, bag.intake)] = [
            {"varenr": line.varenr, "quantity": line.quantity, "entry_id": line.entry_id}
            for line in bag.lines
        ]
    return {"report_id": report_id or uuid.uuid4(), "period_id": plan.period_id, "bags": bags}


def as_report(draft: dict) -> PackReport:
    return PackReport(
        report_id=draft["report_id"],
        period_id=draft["period_id"],
        bags=tuple(
            PackedBag(day=day, intake=intake, lines=tuple(PackedLine(**line) for line in lines))
            for (day, intake), lines in draft["bags"].items()
        ),
    )
