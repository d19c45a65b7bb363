"""The demo world behind ``medloop demo``: the demo catalogue, a GP practice, a pharmacy and a
nursing home with residents on realistic lists, built through the same commands the API uses,
and development tokens for a GP, a nurse, a ward-admin nurse (who may admit and discharge), a
pharmacist and a patient.

DEMO DATA: invented people and organisations (synthetic national ids), not a clinical source.
The residents have birth dates, weights and kidney function on record (one eGFR too old to be
trusted), so dose checks show their age, weight and renal limits. They are admitted to one ward
of the nursing home; two of them have their regular tablets packed in multidose by the demo
pharmacy, with a 14-day packing period opened from the next Monday.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Engine

from fest.loader import import_catalogue
from interactions.dosage import AsNeededDose, Dosage, FixedDose, Period, Quantity, TimeOfDay, Use
from medloop.api.auth import issue_token
from medloop.domain.codes import OrganisationKind, PersonnelRole
from medloop.domain.oslo import local_date
from medloop.domain.patient import (
    NationalId,
    Patient,
    RenalFunction,
    RenalFunctionKind,
    Weight,
)
from medloop.domain.personnel import Actor, HealthPersonnel, Organisation
from medloop.domain.prescription import PrescribedQuantity
from medloop.loop import administration, multidose
from medloop.loop.catalogue import DrugOrder
from medloop.loop.errors import OverrideRequired
from medloop.loop.patients import register_patient
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms, prescribe
from medloop.loop.runner import Call, CommandResult
from medloop.settings import current
from medloop.store.patients import find_patient_id

GP_PRACTICE = Organisation(
    id="8095068", name="Fjordbyen legekontor (demo)", kind=OrganisationKind.GP_PRACTICE
)
PHARMACY = Organisation(
    id="8090688", name="Apotek Fjordbyen (demo)", kind=OrganisationKind.PHARMACY
)
NURSING_HOME = Organisation(
    id="974600951", name="Solbakken sykehjem (demo)", kind=OrganisationKind.NURSING_HOME
)
GP = Actor(
    personnel=HealthPersonnel(
        hpr_number="431002737", name="Anja Fos Eidsvik", role=PersonnelRole.DOCTOR
    ),
    organisation=GP_PRACTICE,
)
NURSE = Actor(
    personnel=HealthPersonnel(hpr_number="5551234", name="Nina Nilsen", role=PersonnelRole.NURSE),
    organisation=NURSING_HOME,
)
SECOND_NURSE = Actor(
    personnel=HealthPersonnel(hpr_number="5559876", name="Ola Olsen", role=PersonnelRole.NURSE),
    organisation=NURSING_HOME,
)
PHARMACIST = Actor(
    personnel=HealthPersonnel(
        hpr_number="9876543", name="Per Apoteker", role=PersonnelRole.PHARMACIST
    ),
    organisation=PHARMACY,
)


def gsrn(index: int) -> str:
    """The GS1 GSRN on the wristband of ``RESIDENTS[index]``: a fictitious GS1 Norway company
    prefix (7099999), the resident's number, and the GS1 check digit (biip)."""
    from biip.checksums import gs1_standard_check_digit

    body = f"7099999{index + 1:010d}"
    return body + str(gs1_standard_check_digit(body))


def national_id(birth: date, individual: int) -> str:
    """A national id for ``birth`` with valid check digits (the next individual number that
    has them, from ``individual``; 000-499 are 1900-1999 births)."""
    first_weights = (3, 7, 6, 1, 8, 9, 4, 5, 2)
    second_weights = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)

    def check(digits: str, weights: tuple[int, ...]) -> int | None:
        found = (11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11) % 11
        return None if found == 10 else found

    for number in range(individual, 500):
        base = f"{birth:%d%m%y}{number:03d}"
        first = check(base, first_weights)
        second = None if first is None else check(f"{base}{first}", second_weights)
        if second is not None:
            return f"{base}{first}{second}"
    raise ValueError(f"no national id for {birth} from {individual}")


def _tablets(n: float, slot: TimeOfDay) -> FixedDose:
    return FixedDose(amount=Quantity(value=n, unit="tablett"), time_of_day=slot)


def regular(*doses: FixedDose, text: str) -> Dosage:
    return Dosage(use=Use.REGULAR, fixed=doses, text=text)


