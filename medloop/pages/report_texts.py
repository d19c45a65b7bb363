"""The report tables' descriptions as the pages show them: through the message catalogue (bokmål
by default), with the report's own figures filled in.

``medloop.reports.charts`` writes each table's description in English for the API, the CSV and
the SVG's ``<desc>``; the pages say the same in the reader's language. A description here is a
catalogue message with named values (``%(given)s``) taken from the report itself, so the two can
never state different figures. A table this module does not know keeps the English text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from medloop.pages.i18n import N_
from medloop.reports.pharmacy import PharmacyReport
from medloop.reports.prescriber import PrescriberReport
from medloop.reports.ward import WardReport

Report = WardReport | PrescriberReport | PharmacyReport

DESCRIPTIONS: dict[str, str] = {
    "doses-by-slot": N_(
        "How the ward's planned doses went at each time of day, %(first)s to %(last)s."
    ),
    "doses-by-day": N_(
        "Doses given on time and late, missed, and not given (refused, held or not given) per "
        "day, %(first)s to %(last)s."
    ),
    "not-given-reasons": N_(
        "Planned doses charted as refused, held or not given, by the reason charted."
    ),
    "scan": N_(
        "Doses given (%(given)s): pack scanned, skipped with a reason, or neither. Share "
        "scanned: %(share)s %%."
    ),
    "prn-by-week": N_(
        "As-needed doses charted as given, per current resident and ISO week (Monday); "
        "%(others)s dose(s) to residents discharged since are not shown by name."
    ),
    "psychotropics-by-class": N_(
        "Of %(residents)s current residents, %(with_any)s use at least one psychotropic and "
        "%(with_antipsychotic)s an antipsychotic (active list entries at the report's moment; "
        "classes by ATC, unreviewed)."
    ),
    "psychotropics-per-resident": N_("Each current resident's psychotropic list entries."),
    "reviews-due": N_(
        "Due on admission and a year after the latest review signed during the stay."
    ),
    "antibiotic-courses": N_(
        "Systemic antibiotic (J01) prescriptions issued per month; per 1 000 of %(basis)s "
        "(%(patients)s)."
    ),
    "narrow-spectrum-share": N_(
        "Per month, among antibiotic courses for respiratory tract infections (indication "
        "given) and among all antibiotic courses, in per cent."
    ),
    "override-rates": N_(
        "Alerts raised by my commands, the share I overrode, and those I heeded (the command "
        "refused for want of an override and never retried with one), most overridden first."
    ),
    "proposal-answers": N_(
        "Median hours from proposal to my decision per month (%(answered)s answered, "
        "%(open)s open)."
    ),
    "reconciliation-lines": N_("Lines of the packing reports reconciled per month, by class."),
    "deadline-and-urgent": N_(
        "Per month: list changes to multidose entries after a period's order deadline, and "
        "urgent packs ordered."
    ),
    "urgent-pack-reasons": N_("Urgent packs ordered in the period, by the reason given."),
}
BASES = {
    "list-size": N_("the list size given"),
    "patients-prescribed-for": N_("the patients prescribed for in the period"),
}


def _values(report: Report, gettext: Callable[[str], str]) -> dict[str, Any]:
    """The figures the descriptions name, from the report (numbers formatted by the page)."""
    if isinstance(report, WardReport):
        psych = report.psychotropics
        share = report.scan.share_scanned
        return {
            "first": report.period.first_day,
            "last": report.period.last_day,
            "given": report.scan.given,
            "share": None if share is None else round(100 * share, 1),
            "others": report.prn.other_residents_doses,
            "residents": psych.residents,
            "with_any": psych.with_any,
            "with_antipsychotic": psych.with_antipsychotic,
        }
    if isinstance(report, PrescriberReport):
        denominator = report.antibiotics.denominator
        return {
            "basis": gettext(BASES[denominator.basis]),
            "patients": denominator.patients,
            "answered": report.proposals.answered,
            "open": report.proposals.open,
        }
    return {}


def descriptions(
    report: Report,
    tables: Iterable[str],
    gettext: Callable[..., str],
    format_value: Callable[[Any], str],
) -> Mapping[str, str]:
    """The description of each of ``tables`` (ids) this module knows, in the reader's language
    (``gettext`` is the page's ``_``; ``format_value`` shows a date or number the reader's
    way)."""
    values = {
        name: "–" if value is None else format_value(value)
        for name, value in _values(report, gettext).items()
    }
    return {
        table: gettext(DESCRIPTIONS[table], **values) if values else gettext(DESCRIPTIONS[table])
        for table in tables
        if table in DESCRIPTIONS
    }
