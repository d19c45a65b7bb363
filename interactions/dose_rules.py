"""The dose-limit rule file: its format, validation and loading.

FEST delivers no maximum doses (../shared/docs/fest-format.md §8), so the limits are curated
here, one rule per substance, route and patient group, each citing the document it was taken
from. The shipped file is ``interactions/rules/dose_limits.json`` (format
``medloop-dose-limits/2``); a rule reads::

    {"id": "citalopram-oral-65", "substance": "citalopram", "atc": ["N06AB04"], "route": "53",
     "when": {"age_min": 65}, "max_daily": ["20 mg"],
     "amount_of": "citalopram (base)", "convert_from": {"citalopramhydrobromid": 0.8003},
     "source": {"product": "…", "document": "SmPC (preparatomtale)", "section": "4.2 …",
                "url": "https://…", "located": "document", "citation": "…"},
     "note": "…", "reviewed_by": null, "reviewed_on": null}

Limits are lists of ``"<value> <unit>"`` or, per kilogram body weight, ``"<value> <unit>/kg"``
(all of them apply; a single string is read as a one-item list); the units are those of
``interactions.units`` (mass, IU, E, mmol, release rates such as ``mcg/h``). ``route`` is a FEST
administration-route code (code system 7477) named in the file's ``routes`` table. Besides
``max_single``/``max_daily``/``max_weekly`` a rule may set ``max_course`` (per course of an entry
with use "course"), ``regimens`` (the dose must fit one), ``contraindicated`` (with ``when``),
``max_days_per_week`` (``schedule: "weekly"`` is 1), ``max_treatment_days`` and
``min_days_between_courses``. ``when`` limits a rule to the patients a ``Condition`` describes
(age, weight band, kidney function, hepatic risk) or to the entries whose indication starts with
one of the listed ICPC-2 codes. ``reviewed_by``/``reviewed_on`` must be present and stay ``null``
until a clinical pharmacist signs the rule.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from interactions import atc
from interactions.units import Amount, Dimension, canonical, unit_info

Measure = Literal["single", "daily", "weekly", "course"]
_LIMIT_FIELDS = {
    "single": "max_single",
    "daily": "max_daily",
    "weekly": "max_weekly",
    "course": "max_course",
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Limit(_Model):
    """One maximum, absolute or per kg body weight; written ``"4 g"`` or ``"60 mg/kg"``."""

    value: PositiveFloat
    unit: str
    per_kg: bool = False

    @model_validator(mode="before")
    @classmethod
    def _parse_text(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        value, _, unit = data.strip().partition(" ")
        per_kg = unit.endswith("/kg")
        return {"value": value, "unit": unit.removesuffix("/kg"), "per_kg": per_kg}

    @field_validator("unit")
    @classmethod
    def _measured_unit(cls, unit: str) -> str:
        info = unit_info(unit)
        if info is None or info.dimension is Dimension.COUNT:
            raise ValueError(
                f"a limit needs a unit of mass, IU, E, mmol or a release rate, not {unit!r}"
            )
        return unit

    def amount(self, weight_kg: float | None) -> Amount | None:
        """The limit for this patient in canonical units; ``None`` when it needs an unknown
        weight."""
        limit = canonical(self.value, self.unit)
        if not self.per_kg:
            return limit
        if weight_kg is None:
            return None
        return Amount(limit.value * weight_kg, limit.unit)

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit}{'/kg' if self.per_kg else ''}"


_BARE_PATHS = {"", "/", "/index.html", "/no", "/en", "/nb"}
_SEARCH_SEGMENTS = {"sok", "søk", "internsok", "search", "sok.aspx", "search.aspx"}
_SEARCH_QUERY_KEYS = {"sokord", "q", "query", "search", "searchterm", "term"}


def is_search_url(url: str) -> bool:
    """Whether ``url`` only searches for a product (Felleskatalogen's ``/medisin/sok?sokord=``,
    a ``q=`` query) instead of opening a document."""
    parsed = urlsplit(url)
    segments = {segment.lower() for segment in parsed.path.split("/") if segment}
    keys = {pair.split("=", 1)[0].lower() for pair in parsed.query.split("&") if pair}
    return bool(segments & _SEARCH_SEGMENTS or keys & _SEARCH_QUERY_KEYS)


class Source(_Model):
    """The document a limit was taken from: a named product's SmPC (or label, or an EMA
    referral) with the section, and a URL or document id that leads to that very document —
    never a site's home page."""

    product: str = Field(min_length=1)
    document: str = Field(min_length=1)
    section: str = Field(min_length=1)
    url: str = Field(min_length=1)
    located: Literal["document", "search"]
    """``document``: the URL opens the cited document; ``search``: only a search for the product
    (to be replaced by the document's own address when a pharmacist reviews the rule)."""
    citation: str = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _leads_to_the_document(cls, url: str) -> str:
        parsed = urlsplit(url)
        if parsed.scheme != "https" or not parsed.netloc:
            raise ValueError(f"a source URL is an https address, not {url!r}")
        if parsed.path.rstrip("/") in _BARE_PATHS and not parsed.query:
            raise ValueError(f"{url!r} is a home page, not the document the limit comes from")
        return url

    @field_validator("section")
    @classmethod
    def _names_a_section(cls, section: str) -> str:
        if not section.strip():
            raise ValueError("a source names the section the limit was read in")
        return section

    @model_validator(mode="after")
    def _document_is_not_a_search(self) -> Source:
        if self.located == "document" and is_search_url(self.url):
            raise ValueError(
                f"{self.url!r} is a product search, not a document: cite the document's own "
                "address or set located to 'search'"
            )
        return self


