"""Hand-built list entries for the medication-review tests: a drug by its ATC code alone."""

from __future__ import annotations

from datetime import date

from interactions import Medication
from interactions.dosage import AsNeededDose, Dosage, FixedDose, Quantity, Use
from interactions.drugs import ReferenceKind, ResolvedDrug
from interactions.medication import Patient, RenalFunction

TODAY = date(2026, 12, 5)
LONG_AGO = date(2020, 1, 1)


def drug(code: str, name: str | None = None, route: str = "53") -> ResolvedDrug:
    return ResolvedDrug(
        ReferenceKind.ATC, code, name or code, atc=code, atc_codes=(code,), route_codes=(route,)
    )


def med(
    id: str,
    code: str,
    use: str | None = "regular",
    mg_a_day: float | None = None,
    start: date | None = LONG_AGO,
    stop: date | None = None,
    route: str = "53",
) -> Medication:
    """An entry of ``code``; ``use`` None gives no dosage at all; ``mg_a_day`` a fixed daily dose
    in mg (regular/course) or the as-needed maximum."""
    dosage = None
    if use == "as-needed":
        amount = Quantity(value=float(mg_a_day or 1.0), unit="mg")
        dosage = Dosage(
            use=Use.AS_NEEDED, as_needed=(AsNeededDose(amount=amount, max_per_24h=amount),)
        )
    elif use is not None:
        fixed = (FixedDose(amount=Quantity(value=float(mg_a_day), unit="mg")),) if mg_a_day else ()
        dosage = Dosage(use=Use(use), fixed=fixed)
    return Medication(id, drug(code, route=route), dosage, start, stop)


def patient(age: int | None = 85, egfr: float | None = 60.0, measured: date = TODAY) -> Patient:
    renal = None if egfr is None else RenalFunction(egfr=egfr, measured=measured)
    return Patient(age=age, renal=renal)
