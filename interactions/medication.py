"""What a check is asked about: the list entries, the patient, and alerts already handled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, Strict, model_validator

from interactions.dosage import Dosage
from interactions.drugs import ResolvedDrug
from interactions.values import (
    MAX_ITEMS,
    MAX_NAME,
    MAX_REASON,
    MODEL_CONFIG,
    Code,
    Day,
    LabValue,
    Name,
    WeightKg,
)
from interactions.values import text as bounded


@dataclass(frozen=True, slots=True)
class Substitution:
    """The entry's drug is a generic substitute (``generisk bytte``) handed out for
    ``prescribed`` within substitution group ``group_id`` (FEST ``Byttegruppe`` id), against
    ``prescription`` (the caller's id of it); ``earlier_dispenses`` counts the patient's earlier
    dispenses of the drug or of the group."""

    prescribed: str
    group_id: str
    prescription: str
    earlier_dispenses: int = 0


@dataclass(frozen=True, slots=True)
class Medication:
    """One list entry as checks see it. ``id`` is the caller's entry id; ``start`` and ``stop``
    are the first and last day of use, ``None`` when open; ``substitution`` is set when the
    drug was just substituted for the prescribed one (dispensing); ``indication`` is the
    entry's indication text as recorded (a dose rule for one indication reads an ICPC-2 code at
    its start, ``L88 Revmatoid artritt``)."""

    id: str
    drug: ResolvedDrug
    dosage: Dosage | None = None
    start: date | None = None
    stop: date | None = None
    substitution: Substitution | None = None
    indication: str | None = None

    def overlaps(self, other: Medication) -> bool:
        """Whether the two entries are in use on at least one common day."""
        return (self.start is None or other.stop is None or self.start <= other.stop) and (
            other.start is None or self.stop is None or other.start <= self.stop
        )


class _Model(BaseModel):
    model_config = MODEL_CONFIG


class Allergy(_Model):
    """An allergy or CAVE entry, by ATC code (any level) or by FEST substance id."""

    atc: Code | None = None
    substance_id: Code | None = None
    label: Name | None = None

    @model_validator(mode="after")
    def _exactly_one_allergen(self) -> Allergy:
        if (self.atc is None) == (self.substance_id is None):
            raise ValueError("an allergy names either an ATC code or a substance id")
        return self

    @property
    def allergen(self) -> str:
        """The ATC code or the substance id, whichever names the allergen."""
        return self.atc if self.atc is not None else str(self.substance_id)


class RenalFunction(_Model):
    """Kidney function with the day it was measured: ``egfr`` (ml/min/1.73 m²) or ``crcl``
    (creatinine clearance, Cockcroft-Gault, ml/min), exactly one of them."""

    egfr: LabValue | None = None
    crcl: LabValue | None = None
    measured: Day

    @model_validator(mode="after")
    def _exactly_one_value(self) -> RenalFunction:
        if (self.egfr is None) == (self.crcl is None):
            raise ValueError("renal function gives either egfr or crcl")
        return self

    @property
    def kind(self) -> Literal["egfr", "crcl"]:
        return "egfr" if self.egfr is not None else "crcl"

    @property
    def value(self) -> float:
        return self.egfr if self.egfr is not None else float(self.crcl or 0.0)


class Patient(_Model):
    """Patient facts checks use. Unknown facts stay unknown: none is ever defaulted, and a dose
    rule that needs one reports "dose not checked" instead.

    ``age`` in whole years; ``hepatic_risk`` whether the patient has risk factors for liver
    injury (hepatic impairment, chronic alcohol use, malnutrition, dehydration) — ``None`` when
    nobody has said."""

    allergies: tuple[Allergy, ...] = Field(default=(), max_length=MAX_ITEMS)
    weight_kg: WeightKg | None = None
    age: Annotated[int, Strict(), Field(ge=0, le=130)] | None = None
    sex: Literal["female", "male", "other", "unknown"] | None = None
    renal: RenalFunction | None = None
    hepatic_risk: bool | None = None


class HandledAlert(_Model):
    """An alert a clinician has handled (``VarselHandtert``): it is not raised again."""

    key: Annotated[str, bounded(500, 1)]
    handled_by: Annotated[str, bounded(MAX_NAME)]
    handled_at: datetime
    reason: Annotated[str, bounded(MAX_REASON)]