def as_needed(amount: float, unit: str, max_per_24h: float, hours: float, text: str) -> Dosage:
    return Dosage(
        use=Use.AS_NEEDED,
        as_needed=(
            AsNeededDose(
                amount=Quantity(value=amount, unit=unit),
                max_per_24h=Quantity(value=max_per_24h, unit=unit),
                min_interval=Period(value=hours, unit="hour"),
            ),
        ),
        text=text,
    )


MORNING, MIDDAY, EVENING = TimeOfDay.MORNING, TimeOfDay.MIDDAY, TimeOfDay.EVENING


@dataclass(frozen=True)
class Order:
    """One prescription of a resident's list; ``started_days_ago`` dates its start (long-used
    drugs meet the review criteria that reassess after a duration)."""

    varenr: str
    dosage: Dosage
    indication: str
    multidose: bool = False
    started_days_ago: int = 30


@dataclass(frozen=True)
class Facts:
    """What the nursing home measured: weight, kidney function and how many days ago each was
    measured (dose checks trust kidney function for 90 days)."""

    weight_kg: float
    renal: RenalFunctionKind
    renal_value: float
    weight_days_ago: int
    renal_days_ago: int


@dataclass(frozen=True)
class Resident:
    given_name: str
    family_name: str
    birth: date
    orders: tuple[Order, ...]
    multidose: bool = False
    facts: Facts | None = None


RESIDENTS = (
    Resident(
        "Kari",
        "Nordmann",
        date(1938, 3, 14),
        (
            Order(
                "090232",
                regular(_tablets(1, EVENING), text="1 tablett om kvelden"),
                "Atrieflimmer",
                multidose=True,
            ),
            Order(
                "090283",
                regular(_tablets(1, MORNING), text="1 depottablett om morgenen"),
                "Hypertensjon",
                multidose=True,
            ),
            Order(
                "090402",
                regular(_tablets(1, MORNING), text="1 tablett om morgenen"),
                "Hjertesvikt",
                multidose=True,
            ),
            Order(
                "090028",
                as_needed(1, "tablett", 4, 6, "1 tablett ved behov, maks 4 per døgn"),
                "Smerter",
            ),
            # For the medication review: an NSAID with warfarin and a diuretic (NORGEP-NH 3, 12,
            # 16; STOPP C10) and a proton pump inhibitor used for over a year (NORGEP-NH 33).
            Order(
                "090181",
                regular(
                    _tablets(1, MORNING), _tablets(1, EVENING), text="1 tablett morgen og kveld"
                ),
                "Artrosesmerter",
            ),
            Order(
                "090861",
                regular(_tablets(1, MORNING), text="1 kapsel om morgenen"),
                "Ulcusprofylakse",
                started_days_ago=420,
            ),
        ),
        multidose=True,
        facts=Facts(48, RenalFunctionKind.EGFR, 52, 7, 20),
    ),
    Resident(
        "Per",
        "Hansen",
        date(1941, 9, 2),
        (
            Order(
                "090436",
                regular(_tablets(1, EVENING), text="1 tablett om kvelden"),
                "Hyperkolesterolemi",
                multidose=True,
            ),
            Order(
                "090844",
                regular(_tablets(1, EVENING), text="1 tablett om kvelden"),
                "Demens",
                multidose=True,
            ),
            Order(
                "090623",
                regular(_tablets(1, MORNING), text="1 tablett om morgenen"),
                "Depresjon",
                multidose=True,
            ),
            Order(
                "091099",
                as_needed(1, "kapsel", 4, 4, "1 kapsel ved sterke smerter, maks 4/døgn"),
                "Gjennombruddssmerter",
            ),
            # For the medication review: an antipsychotic for half a year (NORGEP-NH 25, ACB 3),
            # oxazepam for three months (NORGEP-NH 26, STOPP D8), three psychotropics
            # (NORGEP-NH 23) and a regular opioid without a laxative (STOPP L2, START K2).
            Order(
                "090827",
                regular(_tablets(1, EVENING), text="1 tablett om kvelden"),
                "Uro ved demens",
                started_days_ago=200,
            ),
            Order(
                "090776",
                regular(_tablets(1, EVENING), text="1 tablett om kvelden"),
                "Uro og søvnvansker",
                started_days_ago=90,
            ),
            Order(
                "091116",
                regular(_tablets(1, MORNING), _tablets(1, EVENING), text="1 depottablett x 2"),
                "Smerter",
            ),
        ),
        multidose=True,
        facts=Facts(74, RenalFunctionKind.CREATININE_CLEARANCE, 41, 14, 40),
    ),
    Resident(
        "Ingrid",
        "Berg",
        date(1935, 12, 24),
        (
            Order(
                "090606", regular(_tablets(1, MORNING), text="1 tablett om morgenen"), "Hypotyreose"
            ),
            Order(
                "090555",
                regular(
                    _tablets(1, MORNING), _tablets(1, EVENING), text="1 tablett morgen og kveld"
                ),
                "Diabetes type 2",
            ),
            Order(
                "090164",
                regular(_tablets(1, MIDDAY), text="1 tablett midt på dagen"),
                "Osteoporose",
            ),
            # Insulin: the ward's policy wants a second nurse to witness every dose (A10A).
            Order(
                "090572",
                regular(
                    FixedDose(amount=Quantity(value=10, unit="E"), time_of_day=MORNING),
                    text="10 E subkutant om morgenen",
                ),
                "Diabetes type 2",
            ),
            # Her eGFR is four months old: dose rules that depend on it report "not checked",
            # and the review lists the kidney criteria as not assessed.
            # For the medication review: amitriptyline (NORGEP-NH 2, ACB 3).
            Order(
                "090725",
                regular(_tablets(1, EVENING), text="1 tablett om kvelden"),
                "Nevropatiske smerter",
                started_days_ago=700,
            ),
        ),
        facts=Facts(55, RenalFunctionKind.EGFR, 38, 30, 120),
    ),
)


