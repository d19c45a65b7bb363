"""Invariant 1 and 2 under arbitrary command sequences: every accepted list change raises the
list version by exactly one and makes one new entry version; a refused one changes nothing;
the stored history always replays; the audit chain holds."""

from __future__ import annotations

import uuid
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loop_fixtures import (
    KLARITROMYCIN,
    NOW,
    SIMVASTATIN_28,
    call,
    prescription_order,
)

from fest.loader import import_catalogue
from fest.queries import version_in_force
from interactions.dosage import Dosage, FixedDose, Quantity, Use
from medloop import queries
from medloop.domain.codes import DiscontinuationReason
from medloop.domain.entry import Discontinuation
from medloop.domain.errors import DomainError
from medloop.domain.patient import NationalId, Patient
from medloop.loop.change import (
    change_dosage,
    discontinue,
    hold,
    mark_entered_in_error,
    resume,
)
from medloop.loop.patients import register_patient
from medloop.loop.prescribe import prescribe
from medloop.store import audit
from medloop.store import medication_list as store
from medloop.store.state_cache import cache_for
from tests.conftest import DEMO

OPERATIONS = ("prescribe", "hold", "resume", "dosage", "discontinue", "error", "stale")


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
        id=uuid.uuid4(), national_id=NationalId(next(NATIONAL_IDS)), given_name="Test",
        family_name="Person", birth_date=date(1990, 1, 1),
    )
    register_patient(engine, patient, call())
    return patient.id


def _apply(engine, patient_id, operation: str, target: int, version: int, entries: list):
    overrides = {"override": "tested"}
    entry_id = entries[target % len(entries)] if entries else uuid.uuid4()
    if operation == "prescribe":
        order = prescription_order(SIMVASTATIN_28 if target % 2 else KLARITROMYCIN)
        try:
            done = prescribe(engine, patient_id, order, call(), based_on=version)
        except DomainError as refused:
            keys = refused.context.get("alert_keys") or []
            overrides = {key: "tested" for key in keys}
            done = prescribe(engine, patient_id, order, call(overrides=overrides),
                             based_on=version)
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
    return hold(engine, patient_id, entry_id, call(), based_on=max(0, version - 1))


def _assert_cached_state_is_the_stored_state(engine, patient_id) -> None:
    """What the next command would take from the cache equals a fresh read of the tables."""
    with engine.connect() as conn:
        patient, revision = store.read_patient_revision(conn, patient_id)
        fresh = store.load_patient_state(conn, patient)
    cached = cache_for(engine).get(patient_id, revision)
    if revision > 0:  # a command has run, and the state it left is cached
        assert cached == fresh
        assert cached.dispense_recorded_at == fresh.dispense_recorded_at


@settings(
    max_examples=20, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(
    st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 5)), min_size=1, max_size=8
))
def test_accepted_changes_raise_the_version_by_one_and_refusals_change_nothing(engine, steps):
    with engine.connect() as conn:
        if version_in_force(conn) is None:
            import_catalogue(engine, DEMO)
    patient_id = _new_patient(engine)
    version, entries, accepted = 0, [], 0
    for operation, target in steps:
        try:
            done = _apply(engine, patient_id, operation, target, version, entries)
        except DomainError:
            done = None
        _assert_cached_state_is_the_stored_state(engine, patient_id)
        with engine.connect() as conn:
            now = queries.current_list(conn, patient_id, NOW).list_version
        if done is None:
            assert now == version
        else:
            accepted += 1
            assert done.list_version == now == version + 1
        version = now
    with engine.connect() as conn:
        changes = sum(
            len(queries.entry_history(conn, patient_id, e)) for e in set(entries)
        ) if entries else 0
        assert audit.verify(conn).ok
    assert changes == accepted == version
