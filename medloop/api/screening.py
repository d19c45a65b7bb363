"""Decision support without writing: "what would these proposed drugs raise on this patient's
list?" — the dry-run check of the GP API and the CDS Hooks services answer with it.

The proposals are checked exactly as a prescription would be (``medloop.loop.runner``'s
``medications_of`` plus the proposed drugs, the patient's facts and handled alerts, only alerts
involving a proposal), against the catalogue in force. Nothing is written here; the caller
audits the read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from uuid import UUID

from sqlalchemy import Connection

from interactions import Alert, Medication, ResolvedDrug, UnknownReference, check
from interactions.dosage import Dosage
from medloop import queries
from medloop.domain.errors import UnknownDrug
from medloop.loop.catalogue import Catalogue, DrugOrder, catalogue_in_force
from medloop.loop.runner import medications_of
from medloop.settings import renal_max_age_days


@dataclass(frozen=True)
class Proposal:
    """A drug the clinician is about to order; ``id`` names it in the alerts."""

    id: str
    drug: DrugOrder | None
    dosage: Dosage | None
    start: date
    stop: date | None = None
    atc: str | None = None
    """An ATC code instead of ``drug`` (CDS Hooks drafts may be coded by ATC only)."""


@dataclass(frozen=True)
class Screened:
    catalogue_version: int
    hentet_dato: str
    list_version: int
    alerts: tuple[Alert, ...]
    names: dict[str, str]
    """Proposal id → the drug's catalogue name."""


def screen(
    conn: Connection, patient_id: UUID, proposals: list[Proposal], today: date | None = None
) -> Screened:
    """The alerts the proposals would raise on the patient's current list, with the patient's
    recorded facts as on ``today`` (the API's clock; default: the system date)."""
    state = queries.patient_state(conn, patient_id)
    catalogue = catalogue_in_force(conn)
    medications = list(medications_of(state.medication_list))
    names = {}
    for proposal in proposals:
        resolved = _resolve(catalogue, proposal)
        names[proposal.id] = resolved.name
        medications.append(
            Medication(
                id=proposal.id, drug=resolved, dosage=proposal.dosage,
                start=proposal.start, stop=proposal.stop,
            )
        )
    today = today or datetime.now(UTC).date()
    alerts = check(
        catalogue.knowledge,
        medications,
        state.patient.for_checks(today),
        handled=state.handled,
        proposed=[p.id for p in proposals],
        today=today,
        renal_max_age_days=renal_max_age_days(),
    )
    return Screened(
        catalogue_version=catalogue.version,
        hentet_dato=catalogue.knowledge.info.hentet_dato,
        list_version=state.medication_list.version,
        alerts=tuple(alerts),
        names=names,
    )


def _resolve(catalogue: Catalogue, proposal: Proposal) -> ResolvedDrug:
    if proposal.drug is not None:
        return catalogue.resolve(proposal.drug).resolved
    try:
        return catalogue.knowledge.resolve(atc=proposal.atc)
    except UnknownReference as error:
        raise UnknownDrug(
            str(error), atc=proposal.atc, catalogue_version=catalogue.version
        ) from error
