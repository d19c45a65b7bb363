"""The one set of constrained value types every input model is built from (the API's request
bodies, the domain's values, ``medloop check``'s request, the structured dosage).

Whatever these accept is stored and loaded again on SQLite and PostgreSQL alike:

- numbers are finite (no NaN, no infinities: JSON has no spelling for them, and PostgreSQL's
  ``jsonb`` none either, so a stored ``Infinity`` would come back as ``null``), strictly typed
  (``true`` and ``"1"`` are not numbers) and within clinical and technical bounds;
- integers fit in 64 bits;
- every string has a maximum length (``MODEL_CONFIG``'s ``str_max_length`` for every string of
  a model, narrower per field where the domain knows better); a string holding a lone
  surrogate is refused by the same check (it cannot be encoded as UTF-8); a NUL character is
  refused by the boundaries that parse input (``interactions.strict_json``), and by the
  ``Text`` types here.

``tests/cli/test_values.py`` walks every request and domain model and fails on a number or string
field without these bounds, so a new field cannot bring the class of bug back.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from operator import attrgetter
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, Strict, StringConstraints

MAX_TEXT = 10_000
"""The longest string of any model (free text: indications, notes, reasons, dosage texts)."""

MAX_REASON = 2_000
MAX_NAME = 200
MAX_CODE = 100

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class StrEnum(enum.StrEnum):
    """``enum.StrEnum`` whose members' ``value`` is read by a property whose getter is C
    (``attrgetter("_value_")``, what the enum's own ``value`` returns), instead of the enum's
    descriptor, which is two Python calls: pydantic reads ``value`` of every member it dumps as
    JSON, a dozen times a prescribe (issue #20). Members, their values, names, order, look-up
    and JSON schema are the enum's own."""

    value = property(attrgetter("_value_"))  # type: ignore[assignment]


MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid", str_max_length=MAX_TEXT, allow_inf_nan=False)
"""The configuration of every input model: immutable, no unknown fields, every string at
most ``MAX_TEXT`` characters (and valid Unicode), every float finite."""

_NO_NUL = r"^[^\x00]*$"


def text(max_length: int = MAX_TEXT, min_length: int = 0) -> object:
    """A string of at most ``max_length`` characters, without NUL (``Annotated`` metadata)."""
    return StringConstraints(min_length=min_length, max_length=max_length, pattern=_NO_NUL)


Text = Annotated[str, text()]
Reason = Annotated[str, text(MAX_REASON, 1)]
Name = Annotated[str, text(MAX_NAME, 1)]
Code = Annotated[str, text(MAX_CODE, 1)]

# -- numbers -------------------------------------------------------------------------------------

Int64 = Annotated[int, Strict(), Field(ge=INT64_MIN, le=INT64_MAX)]
Count = Annotated[int, Strict(), Field(ge=0, le=INT64_MAX)]
"""A count or version number (0 … 2^63-1)."""
PositiveCount = Annotated[int, Strict(), Field(ge=1, le=INT64_MAX)]

MAX_DOSE = 1_000_000.0
"""The largest amount in one dose or limit, in any unit (1 000 000 IU of vitamin D is the
largest plausible single amount; anything beyond is a typing error, not a dose)."""

DoseAmount = Annotated[float, Strict(), Field(gt=0, le=MAX_DOSE, allow_inf_nan=False)]
"""The amount of a dose or dose limit (``Quantity.value``), strictly positive."""

AmountGiven = Annotated[float, Strict(), Field(ge=0, le=MAX_DOSE, allow_inf_nan=False)]
"""An amount that may be zero (totals, remaining amounts)."""

MAX_PACKAGES = 10_000.0
Packages = Annotated[float, Strict(), Field(gt=0, le=MAX_PACKAGES, allow_inf_nan=False)]
"""A number of packages prescribed or dispensed (fractions allowed for broken packs)."""

MAX_PERIOD = 366.0 * 24 * 60
PeriodValue = Annotated[float, Strict(), Field(gt=0, le=MAX_PERIOD, allow_inf_nan=False)]
"""The value of a dosing interval or period (in its unit; at most a leap year in minutes)."""

WeightKg = Annotated[float, Strict(), Field(gt=0, le=700, allow_inf_nan=False)]
"""A body weight in kilograms."""

Hours = Annotated[float, Strict(), Field(gt=0, le=24 * 366, allow_inf_nan=False)]
"""A number of hours (at most a year)."""

DayCount = Annotated[int, Strict(), Field(ge=1, le=3_660)]
"""A number of days (at most ten years), e.g. ``days_on``/``days_off`` of a dose pattern."""

SmallCount = Annotated[int, Strict(), Field(ge=0, le=1_000)]
"""A small count: repeats of a prescription, years/months/weeks of a validity."""

MAX_ITEMS = 1_000
"""The longest collection in any request (entries, lines, bags, doses …)."""

Total = Annotated[float, Strict(), Field(ge=0, le=1e15, allow_inf_nan=False)]
"""A computed total (amounts allowed, dispensed, remaining over all rounds)."""

LabValue = Annotated[float, Strict(), Field(gt=0, le=10_000, allow_inf_nan=False)]
"""A measured value such as eGFR or creatinine clearance."""

# -- dates and times -----------------------------------------------------------------------------

FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)
"""The range of every date and time input may name (birth dates of the oldest patients to the
end of any prescription's validity): far enough from ``date.min``/``date.max`` that a day or a
time zone more never overflows."""


def _moment_in_range(moment: datetime) -> datetime:
    if not FIRST_DAY.year <= moment.year <= LAST_DAY.year:
        raise ValueError(f"a time must be in the years {FIRST_DAY.year} to {LAST_DAY.year}")
    return moment


Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
"""A calendar day within ``FIRST_DAY`` … ``LAST_DAY``."""

Moment = Annotated[AwareDatetime, AfterValidator(_moment_in_range)]
"""A time with its offset, within the years of ``FIRST_DAY`` … ``LAST_DAY``."""

PeriodDays = Annotated[int, Strict(), Field(ge=1, le=366)]
"""The length in days of a period (a packing period, a planning window)."""
