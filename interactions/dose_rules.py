"""The dose-limit rule file: its format, validation and loading.

FEST delivers no maximum doses (fest-format §8), so the limits are curated here, one rule per
substance and administration route, each with the public source it was taken from. The shipped
file is ``interactions/rules/dose_limits.json``; a rule reads::

    {"id": "paracetamol-oral", "substance": "paracetamol", "atc": ["N02BE01"], "route": "53",
     "max_single": ["1 g"], "max_daily": ["4 g"], "max_weekly": [], "schedule": "daily",
     "source": {"citation": "SPC … pkt. 4.2", "url": "https://…"}, "note": null}

Limits are lists of ``"<value> <unit>"`` or, per kilogram body weight, ``"<value> <unit>/kg"``
(all of them apply; a single string is read as a one-item list); the units are
those of ``interactions.units`` (mass, IU, E, mmol). ``route`` is a FEST administration-route code
(code system 7477) named in the file's ``routes`` table. ``schedule: "weekly"`` marks substances
given once a week, which are flagged when dosed on more days.
"""

from __future__ import annotations

import json
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator, model_validator

from interactions import atc
from interactions.units import Amount, Dimension, canonical, unit_info

Measure = Literal["single", "daily", "weekly"]


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
            raise ValueError(f"a limit needs a unit of mass, IU, E or mmol, not {unit!r}")
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


class Source(_Model):
    """Where a limit comes from: a citation a pharmacist can look up, and a link if public."""

    citation: str = Field(min_length=1)
    url: str | None = None


class DoseRule(_Model):
    """Adult maximum doses of one substance by one route."""

    id: str = Field(min_length=1)
    substance: str
    atc: tuple[str, ...] = Field(min_length=1)
    route: str
    max_single: tuple[Limit, ...] = ()
    max_daily: tuple[Limit, ...] = ()
    max_weekly: tuple[Limit, ...] = ()
    schedule: Literal["daily", "weekly"] = "daily"
    source: Source
    note: str | None = None

    @field_validator("max_single", "max_daily", "max_weekly", mode="before")
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

    def limits(self, measure: Measure) -> tuple[Limit, ...]:
        by_measure = {"single": self.max_single, "daily": self.max_daily, "weekly": self.max_weekly}
        return by_measure[measure]

    @model_validator(mode="after")
    def _limits_something(self) -> DoseRule:
        if not (self.max_single or self.max_daily or self.max_weekly):
            raise ValueError(f"rule {self.id} sets no limit")
        return self


class DoseRuleSet(_Model):
    """A whole rule file, checked for unique ids and named routes."""

    format: Literal["medloop-dose-limits/1"]
    version: str
    population: str
    disclaimer: str
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
