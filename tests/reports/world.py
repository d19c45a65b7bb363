"""Generated worlds for the report tests and ``bench/reports.py``: a ward, a GP's list and a
multidose pharmacy with known events, written straight to the store's tables (records built
from the domain's own models) in one transaction — a fixture, not a command: the events are
what the reports must count, and the tests compare with figures worked out by hand.

The records the real commands write are covered by ``tests/api/test_api_reports.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Engine

from interactions.dosage import Quantity, Use
from interactions.drugs import ReferenceKind, ResolvedDrug
from medloop.domain.administration import (
    Administration,
    AdministrationCorrection,
    Outcome,
    PlannedDose,
    ScannedPack,
    ScanSkipReason,
)
from medloop.domain.codes import EntryChangeKind, OrganisationKind, PersonnelRole
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.entry import ListEntry
from medloop.domain.medication_list import EntryVersion, ListChange
from medloop.domain.oslo import OSLO, local_date
from medloop.domain.patient import Patient
from medloop.domain.personnel import Actor, HealthPersonnel, Organisation
from medloop.domain.ward import Admission, Ward, WardConfig
from medloop.store import administration as wards
from medloop.store import alerts, list_changes, multidose, patients
from medloop.store.administration import ScheduleRow
from medloop.store.db import writer

HOME = Organisation(id="974600951", name="Testheimen sykehjem", kind=OrganisationKind.NURSING_HOME)
NURSE = Actor(
    personnel=HealthPersonnel(
        hpr_number="5551234", name="Nina Sykepleier", role=PersonnelRole.NURSE
    ),
    organisation=HOME,
)
PRACTICE = Organisation(id="8095068", name="Virginia legekontor", kind=OrganisationKind.GP_PRACTICE)


def doctor(hpr: str) -> Actor:
    return Actor(
        personnel=HealthPersonnel(hpr_number=hpr, name=f"Lege {hpr}", role=PersonnelRole.DOCTOR),
        organisation=PRACTICE,
    )


def born(n: int) -> date:
    return date(1930, 1, 1) + timedelta(days=n % 20000)


def national_id(n: int) -> str:
    """A valid fødselsnummer for the n-th generated person (mod-11 check digits)."""
    day = born(n)
    for individual in range(n // 20000 * 7, 500):
        digits = [int(c) for c in f"{day:%d%m%y}{individual:03d}"]
        k1 = (
            11 - sum(d * w for d, w in zip(digits, (3, 7, 6, 1, 8, 9, 4, 5, 2), strict=True)) % 11
        ) % 11
        if k1 == 10:
            continue
        digits.append(k1)
        weights = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
        k2 = (11 - sum(d * w for d, w in zip(digits, weights, strict=True)) % 11) % 11
        if k2 != 10:
            return "".join(map(str, digits + [k2]))
    raise ValueError(n)


def oslo(day: date, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime.combine(day, time(hours, minutes), tzinfo=OSLO).astimezone(UTC)


def drug(name: str, atc: str | None) -> CatalogueDrug:
    return CatalogueDrug(
        resolved=ResolvedDrug(
            reference_kind=ReferenceKind.PACKAGE,
            reference_id=f"ID_{uuid.uuid5(uuid.NAMESPACE_OID, name)}",
            name=name,
            atc=atc,
        ),
        catalogue_version=1,
    )


def _patient(conn: Any, n: int, given: str, family: str, at: datetime) -> UUID:
    pid = uuid.uuid4()
    patients.add_patient(
        conn,
        Patient(
            id=pid,
            national_id=national_id(n),
            given_name=given,
            family_name=family,
            birth_date=born(n),
        ),
        at,
    )
    return pid


def _entries(
    conn: Any,
    pid: UUID,
    author: Actor,
    at: datetime,
    drugs: Sequence[tuple[str, str | None, Use, str | None]],
    *,
    list_version: int = 1,
) -> list[UUID]:
    """One list change adding ``drugs`` (name, ATC, use, indication); their entry ids."""
    versions = []
    for name, atc, use, indication in drugs:
        entry = ListEntry(
            id=uuid.uuid4(),
            version=1,
            drug=drug(name, atc),
            use=use,
            indication=indication,
            start=local_date(at),
            changed_at=at,
            prescriber=author,
        )
        versions.append(
            EntryVersion(
                entry_id=entry.id,
                version=1,
                list_version=list_version,
                kind=EntryChangeKind.ADDED,
                at=at,
                author=author,
                diff=(),
                entry=entry,
            )
        )
    list_changes.append_list_change(
        conn,
        ListChange(
            patient_id=pid,
            list_version=list_version,
            at=at,
            author=author,
            entry_versions=tuple(versions),
        ),
    )
    return [v.entry_id for v in versions]


# -- a ward ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resident:
    given: str
    family: str
    admitted_at: datetime
    discharged_at: datetime | None = None
    drugs: tuple[tuple[str, str | None, Use], ...] = ()


@dataclass(frozen=True)
class Dose:
    """A planned dose of resident ``resident`` on Oslo day ``day`` at ``slot`` and what was
    charted: ``given`` (``late``, ``scan``: "scanned", a skip reason or ``None``), ``refused``
    / ``held`` / ``not-given`` (``reason``), ``missed`` (the system's record), or ``None``
    (nothing charted). ``corrected``: a first charting entered in error before this one."""

    resident: int
    day: date
    slot: str
    charted: str | None
    late: bool = False
    scan: str | None = "scanned"
    reason: str | None = None
    corrected: bool = False
    index: int = 0  # the intake's dose index (two doses of one entry at one time)
    after_missed: bool = False  # the system's ``missed`` record came first


@dataclass(frozen=True)
class Prn:
    resident: int
    at: datetime
    scan: str | None = "scanned"
    corrected: bool = False


@dataclass
class WardWorld:
    ward_id: UUID
    residents: list[UUID] = field(default_factory=list)


def write_ward(
    engine: Engine,
    residents: Sequence[Resident],
    doses: Sequence[Dose],
    prn: Sequence[Prn] = (),
    *,
    name: str = "Avdeling Solsiden",
    organisation: Organisation = HOME,
    config: WardConfig | None = None,
    first_person: int = 0,
) -> WardWorld:
    set_up = min(r.admitted_at for r in residents) - timedelta(days=1)
    world = WardWorld(uuid.uuid4())
    config = config or WardConfig()
    nurse = NURSE.model_copy(update={"organisation": organisation})
    with writer(engine).begin() as conn:
        wards.add_ward(
            conn,
            Ward(id=world.ward_id, organisation_id=organisation.id, name=name),
            config,
            nurse,
            set_up,
        )
        regular: list[UUID] = []
        as_needed: list[UUID] = []
        for n, r in enumerate(residents):
            pid = _patient(conn, first_person + n, r.given, r.family, set_up)
            world.residents.append(pid)
            drugs = r.drugs or (("Paracetamol 500 mg", "N02BE01", Use.REGULAR),)
            entry_ids = _entries(
                conn,
                pid,
                doctor("431002737"),
                set_up,
                [(d, atc, use, None) for d, atc, use in drugs]
                + [("Paracetamol PRN 500 mg", "N02BE01", Use.AS_NEEDED, None)],
            )
            regular.append(entry_ids[0])
            as_needed.append(entry_ids[-1])
            admission = Admission(
                id=uuid.uuid4(),
                patient_id=pid,
                ward_id=world.ward_id,
                organisation_id=organisation.id,
                admitted_at=r.admitted_at,
            )
            wards.add_admission(conn, admission)
            if r.discharged_at is not None:
                wards.add_discharge(conn, pid, admission.id, r.discharged_at, nurse)
            wards.add_schedules(
                conn,
                [(pid, ScheduleRow(entry_ids[0], 1, 1, "generated", r.admitted_at))],
                set_up,
            )
        planned: list[PlannedDose] = []
        given: list[Administration] = []
        corrections: list[tuple[uuid.UUID, AdministrationCorrection]] = []
        for d in doses:
            pid = world.residents[d.resident]
            due = oslo(d.day, d.slot)
            dose = PlannedDose(
                id=uuid.uuid4(),
                patient_id=pid,
                ward_id=world.ward_id,
                entry_id=regular[d.resident],
                schedule_version=1,
                drug="Paracetamol 500 mg",
                local_time=datetime.combine(d.day, time(*map(int, d.slot.split(":")))),
                due_at=due,
                dose_index=d.index,
                amount=Quantity(value=1, unit="tablett"),
            )
            planned.append(dose)
            if d.charted is None:
                continue
            at = due + (timedelta(minutes=90) if d.late else timedelta(minutes=5))
            if d.charted == "missed":
                at = due + config.missed_after
            if d.after_missed:
                given.append(
                    _charting(
                        pid,
                        regular[d.resident],
                        dose.id,
                        Outcome.MISSED,
                        due + config.missed_after,
                        None,
                        system=True,
                    )
                )
                at = due + config.missed_after + timedelta(minutes=10)
            if d.corrected:
                wrong = _charting(pid, regular[d.resident], dose.id, Outcome.GIVEN, at, "scanned")
                given.append(wrong)
                corrections.append(
                    (
                        pid,
                        AdministrationCorrection(
                            administration_id=wrong.id, at=at, by=nurse, reason="wrong patient"
                        ),
                    )
                )
                at = at + timedelta(minutes=1)
            given.append(
                _charting(
                    pid,
                    regular[d.resident],
                    dose.id,
                    Outcome(d.charted),
                    at,
                    d.scan if d.charted == "given" else None,
                    late=d.late,
                    reason=d.reason,
                    system=d.charted == "missed",
                )
            )
        for p in prn:
            pid = world.residents[p.resident]
            record = _charting(pid, as_needed[p.resident], None, Outcome.GIVEN, p.at, p.scan)
            given.append(record)
            if p.corrected:
                corrections.append(
                    (
                        pid,
                        AdministrationCorrection(
                            administration_id=record.id, at=p.at, by=nurse, reason="wrong patient"
                        ),
                    )
                )
        wards.add_planned_doses(conn, planned)
        wards.add_administrations(conn, given)
        for patient_id, c in corrections:
            wards.add_correction(conn, patient_id, c)
    return world


_PACK = ScannedPack(
    code="7046260904705",
    gtin="07046260904705",
    package_id="ID_pack",
    varenr="090436",
    name="Paracetamol 500 mg",
    substituted=False,
)


def _charting(
    pid: UUID,
    entry_id: UUID,
    dose_id: UUID | None,
    outcome: Outcome,
    at: datetime,
    scan: str | None,
    *,
    late: bool = False,
    reason: str | None = None,
    system: bool = False,
) -> Administration:
    return Administration(
        id=uuid.uuid4(),
        patient_id=pid,
        entry_id=entry_id,
        planned_dose_id=dose_id,
        outcome=outcome,
        at=at,
        recorded_at=at,
        dose=Quantity(value=1, unit="tablett") if outcome is Outcome.GIVEN else None,
        performer=None if system else NURSE,
        reason=reason,
        scan=_PACK if scan == "scanned" else None,
        scan_skipped=None if scan in (None, "scanned") else ScanSkipReason(scan),
        late=late,
    )


def reviewed(engine: Engine, patient_id: UUID, signed_at: datetime) -> None:
    """A signed medication review of the patient at ``signed_at``: the row the ward report
    reads (its moment); the review document itself is the review's own tests' business."""
    from medloop.store.reviews import medication_review

    with writer(engine).begin() as conn:
        conn.execute(
            medication_review.insert(),
            {
                "id": str(uuid.uuid4()),
                "patient_id": str(patient_id),
                "list_version": 1,
                "signed_at": signed_at,
                "record": {"generated": "tests/reports/world.py"},
            },
        )


# -- a GP's prescribing ------------------------------------------------------------------------


@dataclass(frozen=True)
class CourseSpec:
    patient: int
    at: datetime
    name: str
    atc: str
    indication: str | None
    hpr: str


@dataclass(frozen=True)
class AlertSpec:
    patient: int
    at: datetime
    kind: str
    record: str
    severity: str
    overridden: bool
    hpr: str


@dataclass(frozen=True)
class ProposalSpec:
    patient: int
    proposed_at: datetime
    decided_at: datetime | None
    accepted: bool
    hpr: str


PHARMACY = Organisation(id="8090617", name="Apotek 1 Multidose", kind=OrganisationKind.PHARMACY)
PHARMACIST = Actor(
    personnel=HealthPersonnel(
        hpr_number="7000001", name="Per Farmasøyt", role=PersonnelRole.PHARMACIST
    ),
    organisation=PHARMACY,
)


def write_prescribing(
    engine: Engine,
    patients_n: int,
    courses: Sequence[CourseSpec],
    raised: Sequence[AlertSpec] = (),
    proposals: Sequence[ProposalSpec] = (),
    *,
    multidose_doctor: str | None = None,
    first_person: int = 50_000,
) -> list[UUID]:
    """``patients_n`` patients; each course is a prescription issued (version 1) with its
    list entry; each alert is stored with the list change of the command that raised it;
    proposals go to patients whose multidose doctor is ``multidose_doctor``."""
    from medloop.domain.codes import PrescriptionChangeKind, PrescriptionStatus
    from medloop.domain.multidose.proposals import Proposal, ProposalDecision, ProposalKind
    from medloop.domain.multidose.responsibility import Responsibility
    from medloop.domain.prescription import PrescribedQuantity, Prescription, PrescriptionVersion
    from medloop.store import prescriptions
    from medloop.store.alerts import RaisedAlert

    at0 = min([c.at for c in courses] + [a.at for a in raised] + [p.proposed_at for p in proposals])
    set_up = at0 - timedelta(days=1)
    versions: dict[UUID, int] = {}
    ids: list[UUID] = []
    with writer(engine).begin() as conn:
        for n in range(patients_n):
            pid = _patient(conn, first_person + n, "Pasient", f"Nr{n}", set_up)
            ids.append(pid)
            versions[pid] = 0
            if multidose_doctor is not None:
                multidose.append_responsibility(
                    conn,
                    Responsibility(
                        patient_id=pid,
                        version=1,
                        doctor=doctor(multidose_doctor),
                        pharmacy=PHARMACY,
                        valid_from=set_up.date(),
                        recorded_at=set_up,
                        recorded_by=doctor(multidose_doctor),
                    ),
                )
        for c in sorted(courses, key=lambda c: c.at):
            pid = ids[c.patient]
            versions[pid] += 1
            (entry_id,) = _entries(
                conn,
                pid,
                doctor(c.hpr),
                c.at,
                [(c.name, c.atc, Use.COURSE, c.indication)],
                list_version=versions[pid],
            )
            issued = local_date(c.at)
            prescription = Prescription(
                id=uuid.uuid4(),
                patient_id=pid,
                entry_id=entry_id,
                drug=drug(c.name, c.atc),
                issued=issued,
                expires=issued + timedelta(days=365),
                quantity=PrescribedQuantity(packages=1),
                prescriber=doctor(c.hpr),
            )
            prescriptions.append_prescription_versions(
                conn,
                pid,
                [
                    PrescriptionVersion(
                        prescription_id=prescription.id,
                        version=1,
                        kind=PrescriptionChangeKind.ISSUED,
                        at=c.at,
                        author=doctor(c.hpr),
                        from_status=None,
                        to_status=PrescriptionStatus.DISPENSABLE,
                        diff=(),
                        prescription=prescription,
                    )
                ],
            )
        for a in sorted(raised, key=lambda a: a.at):
            pid = ids[a.patient]
            versions[pid] += 1
            _entries(
                conn,
                pid,
                doctor(a.hpr),
                a.at,
                [("Warfarin 5 mg", "B01AA03", Use.REGULAR, None)],
                list_version=versions[pid],
            )
            alerts.append_alerts(
                conn,
                pid,
                "prescribe",
                versions[pid],
                a.at,
                [
                    RaisedAlert(
                        alert=_alert(a.kind, a.record, a.severity),
                        override_by=doctor(a.hpr) if a.overridden else None,
                        override_reason="vurdert" if a.overridden else None,
                    )
                ],
            )
        for p in proposals:
            proposal = Proposal(
                id=uuid.uuid4(),
                patient_id=ids[p.patient],
                kind=ProposalKind.QUESTION,
                proposed_at=p.proposed_at,
                proposed_by=PHARMACIST,
                question="Skal dosen endres?",
            )
            multidose.append_proposal(conn, proposal)
            if p.decided_at is not None:
                multidose.append_decision(
                    conn,
                    proposal.patient_id,
                    ProposalDecision(
                        proposal_id=proposal.id,
                        accepted=p.accepted,
                        at=p.decided_at,
                        by=doctor(p.hpr),
                        reason=None if p.accepted else "ikke aktuelt",
                    ),
                )
    return ids


def _alert(kind: str, record: str, severity: str) -> Any:
    from interactions import Alert

    source = {"catalogue_version": 1, "hentet_dato": "2026-01-01", "rule_id": record}
    if kind == "interaction":
        detail = {
            "kind": "interaction",
            "interaction_id": record,
            "relevance": 1,
            "situation": None,
            "consequence": "Økt blødningsrisiko",
            "mechanism": None,
            "source_basis": None,
            "handling": {},
            "display_rules": (),
            "references": (),
            "matches": (),
        }
    else:
        detail = {
            "kind": "duplicate",
            "reasons": ("same-atc-level4",),
            "atc_codes": ("B01AA03",),
            "substance_ids": (),
            "substitution_group_ids": (),
        }
    return Alert.model_validate(
        {
            "severity": severity,
            "medications": ("a", "b"),
            "summary": f"{kind} {record}",
            "detail": detail,
            "source": source,
        }
    )


# -- a multidose pharmacy ----------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodSpec:
    """A packing period of the ``pharmacy`` starting ``first_day`` (14 days), with its
    reconciliations (class counts, when), deadline flags (when, entries changed) and urgent
    packs (when, reason)."""

    first_day: date
    pharmacy: Organisation = PHARMACY
    reconciliations: tuple[tuple[datetime, dict[str, int]], ...] = ()
    flags: tuple[tuple[datetime, int], ...] = ()
    urgent: tuple[tuple[datetime, str], ...] = ()


def write_pharmacy(
    engine: Engine, periods: Sequence[PeriodSpec], *, first_person: int = 90_000
) -> None:
    from medloop.domain.multidose.periods import PackingPeriod, UrgentPack
    from medloop.domain.multidose.reconciliation import PackReconciliation
    from medloop.domain.multidose.rules import LineClass

    set_up = oslo(min(p.first_day for p in periods) - timedelta(days=30), "08:00")
    with writer(engine).begin() as conn:
        for n, spec in enumerate(periods):
            pid = _patient(conn, first_person + n, "Multidose", f"Nr{n}", set_up)
            pharmacist = PHARMACIST.model_copy(update={"organisation": spec.pharmacy})
            period = PackingPeriod(
                id=uuid.uuid4(),
                patient_id=pid,
                first_day=spec.first_day,
                last_day=spec.first_day + timedelta(days=13),
                order_deadline=oslo(spec.first_day - timedelta(days=3), "12:00"),
                pharmacy=spec.pharmacy,
                opened_at=set_up,
                opened_by=pharmacist,
            )
            multidose.append_period(conn, period)
            for version, (at, counts) in enumerate(spec.reconciliations, start=1):
                multidose.append_reconciliation(
                    conn,
                    PackReconciliation(
                        id=uuid.uuid4(),
                        patient_id=pid,
                        period_id=period.id,
                        report_id=uuid.uuid4(),
                        list_version=version,
                        plan_list_version=version,
                        reconciled_at=at,
                        reconciled_by=pharmacist,
                        lines=(),
                        counts={LineClass(k): v for k, v in counts.items()},
                    ),
                    {},
                )
            for version, (at, entries) in enumerate(spec.flags, start=1):
                multidose.append_deadline_flag(
                    conn,
                    period.patient_id,
                    period.id,
                    version,
                    at,
                    {
                        "order_deadline": period.order_deadline.isoformat(),
                        "plan_list_version": 0,
                        "entries": [str(uuid.uuid4()) for _ in range(entries)],
                    },
                )
            for at, reason in spec.urgent:
                multidose.append_urgent_pack(
                    conn,
                    period.patient_id,
                    UrgentPack(
                        id=uuid.uuid4(), period_id=period.id, at=at, by=pharmacist, reason=reason
                    ),
                )
