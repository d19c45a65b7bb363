"""Generic substitution within a restricted substitution group (FEST ``Byttegruppe`` with
``MerknadTilByttbarhet`` true).

What the remark means (HIS 3020 / KITH M30 2.5 ``MerknadTilByttbarhet``; FEST implementation
guide 3.5 §6.5.3): a limitation on when generic substitution may be used — either *limited
substitution* for all or part of a substance's use, meaning substitution only at a patient's
first prescription, or *no substitution for part of a use*. ``BeskrivelseByttbarhet`` says
which (e.g. "Begrenset bytte ved epilepsi"). The pharmacy knows neither the indication nor, for
sure, whether this is the first prescription, so the pharmacist decides: the alert needs a
reasoned override, which is stored and audited like every override.
"""

from __future__ import annotations

from collections.abc import Iterator

from interactions.alerts import Alert, Severity, SubstitutionRestrictionDetail, shorten
from interactions.checks.context import CheckContext


def substitution_alerts(context: CheckContext) -> Iterator[Alert]:
    for entry in context.focus:
        substitution = entry.medication.substitution
        if substitution is None:
            continue
        group = context.knowledge.substitution_groups.get(substitution.group_id)
        if group is None or not group.restricted:
            continue
        yield Alert(
            severity=Severity.PRECAUTIONS,
            medications=(entry.id,),
            summary=shorten(
                f"Restricted substitution ({group.restriction_text or group.code}): "
                f"{entry.name} for {substitution.prescribed}"
            ),
            detail=SubstitutionRestrictionDetail(
                substitution_group_id=group.id,
                group_code=group.code,
                group_name=group.description,
                restriction=group.restriction_text,
                prescribed=substitution.prescribed,
                dispensed=entry.name,
                prescription=substitution.prescription,
                earlier_dispenses=substitution.earlier_dispenses,
            ),
            source=context.source(fest_id=group.id),
        )


def restriction_key(medication_id: str, group_code: str, prescription: str) -> str:
    """The key of the alert ``substitution_alerts`` raises for that entry, group and
    prescription (for a caller that shows the decision recorded under it)."""
    record = f"substitution-restriction:{group_code}:{prescription}"
    return f"substitution-restriction/{record}/{medication_id}"
