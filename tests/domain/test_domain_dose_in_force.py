"""Which planned doses stand on the chart (``dose_in_force``): a newer schedule of the entry
supersedes the older version's doses due from its ``effective_from`` on, unless charted."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from interactions.dosage import Quantity
from medloop.domain.administration import PlannedDose, dose_in_force

DUE = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Schedule:
    version: int
    effective_from: datetime


def planned(schedule_version: int) -> PlannedDose:
    return PlannedDose(
        id=uuid.uuid4(),
        patient_id=uuid.uuid4(),
        ward_id=uuid.uuid4(),
        entry_id=uuid.uuid4(),
        schedule_version=schedule_version,
        drug="Paracet",
        local_time=DUE.replace(tzinfo=None),
        due_at=DUE,
        dose_index=1,
        amount=Quantity(value=1, unit="tablett"),
    )


@pytest.mark.parametrize(
    ("schedules", "charted", "stands"),
    [
        ([Schedule(1, DUE - timedelta(days=1))], False, True),
        ([Schedule(1, DUE - timedelta(days=1)), Schedule(2, DUE)], False, False),
        (
            [Schedule(1, DUE - timedelta(days=1)), Schedule(2, DUE - timedelta(hours=1))],
            False,
            False,
        ),
        (
            [Schedule(1, DUE - timedelta(days=1)), Schedule(2, DUE + timedelta(minutes=1))],
            False,
            True,
        ),
        ([Schedule(1, DUE - timedelta(days=1)), Schedule(2, DUE)], True, True),
        ([], False, True),
    ],
    ids=["only-its-own", "newer-from-due-time", "newer-before", "newer-after", "charted", "none"],
)
def test_a_planned_dose_stands_unless_a_newer_schedule_took_over_before_it_was_charted(
    schedules, charted, stands
):
    assert dose_in_force(planned(1), schedules, charted=charted) is stands


def test_a_schedule_of_the_same_or_an_older_version_never_supersedes():
    older = [Schedule(1, DUE - timedelta(days=2)), Schedule(2, DUE - timedelta(days=1))]
    assert dose_in_force(planned(2), older, charted=False)
