"""Decision support without writing: "what would these proposed drugs raise on this patient's
list?" — the dry-run check of the GP API and the CDS Hooks services answer with it.

The proposals are checked exactly as a prescription would be (``medloop.loop.runner``'s
``medications_of`` plus the proposed drugs, the patient's facts and handled alerts, only alerts
involving a proposal), against the catalogue in force. Nothing is written here; the caller
audits the read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from uuid import UUID

from sqlalchemy import Connection

from interactions import Alert, Medication, ResolvedDrug, UnknownReference, check
from interactions.dosage import Dosage
from medloop import queries
from medloop.domain.oslo import today as oslo_today
from medloop.loop.catalogue import Catalogue, DrugOrder, catalogue_in_force
from medloop.loop.errors import UnknownDrug
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
    route: str | None = None
    """A FEST administration-route code (7477) the order gives; it stands in for the route of a
    drug the catalogue gives none for (a drug named by ATC code), so its dose can be checked."""
    display: str | None = None
    """What the order calls the drug; shown when the catalogue has no name but the code."""


@dataclass(frozen=True)
class Screened:
    catalogue_version: int
    hentet_dato: str
    list_version: int
    alerts: tuple[Alert, ...]
    names: dict[str, str]
    """Medication id (a proposal's or a list entry's) → the drug's name."""
    unknown: dict[str, str]
    """Proposal id → why its drug is not in the catalogue (only with ``skip_unknown``)."""


def screen(
    conn: Connection,
    patient_id: UUID,
    proposals: list[Proposal],
    today: date | None = None,
    *,
    skip_unknown: bool = False,
) -> Screened:
    """The alerts the proposals would raise on the patient's current list, with the patient's
    recorded facts as on ``today`` (the API's clock; default: today in Oslo).

    A proposal whose drug the catalogue does not know raises ``UnknownDrug``; with
    ``skip_unknown`` it is left out and named in ``Screened.unknown`` instead."""
    state = queries.patient_state(conn, patient_id)
    catalogue = catalogue_in_force(conn)
    medications = list(medications_of(state.medication_list))
    names = {m.id: m.drug.name for m in medications}
    unknown: dict[str, str] = {}
    checked = []
    for proposal in proposals:
        try:
            resolved = _resolve(catalogue, proposal)
        except UnknownDrug as error:
            if not skip_unknown:
                raise
            unknown[proposal.id] = str(error)
            continue
        resolved = _as_ordered(resolved, proposal)
        checked.append(proposal)
        names[proposal.id] = resolved.name
        medications.append(
            Medication(
                id=proposal.id,
                drug=resolved,
                dosage=proposal.dosage,
                start=proposal.start,
                stop=proposal.stop,
            )
        )
    today = today or oslo_today()
    alerts = (
        ()
        if not checked
        else check(
            catalogue.knowledge,
            medications,
            state.patient.for_checks(today),
            handled=state.handled,
            proposed=[p.id for p in checked],
            today=today,
            renal_max_age_days=renal_max_age_days(),
        )
    )
    return Screened(
        catalogue_version=catalogue.version,
        hentet_dato=catalogue.knowledge.info.hentet_dato,
        list_version=state.medication_list.version,
        alerts=tuple(alerts),
        names=names,
        unknown=unknown,
    )


def _as_ordered(resolved: ResolvedDrug, proposal: Proposal) -> ResolvedDrug:
    """The catalogue's drug with what the order adds: its route when the catalogue gives the
    drug none, its name when the catalogue has only the code."""
    update: dict[str, object] = {}
    if proposal.route is not None and not resolved.route_codes:
        update["route_codes"] = (proposal.route,)
    if proposal.display and resolved.name == resolved.reference_id:
        update["name"] = proposal.display
    return replace(resolved, **update) if update else resolved  # type: ignore[arg-type]


def _resolve(catalogue: Catalogue, proposal: Proposal) -> ResolvedDrug:
    if proposal.drug is not None:
        return catalogue.resolve(proposal.drug).resolved
    try:
        return catalogue.knowledge.resolve(atc=proposal.atc)
    except UnknownReference as error:
        raise UnknownDrug(
            str(error), atc=proposal.atc, catalogue_version=catalogue.version
        ) from error
