"""The structured dosage as a form: the fields the prescribe and change-dosage forms post, read
into an ``interactions.dosage.Dosage`` (or the fields that are wrong, in words next to them), and
a dosage shown in a line of text. Translation only: what a dosage may be is the model's rule
(``Dosage``'s own validation) and the loop's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from interactions.dosage import AsNeededDose, Dosage, FixedDose, Period, Quantity, TimeOfDay, Use
from medloop.pages.i18n import N_

SLOTS: tuple[tuple[TimeOfDay, str], ...] = (
    (TimeOfDay.MORNING, N_("morning")),
    (TimeOfDay.FORENOON, N_("forenoon")),
    (TimeOfDay.MIDDAY, N_("midday")),
    (TimeOfDay.AFTERNOON, N_("afternoon")),
    (TimeOfDay.EVENING, N_("evening")),
    (TimeOfDay.NIGHT, N_("night")),
)
USES: tuple[tuple[Use, str], ...] = (
    (Use.REGULAR, N_("Regular use")),
    (Use.COURSE, N_("Course (with a stop date)")),
    (Use.AS_NEEDED, N_("As needed")),
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


@dataclass
class DosageForm:
    """What the form holds (to show it again) and, once read, the dosage or the errors by
    field name."""

    use: str = Use.REGULAR.value
    amount: str = "1"
    unit: str = "tablett"
    slots: tuple[str, ...] = (TimeOfDay.MORNING.value,)
    max_per_24h: str = ""
    min_interval_hours: str = ""
    text: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, dosage: Dosage | None) -> DosageForm:
        """The form filled in from an entry's dosage (to change it)."""
        if dosage is None:
            return cls()
        if dosage.as_needed:
            dose = dosage.as_needed[0]
            return cls(
                use=dosage.use.value,
                amount=_number(dose.amount.value),
                unit=dose.amount.unit,
                slots=(),
                max_per_24h="" if dose.max_per_24h is None else _number(dose.max_per_24h.value),
                min_interval_hours=""
                if dose.min_interval is None
                else _number(dose.min_interval.hours),
                text=dosage.text or "",
            )
        first = dosage.fixed[0] if dosage.fixed else None
        return cls(
            use=dosage.use.value,
            amount="1" if first is None else _number(first.amount.value),
            unit="tablett" if first is None else first.amount.unit,
            slots=tuple(d.time_of_day.value for d in dosage.fixed if d.time_of_day is not None),
            text=dosage.text or "",
        )

    @classmethod
    def posted(cls, form: Mapping[str, Any], getlist: Callable[[str], list[Any]]) -> DosageForm:
        return cls(
            use=str(form.get("use") or ""),
            amount=str(form.get("amount") or "").strip(),
            unit=str(form.get("unit") or "").strip(),
            slots=tuple(str(s) for s in getlist("slot")),
            max_per_24h=str(form.get("max_per_24h") or "").strip(),
            min_interval_hours=str(form.get("min_interval_hours") or "").strip(),
            text=str(form.get("dosage_text") or "").strip(),
        )

    def read(self, _: Callable[..., str]) -> Dosage | None:
        """The dosage, or ``None`` with ``errors`` filled in (in the reader's language)."""
        self.errors = {}
        try:
            use = Use(self.use)
        except ValueError:
            self.errors["use"] = _("Choose how the medicine is used.")
            return None
        amount = _parse(self.amount)
        if amount is None or amount <= 0:
            self.errors["amount"] = _("Write the dose as a number above 0, for example 1 or 0,5.")
        if not self.unit:
            self.errors["unit"] = _("Write the unit, for example tablett.")
        slots: list[TimeOfDay] = []
        for value in self.slots:
            try:
                slots.append(TimeOfDay(value))
            except ValueError:
                self.errors["slot"] = _("Choose the times of day from the list.")
        max_24h = _parse(self.max_per_24h) if self.max_per_24h else None
        if self.max_per_24h and (max_24h is None or max_24h <= 0):
            self.errors["max_per_24h"] = _("Write the maximum as a number above 0.")
        interval = _parse(self.min_interval_hours) if self.min_interval_hours else None
        if self.min_interval_hours and (interval is None or interval <= 0):
            self.errors["min_interval_hours"] = _("Write the hours as a number above 0.")
        if use is not Use.AS_NEEDED and not slots and "slot" not in self.errors:
            self.errors["slot"] = _("Choose at least one time of day.")
        if self.errors:
            return None
        assert amount is not None
        dose = Quantity(value=amount, unit=self.unit)
        try:
            if use is Use.AS_NEEDED:
                return Dosage(
                    use=use,
                    as_needed=(
                        AsNeededDose(
                            amount=dose,
                            max_per_24h=None
                            if max_24h is None
                            else Quantity(value=max_24h, unit=self.unit),
                            min_interval=None
                            if interval is None
                            else Period(value=interval, unit="hour"),
                        ),
                    ),
                    text=self.text or None,
                )
            return Dosage(
                use=use,
                fixed=tuple(FixedDose(amount=dose, time_of_day=s) for s in slots),
                text=self.text or None,
            )
        except ValidationError as error:
            fault = error.errors()[0]
            where = str(fault["loc"][-1]) if fault["loc"] else "amount"
            self.errors[where if where in _FIELDS else "amount"] = _(
                "This dosage is not possible: %(why)s", why=fault["msg"]
            )
            return None


_FIELDS = {"use", "amount", "unit", "slot", "max_per_24h", "min_interval_hours", "dosage_text"}


def dosage_text(
    dosage: Dosage | None, _: Callable[..., str], number: Callable[[float], str]
) -> str:
    """A dosage in one line: its own text when the prescriber wrote one, else made from its
    doses (``1 tablett morning, 1 tablett evening``)."""
    if dosage is None:
        return _("No structured dosage")
    if dosage.text:
        return dosage.text
    names = dict(SLOTS)
    parts = []
    for dose in dosage.fixed:
        when = (
            _(names[dose.time_of_day])
            if dose.time_of_day is not None
            else (dose.clock_time.strftime("%H:%M") if dose.clock_time else "")
        )
        parts.append(f"{number(dose.amount.value)} {dose.amount.unit} {when}".strip())
    for prn in dosage.as_needed:
        text = _(
            "%(amount)s %(unit)s as needed", amount=number(prn.amount.value), unit=prn.amount.unit
        )
        if prn.max_per_24h is not None:
            text += ", " + _("at most %(n)s per 24 h", n=number(prn.max_per_24h.value))
        if prn.min_interval is not None:
            text += ", " + _("at least %(n)s h apart", n=number(prn.min_interval.hours))
        parts.append(text)
    return ", ".join(parts) or _("No structured dosage")


def _parse(text: str) -> float | None:
    return float(text.replace(",", ".")) if _NUMBER.fullmatch(text) else None


def _number(value: float) -> str:
    return f"{value:g}".replace(".", ",")
