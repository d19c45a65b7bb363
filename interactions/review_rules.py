"""The medication-review criteria files: their format, validation and loading.

Four files in ``interactions/rules/`` (all decision support, none signed yet — every
``reviewed_by``/``reviewed_on`` is ``null`` until a clinical pharmacist signs the criterion):

- ``review_norgep_nh.json`` and ``review_stopp_start.json`` (format
  ``medloop-review-criteria/1``): a criteria set with named ATC ``groups`` and ``criteria``. A
  criterion's ``kind`` says how it is decided from the list:

  ``drug``         every entry in ``drugs`` (optionally only in ``uses``, above ``daily_above``
                   or at or above ``daily_at_least``, below ``renal_below`` eGFR/CrCl);
  ``combination``  an entry of ``drugs`` together with one of each group in ``combined_with``;
  ``count``        at least ``at_least`` entries of ``drugs``;
  ``duration``     entries of ``drugs`` in use for more than ``longer_than_days`` (needs
                   ``start``);
  ``omission``     entries of ``drugs`` with no entry of any ``without`` group on the list;
  ``duplicate``    two or more entries of one of the ``classes`` (optionally only in ``uses``);
  ``clinical``     needs information the engine does not have (``needs``): it is listed as not
                   assessed when entries of its ``drugs`` meet (or may meet) its per-entry
                   conditions (``uses``, a dose, ``longer_than_days``, ``renal_below``), or
                   always, without ``drugs``.

  Every criterion has its ``summary`` in English and ``summary_nb`` in Norwegian (bokmål),
  and cites its ``source`` (``citation``, ``url``, ``verified``); a criterion whose
  published text was not read carries ``verified: false`` and a ``note`` beginning
  ``NOT VERIFIED`` that says what was not read.
- ``review_acb.json`` (``medloop-acb/1``): anticholinergic burden scores by ATC code.
- ``review_nh_indicators.json`` (``medloop-nh-indicators/1``): the ATC groups of the
  nursing-home quality indicators (psychotropics, antipsychotics, fall-risk drugs).
"""

from __future__ import annotations

import json
import re
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from interactions import atc
from interactions.dose_rules import Limit

Kind = Literal["drug", "combination", "count", "duration", "omission", "duplicate", "clinical"]
UseName = Literal["regular", "course", "as-needed"]

