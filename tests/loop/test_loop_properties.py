"""Invariants 1, 2 and 4 under arbitrary command sequences (prescribe, hold, resume, dosage
change, discontinue, entered-in-error, renew, dispense, stale writes): every accepted list
change raises the list version by exactly one; a refused command changes nothing; no entry
version is ever lost or changed; a prescription backs at most one live entry; a dispense is
only accepted on a dispensable prescription of an active entry; an entered-in-error entry
never reaches decision support; the cached state equals the stored one; the audit chain
holds."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fest.loader import import_catalogue
from fest.queries import version_in_force
from interactions.dosage import Dosage, FixedDose, Quantity, Use
from medloop import queries
from medloop.domain.codes import DiscontinuationReason, EntryStatus, PrescriptionStatus
from medloop.domain.entry import Discontinuation
from medloop.domain.errors import DomainError
from medloop.domain.patient import NationalId, Patient
from medloop.domain.state import PatientState
from medloop.loop.change import (
    change_dosage,
    discontinue,
    hold,
    mark_entered_in_error,
    resume,
)
from medloop.loop.dispense import dispense
from medloop.loop.patients import register_patient
from medloop.loop.prescribe import RenewOrder, prescribe, renew
from medloop.loop.runner import medications_of
from medloop.store import audit
from medloop.store.patient_state import load_patient_state
from medloop.store.patients import read_patient, read_patient_revision
from medloop.store.state_cache import cache_for
from tests.loop.helpers import (
    KLARITROMYCIN,
    NOW,
    PHARMACIST,
    SIMVASTATIN_28,
    call,
    dispense_order,
    prescription_order,
)
from tests.reference import DEMO

OPERATIONS = (
    "prescribe",
    "hold",
    "resume",
    "dosage",
    "discontinue",
    "error",
    "renew",
    "dispense",
    "stale",
)


def _national_ids() -> list[str]:
    """Valid national ids of people born on 1 January 1990, to register many patients."""
    found = []
    for individual in range(500):
        candidate = f"010190{individual:03d}"
        for checks in range(100):
            try:
                found.append(str(NationalId(f"{candidate}{checks:02d}")))
                break
            except ValueError:
                continue
    return found


NATIONAL_IDS = iter(_national_ids())


def _new_patient(engine) -> uuid.UUID:
    patient = Patient(
        id=uuid.uuid4(),
        national_id=NationalId(next(NATIONAL_IDS)),
        given_name="Test",
        family_name="Person",
        birth_date=date(1990, 1, 1),
    )
    register_patient(engine, patient, call())
    return patient.id


def _apply(engine, patient_id, operation: str, target: int, version: int, entries: list):
    overrides = {"override": "tested"}
    entry_id = entries[target % len(entries)] if entries else uuid.uuid4()
    if operation == "prescribe":
        order = prescription_order(SIMVASTATIN_28 if target % 2 else KLARITROMYCIN, packages=3)
        try:
            done = prescribe(engine, patient_id, order, call(), based_on=version)
        except DomainError as refused:
            keys = refused.context.get("alert_keys") or []
            overrides = dict.fromkeys(keys, "tested")
            done = prescribe(engine, patient_id, order, call(overrides=overrides), based_on=version)
        entries.append(order.entry_id)
        return done
    if operation == "hold":
        return hold(engine, patient_id, entry_id, call(), based_on=version)
    if operation == "resume":
        return resume(engine, patient_id, entry_id, call(), based_on=version)
    if operation == "dosage":
        dosage = Dosage(
            use=Use.REGULAR,
            fixed=(FixedDose(amount=Quantity(value=1 + target % 3, unit="tablett")),),
        )
        return change_dosage(engine, patient_id, entry_id, dosage, call(), based_on=version)
    if operation == "discontinue":
        stop = Discontinuation(at=NOW, reason=DiscontinuationReason.TREATMENT_ENDED)
        return discontinue(engine, patient_id, entry_id, stop, call(), based_on=version)
    if operation == "error":
        return mark_entered_in_error(
            engine, patient_id, entry_id, call(reason="typo"), based_on=version
        )
    if operation in ("renew", "dispense"):
        with engine.connect() as conn:
            state = load_patient_state(conn, read_patient(conn, patient_id))
        backing = state.medication_list.entry(entry_id).prescription_ids if entries else ()
        if not backing:
            raise NothingToDo
        prescription_id = backing[-1]
        if operation == "renew":
            renewal = RenewOrder(
                prescription_id=prescription_id,
                terms=prescription_order(SIMVASTATIN_28).terms,
            )
            return renew(engine, patient_id, renewal, call(), based_on=version)
        varenr = state.medication_list.entry(entry_id).drug.varenr
        return dispense(
            engine,
            patient_id,
            dispense_order(prescription_id, varenr),
            call(PHARMACIST, overrides=overrides),
        )
    return hold(engine, patient_id, entry_id, call(), based_on=max(0, version - 1))


def _assert_cached_state_is_the_stored_state(engine, patient_id) -> None:
    """What the next command would take from the cache equals a fresh read of the tables."""
    with engine.connect() as conn:
        patient, revision = read_patient_revision(conn, patient_id)
        fresh = load_patient_state(conn, patient)
    cached = cache_for(engine).get(patient_id, revision)
    if revision > 0:  # a command has run, and the state it left is cached
        assert cached == fresh
        assert cached.dispense_recorded_at == fresh.dispense_recorded_at


class NothingToDo(Exception):
    """The step names nothing it could act on (no prescription behind the entry)."""


def _snapshot(engine, patient_id) -> tuple[PatientState, dict]:
    with engine.connect() as conn:
        state = load_patient_state(conn, read_patient(conn, patient_id))
    versions = {
        (v.entry_id, v.version): v for change in state.changes for v in change.entry_versions
    }
    return state, versions


def _assert_state_invariants(state: PatientState) -> None:
    live_backers: dict = {}
    for entry in state.medication_list.entries:
        if entry.status.is_live:
            for prescription_id in entry.prescription_ids:
                live_backers.setdefault(prescription_id, []).append(entry.id)
    assert all(len(backers) == 1 for backers in live_backers.values())
    in_error = {
        str(e.id) for e in state.medication_list.entries if e.status is EntryStatus.ENTERED_IN_ERROR
    }
    assert not in_error & {m.id for m in medications_of(state.medication_list)}


def _dispensable_before(state: PatientState, done) -> None:
    """The dispense ``done`` accepted was of a dispensable prescription on an active entry,
    as things stood before it."""
    prescription = state.prescriptions[uuid.UUID(done.response["prescription_id"])]
    assert prescription.status in (
        PrescriptionStatus.DISPENSABLE,
        PrescriptionStatus.BEING_DISPENSED,
    )
    assert state.medication_list.entry(prescription.entry_id).status is EntryStatus.ACTIVE


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 5)), min_size=1, max_size=10
    )
)
@example(steps=[("prescribe", 1), ("dispense", 0), ("error", 0), ("dispense", 0)])
@example(steps=[("prescribe", 1), ("renew", 0), ("dispense", 0), ("discontinue", 0)])
def test_accepted_changes_raise_the_version_by_one_and_refusals_change_nothing(engine, steps):
    with engine.connect() as conn:
        if version_in_force(conn) is None:
            import_catalogue(engine, DEMO)
    patient_id = _new_patient(engine)
    version, entries, accepted = 0, [], 0
    before, seen = _snapshot(engine, patient_id)
    for operation, target in steps:
        try:
            done = _apply(engine, patient_id, operation, target, version, entries)
        except (DomainError, NothingToDo):
            done = None
        _assert_cached_state_is_the_stored_state(engine, patient_id)
        after, versions = _snapshot(engine, patient_id)
        assert all(versions.get(key) == value for key, value in seen.items())
        _assert_state_invariants(after)
        now = after.medication_list.version
        if done is None:
            assert now == version
            assert (after.prescriptions, after.dispenses) == (
                before.prescriptions,
                before.dispenses,
            )
        elif operation == "dispense":
            _dispensable_before(before, done)
            assert now == version and len(after.dispenses) == len(before.dispenses) + 1
        else:
            accepted += 1
            assert done.list_version == now == version + 1
        version, before, seen = now, after, versions
    with engine.connect() as conn:
        changes = (
            sum(len(queries.entry_history(conn, patient_id, e)) for e in set(entries))
            if entries
            else 0
        )
        assert audit.verify(conn).ok
    assert changes == accepted == version


def test_the_examples_really_dispense_and_refuse_after_entered_in_error(engine):
    """Guards the property test's first example: its dispense is accepted and the one after
    the entry was entered in error is refused (its prescription was recalled)."""
    import_catalogue(engine, DEMO)
    patient_id = _new_patient(engine)
    entries: list = []
    _apply(engine, patient_id, "prescribe", 1, 0, entries)
    assert _apply(engine, patient_id, "dispense", 0, 1, entries).response["prescription_id"]
    _apply(engine, patient_id, "error", 0, 1, entries)
    with pytest.raises(DomainError) as refused:
        _apply(engine, patient_id, "dispense", 0, 2, entries)
    assert refused.value.code in {"prescription-recalled", "entry-not-active"}
