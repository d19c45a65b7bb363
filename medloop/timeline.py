"""A patient's medication timeline as plain values: when each list entry started, changed, was
held, resumed and stopped, and the dispenses and administrations against it.

``timeline_of`` is pure: it reads a ``PatientState`` (the list's history and the dispenses) and
the patient's chartings, and decides nothing. ``medloop.queries.timeline`` reads both for one
patient; ``medloop.charts.timeline`` draws the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from uuid import UUID

from medloop.domain.administration import Administration, Outcome
from medloop.domain.codes import EntryChangeKind
from medloop.domain.oslo import OSLO, local_date
from medloop.domain.state import PatientState


class EventKind(StrEnum):
    """What happened on one entry at one moment."""

    STARTED = "started"
    CHANGED = "changed"
    PRESCRIBED = "prescribed"
    RENEWED = "renewed"
    HELD = "held"
    RESUMED = "resumed"
    STOPPED = "stopped"
    ENTERED_IN_ERROR = "entered-in-error"
    DISPENSED = "dispensed"
    GIVEN = "given"
    NOT_GIVEN = "not-given"


class SpanState(StrEnum):
    """How an entry stood between two events."""

    ACTIVE = "active"
    HELD = "held"


_ENTRY_EVENTS = {
    EntryChangeKind.ADDED: EventKind.STARTED,
    EntryChangeKind.EDITED: EventKind.CHANGED,
    EntryChangeKind.PRESCRIPTION_LINKED: EventKind.PRESCRIBED,
    EntryChangeKind.PRESCRIPTION_RENEWED: EventKind.RENEWED,
    EntryChangeKind.PUT_ON_HOLD: EventKind.HELD,
    EntryChangeKind.RESUMED: EventKind.RESUMED,
    EntryChangeKind.DISCONTINUED: EventKind.STOPPED,
    EntryChangeKind.ENTERED_IN_ERROR: EventKind.ENTERED_IN_ERROR,
}


@dataclass(frozen=True)
class Lane:
    """One entry of the list: one row of the picture."""

    entry_id: UUID
    drug: str


@dataclass(frozen=True)
class Event:
    """One point on the timeline. ``reason`` is the free text on record (the change's reason,
    the charting's reason); ``amount`` what was dispensed or given; ``outcome`` the charting's
    outcome when a dose was not given."""

    entry_id: UUID
    kind: EventKind
    at: datetime
    reason: str | None = None
    amount: str | None = None
    outcome: Outcome | None = None


@dataclass(frozen=True)
class Span:
    """An interval in which an entry was active or held; ``end`` is ``None`` while it still
    lasts (and has no planned stop)."""

    entry_id: UUID
    state: SpanState
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class Timeline:
    patient_id: UUID
    lanes: tuple[Lane, ...]
    spans: tuple[Span, ...]
    events: tuple[Event, ...]

    def within(self, start: datetime, end: datetime) -> Timeline:
        """The events in ``[start, end)``, the spans that overlap it, and the lanes that have
        either."""
        events = tuple(e for e in self.events if start <= e.at < end)
        spans = tuple(s for s in self.spans if s.start < end and (s.end is None or s.end > start))
        shown = {e.entry_id for e in events} | {s.entry_id for s in spans}
        return Timeline(
            self.patient_id,
            tuple(lane for lane in self.lanes if lane.entry_id in shown),
            spans,
            events,
        )


def timeline_of(state: PatientState, chartings: Iterable[Administration]) -> Timeline:
    """The timeline of every entry the list has ever had, events oldest first. Annulled
    dispenses and chartings entered in error are left out (pass only the standing ones)."""
    events: list[Event] = []
    spans: list[Span] = []
    first_seen: dict[UUID, datetime] = {}
    names: dict[UUID, str] = {}
    open_span: dict[UUID, Span] = {}

    def close(entry_id: UUID, at: datetime) -> None:
        span = open_span.pop(entry_id, None)
        if span is not None:
            spans.append(Span(entry_id, span.state, span.start, max(at, span.start)))

    for change in state.changes:
        for version in change.entry_versions:
            entry_id = version.entry_id
            at = _utc(version.at)
            kind = _ENTRY_EVENTS[version.kind]
            if kind is EventKind.STARTED:
                # When the treatment started (DatoOppstart), not when it was recorded: a list
                # brought in on admission started long before.
                at = _start_of_day(version.entry.start)
            if kind in (EventKind.STOPPED, EventKind.ENTERED_IN_ERROR):
                discontinuation = version.entry.discontinuation
                if discontinuation is not None:
                    at = _utc(discontinuation.at)
            first_seen.setdefault(entry_id, at)
            names[entry_id] = version.entry.drug.name
            events.append(Event(entry_id, kind, at, reason=version.reason))
            if kind is EventKind.STARTED or kind is EventKind.RESUMED:
                close(entry_id, at)
                open_span[entry_id] = Span(entry_id, SpanState.ACTIVE, at, None)
            elif kind is EventKind.HELD:
                close(entry_id, at)
                open_span[entry_id] = Span(entry_id, SpanState.HELD, at, None)
            elif kind in (EventKind.STOPPED, EventKind.ENTERED_IN_ERROR):
                close(entry_id, at)

    for entry_id, span in list(open_span.items()):
        planned_stop = state.medication_list.entry(entry_id).stop
        if planned_stop is not None:
            close(entry_id, _start_of_day(planned_stop + timedelta(days=1)))
        else:
            spans.append(span)

    for dispense in state.dispenses:
        if dispense.annulment is not None:
            continue
        quantity = dispense.quantity
        amount = f"{quantity.packages:g} × {dispense.package.name}"
        events.append(
            Event(
                dispense.entry_id,
                EventKind.DISPENSED,
                _dispensed_at(dispense.dispensed_on, state.dispense_recorded_at.get(dispense.id)),
                amount=amount,
            )
        )

    for charting in chartings:
        given = charting.outcome is Outcome.GIVEN
        dose = charting.dose
        events.append(
            Event(
                charting.entry_id,
                EventKind.GIVEN if given else EventKind.NOT_GIVEN,
                _utc(charting.at),
                reason=charting.reason,
                amount=None if dose is None else f"{dose.value:g} {dose.unit}",
                outcome=None if given else charting.outcome,
            )
        )

    lanes = tuple(
        Lane(entry_id, names[entry_id])
        for entry_id, _ in sorted(first_seen.items(), key=lambda item: (item[1], str(item[0])))
    )
    known = set(names)
    ordered = sorted(
        (e for e in events if e.entry_id in known),
        key=lambda e: (e.at, str(e.entry_id), e.kind.value),
    )
    return Timeline(
        state.patient.id,
        lanes,
        tuple(sorted(spans, key=lambda s: (s.start, str(s.entry_id)))),
        tuple(ordered),
    )


def _dispensed_at(day: date, recorded: datetime | None) -> datetime:
    """A dispense is dated by day: placed when it was recorded if that was on the same day in
    Oslo, else at noon of its day."""
    if recorded is not None and local_date(recorded) == day:
        return _utc(recorded)
    return datetime.combine(day, time(12), OSLO).astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _start_of_day(day: date) -> datetime:
    return datetime.combine(day, time(0), OSLO).astimezone(UTC)