Icpc2Code = Annotated[str, StringConstraints(pattern=r"^[A-Z]\d\d$")]
"""An ICPC-2 code as a rule names it: a chapter letter and two digits (``L88``)."""


class Condition(_Model):
    """Who a rule applies to. Bounds follow SmPC wording: ``age_min`` and ``renal_min`` are
    inclusive ("from 80 years", "CrCl 30-59"), ``weight_kg_above`` and ``renal_below`` exclusive
    ("over 33 kg", "CrCl below 30"), ``weight_kg_max`` inclusive ("at most 50 kg").
    ``renal`` is eGFR or creatinine clearance, whichever was measured (both in ml/min);
    ``indication_icpc2`` limits the rule to entries whose indication starts with one of the
    codes (judged per entry, not per patient)."""

    age_min: int | None = Field(default=None, ge=0)
    weight_kg_above: float | None = Field(default=None, ge=0)
    weight_kg_max: PositiveFloat | None = None
    renal_min: float | None = Field(default=None, ge=0)
    renal_below: PositiveFloat | None = None
    hepatic_risk: Literal[True] | None = None
    indication_icpc2: tuple[Icpc2Code, ...] | None = Field(default=None, min_length=1)
    """The rule applies to a list entry whose indication starts with one of these ICPC-2 codes
    (``L88 Revmatoid artritt``); unlike the other facts this one belongs to the entry, not to
    the patient."""

    @model_validator(mode="after")
    def _says_something(self) -> Condition:
        if not self.model_dump(exclude_none=True):
            raise ValueError("a condition names at least one patient fact")
        return self

    @property
    def facts(self) -> tuple[str, ...]:
        """The patient facts this condition reads."""
        found = []
        if self.age_min is not None:
            found.append("age")
        if self.weight_kg_above is not None or self.weight_kg_max is not None:
            found.append("weight")
        if self.renal_min is not None or self.renal_below is not None:
            found.append("renal function")
        if self.hepatic_risk is not None:
            found.append("hepatic risk factors")
        if self.indication_icpc2 is not None:
            found.append("indication")
        return tuple(found)

    def __str__(self) -> str:
        parts = []
        if self.age_min is not None:
            parts.append(f"age {self.age_min} years or older")
        if self.weight_kg_above is not None and self.weight_kg_max is not None:
            parts.append(f"weight over {self.weight_kg_above:g} kg up to {self.weight_kg_max:g} kg")
        elif self.weight_kg_above is not None:
            parts.append(f"weight over {self.weight_kg_above:g} kg")
        elif self.weight_kg_max is not None:
            parts.append(f"weight {self.weight_kg_max:g} kg or less")
        if self.renal_min is not None and self.renal_below is not None:
            parts.append(f"eGFR/CrCl {self.renal_min:g} to below {self.renal_below:g} ml/min")
        elif self.renal_min is not None:
            parts.append(f"eGFR/CrCl {self.renal_min:g} ml/min or more")
        elif self.renal_below is not None:
            parts.append(f"eGFR/CrCl below {self.renal_below:g} ml/min")
        if self.hepatic_risk:
            parts.append("risk factors for liver injury")
        if self.indication_icpc2 is not None:
            parts.append(f"indication ICPC-2 {' or '.join(self.indication_icpc2)}")
        return " and ".join(parts)


class Regimen(_Model):
    """One accepted dosing regimen of a rule with ``regimens``: a dose is within the rule when
    it stays within at least one regimen (dalteparin once daily for VTE, or every 12 hours in
    unstable angina)."""

    label: str = Field(min_length=1)
    max_single: tuple[Limit, ...] = ()
    max_daily: tuple[Limit, ...] = ()

    @field_validator("max_single", "max_daily", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | dict) else value

    @model_validator(mode="after")
    def _limits_something(self) -> Regimen:
        if not (self.max_single or self.max_daily):
            raise ValueError(f"regimen {self.label!r} sets no limit")
        return self


