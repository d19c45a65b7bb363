"""Interactions not assessed (FEST ``InteraksjonIkkeVurdert``): no hits for such a drug must
never read as "safe", so each one gets a notice."""

from __future__ import annotations

from collections.abc import Iterator

from interactions.alerts import Alert, NotAssessedDetail, Severity, shorten
from interactions.checks.context import CheckContext


def not_assessed_alerts(context: CheckContext) -> Iterator[Alert]:
    for entry in context.focus:
        for not_assessed, drug_atc in entry.profile.not_assessed:
            detail = NotAssessedDetail(
                atc=not_assessed.atc, name=not_assessed.name, drug_atc=drug_atc
            )
            yield Alert(
                severity=Severity.INFO,
                medications=(entry.id,),
                summary=shorten(f"Interactions not assessed for {entry.name} ({drug_atc})"),
                detail=detail,
                source=context.source(rule_id=detail.record),
            )
