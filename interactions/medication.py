"""What a check is asked about: the list entries, the patient, and alerts already handled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

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


class Patient(_Model):
    """Patient facts checks use. An unknown weight stays unknown: it is never defaulted."""

    allergies: tuple[Allergy, ...] = ()
    weight_kg: PositiveFloat | None = None


class HandledAlert(_Model):
    """An alert a clinician has handled (``VarselHandtert``): it is not raised again."""

    key: str = Field(min_length=1)
    handled_by: str
    handled_at: datetime
    reason: str
