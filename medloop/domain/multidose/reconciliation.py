"""Reconciliation of a packing report (M25.3) against the list.

Reconciliation classifies every line, never merges silently (``LineClass``): each packed line
gets exactly one class, the most serious that applies, in this order — packed-but-not-on-list,
packed-but-discontinued, not-packable-item-packed, product-not-in-substitution-group,
prescription-expired-or-recalled, then the timing classes (change-after-deadline,
time-mismatch, dose-mismatch) and finally ok / ok-substituted; every dose the list expects and
no packed line covers becomes missing-from-bags (or change-after-deadline when the list gained
it after the plan was fixed, or prescription-expired-or-recalled when nothing backs it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from interactions.catalogue import Package, SubstitutionGroup
from interactions.dosage import Quantity
from interactions.values import MAX_ITEMS, Count
from medloop.domain._model import Frozen
from medloop.domain.codes import (
    EntryStatus,
    PrescriptionStatus,
)
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.entry import ListEntry
from medloop.domain.medication_list import ListChange, MedicationList
from medloop.domain.multidose.errors import InvalidPackReport
from medloop.domain.multidose.periods import PackingPeriod, UrgentPack, cutoff, list_at
from medloop.domain.multidose.plan import (
    OutsideReason,
    Slot,
    bag_order,
    expected_doses,
    placement,
    same_amount,
    taken_on,
    varenr_of,
)
from medloop.domain.multidose.rules import LineClass, PackingRules
from medloop.domain.oslo import local_date
from medloop.domain.personnel import Actor
from medloop.domain.prescription import Prescription


class PackedLine(Frozen):
    """One line of a bag as packed: the package (varenr) and how much; ``entry_id`` when the
    pharmacy names the list entry (M25.3 does)."""

    varenr: str = Field(min_length=6, max_length=6)
    quantity: Quantity
    entry_id: UUID | None = None


class PackedBag(Frozen):
    day: date
    intake: str = Field(min_length=1)
    lines: tuple[PackedLine, ...] = Field(max_length=MAX_ITEMS)


class PackReport(Frozen):
    """What the pharmacy reports it packed for a period (M25.3)."""

    report_id: UUID
    period_id: UUID
    bags: tuple[PackedBag, ...] = Field(max_length=4 * MAX_ITEMS)

    @model_validator(mode="after")
    def _bags_are_distinct(self) -> PackReport:
        seen = set()
        for bag in self.bags:
            if (bag.day, bag.intake) in seen:
                raise ValueError(f"bag {bag.day} {bag.intake} is reported twice")
            seen.add((bag.day, bag.intake))
        return self


@dataclass(frozen=True, slots=True)
class PackedProduct:
    """A packed varenr as the catalogue in force knows it."""

    package: Package
    form_code: str | None
    name: str


class ReconciledLine(Frozen):
    """One classified line: a packed line, or an expected dose nothing covered."""

    line_class: LineClass
    day: date
    intake: str
    entry_id: UUID | None = None
    varenr: str | None = None
    packed: Quantity | None = None
    expected: Quantity | None = None
    expected_intake: str | None = None
    detail: str | None = None


class PackReconciliation(Frozen):
    """The result of reconciling one packing report against the list (stored, shown to the
    pharmacy and the GP)."""

    id: UUID
    patient_id: UUID
    period_id: UUID
    report_id: UUID
    list_version: Count
    plan_list_version: Count
    reconciled_at: AwareDatetime
    reconciled_by: Actor
    lines: tuple[ReconciledLine, ...]
    counts: dict[LineClass, Count]

    @property
    def discrepancies(self) -> tuple[ReconciledLine, ...]:
        return tuple(
            line
            for line in self.lines
            if line.line_class not in (LineClass.OK, LineClass.OK_SUBSTITUTED)
        )


def reconcile_report(
    report: PackReport,
    period: PackingPeriod,
    changes: Sequence[ListChange],
    current: MedicationList,
    prescriptions: Mapping[UUID, Prescription],
    urgent_packs: Iterable[UrgentPack],
    products: Mapping[str, PackedProduct],
    substitution_groups: Iterable[SubstitutionGroup],
    rules: PackingRules,
    *,
    reconciliation_id: UUID,
    at: datetime,
    by: Actor,
) -> PackReconciliation:
    """Classify every packed line and every expected dose (see the module docstring).

    ``current`` is the list now; the plan is the list at the cutoff. ``products`` maps each
    reported varenr to the catalogue's package and form."""
    if report.period_id != period.id:
        raise InvalidPackReport(
            f"the report is for period {report.period_id}, not {period.id}",
            period_id=report.period_id,
        )
    days = set(period.days)
    for bag in report.bags:
        if bag.day not in days:
            raise InvalidPackReport(
                f"bag {bag.day} {bag.intake} lies outside the period {period.first_day}–"
                f"{period.last_day}",
                day=bag.day,
            )
        for line in bag.lines:
            if line.varenr not in products:
                raise InvalidPackReport(
                    f"varenr {line.varenr} is not in the catalogue", varenr=line.varenr
                )
    packs = [u for u in urgent_packs if u.period_id == period.id]
    planned_list = list_at(period.patient_id, changes, cutoff(period, packs))
    planned = expected_doses(planned_list.entries, period.days, rules)
    now = expected_doses(current.entries, period.days, rules)
    groups = {g.id: g for g in substitution_groups}
    context = _Context(
        current,
        prescriptions,
        products,
        groups,
        rules,
        planned,
        now,
        changed_after={e.id for e in current.entries} - _unchanged(planned_list, current),
    )
    lines: list[ReconciledLine] = []
    unmatched: list[tuple[date, str, PackedLine, ListEntry]] = []
    covered: set[Slot] = set()
    for bag in sorted(report.bags, key=lambda b: bag_order(b.day, b.intake)):
        for line in bag.lines:
            entry = context.entry_for(line, bag.day, bag.intake)
            verdict = context.classify_product(line, entry, bag.day)
            if verdict is not None:
                lines.append(verdict.model_copy(update={"day": bag.day, "intake": bag.intake}))
                if entry is not None:
                    covered.add((bag.day, bag.intake, entry.id))
                continue
            assert entry is not None
            key = (bag.day, bag.intake, entry.id)
            if key in now or key in planned:
                covered.add(key)
                lines.append(context.classify_amount(line, entry, key))
            else:
                unmatched.append((bag.day, bag.intake, line, entry))
    for day, intake, line, entry in unmatched:
        lines.append(context.classify_time(day, intake, line, entry, covered))
    for key in sorted(now, key=lambda k: (*bag_order(k[0], k[1]), str(k[2]))):
        if key not in covered:
            lines.append(context.classify_missing(key))
    counts: dict[LineClass, int] = dict.fromkeys(LineClass, 0)
    for line in lines:
        counts[line.line_class] += 1
    return PackReconciliation(
        id=reconciliation_id,
        patient_id=period.patient_id,
        period_id=period.id,
        report_id=report.report_id,
        list_version=current.version,
        plan_list_version=planned_list.version,
        reconciled_at=at,
        reconciled_by=by,
        lines=tuple(lines),
        counts=counts,
    )


