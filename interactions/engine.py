"""``check``: run every check over a medication list and return the alerts to show."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from interactions.alerts import Alert, sort_key
from interactions.checks.allergy import allergy_alerts
from interactions.checks.context import CheckContext
from interactions.checks.dose import dose_alerts
from interactions.checks.duplicate import duplicate_alerts
from interactions.checks.interaction import interaction_alerts
from interactions.checks.not_assessed import not_assessed_alerts
from interactions.checks.notice import notice_alerts
from interactions.checks.substitution import substitution_alerts
from interactions.knowledge import Knowledge
from interactions.medication import HandledAlert, Medication, Patient

_CHECKS = (
    interaction_alerts,
    duplicate_alerts,
    dose_alerts,
    allergy_alerts,
    notice_alerts,
    not_assessed_alerts,
    substitution_alerts,
)


def check(
    knowledge: Knowledge,
    medications: Iterable[Medication],
    patient: Patient | None = None,
    handled: Iterable[HandledAlert] = (),
    include_all: bool = False,
    proposed: Iterable[str] | None = None,
    *,
    today: date | None = None,
    renal_max_age_days: int | None = None,
) -> list[Alert]:
    """Alerts for ``medications``, most severe first.

    With ``proposed`` (ids of new entries) only alerts involving a proposed entry are produced —
    the fast path for "check this new drug against the list"; without it the whole list is
    checked. Interactions of relevance 3 appear only with ``include_all``. Alerts whose ``key`` is
    among ``handled`` (this patient's acknowledged alerts) are not raised again. ``today`` (default:
    the system date) is the day renal function values are aged against; a value older than
    ``renal_max_age_days`` (default: the rule file's) is not trusted.
    """
    context = CheckContext.create(
        knowledge,
        medications,
        patient or Patient(),
        include_all,
        proposed,
        today=today or date.today(),
        renal_max_age_days=renal_max_age_days or knowledge.dose_rules.renal_max_age_days,
    )
    suppressed = {h.key for h in handled}
    if suppressed:
        alerts = [alert for run in _CHECKS for alert in run(context) if alert.key not in suppressed]
    else:  # nothing handled: no alert's key is needed here
        alerts = [alert for run in _CHECKS for alert in run(context)]
    return sorted(alerts, key=sort_key)
