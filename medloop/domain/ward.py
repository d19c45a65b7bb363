"""Wards, admissions and the planned-dose schedule (``legemiddelkurve``): pure values and the
pure function that turns an entry's structured dosage into planned intakes for a window.

Clock policy (Europe/Oslo, ``medloop.domain.oslo``): a dose is planned at a local wall-clock
time and stored as that intended local time plus its UTC instant.

- Spring forward (last Sunday of March, 02:00 → 03:00): a wall time inside the gap does not
  exist; the dose moves forward by the length of the gap (02:30 is given at 03:30 summer time)
  and is flagged ``shifted``, unless the same dose is planned at that instant already (an
  hourly dose's 02:00 would be given with its 03:00): then it is planned once, at 03:00, so
  no dose is doubled.
- Autumn back (last Sunday of October, 03:00 → 02:00): a wall time in the repeated hour is
  planned once, at its first occurrence (summer time); the hour is never planned twice.

Intervals shorter than a day repeat on the wall clock from the dose's anchor time (08:00 every
8 h gives 00:00, 08:00, 16:00 each dosing day), so every day has the same clock times whatever
the offset. Whole-day intervals count dosing days from the entry's start; other intervals above
a day count elapsed hours from the first intake.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints, model_validator

from interactions.dosage import FixedDose, Quantity, TimeOfDay, Weekday
from interactions.values import MAX_ITEMS, Count
from medloop.domain._model import Frozen
from medloop.domain.codes import EntryStatus
from medloop.domain.entry import ListEntry
from medloop.domain.errors import DomainError, InvalidValue
from medloop.domain.oslo import OSLO, local_date

_DAY = timedelta(days=1)

DEFAULT_SLOT_TIMES: dict[TimeOfDay, time] = {
    TimeOfDay.MORNING: time(8, 0),
    TimeOfDay.FORENOON: time(10, 0),
    TimeOfDay.MIDDAY: time(13, 0),
    TimeOfDay.AFTERNOON: time(15, 0),
    TimeOfDay.EVENING: time(18, 0),
    TimeOfDay.NIGHT: time(22, 0),
}


# -- errors ------------------------------------------------------------------------------------


class WardError(DomainError):
    """Ward set-up or admission refuses an operation."""


class InvalidWardConfig(InvalidValue):
    code = "invalid-ward-config"


class WardNotFound(WardError):
    code = "ward-not-found"


class WardIdAlreadyUsed(WardError):
    code = "ward-id-already-used"


class WardOfAnotherOrganisation(WardError):
    code = "ward-of-another-organisation"


class PatientAlreadyAdmitted(WardError):
    code = "patient-already-admitted"


class PatientNotAdmitted(WardError):
    code = "patient-not-admitted"


class AdmissionNotFound(WardError):
    code = "admission-not-found"


class AdmissionOverlapsEarlierStay(WardError):
    code = "admission-overlaps-earlier-stay"


class AdmissionTimeOutOfRange(InvalidValue):
    code = "admission-time-out-of-range"


class DischargeTimeOutOfRange(InvalidValue):
    code = "discharge-time-out-of-range"


# -- configuration -----------------------------------------------------------------------------


class WitnessPolicy(Frozen):
    """When a second person must witness a dose (``dobbeltkontroll``): drugs of the listed
    prescription groups (``reseptgruppe``; A = narcotics) and drugs whose ATC code starts with
    one of ``atc_prefixes`` (e.g. ``A10A`` insulins)."""

    prescription_groups: tuple[str, ...] = Field(default=("A",), max_length=MAX_ITEMS)
    atc_prefixes: tuple[str, ...] = Field(default=("A10A",), max_length=MAX_ITEMS)

    def requires_witness(self, prescription_group: str | None, atc_codes: tuple[str, ...]) -> bool:
        if prescription_group is not None and prescription_group in self.prescription_groups:
            return True
        return any(code.startswith(self.atc_prefixes) for code in atc_codes if code)


class WardConfig(Frozen):
    """How a ward plans and charts: the clock time of each time-of-day slot (``Tidsomrade``),
    the time used for a fixed dose that names neither slot nor clock time, and the charting
    windows around a planned dose: it may be charted from ``early`` before it is due, counts as
    late from ``late_after`` after and is marked missed at ``missed_after`` after."""

    slot_times: dict[TimeOfDay, time] = Field(default_factory=lambda: dict(DEFAULT_SLOT_TIMES))
    default_time: time = time(8, 0)
    early: timedelta = timedelta(minutes=60)
    late_after: timedelta = timedelta(minutes=60)
    missed_after: timedelta = timedelta(minutes=120)
    witness: WitnessPolicy = WitnessPolicy()

    @model_validator(mode="after")
    def _windows_are_ordered(self) -> WardConfig:
        if set(self.slot_times) != set(TimeOfDay):
            missing = sorted(s.value for s in set(TimeOfDay) - set(self.slot_times))
            raise InvalidWardConfig(f"every time-of-day slot needs a clock time: {missing}")
        if timedelta(0) <= self.early and timedelta(0) < self.late_after < self.missed_after:
            return self
        raise InvalidWardConfig(
            "the windows need 0 <= early and 0 < late_after < missed_after",
            early=str(self.early),
            late_after=str(self.late_after),
            missed_after=str(self.missed_after),
        )

    def anchor(self, dose: FixedDose) -> time:
        """The wall-clock time of ``dose``'s first intake on a dosing day."""
        if dose.clock_time is not None:
            return dose.clock_time
        if dose.time_of_day is not None:
            return self.slot_times[dose.time_of_day]
        return self.default_time