WARD_ID = UUID("5e1b0a4e-7d3c-4a55-9a0e-0d5e3c0f2a11")


@dataclass
class DemoWorld:
    """What the demo built: patient ids by national id, tokens by role, and notes."""

    patients: dict[str, UUID] = field(default_factory=dict)
    ward_id: UUID = WARD_ID
    tokens: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    already_built: bool = False


DEMO_DECISION = "Solbakken kommune, vedtak 2026/0412 (demo)"


def build(
    engine: Engine,
    catalogue: Any,
    *,
    now: datetime | None = None,
    token_lifetime: timedelta = timedelta(hours=1),
) -> DemoWorld:
    """Import ``catalogue`` and build the demo world once (a second call only reissues the
    tokens, each valid ``token_lifetime``)."""
    at = now or datetime.now(UTC)
    import_catalogue(
        engine, catalogue, allow_shrink=True, allow_older=True, limits=current().fest_limits
    )
    world = DemoWorld()
    residents = [(r, national_id(r.birth, 100 + 37 * i)) for i, r in enumerate(RESIDENTS)]
    with engine.connect() as conn:
        known = {nid: find_patient_id(conn, nid) for _, nid in residents}
    if all(known.values()):
        world.already_built = True
        world.patients = {nid: pid for nid, pid in known.items() if pid is not None}
    else:
        administration.create_ward(
            engine,
            administration.WardOrder(ward_id=WARD_ID, name="Solbakken 1. etasje"),
            Call(actor=NURSE, at=at, reason="demo"),
        )
        for index, (resident, nid) in enumerate(residents):
            patient_id = _register(engine, resident, nid, at)
            world.patients[nid] = patient_id
            if resident.multidose:
                _multidose(engine, patient_id, at)
            administration.admit(
                engine,
                patient_id,
                administration.AdmissionOrder(
                    admission_id=uuid.uuid4(),
                    ward_id=WARD_ID,
                    admitted_at=at,
                    reason="Langtidsopphold (demo)",
                    decision_reference=DEMO_DECISION,
                ),
                Call(actor=NURSE, at=at, reason="demo"),
            )
            administration.register_wristband(
                engine, patient_id, gsrn(index), Call(actor=NURSE, at=at, reason="demo")
            )
        world.notes.append(
            f"Ward {WARD_ID} (Solbakken 1. etasje) of {NURSING_HOME.name}: every resident "
            "admitted, with a GS1 GSRN wristband (demo.gsrn); multidose from the demo pharmacy "
            "for the residents marked so."
        )
    first = residents[0][1]
    life = {"lifetime": token_lifetime}
    world.tokens = {
        "gp": issue_token(
            "gp",
            GP.personnel.hpr_number,
            GP_PRACTICE.id,
            name=GP.personnel.name,
            organisation_name=GP_PRACTICE.name,
            **life,
        ),
        "nurse": issue_token(
            "nurse",
            NURSE.personnel.hpr_number,
            NURSING_HOME.id,
            name=NURSE.personnel.name,
            organisation_name=NURSING_HOME.name,
            **life,
        ),
        "ward-admin": issue_token(
            "nurse",
            SECOND_NURSE.personnel.hpr_number,
            NURSING_HOME.id,
            name=SECOND_NURSE.personnel.name,
            organisation_name=NURSING_HOME.name,
            ward_admin=True,
            **life,
        ),
        "pharmacist": issue_token(
            "pharmacist",
            PHARMACIST.personnel.hpr_number,
            PHARMACY.id,
            name=PHARMACIST.personnel.name,
            organisation_name=PHARMACY.name,
            **life,
        ),
        "patient": issue_token("patient", first, name="Kari Nordmann", **life),
    }
    return world