class Conversion(_Model):
    """From the amount of a catalogue substance (a salt) to the rule's basis: ``factor`` times
    the catalogue amount, in ``unit`` when the basis is measured otherwise (lithium in mmol)."""

    factor: PositiveFloat
    unit: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, int | float):
            return {"factor": data}
        if isinstance(data, str):
            value, _, unit = data.strip().partition(" ")
            return {"factor": value, "unit": unit.split("/")[0] or None}
        return data


class DoseRule(_Model):
    """Maximum doses of one substance by one route, for every adult or (with ``when``) for the
    patients a condition describes."""

    id: str = Field(min_length=1)
    substance: str
    atc: tuple[str, ...] = Field(min_length=1)
    route: str
    when: Condition | None = None
    max_single: tuple[Limit, ...] = ()
    max_daily: tuple[Limit, ...] = ()
    max_weekly: tuple[Limit, ...] = ()
    max_course: tuple[Limit, ...] = ()
    regimens: tuple[Regimen, ...] = ()
    contraindicated: bool = False
    max_days_per_week: int | None = Field(default=None, ge=1, le=7)
    max_treatment_days: PositiveInt | None = None
    min_days_between_courses: PositiveInt | None = None
    schedule: Literal["daily", "weekly"] = "daily"
    amount_of: str = Field(min_length=1)
    convert_from: dict[str, Conversion] = Field(default_factory=dict)
    source: Source
    note: str | None = None
    reviewed_by: str | None
    reviewed_on: date | None

    @field_validator("max_single", "max_daily", "max_weekly", "max_course", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | dict) else value

    @field_validator("atc")
    @classmethod
    def _substance_codes(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        normalised = tuple(atc.normalise(code) for code in codes)
        if any(code is None or not atc.is_substance_code(code) for code in normalised):
            raise ValueError(f"rules match ATC level-5 codes, got {codes}")
        return tuple(code for code in normalised if code is not None)

    @field_validator("convert_from")
    @classmethod
    def _lower_case_names(cls, found: dict[str, Conversion]) -> dict[str, Conversion]:
        return {name.strip().lower(): conversion for name, conversion in found.items()}

    def limits(self, measure: Measure) -> tuple[Limit, ...]:
        return getattr(self, _LIMIT_FIELDS[measure])  # type: ignore[no-any-return]

    @property
    def days_per_week(self) -> int | None:
        """The most days a week the substance may be given (1 for once-weekly drugs)."""
        if self.max_days_per_week is not None:
            return self.max_days_per_week
        return 1 if self.schedule == "weekly" else None

    @model_validator(mode="after")
    def _limits_something(self) -> DoseRule:
        checks = (
            self.max_single,
            self.max_daily,
            self.max_weekly,
            self.max_course,
            self.regimens,
            self.contraindicated,
            self.max_days_per_week,
            self.max_treatment_days,
            self.min_days_between_courses,
            self.schedule == "weekly",
        )
        if not any(checks):
            raise ValueError(f"rule {self.id} sets no limit")
        if self.contraindicated and self.when is None:
            raise ValueError(f"rule {self.id}: a contraindication needs a condition ('when')")
        return self


class DoseRuleSet(_Model):
    """A whole rule file, checked for unique ids and named routes."""

    format: Literal["medloop-dose-limits/2"]
    version: str
    population: str
    disclaimer: str
    renal_max_age_days: PositiveInt
    routes: dict[str, str]
    rules: tuple[DoseRule, ...]

    @model_validator(mode="after")
    def _consistent(self) -> DoseRuleSet:
        ids = [rule.id for rule in self.rules]
        if len(ids) != len(set(ids)):
            raise ValueError("rule ids must be unique")
        unknown = {rule.route for rule in self.rules} - set(self.routes)
        if unknown:
            raise ValueError(f"routes used but not named in 'routes': {sorted(unknown)}")
        return self

    def by_atc(self) -> dict[str, tuple[DoseRule, ...]]:
        """Rules indexed by their ATC level-5 codes."""
        index: defaultdict[str, list[DoseRule]] = defaultdict(list)
        for rule in self.rules:
            for code in rule.atc:
                index[code].append(rule)
        return {code: tuple(rules) for code, rules in index.items()}


def load_dose_rules(path: Path | None = None) -> DoseRuleSet:
    """The rule file at ``path``, or the one shipped in the package."""
    if path is None:
        text = resources.files("interactions").joinpath("rules/dose_limits.json").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return DoseRuleSet.model_validate(json.loads(text))