class Ward(Frozen):
    """A nursing-home ward (``avdeling``) of ``organisation_id``."""

    id: UUID
    organisation_id: str = Field(min_length=1)
    name: str = Field(min_length=1)


def _printable(text: str) -> str:
    """Refuse control characters (NUL included) and lone surrogates: stored text is printable
    and encodes as UTF-8 on every database."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError("control characters and lone surrogates are not allowed")
    return text


_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(2999, 12, 31, tzinfo=UTC)


def _sane_moment(moment: datetime) -> datetime:
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not _EARLIEST <= utc <= _LATEST:
        raise ValueError("a moment from 1900 to 2999 with its UTC offset")
    return moment


Moment = Annotated[AwareDatetime, AfterValidator(_sane_moment)]
"""A time with its UTC offset from 1900 to 2999: an extreme one (year 1 at +14:00) cannot be
compared or converted without overflowing, so it is refused as a value."""


MAX_REASON = 500
MAX_DECISION_REFERENCE = 100

AdmissionReason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REASON),
    AfterValidator(_printable),
]
"""Why the patient is admitted (``innleggelsesgrunn``): required, shown in the access log."""

DecisionReference = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_DECISION_REFERENCE),
    AfterValidator(_printable),
]
"""The reference of the municipality's decision (``vedtak``, case number) the stay rests on."""


ADMISSION_BACKDATING = timedelta(hours=24)
"""An admission may be registered at most this long after it began (a night arrival charted
in the morning), and planned at most this long ahead."""

ADMISSION_AHEAD = timedelta(hours=24)

DISCHARGE_AHEAD = timedelta(hours=24)
"""A discharge may be registered at most this long before it takes effect."""


class Admission(Frozen):
    """A patient's stay on a ward (``innleggelse``); ``discharged_at`` is ``None`` while there.
    ``reason`` and ``decision_reference`` (the municipal decision, ``vedtak``) are the stay's
    basis; admissions stored before they were required have neither."""

    id: UUID
    patient_id: UUID
    ward_id: UUID
    organisation_id: str
    admitted_at: AwareDatetime
    discharged_at: AwareDatetime | None = None
    reason: str | None = None
    decision_reference: str | None = None

    def covers(self, at: datetime) -> bool:
        return self.admitted_at <= at and (self.discharged_at is None or at < self.discharged_at)


