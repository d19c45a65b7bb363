"""The medication timeline as a picture: one row per list entry, a line while it was active
(solid) or held (dashed), and a mark per event whose shape says what happened (started,
changed, held, stopped, dispensed, given …), so nothing is told by colour alone; with a title,
a description and the table of the same events for readers who cannot see the picture.

Drawn with altair and rendered to SVG on the server by vl-convert (no JavaScript in the page).
Times are shown in Europe/Oslo: each instant is handed to Vega-Lite as its Oslo wall-clock time
on a UTC scale, so the axis reads Oslo time whatever the server's zone.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from html import escape
from uuid import UUID

import altair as alt
import vl_convert

from medloop.domain.administration import Outcome
from medloop.domain.oslo import OSLO
from medloop.timeline import Event, EventKind, SpanState, Timeline

# Shapes carry the meaning; the colours (Okabe–Ito, safe for colour-blind readers) repeat it.
SHAPES: Mapping[EventKind, str] = {
    EventKind.STARTED: "triangle-right",
    EventKind.CHANGED: "diamond",
    EventKind.PRESCRIBED: "square",
    EventKind.RENEWED: "wedge",
    EventKind.HELD: "triangle-down",
    EventKind.RESUMED: "arrow",
    EventKind.STOPPED: "cross",
    EventKind.ENTERED_IN_ERROR: "triangle-left",
    EventKind.DISPENSED: "triangle-up",
    EventKind.GIVEN: "circle",
    # a filled "X" (Vega has no such symbol; a path of bare lines would not show when filled)
    EventKind.NOT_GIVEN: (
        "M-1,-0.6L-0.6,-1L0,-0.4L0.6,-1L1,-0.6L0.4,0L1,0.6L0.6,1L0,0.4L-0.6,1L-1,0.6L-0.4,0Z"
    ),
}
COLOURS: Mapping[EventKind, str] = {
    EventKind.STARTED: "#009E73",
    EventKind.CHANGED: "#0072B2",
    EventKind.PRESCRIBED: "#56B4E9",
    EventKind.RENEWED: "#56B4E9",
    EventKind.HELD: "#E69F00",
    EventKind.RESUMED: "#009E73",
    EventKind.STOPPED: "#D55E00",
    EventKind.ENTERED_IN_ERROR: "#CC79A7",
    EventKind.DISPENSED: "#000000",
    EventKind.GIVEN: "#0072B2",
    EventKind.NOT_GIVEN: "#D55E00",
}
DASHES: Mapping[SpanState, list[int]] = {SpanState.ACTIVE: [1, 0], SpanState.HELD: [6, 4]}

EVENTS_LAYER = "events"
"""The name of the layer that holds one mark per event (its SVG group's class names it)."""


@dataclass(frozen=True)
class TimelineText:
    """Every word the picture and its table show, in the reader's language."""

    title: str
    time_axis: str
    lane_axis: str
    kind_legend: str
    state_legend: str
    kinds: Mapping[EventKind, str]
    states: Mapping[SpanState, str]
    outcomes: Mapping[Outcome, str]
    summary: Callable[[int, int], str]
    """``summary(entries, events)``: one sentence describing the picture.

    The words come from the pages' message catalogue (``medloop.pages.timeline``)."""


@dataclass(frozen=True)
class Row:
    """One row of the table behind the picture: one event."""

    when: str
    drug: str
    what: str
    detail: str


@dataclass(frozen=True)
class TimelineChart:
    """The picture (SVG markup, safe to embed inline), its title and description, and its
    table (one row per mark, in the same order)."""

    svg: str
    title: str
    description: str
    rows: tuple[Row, ...]
    key_svg: str = ""
    """The key to the shapes and line styles (the same for every picture in a language)."""


def render_timeline(
    timeline: Timeline,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    text: TimelineText,
    svg_id: str = "timeline",
) -> TimelineChart:
    """The events in ``[start, end)`` drawn on one row per entry; spans still open end at
    ``min(now, end)``."""
    shown = timeline.within(start, end)
    labels = _lane_labels(shown)
    rows = tuple(_row(e, labels[e.entry_id], text) for e in shown.events)
    description = text.summary(len(shown.lanes), len(shown.events))
    open_until = min(now, end)
    spans = [
        {
            "lane": labels[s.entry_id],
            "from": _wall(max(s.start, start)),
            "to": _wall(min(s.end or open_until, end)),
            "state": text.states[s.state],
        }
        for s in shown.spans
    ]
    events = [
        {"lane": labels[e.entry_id], "at": _wall(e.at), "kind": text.kinds[e.kind]}
        for e in shown.events
    ]
    lane_order = [labels[lane.entry_id] for lane in shown.lanes]
    chart = _layers(spans, events, lane_order, text, (start, end), legend=False).properties(
        width=WIDTH, height=max(1, len(lane_order)) * 32
    )
    svg = vl_convert.vegalite_to_svg(_configured(chart).to_dict(validate=False))
    return TimelineChart(
        svg=_accessible(svg, svg_id, text.title, description),
        title=text.title,
        description=description,
        rows=rows,
        key_svg=_key(
            tuple(text.kinds[k] for k in EventKind),
            tuple(text.states[s] for s in SpanState),
            text.kind_legend,
            text.state_legend,
        ),
    )


WIDTH = 640


def _layers(
    spans: list[dict[str, str]],
    events: list[dict[str, str]],
    lane_order: list[str],
    text: TimelineText | None,
    window: tuple[datetime, datetime] | None,
    *,
    legend: bool,
    kinds: tuple[str, ...] = (),
    states: tuple[str, ...] = (),
    titles: tuple[str, str] = ("", ""),
) -> alt.LayerChart:
    """The spans (a rule per span, dashed while held) and the events (a mark per event, its
    shape by kind); with ``legend`` only the key (the same scales, nothing plotted)."""
    if text is not None:
        kinds = tuple(text.kinds[k] for k in EventKind)
        states = tuple(text.states[s] for s in SpanState)
        titles = (text.kind_legend, text.state_legend)
    kind_title, state_title = titles
    shown = {} if legend else {"legend": None}
    x_scale = alt.Scale(
        type="utc", **({} if window is None else {"domain": [_wall(w) for w in window]})
    )
    axis = {"axis": None} if legend else {}
    time_title = "" if text is None else text.time_axis
    lane_title = "" if text is None else text.lane_axis
    y = alt.Y(
        "lane:N",
        sort=lane_order,
        title=lane_title,
        **(axis or {"axis": alt.Axis(labelLimit=220)}),
    )
    span_layer = (
        alt.Chart(alt.Data(values=spans))
        .mark_rule(strokeWidth=4, color="#555555", opacity=0 if legend else 1)
        .encode(
            x=alt.X("from:T", scale=x_scale, title=time_title, **axis),
            x2="to:T",
            y=y,
            strokeDash=alt.StrokeDash(
                "state:N",
                title=state_title,
                scale=alt.Scale(domain=list(states), range=[DASHES[s] for s in SpanState]),
                **shown,
            ),
        )
    )
    kind_scale = {"domain": list(kinds)}
    event_layer = (
        alt.Chart(alt.Data(values=events), name=EVENTS_LAYER)
        .mark_point(size=110, filled=True, opacity=0 if legend else 1, strokeWidth=1.5)
        .encode(
            x=alt.X("at:T", scale=x_scale, title=time_title, **axis),
            y=y,
            shape=alt.Shape(
                "kind:N",
                title=kind_title,
                scale=alt.Scale(**kind_scale, range=[SHAPES[k] for k in EventKind]),
                **shown,
            ),
            color=alt.Color(
                "kind:N",
                title=kind_title,
                scale=alt.Scale(**kind_scale, range=[COLOURS[k] for k in EventKind]),
                **shown,
            ),
        )
    )
    return alt.layer(span_layer, event_layer)


def _configured(chart: alt.LayerChart) -> alt.LayerChart:
    return (
        chart.configure(font="sans-serif", aria=False)
        .configure_axisX(format="%d.%m.%y", labelAngle=0, labelFlush=True)
        .configure_legend(orient="bottom", columns=4, symbolStrokeWidth=1.5, symbolOpacity=1)
        .configure_view(stroke=None)
    )


@functools.lru_cache(maxsize=8)
def _key(kinds: tuple[str, ...], states: tuple[str, ...], kind_title: str, state_title: str) -> str:
    """The key to the shapes and line styles, drawn once per language (laying out its labels
    is most of a picture's rendering time). Hidden from assistive technology: the table beside
    the picture says in words what each mark says."""
    spans = [
        {"lane": "", "from": "2000-01-01T00:00:00Z", "to": "2000-01-01T00:00:00Z", "state": s}
        for s in states
    ]
    events = [{"lane": "", "at": "2000-01-01T00:00:00Z", "kind": k} for k in kinds]
    chart = _layers(
        spans,
        events,
        [""],
        None,
        None,
        legend=True,
        kinds=kinds,
        states=states,
        titles=(kind_title, state_title),
    ).properties(width=WIDTH, height=1)
    svg = vl_convert.vegalite_to_svg(_configured(chart).to_dict(validate=False))
    match = _SVG_OPEN.search(svg)
    if match is None:
        raise ValueError("vl-convert returned no <svg> element")
    inner = _MARK_ARIA.sub("", svg[match.end() :])
    return f'<svg{match.group(1)} aria-hidden="true" focusable="false">' + inner


def _lane_labels(timeline: Timeline) -> dict[UUID, str]:
    """One label per lane: the drug's name, numbered when two entries share it."""
    seen: dict[str, int] = {}
    labels = {}
    for lane in timeline.lanes:
        seen[lane.drug] = seen.get(lane.drug, 0) + 1
        labels[lane.entry_id] = (
            lane.drug if seen[lane.drug] == 1 else f"{lane.drug} ({seen[lane.drug]})"
        )
    return labels


def _row(event: Event, drug: str, text: TimelineText) -> Row:
    details = [
        part
        for part in (
            None if event.outcome is None else text.outcomes[event.outcome],
            event.amount,
            event.reason,
        )
        if part
    ]
    return Row(
        when=event.at.astimezone(OSLO).strftime("%d.%m.%Y %H:%M"),
        drug=drug,
        what=text.kinds[event.kind],
        detail=" · ".join(details),
    )


def _wall(moment: datetime) -> str:
    """``moment``'s Oslo wall-clock time written as if it were UTC (read on a UTC scale)."""
    return moment.astimezone(OSLO).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


_SVG_OPEN = re.compile(r"<svg\b([^>]*)>")
_MARK_ARIA = re.compile(r'\s(?:role|aria-roledescription|aria-label)="[^"]*"')


def _accessible(svg: str, svg_id: str, title: str, description: str) -> str:
    """The SVG as one image with a title and a description (``role="img"``; its marks are
    not announced one by one: the table beside it holds them)."""
    match = _SVG_OPEN.search(svg)
    if match is None:
        raise ValueError("vl-convert returned no <svg> element")
    ident = escape(svg_id, quote=True)
    opening = (
        f'<svg{match.group(1)} id="{ident}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc">'
        f'<title id="{ident}-title">{escape(title)}</title>'
        f'<desc id="{ident}-desc">{escape(description)}</desc>'
    )
    # Vega marks its groups and marks as ARIA graphics of their own; inside one image they are
    # noise to a screen reader (and axe asks each for a name), so those roles go.
    inner = _MARK_ARIA.sub("", svg[match.end() :])
    return svg[: match.start()] + opening + inner
