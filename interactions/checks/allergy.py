"""Allergy / CAVE: a patient allergen (ATC code at any level, or substance id) against each entry,
matched like an interaction group entry."""

from __future__ import annotations

from collections.abc import Iterator

from interactions import atc
from interactions.alerts import Alert, AllergyDetail, Severity, shorten
from interactions.checks.context import CheckContext, Entry
from interactions.medication import Allergy


def allergy_alerts(context: CheckContext) -> Iterator[Alert]:
    for allergy in context.patient.allergies:
        for entry in context.focus:
            via = _matched_via(allergy, entry)
            if via is None:
                continue
            detail = AllergyDetail(
                allergen=allergy.allergen,
                allergen_kind="atc" if allergy.atc else "substance",
                label=allergy.label,
                via=via,
            )
            yield Alert(
                severity=Severity.AVOID,
                medications=(entry.id,),
                summary=shorten(f"Allergy/CAVE {allergy.label or allergy.allergen}: {entry.name}"),
                detail=detail,
                source=context.source(rule_id="allergy"),
            )


def _matched_via(allergy: Allergy, entry: Entry) -> str | None:
    """The drug's ATC code or substance id the allergen covers, if any."""
    if allergy.atc is not None:
        allergen = atc.normalise(allergy.atc)
        if allergen is None:
            return None
        return next((code for code in entry.profile.atc_codes if atc.covers(allergen, code)), None)
    return allergy.substance_id if allergy.substance_id in entry.profile.substance_keys else None
