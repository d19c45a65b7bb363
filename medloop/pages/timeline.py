"""The medication timeline on a page: the words of the picture from the message catalogue, the
window shown (the last ``days`` days up to today, Europe/Oslo) and the picture with its table
(``medloop.charts.timeline``).

Rendering the SVG (vl-convert) is most of the page's time, so the drawn picture is kept in a
bounded in-process LRU (``DRAWN``) keyed by what it is drawn from: the patient, the timeline's
high-water mark (``queries.timeline_mark``: the patient's revision and the chartings mark), the
window, the language, and "now" rounded down to one pixel's span of the window (open spans end
at now: a finer now would not move a line by a pixel). A new charting, correction, dispense or
list change moves the mark and the picture is drawn again; every process keeps its own cache and
the mark is read from the database, so processes never show each other's stale pictures.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from uuid import UUID

from medloop.charts.timeline import WIDTH, TimelineChart, TimelineText, render_timeline
from medloop.domain.administration import Outcome
from medloop.domain.oslo import OSLO, local_date
from medloop.lru import Lru
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


DRAWN_CACHED = 128
"""Pictures kept per process (each some tens of KB of SVG: a few MB at most)."""
DRAWN: Lru[Hashable, TimelineChart] = Lru(DRAWN_CACHED)


def window(now: datetime, days: int) -> tuple[datetime, datetime, datetime]:
    """The last ``days`` days up to the end of today in Oslo, and ``now`` rounded down to one
    pixel's span of that window (at least a minute) for the spans still open."""
    today = local_date(now)
    end = datetime.combine(today + timedelta(days=1), time(0), OSLO)
    start = end - timedelta(days=days)
    step = max(timedelta(minutes=1), (end - start) / WIDTH)
    drawn_now = start + ((now - start) // step) * step
    return start, end, drawn_now


@dataclass(frozen=True)
class TimelineRequest:
    """One request's picture: its window and its cache key (with the timeline's high-water
    mark, read before the timeline in the same transaction), and the picture when cached."""

    start: datetime
    end: datetime
    now: datetime
    key: Hashable
    cached: TimelineChart | None


def timeline_request(page: Page, patient_id: UUID, mark: Hashable, *, days: int) -> TimelineRequest:
    start, end, now = window(page.caller.at, days)
    key = (patient_id, mark, start, end, now, page.lang)
    return TimelineRequest(start, end, now, key, DRAWN.get(key))


def timeline_page(page: Page, request: TimelineRequest, timeline: Timeline | None) -> TimelineChart:
    """The cached picture, or ``timeline`` drawn (and kept)."""
    if request.cached is not None:
        return request.cached
    assert timeline is not None, "a picture not cached needs its timeline"
    drawn = render_timeline(
        timeline,
        start=request.start,
        end=request.end,
        now=request.now,
        text=timeline_text(page),
        svg_id="timeline",
    )
    DRAWN.put(request.key, drawn)
    return drawn