def _multidose(engine: Engine, patient_id: UUID, at: datetime) -> None:
    """The demo pharmacy packs for the patient: responsibility from today and a 14-day period
    from the next Monday, ordered by the Wednesday before."""
    call = Call(actor=GP, at=at, reason="demo")
    multidose.set_responsibility(
        engine,
        patient_id,
        multidose.ResponsibilityOrder(doctor=GP, pharmacy=PHARMACY, valid_from=local_date(at)),
        call,
    )
    # The next Monday after today in Oslo, where a dosing day begins (``PackingPeriod.starts_at``):
    # counted from the UTC date, a Sunday evening after Oslo's midnight made it today, and the
    # period's deadline (now) fell after its start.
    today = local_date(at)
    monday = today + timedelta(days=7 - today.weekday())
    deadline = datetime.combine(monday - timedelta(days=5), time(12, 0), tzinfo=UTC)
    multidose.open_packing_period(
        engine,
        patient_id,
        multidose.PeriodOrder(
            period_id=uuid.uuid4(), first_day=monday, order_deadline=max(deadline, at)
        ),
        Call(actor=PHARMACIST, at=at, reason="demo"),
    )


def _register(engine: Engine, resident: Resident, nid: str, at: datetime) -> UUID:
    facts = resident.facts
    patient = Patient(
        id=uuid.uuid4(),
        national_id=NationalId(nid),
        given_name=resident.given_name,
        family_name=resident.family_name,
        birth_date=resident.birth,
        weight=None
        if facts is None
        else Weight(kg=facts.weight_kg, measured_at=at - timedelta(days=facts.weight_days_ago)),
        renal_function=None
        if facts is None
        else RenalFunction(
            kind=facts.renal,
            value=facts.renal_value,
            measured_at=at - timedelta(days=facts.renal_days_ago),
        ),
    )
    register_patient(engine, patient, Call(actor=GP, at=at, reason="demo"))
    version = 0
    for order in resident.orders:
        start = local_date(at - timedelta(days=order.started_days_ago))
        result = _prescribe_overriding(
            engine,
            patient.id,
            PrescribeOrder(
                entry_id=uuid.uuid4(),
                drug=DrugOrder(varenr=order.varenr),
                use=order.dosage.use,
                dosage=order.dosage,
                indication=order.indication,
                start=start,
                multidose=order.multidose,
                terms=PrescriptionTerms(
                    prescription_id=uuid.uuid4(),
                    quantity=PrescribedQuantity(packages=2),
                    repeats=0,
                ),
            ),
            Call(actor=GP, at=at, reason="demo list"),
            based_on=version,
        )
        version = result.list_version
    return patient.id


def _prescribe_overriding(
    engine: Engine, patient_id: UUID, order: PrescribeOrder, call: Call, *, based_on: int
) -> CommandResult:
    """Prescribe; an alert that needs an override gets the demo GP's reason, as a GP would
    after reading it."""
    try:
        return prescribe(engine, patient_id, order, call, based_on=based_on)
    except OverrideRequired as needed:
        reasons = {a.key: "demo: known combination, monitored" for a in needed.alerts}
        call = call.model_copy(update={"overrides": reasons})
        return prescribe(engine, patient_id, order, call, based_on=based_on)
