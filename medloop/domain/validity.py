"""How long a prescription may be dispensed: ISO 8601 durations and the validity rules.

Rules, first match wins (the policy is data, so a rule that turns out different is a
configuration change):

1. antibiotics (ATC J01): 10 days, or the default year when reimbursed (``blå resept``);
2. hormonal contraceptives (ATC G03A): 3 years;
3. the product's own validity from FEST (``Reseptgyldighet/Varighet``; when it lists several,
   e.g. per sex, the shortest, so validity is never overstated);
4. one year.

Statutory ATC rules come before the catalogue value because FEST states ``P1Y`` for most products,
contraceptives included. A prescription is valid from its issue date through its expiry date
(``Utloper``), inclusive: issued 2019-07-17 with one year, it expires 2020-07-16, as in the
official M1 example.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Sequence
from datetime import date, timedelta

from pydantic import Field, model_validator

from interactions import atc
from interactions.values import Count
from medloop.domain._model import Frozen
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.errors import InvalidValue

# -- errors ------------------------------------------------------------------------------------


class InvalidDuration(InvalidValue):
    code = "invalid-duration"


_DURATION = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?")


class IsoDuration(Frozen):
    """A whole-day ISO 8601 duration (``P1Y``, ``P10D``, ``P3Y``, ``P6M``, ``P2W``)."""

    years: Count = 0
    months: Count = 0
    weeks: Count = 0
    days: Count = 0

    @model_validator(mode="after")
    def _is_not_zero(self) -> IsoDuration:
        if not (self.years or self.months or self.weeks or self.days):
            raise InvalidDuration("a validity duration is longer than zero")
        return self

    @classmethod
    def parse(cls, text: str) -> IsoDuration:
        if cls is IsoDuration:  # a frozen value: one instance per text (issue #20)
            return _parsed(text)
        return cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> IsoDuration:
        match = _DURATION.fullmatch(text.strip().upper())
        parts = () if match is None else tuple(int(part or 0) for part in match.groups())
        if not any(parts):
            raise InvalidDuration(
                f"{text!r} is not a positive whole-day ISO 8601 duration", duration=text
            )
        years, months, weeks, days = parts
        return cls(years=years, months=months, weeks=weeks, days=days)

    def after(self, start: date) -> date:
        """``start`` plus this duration; a day missing in the target month becomes its last."""
        months = start.month - 1 + self.months + 12 * self.years
        year, month = start.year + months // 12, months % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        return date(year, month, day) + timedelta(weeks=self.weeks, days=self.days)

    def __str__(self) -> str:
        parts = zip((self.years, self.months, self.weeks, self.days), "YMWD", strict=True)
        return "P" + "".join(f"{n}{unit}" for n, unit in parts if n)


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> IsoDuration:
    """``IsoDuration.parse(text)``, kept: every prescription parses its product's validity."""
    return IsoDuration._parse(text)


def expiry_date(issued: date, duration: IsoDuration) -> date:
    """The last day a prescription issued on ``issued`` with ``duration`` may be dispensed."""
    return duration.after(issued) - timedelta(days=1)


class AtcValidityRule(Frozen):
    """Validity for every drug under ``atc`` (any level), and when reimbursed if different."""

    atc: str = Field(min_length=1)
    duration: IsoDuration
    when_reimbursed: IsoDuration | None = None


class ValidityPolicy(Frozen):
    default: IsoDuration = IsoDuration(years=1)
    atc_rules: tuple[AtcValidityRule, ...] = (
        AtcValidityRule(
            atc="J01", duration=IsoDuration(days=10), when_reimbursed=IsoDuration(years=1)
        ),
        AtcValidityRule(atc="G03A", duration=IsoDuration(years=3)),
    )


DEFAULT_VALIDITY = ValidityPolicy()


class Validity(Frozen):
    """The longest validity a prescription may have, and which rule gave it (``atc:J01``,
    ``atc:J01:reimbursed``, ``catalogue`` or ``default``)."""

    duration: IsoDuration
    basis: str

    def expires(self, issued: date) -> date:
        duration = self.duration
        if type(duration) is not IsoDuration:  # a subclass may count otherwise
            return expiry_date(issued, duration)
        return _expiry(
            type(issued), issued, duration.years, duration.months, duration.weeks, duration.days
        )


@functools.lru_cache(maxsize=4096)
def _expiry(kind: type, issued: date, years: int, months: int, weeks: int, days: int) -> date:
    """``expiry_date(issued, IsoDuration(...))`` by the duration's parts, kept: every
    prescription asks, and a day's prescriptions share a few durations (issue #20). ``kind``
    keeps the key of a ``date`` subclass apart."""
    duration = IsoDuration.model_construct(years=years, months=months, weeks=weeks, days=days)
    return expiry_date(issued, duration)


def max_validity(
    drug: CatalogueDrug,
    *,
    reimbursed: bool,
    product_validity: Sequence[str] = (),
    issued: date,
    policy: ValidityPolicy = DEFAULT_VALIDITY,
) -> Validity:
    """The validity rule that applies to prescribing ``drug`` on ``issued``.

    ``product_validity`` is the prescribed product's ``Product.prescription_validity`` from the
    catalogue (ISO durations); ``issued`` decides which of several is shortest.
    """
    if policy is DEFAULT_VALIDITY:
        return _default_max_validity(
            tuple(drug.resolved.atc_codes), reimbursed, tuple(product_validity), issued
        )
    return _max_validity(drug.resolved.atc_codes, reimbursed, product_validity, issued, policy)


@functools.lru_cache(maxsize=4096)
def _default_max_validity(
    atc_codes: tuple[str, ...], reimbursed: bool, product_validity: tuple[str, ...], issued: date
) -> Validity:
    """``max_validity`` under ``DEFAULT_VALIDITY``, kept: it depends on these values alone
    (a frozen ``Validity``), and every prescription asks for it (issue #20)."""
    return _max_validity(atc_codes, reimbursed, product_validity, issued, DEFAULT_VALIDITY)


def _max_validity(
    atc_codes: Sequence[str],
    reimbursed: bool,
    product_validity: Sequence[str],
    issued: date,
    policy: ValidityPolicy,
) -> Validity:
    codes = [c for c in (atc.normalise(code) for code in atc_codes) if c]
    for rule in policy.atc_rules:
        group = atc.normalise(rule.atc)
        if group is not None and any(atc.covers(group, code) for code in codes):
            if reimbursed and rule.when_reimbursed is not None:
                return Validity(duration=rule.when_reimbursed, basis=f"atc:{group}:reimbursed")
            return Validity(duration=rule.duration, basis=f"atc:{group}")
    if product_validity:
        durations = [IsoDuration.parse(text) for text in product_validity]
        shortest = min(durations, key=lambda d: d.after(issued))
        return Validity(duration=shortest, basis="catalogue")
    return Validity(duration=policy.default, basis="default")
