"""The timeline picture: one mark per event of a hand-built history, the table behind it row
for row, the window, and an SVG that announces itself with a title and a description."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from lxml import etree

from medloop.charts.timeline import EVENTS_LAYER, SHAPES, TimelineText, render_timeline
from medloop.domain.administration import Outcome
from medloop.timeline import Event, EventKind, Lane, Span, SpanState, Timeline

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
SIMVA = uuid.uuid4()
WARFARIN = uuid.uuid4()
TEXT = TimelineText(
    title="Medication timeline",
    time_axis="Date",
    lane_axis="Medication",
    kind_legend="Event",
    state_legend="Status",
    kinds={
        EventKind.STARTED: "Started",
        EventKind.CHANGED: "Dosage changed",
        EventKind.PRESCRIBED: "Prescribed",
        EventKind.RENEWED: "Renewed",
        EventKind.HELD: "Held",
        EventKind.RESUMED: "Resumed",
        EventKind.STOPPED: "Discontinued",
        EventKind.ENTERED_IN_ERROR: "Entered in error",
        EventKind.DISPENSED: "Dispensed",
        EventKind.GIVEN: "Given",
        EventKind.NOT_GIVEN: "Not given",
    },
    states={SpanState.ACTIVE: "In use", SpanState.HELD: "On hold"},
    outcomes={o: o.value.replace("-", " ") for o in Outcome},
    summary=lambda entries, events: f"{entries} medications, {events} events",
)


def at(day: int, hour: int = 8) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def history() -> Timeline:
    events = (
        Event(SIMVA, EventKind.STARTED, at(2)),
        Event(WARFARIN, EventKind.STARTED, at(3)),
        Event(SIMVA, EventKind.DISPENSED, at(3, 11), amount="1 × Simvastatin 20 mg 28 stk"),
        Event(SIMVA, EventKind.GIVEN, at(4), amount="1 tablett"),
        Event(SIMVA, EventKind.NOT_GIVEN, at(5), reason="kvalm", outcome=Outcome.REFUSED),
        Event(SIMVA, EventKind.CHANGED, at(6), reason="LDL for høy"),
        Event(WARFARIN, EventKind.HELD, at(8), reason="INR 4,1"),
        Event(WARFARIN, EventKind.RESUMED, at(10)),
        Event(SIMVA, EventKind.STOPPED, at(20), reason="myalgi"),
    )
    spans = (
        Span(SIMVA, SpanState.ACTIVE, at(2), at(20)),
        Span(WARFARIN, SpanState.ACTIVE, at(3), at(8)),
        Span(WARFARIN, SpanState.HELD, at(8), at(10)),
        Span(WARFARIN, SpanState.ACTIVE, at(10), None),
    )
    lanes = (Lane(SIMVA, "Simvastatin <20 mg>"), Lane(WARFARIN, "Warfarin"))
    return Timeline(uuid.uuid4(), lanes, spans, events)


def event_marks(svg: str) -> list[etree._Element]:
    root = etree.fromstring(svg.encode())
    groups = [
        g for g in root.iter(f"{SVG}g") if f"{EVENTS_LAYER}_marks" in (g.get("class") or "").split()
    ]
    assert len(groups) == 1, "the events layer is one SVG group"
    return list(groups[0].iter(f"{SVG}path"))


def test_the_picture_has_one_mark_per_event_and_the_table_one_row_per_mark():
    drawn = render_timeline(history(), start=START, end=END, now=NOW, text=TEXT)

    assert len(event_marks(drawn.svg)) == 9
    assert [(r.drug, r.what) for r in drawn.rows] == [
        ("Simvastatin <20 mg>", "Started"),
        ("Warfarin", "Started"),
        ("Simvastatin <20 mg>", "Dispensed"),
        ("Simvastatin <20 mg>", "Given"),
        ("Simvastatin <20 mg>", "Not given"),
        ("Simvastatin <20 mg>", "Dosage changed"),
        ("Warfarin", "Held"),
        ("Warfarin", "Resumed"),
        ("Simvastatin <20 mg>", "Discontinued"),
    ]
    assert drawn.rows[0].when == "02.11.2026 09:00"  # 08:00 UTC is 09:00 in Oslo (CET)
    assert drawn.rows[4].detail == "refused · kvalm"
    assert drawn.rows[2].detail == "1 × Simvastatin 20 mg 28 stk"


def test_only_the_window_is_drawn_and_listed():
    drawn = render_timeline(history(), start=at(4), end=at(9), now=NOW, text=TEXT)

    assert len(event_marks(drawn.svg)) == len(drawn.rows) == 4
    assert [r.what for r in drawn.rows] == ["Given", "Not given", "Dosage changed", "Held"]


def test_every_event_kind_has_its_own_shape_so_colour_is_never_the_only_cue():
    assert set(SHAPES) == set(EventKind)
    assert len(set(SHAPES.values())) == len(EventKind)


def test_the_svg_is_one_image_with_a_title_a_description_and_escaped_names():
    drawn = render_timeline(history(), start=START, end=END, now=NOW, text=TEXT, svg_id="tl")

    root = etree.fromstring(drawn.svg.encode())  # well-formed: the drug's "<" is escaped
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "tl-title tl-desc"
    assert root.find(f"{SVG}title").text == "Medication timeline"
    assert root.find(f"{SVG}desc").text == "2 medications, 9 events"
    assert "Simvastatin <20 mg>" in "".join(root.itertext())
    assert "<script" not in drawn.svg
    assert [e.get("role") for e in root.iter() if e.get("role")] == ["img"]  # one image


def test_an_empty_history_draws_an_empty_picture_with_no_rows():
    empty = Timeline(uuid.uuid4(), (), (), ())
    drawn = render_timeline(empty, start=START, end=END, now=NOW, text=TEXT)

    assert drawn.rows == ()
    assert event_marks(drawn.svg) == []
    assert drawn.description == "0 medications, 0 events"


def span_lines(svg: str) -> list[etree._Element]:
    root = etree.fromstring(svg.encode())
    return [
        line
        for g in root.iter(f"{SVG}g")
        if "role-mark" in (g.get("class") or "").split()
        and f"{EVENTS_LAYER}_marks" not in (g.get("class") or "")
        for line in g.iter(f"{SVG}line")
    ]


def test_a_held_span_is_dashed_and_an_open_span_is_drawn_to_now_not_to_the_window_end():
    drawn = render_timeline(history(), start=START, end=END, now=NOW, text=TEXT)

    lines = span_lines(drawn.svg)
    assert len(lines) == 4
    assert [line.get("stroke-dasharray") for line in lines] == ["1,0", "1,0", "6,4", "1,0"]
    still_open = lines[-1]
    x = float(still_open.get("transform").removeprefix("translate(").split(",")[0])
    ends_at = x + float(still_open.get("x2"))
    width = 640  # the plot's width; NOW is 24.5 of the window's 30 days
    assert abs(ends_at - width * 24.5 / 30) < 1