CRITERIA_FILES = ("review_norgep_nh.json", "review_stopp_start.json")
_ID = re.compile(r"^(NORGEP-NH:[1-9][0-9]?|(STOPP|START):[A-N][0-9]{1,2})$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CriterionSource(_Model):
    """Where a criterion comes from; ``verified`` whether its text was read in that document."""

    citation: str = Field(min_length=1)
    url: str = Field(pattern=r"^https://[^/]+/.+")
    verified: bool
    note: str | None = None

    @model_validator(mode="after")
    def _unverified_says_so(self) -> CriterionSource:
        if not self.verified and not (self.note or "").startswith("NOT VERIFIED"):
            raise ValueError("an unverified source needs a note beginning 'NOT VERIFIED'")
        return self


class AtcGroup(_Model):
    """Drugs by ATC code at any level, minus ``except`` codes."""

    label: str = Field(min_length=1)
    atc: tuple[str, ...] = Field(min_length=1)
    except_: tuple[str, ...] = Field(default=(), alias="except")

    @field_validator("atc", "except_")
    @classmethod
    def _codes(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        normalised = tuple(atc.normalise(code) for code in codes)
        if any(
            code is None or not re.fullmatch(r"[A-Z][0-9A-Z]{0,6}", code) for code in normalised
        ):
            raise ValueError(f"not ATC codes: {codes}")
        return tuple(code for code in normalised if code is not None)

    def matches(self, codes: tuple[str, ...]) -> bool:
        """Whether a drug with these ATC codes (its own and its components') is in the group."""
        return self.matches_covering(tuple(frozenset(atc.covering(code)) for code in codes))

    def matches_covering(self, coverings: tuple[frozenset[str], ...]) -> bool:
        """``matches`` for codes given as the set of group codes covering each."""
        return any(
            not covering.isdisjoint(self.atc) and covering.isdisjoint(self.except_)
            for covering in coverings
        )


class Criterion(_Model):
    id: str
    kind: Kind
    summary: str = Field(min_length=1)
    summary_nb: str = Field(min_length=1)
    """The summary in Norwegian (bokmål), for the review page and PDF when bokmål is chosen;
    the CLI and API keep ``summary`` (the file's English)."""
    rationale: str = Field(min_length=1)
    drugs: str | None = None
    uses: tuple[UseName, ...] = ()
    daily_above: Limit | None = None
    daily_at_least: Limit | None = None
    """A daily dose at or above this (the source says "≥"); ``daily_above`` is strictly above."""
    renal_below: PositiveInt | None = None
    combined_with: tuple[str, ...] = ()
    at_least: PositiveInt | None = None
    longer_than_days: PositiveInt | None = None
    without: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    source: CriterionSource
    reviewed_by: str | None
    reviewed_on: date | None

    @field_validator("id")
    @classmethod
    def _id_names_set_and_number(cls, value: str) -> str:
        if not _ID.fullmatch(value):
            raise ValueError(f"criterion id {value!r} is not SET:number (NORGEP-NH:1, STOPP:B1)")
        return value

    @model_validator(mode="after")
    def _kind_has_its_fields(self) -> Criterion:
        required: dict[str, tuple[object, ...]] = {
            "drug": (self.drugs,),
            "combination": (self.drugs, self.combined_with),
            "count": (self.drugs, self.at_least),
            "duration": (self.drugs, self.longer_than_days),
            "omission": (self.drugs, self.without),
            "duplicate": (self.classes,),
            "clinical": (self.needs,),
        }
        if not all(required[self.kind]):
            raise ValueError(f"{self.id}: a {self.kind} criterion lacks one of its fields")
        if self.daily_above is not None and self.daily_at_least is not None:
            raise ValueError(f"{self.id}: give daily_above or daily_at_least, not both")
        return self

    @property
    def set_name(self) -> str:
        return self.id.split(":", 1)[0]

    def group_names(self) -> tuple[str, ...]:
        names = (self.drugs,) if self.drugs else ()
        return (*names, *self.combined_with, *self.without, *self.classes)


class CriteriaSet(_Model):
    format: Literal["medloop-review-criteria/1"]
    set: str
    title: str
    version: str
    publication: str = Field(min_length=1)
    population: str
    age_min: PositiveInt | None = None
    disclaimer: str
    groups: dict[str, AtcGroup]
    criteria: tuple[Criterion, ...]

    @model_validator(mode="after")
    def _consistent(self) -> CriteriaSet:
        ids = [c.id for c in self.criteria]
        if len(ids) != len(set(ids)):
            raise ValueError("criterion ids must be unique")
        prefixes = {c.set_name for c in self.criteria}
        allowed = set(self.set.split("/"))
        if not prefixes <= allowed:
            raise ValueError(f"criteria of set {self.set} name other sets: {sorted(prefixes)}")
        for criterion in self.criteria:
            unknown = set(criterion.group_names()) - set(self.groups)
            if unknown:
                raise ValueError(f"{criterion.id} names unknown groups: {sorted(unknown)}")
        return self


class AcbScore(_Model):
    atc: str = Field(pattern=r"^[A-Z][0-9]{2}[A-Z]{2}[0-9]{2}$")
    substance: str = Field(min_length=1)
    score: Literal[1, 2, 3]


class AcbScale(_Model):
    format: Literal["medloop-acb/1"]
    scale: str
    version: str
    publication: str
    source: CriterionSource
    disclaimer: str
    threshold: PositiveInt
    reviewed_by: str | None
    reviewed_on: date | None
    scores: tuple[AcbScore, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_score_per_code(self) -> AcbScale:
        codes = [s.atc for s in self.scores]
        if len(codes) != len(set(codes)):
            raise ValueError("an ATC code has more than one ACB score")
        return self

    def by_atc(self) -> dict[str, AcbScore]:
        return {s.atc: s for s in self.scores}


class Indicators(_Model):
    format: Literal["medloop-nh-indicators/1"]
    title: str
    source: CriterionSource
    reviewed_by: str | None
    reviewed_on: date | None
    indicators: dict[Literal["psychotropics", "antipsychotics", "fall_risk"], AtcGroup]

    @field_validator("indicators")
    @classmethod
    def _all_three(cls, found: dict[str, AtcGroup]) -> dict[str, AtcGroup]:
        if set(found) != {"psychotropics", "antipsychotics", "fall_risk"}:
            raise ValueError("the indicators are psychotropics, antipsychotics and fall_risk")
        return found


class ReviewCriteria(_Model):
    """Everything a review evaluates (the renal rules come from the dose-limit file)."""

    sets: tuple[CriteriaSet, ...]
    acb: AcbScale
    indicators: Indicators

    def criterion(self, criterion_id: str) -> Criterion:
        for criteria_set in self.sets:
            for criterion in criteria_set.criteria:
                if criterion.id == criterion_id:
                    return criterion
        raise KeyError(criterion_id)

    def summary_in(self, criterion_id: str, lang: str) -> str | None:
        """The criterion's summary in ``lang`` (``nb`` or ``en``), or ``None`` for a criterion
        not in these files (the ``RENAL:`` findings, whose summary the engine writes)."""
        try:
            criterion = self.criterion(criterion_id)
        except KeyError:
            return None
        return criterion.summary_nb if lang == "nb" else criterion.summary


def _read(name: str, folder: Path | None) -> Any:
    if folder is None:
        text = resources.files("interactions").joinpath(f"rules/{name}").read_text("utf-8")
    else:
        text = (folder / name).read_text("utf-8")
    return json.loads(text)


def load_review_criteria(folder: Path | None = None) -> ReviewCriteria:
    """The criteria files in ``folder``, or the ones shipped in the package."""
    return ReviewCriteria(
        sets=tuple(CriteriaSet.model_validate(_read(name, folder)) for name in CRITERIA_FILES),
        acb=AcbScale.model_validate(_read("review_acb.json", folder)),
        indicators=Indicators.model_validate(_read("review_nh_indicators.json", folder)),
    )


@cache
def shipped_review_criteria() -> ReviewCriteria:
    """The shipped criteria, read and validated once per process."""
    return load_review_criteria()
