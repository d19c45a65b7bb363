"""Stored records that cannot be read: found, named and reported, never a silent failure.

Every record is validated on its way in (``interactions.values``), so a stored record should
always load again. One that does not — a row written by an older version, or changed outside
the engine — must not take the patient down with an anonymous error: the load raises
``StoredRecordUnreadable`` naming the table, the row's key and what is wrong (never the value
itself), the API answers it with the problem type
``https://medloop.dev/problems/stored-record-unreadable``, and ``medloop records check`` (the
operator's command, ``check``) lists every unreadable record of every table below.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import Connection, Table, select

from interactions import Alert
from medloop.domain.administration import Administration, AdministrationCorrection, PlannedDose
from medloop.domain.dispense import Annulment, Dispense
from medloop.domain.medication_list import EntryVersion
from medloop.domain.messages import ListProposalDecision, MessageSent, ReceivedMessage
from medloop.domain.multidose.periods import PackingPeriod, UrgentPack
from medloop.domain.multidose.proposals import Proposal, ProposalAnswer, ProposalDecision
from medloop.domain.multidose.reconciliation import PackReconciliation
from medloop.domain.multidose.responsibility import Responsibility
from medloop.domain.multidose.tasks import MultidoseTask, TaskResolution
from medloop.domain.patient import Patient
from medloop.domain.personnel import Actor
from medloop.domain.prescription import PrescriptionVersion
from medloop.domain.reconciliation import Reconciliation
from medloop.domain.review import MedicationReview
from medloop.domain.ward import Admission, Ward, WardConfig
from medloop.store import (
    administration,
    alerts,
    list_changes,
    messages,
    multidose,
    outbox,
    patients,
    prescriptions,
    reviews,
)
from medloop.store.columns import UNREADABLE, why


@dataclass(frozen=True)
class Unreadable:
    """One unreadable record as ``check`` reports it."""

    table: str
    key: dict[str, str]
    column: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"table": self.table, "key": self.key, "column": self.column, "reason": self.reason}


@dataclass(frozen=True)
class Stored:
    """A JSON column of a table and the model its values load as."""

    table: Table
    column: str
    model: type[BaseModel] | Callable[[Any], Any]
    patient: Callable[[Any], Any] | None = None
    """How to restrict the rows to one patient (a where clause from the patient id)."""


def stored_records() -> list[Stored]:
    """Every JSON column of the patient data and the model it loads as."""

    def by_patient(table: Table) -> Callable[[Any], Any] | None:
        column = table.c.get("patient_id")
        if column is None:
            return None
        return lambda patient_id: column == str(patient_id)

    columns = [
        (patients.patient, "record", Patient),
        (list_changes.list_change, "author", Actor),
        (list_changes.entry_version, "record", EntryVersion),
        (prescriptions.prescription_version, "record", PrescriptionVersion),
        (prescriptions.dispense, "record", Dispense),
        (prescriptions.dispense_annulment, "record", Annulment),
        (prescriptions.reconciliation, "record", Reconciliation),
        (alerts.alert, "record", Alert),
        (alerts.alert, "override_by", Actor),
        (alerts.handled_alert, "handled_by", Actor),
        (administration.ward, "record", Ward),
        (administration.ward_config, "record", WardConfig),
        (administration.admission, "record", Admission),
        (administration.planned_dose, "record", PlannedDose),
        (administration.administration, "record", Administration),
        (administration.administration_error, "record", AdministrationCorrection),
        (multidose.responsibility, "record", Responsibility),
        (multidose.period, "record", PackingPeriod),
        (multidose.urgent_pack, "record", UrgentPack),
        (multidose.reconciliation, "record", PackReconciliation),
        (multidose.task, "record", MultidoseTask),
        (multidose.task_resolution, "record", TaskResolution),
        (multidose.proposal, "record", Proposal),
        (multidose.proposal_decision, "record", ProposalDecision),
        (messages.received_message, "record", ReceivedMessage),
        (messages.proposal_decision, "record", ListProposalDecision),
        (outbox.outbox_message, "record", ProposalAnswer),
        (outbox.outbox_sent, "record", MessageSent),
        (reviews.medication_review, "record", MedicationReview),
    ]
    found = []
    for table, column, model in columns:
        patient = (
            (lambda pid: patients.patient.c.id == str(pid))
            if table is patients.patient
            else by_patient(table)
        )
        found.append(Stored(table, column, model, patient))
    return found


def check(
    conn: Connection, patient_id: UUID | None = None, *, tables: Collection[str] | None = None
) -> Iterator[Unreadable]:
    """Every stored record (of one patient, if given) that does not load as its model; with
    ``tables``, of the tables so named only, and the whole of those not kept per patient
    (``columns.names_unreadable``: a ward's records, read by ward)."""
    for stored in stored_records():
        table = stored.table
        if tables is not None and table.name not in tables:
            continue
        key_columns = list(table.primary_key.columns)
        query = select(*key_columns, table.c[stored.column])
        if patient_id is not None:
            if stored.patient is not None:
                query = query.where(stored.patient(patient_id))
            elif tables is None:
                continue
        for row in conn.execute(query):
            value = row[-1]
            if value is None:
                continue
            try:
                stored.model.model_validate(value)  # type: ignore[union-attr]
            except UNREADABLE as error:
                yield Unreadable(
                    table.name,
                    {column.name: str(row[i]) for i, column in enumerate(key_columns)},
                    stored.column,
                    why(error),
                )
