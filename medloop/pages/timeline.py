"""The medication timeline on a page: the words of the picture from the message catalogue, the
window shown (the last ``days`` days up to today, Europe/Oslo) and the picture with its table
(``medloop.charts.timeline``)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from medloop.charts.timeline import TimelineChart, TimelineText, render_timeline
from medloop.domain.administration import Outcome
from medloop.pages.i18n import OSLO
from medloop.pages.web import Page
from medloop.timeline import EventKind, SpanState, Timeline

DAYS_SHOWN = 90
"""The window the GP sees first: the last 90 days (the list shows entries discontinued within
them too)."""


def timeline_text(page: Page) -> TimelineText:
    _ = page._
    return TimelineText(
        title=_("Medication timeline"),
        time_axis=_("Date"),
        lane_axis=_("Medicine"),
        kind_legend=_("Event"),
        state_legend=_("Status"),
        kinds={
            EventKind.STARTED: _("Started"),
            EventKind.CHANGED: _("Dosage changed"),
            EventKind.PRESCRIBED: _("Prescribed"),
            EventKind.RENEWED: _("Renewed"),
            EventKind.HELD: _("Held"),
            EventKind.RESUMED: _("Resumed"),
            EventKind.STOPPED: _("Discontinued"),
            EventKind.ENTERED_IN_ERROR: _("Entered in error"),
            EventKind.DISPENSED: _("Dispensed"),
            EventKind.GIVEN: _("Given"),
            EventKind.NOT_GIVEN: _("Not given"),
        },
        states={SpanState.ACTIVE: _("In use"), SpanState.HELD: _("On hold")},
        outcomes={
            Outcome.GIVEN: _("given"),
            Outcome.NOT_GIVEN: _("not given"),
            Outcome.REFUSED: _("refused"),
            Outcome.HELD: _("held"),
            Outcome.MISSED: _("missed"),
        },
        summary=lambda entries, events: _(
            "Medicines: %(entries)s. Events: %(events)s.", entries=entries, events=events
        ),
    )


def timeline_page(page: Page, timeline: Timeline, *, days: int) -> TimelineChart:
    """The last ``days`` days up to the end of today in Oslo."""
    now = page.caller.at
    today = now.astimezone(OSLO).date()
    end = datetime.combine(today + timedelta(days=1), time(0), OSLO)
    start = end - timedelta(days=days)
    return render_timeline(
        timeline, start=start, end=end, now=now, text=timeline_text(page), svg_id="timeline"
    )
