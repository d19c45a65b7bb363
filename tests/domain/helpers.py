"""Builders for domain tests: people, a tiny catalogue, drugs, lists and prescriptions.

The catalogue is our own: two simvastatin 20 mg packages in one substitution group (one brand,
one generic), a third package whose membership ended, a package in a group that has ended, a
paracetamol package in no group, an antibiotic, a contraceptive and a narcotic.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from interactions.catalogue import Package, SubstitutionGroup
from interactions.dosage import Dosage, FixedDose, Quantity, TimeOfDay, Use
from interactions.drugs import ReferenceKind, ResolvedDrug
from medloop.domain.codes import OrganisationKind, PersonnelRole
from medloop.domain.drug_reference import CatalogueDrug, NonCatalogueItem
from medloop.domain.entry import ListEntry
from medloop.domain.medication_list import AddEntry, ListChange, MedicationList
from medloop.domain.personnel import Actor, HealthPersonnel, Organisation
from medloop.domain.prescribing import prescribe
from medloop.domain.prescription import PrescribedQuantity, Prescription, PrescriptionRequest

OSLO_WINTER = timezone(timedelta(hours=1))
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=OSLO_WINTER)
D0 = T0.date()
PATIENT_ID = UUID("00000000-0000-4000-8000-000000000001")

GP_PRACTICE = Organisation(id="8095068", name="Virginia", kind=OrganisationKind.GP_PRACTICE)
PHARMACY = Organisation(id="8090688", name="Apotek 1 Ski", kind=OrganisationKind.PHARMACY)
OTHER_PHARMACY = Organisation(id="8090999", name="Vitusapotek", kind=OrganisationKind.PHARMACY)
NURSING_HOME = Organisation(id="8012345", name="Solheim", kind=OrganisationKind.NURSING_HOME)


def actor(hpr: str, name: str, role: PersonnelRole, organisation: Organisation) -> Actor:
    personnel = HealthPersonnel(hpr_number=hpr, name=name, role=role)
    return Actor(personnel=personnel, organisation=organisation)


DOCTOR = actor("431002737", "Anja Fos Eidsvik", PersonnelRole.DOCTOR, GP_PRACTICE)
PHARMACIST = actor("9876543", "Per Apoteker", PersonnelRole.PHARMACIST, PHARMACY)
OTHER_PHARMACIST = actor("9876544", "Pia Farmasøyt", PersonnelRole.PHARMACIST, OTHER_PHARMACY)
NURSE = actor("1234567", "Nina Sykepleier", PersonnelRole.NURSE, NURSING_HOME)

SIMVA_GROUP = SubstitutionGroup(
    id="SG_SIMVA20",
    code="C10AA01-20",
    description="simvastatin 20 mg tablett",
    restricted=False,
    restriction_text=None,
    valid_from=date(2010, 1, 1),
    valid_to=None,
)
ENDED_GROUP = SubstitutionGroup(
    id="SG_ENDED",
    code="N06AB06-50",
    description="ended group",
    restricted=False,
    restriction_text=None,
    valid_from=date(2010, 1, 1),
    valid_to=date(2023, 12, 31),
)
GROUPS = (SIMVA_GROUP, ENDED_GROUP)


def package(
    id: str,
    varenr: str,
    name: str,
    product: str,
    group: str | None,
    valid_from: date | None = None,
    valid_to: date | None = None,
    atc: str = "C10AA01",
    prescription_group: str = "C",
) -> Package:
    return Package(
        id=id,
        varenr=varenr,
        eans=(),
        name=name,
        atc=atc,
        product_ids=(product,),
        substitution_group_id=group,
        substitution_valid_from=valid_from,
        substitution_valid_to=valid_to,
        prescription_group=prescription_group,
    )


ZOCOR_98 = package("ID_ZOCOR_98", "454165", "Zocor tab 20 mg 98 stk", "ID_ZOCOR", "SG_SIMVA20")
ZOCOR_28 = package("ID_ZOCOR_28", "454166", "Zocor tab 20 mg 28 stk", "ID_ZOCOR", "SG_SIMVA20")
SIMVA_KRKA = package(
    "ID_SIMVA_KRKA", "123456", "Simvastatin Krka tab 20 mg 98 stk", "ID_KRKA", "SG_SIMVA20"
)
SIMVA_LEFT = package(
    "ID_SIMVA_LEFT",
    "123457",
    "Simvastatin Left tab 20 mg 98 stk",
    "ID_LEFT",
    "SG_SIMVA20",
    valid_to=date(2023, 6, 30),
)
SIMVA_LATE = package(
    "ID_SIMVA_LATE",
    "123458",
    "Simvastatin Late tab 20 mg 98 stk",
    "ID_LATE",
    "SG_SIMVA20",
    valid_from=date(2025, 1, 1),
)
SERTRALIN = package(
    "ID_SERT", "222222", "Sertralin tab 50 mg", "ID_SERT_P", "SG_ENDED", atc="N06AB06"
)
SERTRALIN_GENERIC = package(
    "ID_SERT_G", "222223", "Sertralin generisk tab 50 mg", "ID_SERT_G_P", "SG_ENDED", atc="N06AB06"
)
PARACET = package("ID_PARACET", "017426", "Paracet tab 500 mg", "ID_PARACET_P", None, atc="N02BE01")


def resolved(
    kind: ReferenceKind,
    id: str,
    name: str,
    atc: str,
    *,
    packages: tuple[str, ...] = (),
    products: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
    prescription_group: str | None = "C",
) -> ResolvedDrug:
    return ResolvedDrug(
        reference_kind=kind,
        reference_id=id,
        name=name,
        atc=atc,
        atc_codes=(atc,),
        product_ids=products,
        package_ids=packages,
        substitution_group_ids=groups,
        prescription_group=prescription_group,
    )


def drug(
    resolved_drug: ResolvedDrug, *, varenr: str | None = None, version: int = 3
) -> CatalogueDrug:
    return CatalogueDrug(resolved=resolved_drug, catalogue_version=version, varenr=varenr)


ZOCOR_PACKAGE = drug(
    resolved(
        ReferenceKind.PACKAGE,
        "ID_ZOCOR_98",
        "Zocor tab 20 mg 98 stk",
        "C10AA01",
        packages=("ID_ZOCOR_98",),
        products=("ID_ZOCOR",),
        groups=("SG_SIMVA20",),
    ),
    varenr="454165",
)
ZOCOR_BRAND = drug(
    resolved(
        ReferenceKind.PRODUCT,
        "ID_ZOCOR",
        "Zocor tab 20 mg",
        "C10AA01",
        packages=("ID_ZOCOR_98",),
        products=("ID_ZOCOR",),
        groups=("SG_SIMVA20",),
    )
)
SERTRALIN_PACKAGE = drug(
    resolved(
        ReferenceKind.PACKAGE,
        "ID_SERT",
        "Sertralin tab 50 mg",
        "N06AB06",
        packages=("ID_SERT",),
        products=("ID_SERT_P",),
        groups=("SG_ENDED",),
    )
)
PARACET_PACKAGE = drug(
    resolved(
        ReferenceKind.PACKAGE,
        "ID_PARACET",
        "Paracet tab 500 mg",
        "N02BE01",
        packages=("ID_PARACET",),
        products=("ID_PARACET_P",),
    )
)
APOCILLIN = drug(
    resolved(
        ReferenceKind.PACKAGE,
        "ID_APOCILLIN",
        "Apocillin tab 660 mg",
        "J01CE02",
        packages=("ID_APOCILLIN",),
        products=("ID_APOCILLIN_P",),
    )
)
CONTRACEPTIVE = drug(
    resolved(ReferenceKind.PRODUCT, "ID_PILL", "Microgynon", "G03AA07", products=("ID_PILL",))
)
OXYCODONE = drug(
    resolved(
        ReferenceKind.PRODUCT,
        "ID_OXY",
        "OxyNorm kaps 5 mg",
        "N02AA05",
        products=("ID_OXY",),
        prescription_group="A",
    )
)
DIAZEPAM = drug(
    resolved(
        ReferenceKind.PRODUCT,
        "ID_DIAZ",
        "Stesolid tab 5 mg",
        "N05BA01",
        products=("ID_DIAZ",),
        prescription_group="B",
    )
)
FISH_OIL = NonCatalogueItem(name="Omega-3 kapsler", text="1 kapsel daglig, kjøpt selv")

EVENING = Dosage(
    use=Use.REGULAR,
    fixed=(FixedDose(amount=Quantity(value=1, unit="tablett"), time_of_day=TimeOfDay.EVENING),),
)


def new_id() -> UUID:
    return uuid.uuid4()


def empty_list() -> MedicationList:
    return MedicationList.empty(PATIENT_ID)


def add(
    medication_list: MedicationList, *, at: datetime = T0, **fields: Any
) -> tuple[MedicationList, ListChange, ListEntry]:
    """Add an entry (simvastatin by default) and return the list, the change and the entry."""
    values: dict[str, Any] = {
        "entry_id": new_id(),
        "drug": ZOCOR_PACKAGE,
        "dosage": EVENING,
        "use": Use.REGULAR,
        "indication": "Kolesterolsenkende",
        "start": D0,
        "prescriber": DOCTOR,
    }
    values.update(fields)
    command = AddEntry(author=DOCTOR, at=at, **values)
    new_list, change = medication_list.apply(command)
    return new_list, change, new_list.entry(values["entry_id"])


def request(**fields: Any) -> PrescriptionRequest:
    values: dict[str, Any] = {
        "id": new_id(),
        "issued": D0,
        "quantity": PrescribedQuantity(packages=1),
    }
    values.update(fields)
    return PrescriptionRequest(**values)


def prescribed(
    drug_reference: CatalogueDrug = ZOCOR_PACKAGE, **request_fields: Any
) -> tuple[MedicationList, ListEntry, Prescription]:
    """A list with one entry for ``drug_reference`` and a prescription backing it."""
    medication_list, _, entry = add(empty_list(), drug=drug_reference, dosage=None)
    result = prescribe(
        medication_list,
        entry.id,
        request(**request_fields),
        at=T0,
        by=DOCTOR,
    )
    return result.medication_list, result.medication_list.entry(entry.id), result.prescription
