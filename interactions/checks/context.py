"""The shared input of every check: entries with their match profiles, the focus, the patient."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date
from operator import attrgetter

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


_by_id = attrgetter("id")


_ENTRIES: dict[int, tuple[Medication, Knowledge, Entry, Entry]] = {}
"""Each medication's two entries (in focus, out of it), by the medication object and the
knowledge that profiled its drug: a caller's medications are the same frozen objects from check
to check while their list entries do not change (``medloop.loop.runner.medications_of``), and
every check of a list made an ``Entry`` per medication again (issue #20). Entries are frozen."""
_ENTRIES_KEPT = 8_192


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
    focused: tuple[Entry, ...] | None = field(default=None, compare=False, repr=False)
    """The entries in focus, in order, when ``create`` made the context (``None``: found from
    ``entries``)."""

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
        ordered = sorted(medications, key=_by_id)
        ids = [m.id for m in ordered]
        unique = set(ids)
        if len(ids) != len(unique):
            raise ValueError("medication ids must be unique")
        focus = unique if proposed is None else set(proposed)
        if not focus <= unique:
            raise ValueError(f"proposed ids not in the medications: {sorted(focus - unique)}")
        entries = []
        focused = []
        for medication in ordered:
            # Kept per medication object and knowledge (see ``_ENTRIES``), the same values.
            known = _ENTRIES.get(id(medication))
            if known is None or known[0] is not medication or known[1] is not knowledge:
                profile = knowledge.profile(medication.drug)
                if len(_ENTRIES) >= _ENTRIES_KEPT:
                    _ENTRIES.clear()
                # The medication and the knowledge are kept beside the id, so the id cannot
                # name another object meanwhile.
                known = _ENTRIES[id(medication)] = (
                    medication,
                    knowledge,
                    _entry(medication, profile, True),
                    _entry(medication, profile, False),
                )
            if medication.id in focus:
                entries.append(known[2])
                focused.append(known[2])
            else:
                entries.append(known[3])
        make = _context if cls is CheckContext else cls
        return make(
            knowledge,
            tuple(entries),
            patient,
            include_all,
            today,
            renal_max_age_days,
            tuple(focused),
        )

    @property
    def focus(self) -> Iterable[Entry]:
        # Every check walks the focus: a tuple made once, not a generator per walk (issue #20).
        if self.focused is not None:
            return self.focused
        return tuple(entry for entry in self.entries if entry.in_focus)

    def source(self, *, fest_id: str | None = None, rule_id: str | None = None) -> Source:
        return self.knowledge.source(fest_id=fest_id, rule_id=rule_id)


# A frozen slotted dataclass made without its generated ``__init__``: ``object.__new__`` and
# each slot set by its own member descriptor, the values ``__init__`` would set through
# ``object.__setattr__`` (these classes have no ``__post_init__`` and convert nothing). An
# entry pair is made per new medication and a context per check, and the generated
# ``__init__`` cost ~2 k instructions more an instance (issue #20).
# ``tests/interactions/test_ix_engine.py`` compares both ways field for field.
_new = object.__new__
_SET_MEDICATION, _SET_PROFILE, _SET_IN_FOCUS = (
    Entry.__dict__[f.name].__set__ for f in fields(Entry)
)


def _entry(medication: Medication, profile: DrugProfile, in_focus: bool) -> Entry:
    """``Entry(medication, profile, in_focus)``."""
    made = _new(Entry)
    _SET_MEDICATION(made, medication)
    _SET_PROFILE(made, profile)
    _SET_IN_FOCUS(made, in_focus)
    return made


(
    _SET_KNOWLEDGE,
    _SET_ENTRIES,
    _SET_PATIENT,
    _SET_INCLUDE_ALL,
    _SET_TODAY,
    _SET_RENAL_MAX_AGE_DAYS,
    _SET_FOCUSED,
) = (CheckContext.__dict__[f.name].__set__ for f in fields(CheckContext))


def _context(
    knowledge: Knowledge,
    entries: tuple[Entry, ...],
    patient: Patient,
    include_all: bool,
    today: date | None,
    renal_max_age_days: int | None,
    focused: tuple[Entry, ...],
) -> CheckContext:
    """``CheckContext(...)`` with every field given (see ``_entry``)."""
    made = _new(CheckContext)
    _SET_KNOWLEDGE(made, knowledge)
    _SET_ENTRIES(made, entries)
    _SET_PATIENT(made, patient)
    _SET_INCLUDE_ALL(made, include_all)
    _SET_TODAY(made, today)
    _SET_RENAL_MAX_AGE_DAYS(made, renal_max_age_days)
    _SET_FOCUSED(made, focused)
    return made
