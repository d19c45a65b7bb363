"""Loading one patient's whole state (``medloop.domain.state.PatientState``) from the tables of
the medication list, prescriptions and alerts, in a fixed number of queries whatever the
history's length; none for a patient no command has changed yet."""

from __future__ import annotations

from sqlalchemy import Connection

from medloop.domain.medication_list import MedicationList
from medloop.domain.patient import Patient
from medloop.domain.state import PatientState
from medloop.store import state_cache
from medloop.store.alerts import handled_alerts, stored_alerts
from medloop.store.list_changes import list_changes
from medloop.store.patients import FIRST_REVISION
from medloop.store.prescriptions import dispenses, prescription_history


def patient_state_at(conn: Connection, found: Patient, revision: int) -> PatientState:
    """The state of ``found`` as stored at ``revision`` (its patient row's, read in this
    transaction): at ``FIRST_REVISION`` no command has written anything for the patient, so its
    state is the registered one, known without a query (``registered_state``); else read."""
    if revision != FIRST_REVISION:
        return load_patient_state(conn, found)
    state = registered_state(found)
    if state_cache.VERIFY:
        state_cache.verified(state, load_patient_state(conn, found))
    return state


def registered_state(found: Patient) -> PatientState:
    """What ``load_patient_state`` reads for a patient no command has changed: the record, an
    empty list, nothing else."""
    return PatientState(
        patient=found,
        medication_list=MedicationList.empty(found.id),
        changes=(),
        prescriptions={},
        prescription_history={},
        dispenses=(),
        handled=(),
    )


def load_patient_state(conn: Connection, found: Patient) -> PatientState:
    """The current state of ``found``'s list, prescriptions, dispenses, alerts and handled
    alerts, in seven queries whatever the history's length."""
    changes = list_changes(conn, found.id)
    history = prescription_history(conn, found.id)
    prescriptions = {p: versions[-1].prescription for p, versions in history.items()}
    found_dispenses, recorded_at = dispenses(conn, found.id)
    return PatientState(
        patient=found,
        medication_list=MedicationList.replay(found.id, changes),
        changes=changes,
        prescriptions=prescriptions,
        prescription_history=history,
        dispenses=found_dispenses,
        handled=handled_alerts(conn, found.id),
        dispense_recorded_at=recorded_at,
        alerts=stored_alerts(conn, found.id),
    )
