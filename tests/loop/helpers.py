"""Builders for the loop tests: people, a demo patient, and orders for demo-catalogue drugs.

Drugs (seeds/README.md): simvastatin 20 mg packages 090436/090453 (Fjordfarma) and 090470
(Nordkyst) share substitution group 900104; klaritromycin 091014 interacts with simvastatin at
relevance 1 (must be avoided); atorvastatin 090487 is in another group.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from fest.loader import import_catalogue
from interactions.dosage import Use
from medloop.domain.codes import OrganisationKind, PersonnelRole
from medloop.domain.dispense import DispenseQuantity
from medloop.domain.patient import NationalId, Patient
from medloop.domain.personnel import Actor, HealthPersonnel, Organisation
from medloop.domain.prescription import PrescribedQuantity
from medloop.loop.catalogue import DrugOrder
from medloop.loop.dispense import DispenseOrder
from medloop.loop.patients import register_patient
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms
from medloop.loop.runner import Call
from tests.reference import DEMO

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TODAY = NOW.date()

SIMVASTATIN_28 = "090436"
SIMVASTATIN_98 = "090453"
SIMVASTATIN_NORDKYST = "090470"
ATORVASTATIN = "090487"
KLARITROMYCIN = "091014"


def actor(hpr: str, name: str, role: PersonnelRole, org: Organisation) -> Actor:
    return Actor(personnel=HealthPersonnel(hpr_number=hpr, name=name, role=role), organisation=org)


GP = actor(
    "431002737",
    "Anja Fos Eidsvik",
    PersonnelRole.DOCTOR,
    Organisation(id="8095068", name="Virginia legekontor", kind=OrganisationKind.GP_PRACTICE),
)
PHARMACIST = actor(
    "9876543",
    "Per Apoteker",
    PersonnelRole.PHARMACIST,
    Organisation(id="8090688", name="Apotek 1 Ski", kind=OrganisationKind.PHARMACY),
)


def call(who: Actor = GP, *, at: datetime = NOW, **fields: object) -> Call:
    return Call(actor=who, at=at, **fields)  # type: ignore[arg-type]


def demo_world(engine) -> UUID:
    """The demo catalogue imported and one patient registered; returns the patient id."""
    import_catalogue(engine, DEMO)
    patient = Patient(
        id=uuid.uuid4(),
        national_id=NationalId("21014605158"),
        given_name="Kari",
        family_name="Nordmann",
        birth_date=date(1946, 1, 21),
    )
    register_patient(engine, patient, call())
    return patient.id


OTHER_NATIONAL_ID = "15035010030"
"""Ola Nordmann's: the patient registered beside ``demo_world``'s (``another_patient``)."""


def another_patient(engine) -> UUID:
    """A second patient registered (Ola Nordmann, born 15 March 1950); returns the id."""
    other = Patient(
        id=uuid.uuid4(),
        national_id=NationalId(OTHER_NATIONAL_ID),
        given_name="Ola",
        family_name="Nordmann",
        birth_date=date(1950, 3, 15),
    )
    register_patient(engine, other, call())
    return other.id


def prescription_order(
    varenr: str, *, packages: float = 1, repeats: int = 0, expires: date | None = None
) -> PrescribeOrder:
    return PrescribeOrder(
        entry_id=uuid.uuid4(),
        drug=DrugOrder(varenr=varenr),
        use=Use.REGULAR,
        start=TODAY,
        terms=PrescriptionTerms(
            prescription_id=uuid.uuid4(),
            quantity=PrescribedQuantity(packages=packages),
            repeats=repeats,
            expires=expires,
        ),
    )


def dispense_order(
    prescription_id: UUID, varenr: str, *, packages: float = 1, on: date = TODAY
) -> DispenseOrder:
    return DispenseOrder(
        dispense_id=uuid.uuid4(),
        prescription_id=prescription_id,
        varenr=varenr,
        dispensed_on=on,
        quantity=DispenseQuantity(packages=packages),
        batch="B123",
        expiry=on + timedelta(days=700),
    )


def varenr_of(engine, atc: str) -> str:
    """A package (varenr) of the catalogue in force whose product has ATC code ``atc``."""
    from medloop.catalogue import load_snapshot
    from medloop.store.db import reader

    with reader(engine).connect() as conn:
        snapshot = load_snapshot(conn)
    products = {p.id for p in snapshot.products if p.atc == atc}
    return next(p.varenr for p in snapshot.packages if set(p.product_ids) & products)
