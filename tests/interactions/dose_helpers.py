"""Builders for dose-rule tests: a drug resolved by ATC code and route, fixed dosages, a run
of the checker that keeps dose alerts, and patients with dated kidney function."""

from __future__ import annotations

from datetime import date, timedelta

from interactions import Alert, Kind, Medication, Patient, check
from interactions.alerts import DoseDetail, DoseNotCheckedDetail
from interactions.dosage import Dosage, FixedDose, Period, Quantity, TimeUnit, Use, Weekday
from interactions.drugs import ReferenceKind, ResolvedDrug, ResolvedStrength
from interactions.medication import RenalFunction
from tests.interactions.helpers import knowledge

ORAL, IV, SC, TRANSDERMAL = "53", "43", "62", "65"
TODAY = date(2026, 12, 5)


def drug(atc: str, route: str, *strengths: ResolvedStrength) -> ResolvedDrug:
    return ResolvedDrug(
        reference_kind=ReferenceKind.ATC,
        reference_id=atc,
        name=f"{atc} ({route})",
        atc=atc,
        atc_codes=(atc,),
        route_codes=(route,),
        strengths=strengths,
    )


def strength(
    atc: str, value: float, unit: str, name: str, per: tuple[float, str] | None = None
) -> ResolvedStrength:
    return ResolvedStrength(
        strength_id=f"S_{name}",
        substance_id=f"ID_{name}",
        substance_name=name,
        atc=atc,
        value=value,
        unit=unit,
        denominator_value=per[0] if per else None,
        denominator_unit=per[1] if per else None,
        operator="L",
        upper_value=None,
    )


def doses(
    amount: float,
    unit: str = "mg",
    times: int = 1,
    *,
    every_hours: float | None = None,
    use: Use = Use.REGULAR,
    weekday: Weekday | None = None,
) -> Dosage:
    interval = None
    if every_hours is not None:
        interval = Period(value=every_hours, unit=TimeUnit.HOUR)
    one = FixedDose(
        amount=Quantity(value=amount, unit=unit),
        interval=interval,
        weekdays=(weekday,) if weekday else (),
    )
    return Dosage(use=use, fixed=(one,) * times)


def run(
    atc: str,
    route: str,
    dosage: Dosage,
    patient: Patient | None = None,
    *,
    start: date | None = None,
    stop: date | None = None,
    strengths: tuple = (),
    others: tuple[Medication, ...] = (),
    indication: str | None = None,
) -> list[Alert]:
    medication = Medication(
        "m1", drug(atc, route, *strengths), dosage, start, stop, indication=indication
    )
    alerts = check(
        knowledge(),
        [medication, *others],
        patient=patient or Patient(),
        proposed=["m1"],
        today=TODAY,
    )
    return [a for a in alerts if a.kind in (Kind.DOSE, Kind.DOSE_NOT_CHECKED)]


def exceeded(alerts: list[Alert]) -> set[tuple[str, str]]:
    """(rule id, measure) of every dose alert."""
    return {
        (a.detail.rule_id, a.detail.measure) for a in alerts if isinstance(a.detail, DoseDetail)
    }


def not_checked(alerts: list[Alert]) -> set[tuple[str, str]]:
    return {
        (a.detail.rule_id, a.detail.reason_code)
        for a in alerts
        if isinstance(a.detail, DoseNotCheckedDetail)
    }


def renal(value: float, kind: str = "egfr", days_old: int = 10) -> RenalFunction:
    return RenalFunction.model_validate({kind: value, "measured": TODAY - timedelta(days=days_old)})


ADULT = Patient(age=50, weight_kg=70, hepatic_risk=False, renal=renal(90))
