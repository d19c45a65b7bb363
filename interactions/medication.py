"""What a check is asked about: the list entries, the patient, and alerts already handled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

from interactions.dosage import Dosage
from interactions.drugs import ResolvedDrug


@dataclass(frozen=True, slots=True)
class Medication:
    """One list entry as checks see it. ``id`` is the caller's entry id; ``start`` and ``stop``
    are the first and last day of use, ``None`` when open."""

    id: str
    drug: ResolvedDrug
    dosage: Dosage | None = None
    start: date | None = None
    stop: date | None = None

    def overlaps(self, other: Medication) -> bool:
        """Whether the two entries are in use on at least one common day."""
        return (self.start is None or other.stop is None or self.start <= other.stop) and (
            other.start is None or self.stop is None or other.start <= self.stop
        )


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Allergy(_Model):
    """An allergy or CAVE entry, by ATC code (any level) or by FEST substance id."""

    atc: str | None = None
    substance_id: str | None = None
    label: str | None = None

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

    egfr: PositiveFloat | None = None
    crcl: PositiveFloat | None = None
    measured: date

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

    allergies: tuple[Allergy, ...] = ()
    weight_kg: PositiveFloat | None = None
    age: int | None = Field(default=None, ge=0, le=130)
    sex: Literal["female", "male", "other", "unknown"] | None = None
    renal: RenalFunction | None = None
    hepatic_risk: bool | None = None


class HandledAlert(_Model):
    """An alert a clinician has handled (``VarselHandtert``): it is not raised again."""

    key: str = Field(min_length=1)
    handled_by: str
    handled_at: datetime
    reason: str
