"""Drug–drug interactions from FEST ``KatInteraksjon``.

Two different entries in use at the same time interact when one matches one substance group of an
interaction and the other matches another group of it. A single entry (a combination product
matching both groups) never interacts with itself. Each interaction record is reported once per
entry pair however many group codes matched.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator

from interactions.alerts import (
    Alert,
    Handling,
    InteractionDetail,
    Match,
    Reference,
    Severity,
    shorten,
)
from interactions.catalogue import Interaction
from interactions.checks.context import CheckContext, Entry
from interactions.knowledge import Side

_SEVERITY_BY_RELEVANCE = {1: Severity.AVOID, 2: Severity.PRECAUTIONS, 3: Severity.NO_ACTION}
_LABEL = {
    Severity.AVOID: "avoid the combination",
    Severity.PRECAUTIONS: "take precautions",
    Severity.NO_ACTION: "no action needed",
}
_HANDLING_PREFIXES = {
    "Dosetilpasning": "dose_adjustment",
    "Justering av administrering": "administration",
    "Monitorering": "monitoring",
    "Legemiddelalternativer": "alternatives",
}
_HANDLING_SPLIT = re.compile(r"(?:^|(?<=\s))(" + "|".join(_HANDLING_PREFIXES) + r"):")


def severity_of(relevance: int) -> Severity:
    """Relevans 1 avoid, 2 precautions, 3 no action; an unknown value is never downgraded."""
    return _SEVERITY_BY_RELEVANCE.get(relevance, Severity.PRECAUTIONS)


def interaction_alerts(context: CheckContext) -> Iterator[Alert]:
    knowledge = context.knowledge
    hidden: frozenset[Side] = frozenset() if context.include_all else knowledge.no_action_sides
    for entry in context.focus:
        if not entry.profile.sides <= hidden:
            return _interaction_alerts(context, hidden)
    # No focus entry is on a side shown: no pair to find (issue #20).
    return iter(())


def _interaction_alerts(context: CheckContext, hidden: frozenset[Side]) -> Iterator[Alert]:
    entries, knowledge = context.entries, context.knowledge
    partner_sides = knowledge.partner_sides
    focus_sides = {
        position: entry.profile.sides - hidden
        for position, entry in enumerate(entries)
        if entry.in_focus
    }
    wanted = {
        partner
        for sides in focus_sides.values()
        for side in sides
        for partner in partner_sides[side]
    }
    members: defaultdict[Side, list[int]] = defaultdict(list)
    for position, entry in enumerate(entries):
        for side in entry.profile.sides & wanted:
            members[side].append(position)

    # (interaction, first entry, second entry) -> orientations (group of first, group of second)
    found: defaultdict[tuple[int, int, int], set[tuple[int, int]]] = defaultdict(set)
    for position, sides in focus_sides.items():
        medication = entries[position].medication
        for interaction_index, group in sides:
            for _, other_group in partner_sides[(interaction_index, group)]:
                for partner in members.get((interaction_index, other_group), ()):
                    if partner == position or not medication.overlaps(entries[partner].medication):
                        continue
                    if position < partner:
                        found[(interaction_index, position, partner)].add((group, other_group))
                    else:
                        found[(interaction_index, partner, position)].add((other_group, group))

    for (interaction_index, first, second), orientations in found.items():
        groups = min(orientations)
        yield _alert(
            context,
            knowledge.interactions[interaction_index],
            interaction_index,
            (entries[first], groups[0]),
            (entries[second], groups[1]),
        )


def _alert(
    context: CheckContext,
    interaction: Interaction,
    interaction_index: int,
    *matched: tuple[Entry, int],
) -> Alert:
    severity = severity_of(interaction.relevance)
    names = " + ".join(entry.name for entry, _ in matched)
    return Alert(
        severity=severity,
        medications=tuple(sorted(entry.id for entry, _ in matched)),
        summary=shorten(f"Interaction, {_LABEL[severity]}: {names}"),
        detail=InteractionDetail(
            interaction_id=interaction.id,
            relevance=interaction.relevance,
            situation=interaction.situation,
            consequence=interaction.consequence,
            mechanism=interaction.mechanism,
            source_basis=interaction.source_basis,
            handling=split_handling(interaction.handling),
            display_rules=interaction.display_rules,
            references=tuple(Reference(text=text, url=url) for text, url in interaction.references),
            matches=tuple(
                Match(
                    medication=entry.id,
                    group=interaction.groups[group].name,
                    via=context.knowledge.matched_via(entry.profile, (interaction_index, group)),
                )
                for entry, group in matched
            ),
        ),
        source=context.source(fest_id=interaction.id),
    )


def split_handling(text: str | None) -> Handling:
    """``Handtering`` split on its paragraph prefixes ("Dosetilpasning:", "Monitorering:" …)."""
    if not text:
        return Handling()
    parts = _HANDLING_SPLIT.split(text)
    fields: dict[str, str] = {}
    if parts[0].strip():
        fields["other"] = parts[0].strip()
    for prefix, paragraph in zip(parts[1::2], parts[2::2], strict=True):
        field = _HANDLING_PREFIXES[prefix]
        fields[field] = " ".join(filter(None, (fields.get(field), paragraph.strip())))
    return Handling(**fields)
