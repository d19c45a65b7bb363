"""Duplicate therapy: two entries in use at the same time, whoever prescribed them.

Same substance (a shared ATC level-5 code, including combination components, or a shared
moiety) or the same substitution group is a duplicate (``precautions``); sharing only an ATC
level-4 group is a softer notice (``info``). FEST can list one product twice under different ids,
so products are compared by ATC and substance, never by id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from itertools import combinations

from interactions.alerts import Alert, DuplicateDetail, DuplicateReason, Severity, shorten
from interactions.checks.context import CheckContext, Entry
from interactions.knowledge import DuplicateKey


def duplicate_alerts(context: CheckContext) -> Iterator[Alert]:
    entries = context.entries
    focus = context.focus
    if len(focus) == 1:  # a prescribe's check: one proposed entry against the list
        return _one_in_focus(context, entries, focus[0])
    return _any_in_focus(context, entries)


def _one_in_focus(context: CheckContext, entries: tuple[Entry, ...], one: Entry) -> list[Alert]:
    """``_any_in_focus`` when exactly ``one`` entry is in focus: every pair it makes with an
    entry that shares one of its keys, by position, as ``_any_in_focus`` finds and orders them
    (a pair of two other entries is never reported, and a key two entries share is one of the
    focus entry's only when it is one of its own). No key set is built per entry (issue #20)."""
    keys = one.profile.duplicate_keys
    found = []
    before = True
    for entry in entries:
        if entry is one:
            before = False
        elif not keys.isdisjoint(entry.profile.duplicate_keys) and one.medication.overlaps(
            entry.medication
        ):
            found.append(_alert(context, entry, one) if before else _alert(context, one, entry))
    return found


def _any_in_focus(context: CheckContext, entries: tuple[Entry, ...]) -> Iterator[Alert]:
    focus_keys = frozenset().union(*(entry.profile.duplicate_keys for entry in context.focus))
    holders: defaultdict[DuplicateKey, list[int]] = defaultdict(list)
    for position, entry in enumerate(entries):
        for key in entry.profile.duplicate_keys & focus_keys:
            holders[key].append(position)
    candidates = {pair for positions in holders.values() for pair in combinations(positions, 2)}
    for first, second in sorted(candidates):
        a, b = entries[first], entries[second]
        if (a.in_focus or b.in_focus) and a.medication.overlaps(b.medication):
            yield _alert(context, a, b)


def _alert(context: CheckContext, first: Entry, second: Entry) -> Alert:
    shared: dict[str, set[str]] = defaultdict(set)
    for kind, value in first.profile.duplicate_keys & second.profile.duplicate_keys:
        shared[kind].add(value)
    reasons: list[DuplicateReason] = []
    if shared["atc"] or shared["moiety"]:
        reasons.append("same-substance")
    if shared["substitution-group"]:
        reasons.append("same-substitution-group")
    soft = not reasons
    if soft:
        reasons.append("same-atc-level4")
    detail = DuplicateDetail(
        reasons=tuple(reasons),
        atc_codes=tuple(sorted(shared["atc-level4"] if soft else shared["atc"])),
        substance_ids=tuple(sorted(shared["moiety"])),
        substitution_group_ids=tuple(sorted(shared["substitution-group"])),
    )
    return Alert(
        severity=Severity.INFO if soft else Severity.PRECAUTIONS,
        medications=(first.id, second.id),
        summary=shorten(
            f"Duplicate therapy ({'same ATC group' if soft else 'same substance'}): "
            f"{first.name} + {second.name}"
        ),
        detail=detail,
        source=context.source(rule_id=detail.record),
    )
