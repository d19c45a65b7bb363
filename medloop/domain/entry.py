"""One list entry (``EnkeltoppforingLIB``): the drug, how it is used, its status and links.

A ``ListEntry`` is one immutable version of an entry; ``medication_list`` makes new versions.
The rules that depend only on one entry live here: its shape, when it counts as in use, and when
the current-list view still shows it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import (
    AwareDatetime,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from interactions.dosage import Dosage, Use
from interactions.values import PositiveCount
from medloop.domain._model import Frozen
from medloop.domain.codes import DiscontinuationReason, EntryStatus
from medloop.domain.drug_reference import DrugReference
from medloop.domain.personnel import Actor
from medloop.domain.versioning import share_dumps

DISCONTINUED_VISIBLE_FOR = timedelta(days=90)
"""Discontinued entries stay in the current-list view at least this long."""


class Discontinuation(Frozen):
    """Discontinuation (``seponering``): when it takes effect, the coded reason (7494), a note."""

    at: AwareDatetime
    reason: DiscontinuationReason
    note: str | None = None


class ListEntry(Frozen):
    """One version of a list entry.

    ``id`` never changes; ``version`` counts this entry's versions from 1; ``changed_at`` is when
    it last really changed (``SistEndret``). ``dosage`` is the canonical structured dosage
    (``Dosering``); when present its ``use`` (``Bruk``: regular / as needed / course) equals the
    entry's. ``start`` (``DatoOppstart``) may lie in the future; ``stop`` is the planned last day.
    ``prescription_ids`` are the prescriptions backing the entry now (none: used without
    prescription). ``prescriber`` is the ``Rekvirent``; ``instituted_by`` who instituted the
    treatment.
    """

    id: UUID
    version: PositiveCount
    drug: DrugReference
    dosage: Dosage | None = None
    use: Use
    indication: str | None = None
    start: date
    stop: date | None = None
    status: EntryStatus = EntryStatus.ACTIVE
    discontinuation: Discontinuation | None = None
    multidose: bool = False
    prescriber: Actor | None = None
    instituted_by: Actor | None = None
    prescription_ids: tuple[UUID, ...] = ()
    changed_at: AwareDatetime

    @model_validator(mode="after")
    def _is_consistent(self) -> ListEntry:
        if self.stop is not None and self.stop < self.start:
            raise ValueError(f"stop {self.stop} is before start {self.start}")
        if self.dosage is not None and self.dosage.use is not self.use:
            raise ValueError(f"the dosage is for use {self.dosage.use}, the entry for {self.use}")
        if self.status is EntryStatus.DISCONTINUED and self.discontinuation is None:
            raise ValueError("a discontinued entry records its discontinuation")
        if self.discontinuation is not None and self.status.is_live:
            raise ValueError(f"an {self.status} entry has no discontinuation")
        if len(set(self.prescription_ids)) != len(self.prescription_ids):
            raise ValueError("a prescription is linked to the entry twice")
        return self

    def in_use(self, on: date) -> bool:
        """Whether the patient is meant to take this on day ``on``: active and within start/stop.
        On-hold, discontinued and entered-in-error entries are never in use."""
        return (
            self.status is EntryStatus.ACTIVE
            and self.start <= on
            and (self.stop is None or on <= self.stop)
        )

    def visible_at(
        self, now: datetime, keep_discontinued: timedelta = DISCONTINUED_VISIBLE_FOR
    ) -> bool:
        """Whether the current-list view shows this entry at ``now``: active and on-hold entries,
        discontinued ones for ``keep_discontinued`` after the discontinuation, never
        entered-in-error ones."""
        if self.status.is_live:
            return True
        if self.status is EntryStatus.DISCONTINUED and self.discontinuation is not None:
            return now - self.discontinuation.at <= keep_discontinued
        return False


EDITABLE_FIELDS = (
    "drug",
    "dosage",
    "use",
    "indication",
    "start",
    "stop",
    "multidose",
    "prescriber",
    "instituted_by",
)
"""Fields an edit may set; status, discontinuation and prescriptions have their own changes."""

TRACKED_FIELDS = tuple(
    name for name in ListEntry.model_fields if name not in ("id", "version", "changed_at")
)
"""Fields an entry version's diff covers (bookkeeping fields are left out)."""

# An entry's drug and actors are the same objects from command to command (issue #20).
share_dumps(ListEntry, "drug", "prescriber", "instituted_by")


class EntryEdit(Frozen):
    """The fields an edit sets. Only fields given explicitly count, so ``stop=None`` clears the
    stop date while an absent ``stop`` leaves it alone; serialised, an edit holds only its given
    fields, so it means the same after a round trip through JSON."""

    drug: DrugReference | None = None
    dosage: Dosage | None = None
    use: Use | None = None
    indication: str | None = None
    start: date | None = None
    stop: date | None = None
    multidose: bool | None = None
    prescriber: Actor | None = None
    instituted_by: Actor | None = None

    @model_serializer(mode="wrap")
    def _only_given_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        given = self.model_fields_set
        return {name: value for name, value in handler(self).items() if name in given}

    def changes(self) -> dict[str, Any]:
        """The explicitly given fields and their values."""
        given = self.model_fields_set
        return {name: getattr(self, name) for name in EDITABLE_FIELDS if name in given}