def _unchanged(before: MedicationList, after: MedicationList) -> set[UUID]:
    versions = {e.id: e.version for e in before.entries}
    return {e.id for e in after.entries if versions.get(e.id) == e.version}


class _Context:
    """The lookups one reconciliation shares."""

    def __init__(
        self,
        current: MedicationList,
        prescriptions: Mapping[UUID, Prescription],
        products: Mapping[str, PackedProduct],
        groups: Mapping[str, SubstitutionGroup],
        rules: PackingRules,
        planned: Mapping[Slot, Quantity],
        now: Mapping[Slot, Quantity],
        changed_after: set[UUID],
    ) -> None:
        self.entries = {e.id: e for e in current.entries}
        self.prescriptions = prescriptions
        self.products = products
        self.groups = groups
        self.rules = rules
        self.planned = planned
        self.now = now
        self.changed_after = changed_after
        self.placements: dict[UUID, OutsideReason | None] = {}
        self.now_by_entry_day: dict[tuple[UUID, date], list[Slot]] = defaultdict(list)
        for key in now:
            self.now_by_entry_day[(key[2], key[0])].append(key)

    def placement(self, entry: ListEntry) -> OutsideReason | None:
        if entry.id not in self.placements:
            self.placements[entry.id] = placement(entry, self.rules)
        return self.placements[entry.id]

    def entry_for(self, line: PackedLine, day: date, intake: str) -> ListEntry | None:
        if line.entry_id is not None:
            entry = self.entries.get(line.entry_id)
            return None if entry is None or entry.status is EntryStatus.ENTERED_IN_ERROR else entry
        package = self.products[line.varenr].package
        candidates = [
            e
            for e in self.entries.values()
            if e.status is not EntryStatus.ENTERED_IN_ERROR
            and isinstance(e.drug, CatalogueDrug)
            and (
                e.drug.names_package(package)
                or (
                    package.substitution_group_id is not None
                    and package.substitution_group_id in e.drug.resolved.substitution_group_ids
                )
            )
        ]
        if not candidates:
            return None

        def rank(e: ListEntry) -> tuple[int, int, int]:
            assert isinstance(e.drug, CatalogueDrug)
            return (
                0 if (day, intake, e.id) in self.now or (day, intake, e.id) in self.planned else 1,
                0 if e.status.is_live else 1,
                0 if e.drug.names_package(package) else 1,
            )

        return min(candidates, key=rank)

    def classify_product(
        self, line: PackedLine, entry: ListEntry | None, day: date
    ) -> ReconciledLine | None:
        """The class of a packed line decided by the entry and product alone, if any."""
        base = {"day": day, "intake": "", "varenr": line.varenr, "packed": line.quantity}
        product = self.products[line.varenr]
        if entry is None:
            return ReconciledLine(
                line_class=LineClass.PACKED_NOT_ON_LIST,
                **base,
                detail=f"{product.name} is not on the list",
            )
        base["entry_id"] = entry.id
        if entry.status is not EntryStatus.ACTIVE and not taken_on(entry, day):
            late = entry.id in self.changed_after
            when = "after the order deadline" if late else "before the order deadline"
            return ReconciledLine(
                line_class=LineClass.PACKED_DISCONTINUED,
                **base,
                detail=f"{entry.drug.name} is {entry.status} ({when})",
            )
        reason = self.placement(entry)
        if reason is not None or not self.rules.packable_form(product.form_code):
            why = (
                f"{product.name} has a form that is not packable"
                if not self.rules.packable_form(product.form_code)
                else f"{entry.drug.name} is given outside multidose ({reason})"
            )
            return ReconciledLine(line_class=LineClass.NOT_PACKABLE_PACKED, **base, detail=why)
        assert isinstance(entry.drug, CatalogueDrug)
        substituted = not entry.drug.names_package(product.package)
        if substituted and not self._substitutable(entry, product.package, day):
            return ReconciledLine(
                line_class=LineClass.NOT_IN_SUBSTITUTION_GROUP,
                **base,
                detail=f"{product.name} is not substitutable for {entry.drug.name} on {day}",
            )
        if not self._backed(entry, day):
            return ReconciledLine(
                line_class=LineClass.PRESCRIPTION_NOT_VALID,
                **base,
                detail=f"no valid prescription backs {entry.drug.name} on {day}",
            )
        return None

    def classify_amount(self, line: PackedLine, entry: ListEntry, key: Slot) -> ReconciledLine:
        day, intake, _ = key
        product = self.products[line.varenr]
        assert isinstance(entry.drug, CatalogueDrug)
        substituted = not entry.drug.names_package(product.package)
        expected_now, expected_plan = self.now.get(key), self.planned.get(key)
        base = {
            "day": day,
            "intake": intake,
            "entry_id": entry.id,
            "varenr": line.varenr,
            "packed": line.quantity,
            "expected": expected_now,
        }
        if expected_now is not None and same_amount(expected_now, line.quantity):
            cls = LineClass.OK_SUBSTITUTED if substituted else LineClass.OK
            detail = f"{product.name} for {entry.drug.name}" if substituted else None
            return ReconciledLine(line_class=cls, **base, detail=detail)
        if (
            expected_plan is not None
            and same_amount(expected_plan, line.quantity)
            and entry.id in self.changed_after
        ):
            return ReconciledLine(
                line_class=LineClass.CHANGE_AFTER_DEADLINE,
                **base,
                detail=f"packed as planned; {entry.drug.name} changed after the order deadline",
            )
        if expected_now is None:
            return ReconciledLine(
                line_class=LineClass.TIME_MISMATCH,
                **base,
                detail=f"{entry.drug.name} has no dose at {intake} on {day}",
            )
        return ReconciledLine(
            line_class=LineClass.DOSE_MISMATCH,
            **base,
            detail=f"packed {line.quantity.value:g} {line.quantity.unit}, the list says "
            f"{expected_now.value:g} {expected_now.unit}",
        )

    def classify_time(
        self, day: date, intake: str, line: PackedLine, entry: ListEntry, covered: set[Slot]
    ) -> ReconciledLine:
        """A packed line in a bag where the entry has no dose: paired, when possible, with a
        dose of the same entry that day that no line covered."""
        base = {
            "day": day,
            "intake": intake,
            "entry_id": entry.id,
            "varenr": line.varenr,
            "packed": line.quantity,
        }
        for key in self.now_by_entry_day.get((entry.id, day), ()):
            if key not in covered:
                covered.add(key)
                return ReconciledLine(
                    line_class=LineClass.TIME_MISMATCH,
                    **base,
                    expected=self.now[key],
                    expected_intake=key[1],
                    detail=f"{entry.drug.name} is due at {key[1]}, packed at {intake}",
                )
        return ReconciledLine(
            line_class=LineClass.TIME_MISMATCH,
            **base,
            detail=f"{entry.drug.name} has no dose at {intake} on {day}",
        )

    def classify_missing(self, key: Slot) -> ReconciledLine:
        day, intake, entry_id = key
        entry = self.entries[entry_id]
        base = {
            "day": day,
            "intake": intake,
            "entry_id": entry_id,
            "varenr": varenr_of(entry),
            "expected": self.now[key],
        }
        if not self._backed(entry, day):
            return ReconciledLine(
                line_class=LineClass.PRESCRIPTION_NOT_VALID,
                **base,
                detail=f"not packed; no valid prescription backs {entry.drug.name} on {day}",
            )
        if key not in self.planned and entry_id in self.changed_after:
            return ReconciledLine(
                line_class=LineClass.CHANGE_AFTER_DEADLINE,
                **base,
                detail=f"{entry.drug.name} changed after the order deadline; not in this roll",
            )
        return ReconciledLine(
            line_class=LineClass.MISSING_FROM_BAGS,
            **base,
            detail=f"{entry.drug.name} is on the list but not in the bag",
        )

    def _substitutable(self, entry: ListEntry, package: Package, day: date) -> bool:
        assert isinstance(entry.drug, CatalogueDrug)
        group_id = package.substitution_group_id
        if group_id is None or group_id not in entry.drug.resolved.substitution_group_ids:
            return False
        if any(
            self.prescriptions[p].reserved_against_substitution
            for p in entry.prescription_ids
            if p in self.prescriptions
        ):
            return False
        group = self.groups.get(group_id)
        if group is None:
            return False
        return all(
            (start is None or start <= day) and (end is None or day <= end)
            for start, end in (
                (group.valid_from, group.valid_to),
                (package.substitution_valid_from, package.substitution_valid_to),
            )
        )

    def _backed(self, entry: ListEntry, day: date) -> bool:
        """An entry with prescriptions needs one that is not recalled or expired on ``day``;
        an entry used without prescription needs none."""
        if not entry.prescription_ids:
            return True
        return any(
            _prescription_valid(p, day)
            for p in (self.prescriptions.get(i) for i in entry.prescription_ids)
            if p is not None
        )


def _prescription_valid(prescription: Prescription, day: date) -> bool:
    """Valid on ``day``: within issue and expiry, and not yet recalled on that day."""
    if not prescription.valid_on(day):
        return False
    if prescription.status is PrescriptionStatus.RECALLED and prescription.recall is not None:
        return day < local_date(prescription.recall.at)
    return True
