"""The shared input of every check: entries with their match profiles, the focus, the patient."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from interactions.alerts import Source
from interactions.knowledge import DrugProfile, Knowledge
from interactions.medication import Medication, Patient


@dataclass(frozen=True, slots=True)
class Entry:
    """A list entry with what its drug matches; ``in_focus`` entries are the ones evaluated."""

    medication: Medication
    profile: DrugProfile
    in_focus: bool

    @property
    def id(self) -> str:
        return self.medication.id

    @property
    def name(self) -> str:
        return self.medication.drug.name


@dataclass(frozen=True, slots=True)
class CheckContext:
    """One check run: entries sorted by id (so results never depend on list order), the patient
    and whether relevance-3 interactions are wanted. Entries out of focus only serve as partners.
    ``today`` is the day the check is made for (renal function is judged by its age then), and
    ``renal_max_age_days`` how old a renal function value may be and still be trusted."""

    knowledge: Knowledge
    entries: tuple[Entry, ...]
    patient: Patient
    include_all: bool
    today: date | None = None
    renal_max_age_days: int | None = None

    @classmethod
    def create(
        cls,
        knowledge: Knowledge,
        medications: Iterable[Medication],
        patient: Patient,
        include_all: bool,
        proposed: Iterable[str] | None,
        today: date | None = None,
        renal_max_age_days: int | None = None,
    ) -> CheckContext:
        ordered = sorted(medications, key=lambda m: m.id)
        ids = [m.id for m in ordered]
        if len(ids) != len(set(ids)):
            raise ValueError("medication ids must be unique")
        focus = set(ids) if proposed is None else set(proposed)
        if not focus <= set(ids):
            raise ValueError(f"proposed ids not in the medications: {sorted(focus - set(ids))}")
        entries = tuple(Entry(m, knowledge.profile(m.drug), m.id in focus) for m in ordered)
        return cls(knowledge, entries, patient, include_all, today, renal_max_age_days)

    @property
    def focus(self) -> Iterator[Entry]:
        return (entry for entry in self.entries if entry.in_focus)

    def source(self, *, fest_id: str | None = None, rule_id: str | None = None) -> Source:
        return self.knowledge.source(fest_id=fest_id, rule_id=rule_id)
