"""The packing rules (configurable, read from ``medloop/rules/multidose.json`` by
``medloop.loop.multidose.load_packing_rules``) and the classes of discrepancy a reconciliation
gives a line (``LineClass``), some of which the rules send to the prescriber as tasks."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import Field

from interactions.values import DayCount, Hours
from medloop.domain._model import Frozen


class LineClass(StrEnum):
    """How one line of a packing report (or one expected dose) compares with the list."""

    OK = "ok"
    OK_SUBSTITUTED = "ok-substituted"
    MISSING_FROM_BAGS = "missing-from-bags"
    PACKED_NOT_ON_LIST = "packed-but-not-on-list"
    PACKED_DISCONTINUED = "packed-but-discontinued"
    DOSE_MISMATCH = "dose-mismatch"
    TIME_MISMATCH = "time-mismatch"
    NOT_IN_SUBSTITUTION_GROUP = "product-not-in-substitution-group"
    NOT_PACKABLE_PACKED = "not-packable-item-packed"
    PRESCRIPTION_NOT_VALID = "prescription-expired-or-recalled"
    CHANGE_AFTER_DEADLINE = "change-after-deadline"


class PackingRules(Frozen):
    """Which FEST dosage forms (``LegemiddelformKort``, CV 7448) go into bags, the packing
    period's length, how far ahead deadlines are flagged, and which discrepancies open a task
    for the multidose doctor."""

    packable_form_codes: dict[str, str] = Field(min_length=1)
    period_days: DayCount = 14
    deadline_horizon_hours: Hours = 48
    prescriber_task_classes: frozenset[LineClass] = frozenset()
    about: str | None = None

    @property
    def deadline_horizon(self) -> timedelta:
        return timedelta(hours=self.deadline_horizon_hours)

    def packable_form(self, form_code: str | None) -> bool:
        return form_code is not None and form_code in self.packable_form_codes
