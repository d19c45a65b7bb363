"""Units of amount: which unit strings we understand and the only conversions we allow.

Conversions happen within one dimension (mass: g/mg/mcg; volume: l/ml; international units;
units; mmol; release rates of patches: mg/h, mcg/h). Nothing converts between dimensions: IU
(``IE``) is never turned into a mass.
Dose-form nouns ("tablett", "kapsel", "dose" …) are counts of the product's own unit; each noun is
its own unit, so 2 "tabletter" are 2 "tablett" but never 2 "kapsel".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Dimension(StrEnum):
    MASS = "mass"
    VOLUME = "volume"
    INTERNATIONAL_UNIT = "international-unit"
    UNIT = "unit"
    AMOUNT_OF_SUBSTANCE = "amount-of-substance"
    MASS_RATE = "mass-rate"
    COUNT = "count"


@dataclass(frozen=True, slots=True)
class UnitInfo:
    """A recognised unit: its dimension, canonical symbol and factor to that symbol."""

    dimension: Dimension
    canonical: str
    factor: float


_MEASURED: dict[str, UnitInfo] = {}


def _measured(dimension: Dimension, canonical: str, factor: float, *spellings: str) -> None:
    for spelling in spellings:
        _MEASURED[spelling] = UnitInfo(dimension, canonical, factor)


_measured(Dimension.MASS, "mg", 1_000_000.0, "kg")
_measured(Dimension.MASS, "mg", 1000.0, "g", "gram")
_measured(Dimension.MASS, "mg", 1.0, "mg", "milligram")
_measured(Dimension.MASS, "mg", 0.001, "mcg", "µg", "μg", "ug", "mikrog", "mikrogram")
_measured(Dimension.MASS, "mg", 0.000001, "ng", "nanogram")
_measured(Dimension.VOLUME, "ml", 1000.0, "l", "liter")
_measured(Dimension.VOLUME, "ml", 1.0, "ml", "milliliter")
_measured(Dimension.INTERNATIONAL_UNIT, "IU", 1.0, "ie", "iu")
_measured(Dimension.INTERNATIONAL_UNIT, "IU", 1000.0, "kie", "kiu")
_measured(Dimension.INTERNATIONAL_UNIT, "IU", 1_000_000.0, "mie", "miu", "mill ie", "mill iu")
_measured(Dimension.UNIT, "U", 1.0, "e", "u", "enhet", "enheter")
_measured(Dimension.AMOUNT_OF_SUBSTANCE, "mmol", 1.0, "mmol")
# Release rates of transdermal patches (FEST: "12 mikrog" per "1 time", "25 mikrog" per "24 timer").
_measured(Dimension.MASS_RATE, "mg/h", 1.0, "mg/h", "mg/time")
_measured(
    Dimension.MASS_RATE, "mg/h", 0.001, "mcg/h", "µg/h", "μg/h", "ug/h", "mikrog/time", "mikrog/h"
)

# Time units of strength denominators (a patch's release per time), in hours.
HOURS_PER_TIME_UNIT = {
    "min": 1 / 60,
    "minutt": 1 / 60,
    "minutter": 1 / 60,
    "h": 1.0,
    "t": 1.0,
    "time": 1.0,
    "timer": 1.0,
    "d": 24.0,
    "døgn": 24.0,
    "dag": 24.0,
    "dager": 24.0,
    "døgnet": 24.0,
}

# Dose-form nouns from FEST code system 7480 (EnhetDosering): singular first, then plurals.
_NOUN_FORMS = (
    ("ampulle", "ampuller"),
    ("applikasjon", "applikasjoner"),
    ("brusetablett", "brusetabletter"),
    ("dose", "doser"),
    ("dråpe", "dråper"),
    ("hetteglass",),
    ("inhalasjon", "inhalasjoner"),
    ("kapsel", "kapsler"),
    ("klyster",),
    ("munnspray",),
    ("pastill", "pastiller"),
    ("penn", "penner"),
    ("plaster", "plastre"),
    ("pose", "poser"),
    ("pust", "puster"),
    ("sprut",),
    ("sprøyte", "sprøyter"),
    ("stikkpille", "stikkpiller"),
    ("stk", "stykk"),
    ("sugetablett", "sugetabletter"),
    ("tablett", "tabletter"),
    ("vagitorie", "vagitorier"),
)
_COUNT_NOUNS = {spelling: forms[0] for forms in _NOUN_FORMS for spelling in forms}


def unit_info(unit: str) -> UnitInfo | None:
    """What ``unit`` means, or ``None`` when we do not recognise it."""
    key = unit.strip().lower()
    if key in _MEASURED:
        return _MEASURED[key]
    if key in _COUNT_NOUNS:
        return UnitInfo(Dimension.COUNT, _COUNT_NOUNS[key], 1.0)
    return None


@dataclass(frozen=True, slots=True)
class Amount:
    """A value in a canonical unit (``mg``, ``ml``, ``IU``, ``U``, ``mmol`` or a dose-form noun)."""

    value: float
    unit: str


class UnitError(ValueError):
    """A unit we do not recognise, or two units that cannot be compared or converted."""


def canonical(value: float, unit: str) -> Amount:
    """``value unit`` expressed in its canonical unit (``0.5 g`` → ``500 mg``)."""
    info = unit_info(unit)
    if info is None:
        raise UnitError(f"unknown unit {unit!r}")
    return Amount(value * info.factor, info.canonical)