def check_admission(new: Admission, earlier: Sequence[Admission], now: datetime) -> None:
    """Refuse an admission that starts too far from ``now``, while the patient is admitted,
    or before an earlier stay ended. A stay of another organisation is never described (no
    ward, admission or organisation): the caller may only learn that one exists."""
    if not now - ADMISSION_BACKDATING <= new.admitted_at <= now + ADMISSION_AHEAD:
        raise AdmissionTimeOutOfRange(
            f"admitted_at must lie within {ADMISSION_BACKDATING} before and "
            f"{ADMISSION_AHEAD} after the time of registration",
            admitted_at=new.admitted_at.isoformat(),
        )
    for stay in earlier:
        ours = stay.organisation_id == new.organisation_id
        if stay.discharged_at is None:
            if ours:
                raise PatientAlreadyAdmitted(
                    f"the patient is admitted to ward {stay.ward_id} of this organisation; "
                    "discharge them first",
                    admission_id=stay.id,
                    ward_id=stay.ward_id,
                )
            raise PatientAlreadyAdmitted(
                "the patient is admitted elsewhere; a second admission waits for the "
                "discharge from that stay"
            )
        if new.admitted_at < stay.discharged_at:
            raise AdmissionOverlapsEarlierStay(
                "an admission cannot begin before the patient's previous stay ended"
            )


def check_discharge(admission: Admission, at: datetime, now: datetime) -> None:
    """A discharge ends the stay after it began and at most ``DISCHARGE_AHEAD`` from now."""
    if not admission.admitted_at <= at <= now + DISCHARGE_AHEAD:
        raise DischargeTimeOutOfRange(
            f"a discharge lies after the admission ({admission.admitted_at.isoformat()}) and "
            f"at most {DISCHARGE_AHEAD} after the time of registration",
            at=at.isoformat(),
        )


# -- the clock ---------------------------------------------------------------------------------


def local_instant(local: datetime) -> tuple[datetime, bool]:
    """The UTC instant of the naive Oslo wall time ``local`` under the policy in the module
    docstring, and whether the time fell in the spring-forward gap (and so was shifted)."""
    # fold=0 is the earlier offset: the first occurrence of a repeated hour, and for a time in
    # the gap the winter offset, which lands exactly "gap length later" on the summer clock.
    instant = local.replace(tzinfo=OSLO, fold=0).astimezone(UTC)
    back = instant.astimezone(OSLO).replace(tzinfo=None)
    return instant, back != local


# -- planning ----------------------------------------------------------------------------------


class PlannedIntake(Frozen):
    """One planned intake of an entry: the intended local wall time (``local_time``), its UTC
    instant (``due_at``), which fixed dose of the dosage it comes from (``dose_index``), the
    amount, and whether it is a multidose bag time."""

    local_time: datetime
    due_at: AwareDatetime
    dose_index: Count
    amount: Quantity
    time_of_day: TimeOfDay | None = None
    exact: bool = False
    shifted: bool = False
    multidose: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.local_time.strftime("%Y-%m-%dT%H:%M"), self.dose_index)


