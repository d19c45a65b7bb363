"""Decision support's alerts in the reader's language.

``interactions`` writes each alert's one-line ``summary`` in English. The pages word it again
through the message catalogue from what the alert says in structure — its kind, severity, the
entries involved and its detail (substance, measure, amounts, FEST texts) — never by reading the
English sentence. With English selected the alert's own summary is shown as it is.

Some texts are carried over as they are, in the language of their source:
- FEST's own texts (an interaction's consequence, a notice's type and headline, a substitution
  group's remark) are Norwegian already (FEST is published in Norwegian by DMP);
- an allergy's label is what the list says;
- the reason a dose could not be checked is written by the dose rules in English: where its
  code has no sentence of its own here it is shown marked as English (``english``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from interactions import Alert
from interactions.alerts import (
    AllergyDetail,
    DoseDetail,
    DoseNotCheckedDetail,
    DuplicateDetail,
    InteractionDetail,
    NotAssessedDetail,
    NoticeDetail,
    SubstitutionRestrictionDetail,
)
from medloop.pages import i18n
from medloop.pages.i18n import N_

SEVERITY_WORDS = {
    "avoid": N_("avoid"),
    "precautions": N_("take precautions"),
    "info": N_("information"),
    "no-action": N_("no action needed"),
}
DOSE_MEASURES = {
    "single": N_("Single dose"),
    "daily": N_("Daily dose"),
    "weekly": N_("Weekly dose"),
    "course": N_("Course dose"),
}
UNITS = {"days": N_("days"), "day": N_("days")}
NOT_CHECKED_REASONS = {
    "no-dosage": N_("the entry has no dosage"),
    "route-unknown": N_("the route is not known"),
    "age-unknown": N_("the patient's age is needed"),
    "weight-unknown": N_("the patient's weight is needed"),
    "renal-function-unknown": N_(
        "the patient's kidney function (eGFR or creatinine clearance) is needed"
    ),
    "renal-function-outdated": N_(
        "the kidney function was measured too long ago; a new measurement is needed"
    ),
    "hepatic-risk-unknown": N_("whether the patient has risk factors for liver injury is needed"),
    "start-unknown": N_("the start date is needed"),
    "course-length-unknown": N_("the course's start and stop dates are needed"),
    "unit-incompatible": N_("the dose's unit cannot be converted to the limit's"),
    "indication-unknown": N_("the entry's indication is needed, as an ICPC-2 code at its start"),
}


@dataclass(frozen=True)
class AlertText:
    """The alert's line in the reader's language; ``english``: a part only available in
    English (shown marked as such), or ``None``."""

    summary: str
    english: str | None = None


def alert_text(
    alert: Alert | Mapping[str, Any], names: Mapping[Any, Any] | None, lang: str
) -> AlertText:
    """``alert`` (or its JSON, as a command's response carries it) worded in ``lang``;
    ``names``: the entries' names by entry id (a str or a UUID key; a value is a name or a list
    entry)."""
    if isinstance(alert, Mapping):  # as a command's response carries it (JSON)
        alert = Alert.model_validate(alert)
    if i18n.language_of(lang) == "en":
        return AlertText(alert.summary)
    _ = _translator(lang)
    named = ", ".join(_name(m, names, _) for m in alert.medications)
    both = " + ".join(_name(m, names, _) for m in alert.medications)
    detail = alert.detail
    number = _number(lang)
    if isinstance(detail, InteractionDetail):
        severity = _(SEVERITY_WORDS.get(alert.severity.value, alert.severity.value))
        return AlertText(_("Interaction, %(severity)s: %(names)s", severity=severity, names=both))
    if isinstance(detail, DuplicateDetail):
        same = {"same-substance", "same-substitution-group"} & set(detail.reasons)
        if same:
            return AlertText(_("Duplicate therapy (same substance): %(names)s", names=both))
        return AlertText(_("Duplicate therapy (same ATC group): %(names)s", names=both))
    if isinstance(detail, DoseDetail):
        return AlertText(_dose(detail, named, _, number))
    if isinstance(detail, DoseNotCheckedDetail):
        reason = NOT_CHECKED_REASONS.get(detail.reason_code)
        if reason is not None:
            return AlertText(
                _(
                    "Dose of %(substance)s not checked (%(names)s): %(reason)s",
                    substance=detail.substance,
                    names=named,
                    reason=_(reason),
                )
            )
        return AlertText(
            _(
                "Dose of %(substance)s not checked (%(names)s).",
                substance=detail.substance,
                names=named,
            ),
            english=detail.reason,
        )
    if isinstance(detail, AllergyDetail):
        allergen = detail.label or detail.allergen
        return AlertText(_("Allergy/CAVE %(allergen)s: %(names)s", allergen=allergen, names=named))
    if isinstance(detail, NoticeDetail):
        kind = detail.type_name or _("Notice")
        return AlertText(
            _(
                "%(kind)s: %(headline)s (%(names)s)",
                kind=kind,
                headline=detail.headline,
                names=named,
            )
        )
    if isinstance(detail, NotAssessedDetail):
        return AlertText(
            _(
                "Interactions not assessed for %(names)s (%(atc)s)",
                names=named,
                atc=detail.drug_atc,
            )
        )
    if isinstance(detail, SubstitutionRestrictionDetail):
        return AlertText(
            _(
                "Restricted substitution (%(remark)s): %(dispensed)s for %(prescribed)s",
                remark=detail.restriction or detail.group_code,
                dispensed=detail.dispensed,
                prescribed=detail.prescribed,
            )
        )
    return AlertText(alert.summary, english=None)  # pragma: no cover - every kind is above


def _dose(detail: DoseDetail, names: str, _: Callable[..., str], number: Callable) -> str:
    substance = detail.substance
    total = "?" if detail.amount is None else number(detail.amount)
    limit = number(detail.limit_amount)
    unit = _(UNITS[detail.unit]) if detail.unit in UNITS else detail.unit
    if detail.measure == "schedule":
        if detail.limit_amount == 1:
            return _(
                "%(substance)s is a once-weekly drug but is dosed on %(total)s days a week "
                "(%(names)s)",
                substance=substance,
                total=total,
                names=names,
            )
        return _(
            "%(substance)s may be given on %(limit)s days a week but is dosed on %(total)s days "
            "a week (%(names)s)",
            substance=substance,
            limit=limit,
            total=total,
            names=names,
        )
    if detail.measure == "contraindicated":
        return _("%(substance)s is contraindicated (%(names)s)", substance=substance, names=names)
    if detail.measure == "regimen":
        return _(
            "Dose of %(substance)s fits none of the accepted regimens (%(names)s)",
            substance=substance,
            names=names,
        )
    if detail.measure == "duration":
        if detail.amount is None:
            return _(
                "%(substance)s: at most %(limit)s days; no stop date (%(names)s)",
                substance=substance,
                limit=limit,
                names=names,
            )
        return _(
            "%(substance)s: at most %(limit)s days; %(total)s days prescribed (%(names)s)",
            substance=substance,
            limit=limit,
            total=total,
            names=names,
        )
    if detail.measure == "pause":
        return _(
            "New course of %(substance)s %(total)s days after the last; at least %(limit)s days "
            "between courses (%(names)s)",
            substance=substance,
            total=total,
            limit=limit,
            names=names,
        )
    measure = _(DOSE_MEASURES.get(detail.measure, N_("Dose")))
    return _(
        "%(measure)s of %(substance)s %(total)s %(unit)s exceeds the maximum %(limit)s %(unit)s "
        "(%(names)s)",
        measure=measure,
        substance=substance,
        total=total,
        unit=unit,
        limit=limit,
        names=names,
    )


def _name(medication: str, names: Mapping[Any, Any] | None, _: Callable[..., str]) -> str:
    found = None
    if names:
        found = names.get(medication)
        if found is None:
            try:
                found = names.get(UUID(medication))
            except ValueError:
                found = None
    if found is None:
        return _("a medicine")
    drug = getattr(found, "drug", None)
    return str(drug.name if drug is not None else found)


def _translator(lang: str) -> Callable[..., str]:
    from medloop.pages.web import translator

    return translator(lang)


def _number(lang: str) -> Callable[[float], str]:
    return lambda value: i18n.format_decimal(value, lang)