def schedule_fingerprint(entry: ListEntry, config: WardConfig, ward_id: UUID | None = None) -> str:
    """What the planned intakes of ``entry`` on ward ``ward_id`` depend on, hashed: a new entry
    version that changes none of it (an indication, a renewed prescription) keeps the
    schedule."""
    relevant: dict[str, Any] = {
        "ward": None if ward_id is None else str(ward_id),
        "dosage": None if entry.dosage is None else entry.dosage.model_dump(mode="json"),
        "start": entry.start.isoformat(),
        "stop": None if entry.stop is None else entry.stop.isoformat(),
        "status": entry.status.value,
        "discontinued": (
            None if entry.discontinuation is None else entry.discontinuation.at.isoformat()
        ),
        "multidose": entry.multidose,
        "slots": {k.value: v.isoformat() for k, v in sorted(config.slot_times.items())},
        "default_time": config.default_time.isoformat(),
    }
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def plan_intakes(
    entry: ListEntry, config: WardConfig, start: datetime, end: datetime
) -> list[PlannedIntake]:
    """The intakes of ``entry`` due in ``[start, end)`` on the ward's clock, in time order.

    Only fixed doses are planned: as-needed entries, and entries with only a short dose or text,
    have no planned intakes. On-hold and entered-in-error entries plan nothing; a discontinued
    entry plans up to its discontinuation. Days outside ``entry.start``..``entry.stop`` are
    never planned.
    """
    if entry.dosage is None or not entry.dosage.fixed:
        return []
    if entry.status in (EntryStatus.ON_HOLD, EntryStatus.ENTERED_IN_ERROR):
        return []
    if entry.discontinuation is not None:
        end = min(end, entry.discontinuation.at)
    if end <= start:
        return []
    first = max(local_date(start) - _DAY, entry.start)
    last = local_date(end) + _DAY
    if entry.stop is not None:
        last = min(last, entry.stop)
    found: list[PlannedIntake] = []
    for index, dose in enumerate(entry.dosage.fixed):
        planned: list[tuple[datetime, datetime, bool]] = []
        for local in _wall_times(dose, config, entry.start, first, last):
            due, shifted = local_instant(local)
            if start <= due < end:
                planned.append((local, due, shifted))
        # A dose repeating more often than the spring-forward gap is long (hourly, every
        # half hour) has a time in the gap whose shifted instant is also its own next
        # time's: planned once, at the time that exists, as the repeated autumn hour is.
        kept = {due for _, due, shifted in planned if not shifted}
        for local, due, shifted in planned:
            if not (shifted and due in kept):
                found.append(
                    PlannedIntake(
                        local_time=local,
                        due_at=due,
                        dose_index=index,
                        amount=dose.amount,
                        time_of_day=dose.time_of_day,
                        exact=dose.exact,
                        shifted=shifted,
                        multidose=entry.multidose,
                    )
                )
    return sorted(found, key=lambda p: (p.due_at, p.dose_index))


def _wall_times(
    dose: FixedDose, config: WardConfig, entry_start: date, first: date, last: date
) -> list[datetime]:
    anchor = config.anchor(dose)
    hours = None if dose.interval is None else dose.interval.hours
    if hours is not None and hours > 24 and hours % 24:
        return _elapsed_times(dose, anchor, hours, entry_start, first, last)
    every_days = int(hours // 24) if hours is not None and hours >= 24 else 1
    times = _times_of_day(anchor, hours if hours is not None and hours < 24 else None)
    found = []
    day = first
    while day <= last:
        if day >= entry_start and _is_dosing_day(dose, day, entry_start, every_days):
            found.extend(datetime.combine(day, t) for t in times)
        day += _DAY
    return found


def _times_of_day(anchor: time, interval_hours: float | None) -> list[time]:
    if interval_hours is None:
        return [anchor]
    start = timedelta(hours=anchor.hour, minutes=anchor.minute)
    step = timedelta(hours=interval_hours)
    count = max(1, int(timedelta(days=1) / step + 1e-9))
    moments = {(start + step * k) % _DAY for k in range(count)}
    return sorted((datetime.min + m).time() for m in moments)


def _is_dosing_day(dose: FixedDose, day: date, entry_start: date, every_days: int) -> bool:
    elapsed = (day - entry_start).days
    if dose.weekdays and list(Weekday)[day.weekday()] not in dose.weekdays:
        return False
    if dose.days_on is not None and dose.days_off is not None:
        if elapsed % (dose.days_on + dose.days_off) >= dose.days_on:
            return False
    return elapsed % every_days == 0


def _elapsed_times(
    dose: FixedDose, anchor: time, hours: float, entry_start: date, first: date, last: date
) -> list[datetime]:
    """Intakes every ``hours`` of elapsed time from the first one, as Oslo wall times."""
    origin, _ = local_instant(datetime.combine(entry_start, anchor))
    step = timedelta(hours=hours)
    lower, _ = local_instant(datetime.combine(first, time(0)))
    upper, _ = local_instant(datetime.combine(last + _DAY, time(0)))
    k = max(0, int((lower - origin) / step))
    found = []
    while origin + step * k < upper:
        moment = (origin + step * k).astimezone(OSLO)
        if moment.date() >= first and _is_dosing_day(dose, moment.date(), entry_start, 1):
            found.append(moment.replace(tzinfo=None))
        k += 1
    return found
