"""Optimistic concurrency and idempotency: stale writes are refused with what changed, retries
have one effect, and concurrent writers on one list never lose an update."""

from __future__ import annotations

import threading
import uuid
from datetime import date

import pytest
from sqlalchemy import func, select

from medloop import queries
from medloop.domain.errors import DomainError
from medloop.domain.medication_list import StaleListVersion
from medloop.domain.patient import NationalId, Patient
from medloop.loop.change import hold
from medloop.loop.dispense import dispense
from medloop.loop.errors import IdAlreadyUsed
from medloop.loop.patients import register_patient
from medloop.loop.prescribe import prescribe
from medloop.store import audit, list_changes, prescriptions, state_cache
from medloop.store.db import make_engine
from medloop.store.idempotency import IdempotencyKeyReused
from medloop.store.migrate import upgrade
from tests.loop.helpers import (
    GP,
    NOW,
    PHARMACIST,
    SIMVASTATIN_28,
    SIMVASTATIN_98,
    call,
    demo_world,
    dispense_order,
    prescription_order,
)
from tests.pg_protocol import round_trips


def test_stale_write_is_refused_with_the_current_version_and_keeps_the_newer_state(engine):
    patient_id = demo_world(engine)
    first = prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)

    with pytest.raises(StaleListVersion) as refused:
        prescribe(engine, patient_id, prescription_order(SIMVASTATIN_98), call(), based_on=0)

    assert refused.value.context["current_version"] == 1
    (change,) = refused.value.context["changes_since"]
    assert change["list_version"] == 1 and change["author"] == GP.personnel.name
    assert change["entries"] == [{"entry_id": first.response["entry_id"], "kind": "added"}]
    with engine.connect() as conn:
        shown = queries.current_list(conn, patient_id, NOW)
        log = audit.verify(conn)
    assert shown.list_version == 1 and len(shown.entries) == 1
    assert log.ok and log.events == 3  # register, prescribe, the refused one


def test_same_idempotency_key_twice_has_one_effect_and_the_same_response(engine):
    patient_id = demo_world(engine)
    order = prescription_order(SIMVASTATIN_28, packages=2)
    first = prescribe(engine, patient_id, order, call(idempotency_key="k-1"), based_on=0)
    again = prescribe(engine, patient_id, order, call(idempotency_key="k-1"), based_on=0)

    assert not first.replayed and again.replayed
    assert again.response == first.response
    handed = dispense_order(first.response["prescription_id"], SIMVASTATIN_28)
    once = dispense(engine, patient_id, handed, call(PHARMACIST, idempotency_key="d-1"))
    twice = dispense(engine, patient_id, handed, call(PHARMACIST, idempotency_key="d-1"))
    assert twice.replayed and twice.response == once.response
    with engine.connect() as conn:
        assert queries.current_list(conn, patient_id, NOW).list_version == 1
        (summary,) = queries.prescriptions(conn, patient_id)
        assert conn.execute(select(func.count()).select_from(prescriptions.dispense)).scalar() == 1
    assert summary.dispensed == 1 and summary.remaining == 1


@pytest.mark.parametrize("writers", [6])
def test_concurrent_writers_on_one_version_exactly_one_wins_and_nothing_is_lost(engine, writers):
    patient_id = demo_world(engine)
    first = prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    entry_id = uuid.UUID(first.response["entry_id"])
    orders = [prescription_order(SIMVASTATIN_98) for _ in range(writers - 1)]
    barrier = threading.Barrier(writers)
    outcomes: list[object] = [None] * writers

    def write(index: int) -> None:
        barrier.wait()
        try:
            if index == 0:
                outcomes[index] = hold(engine, patient_id, entry_id, call(), based_on=1)
            else:
                outcomes[index] = prescribe(
                    engine, patient_id, orders[index - 1], call(), based_on=1
                )
        except DomainError as error:
            outcomes[index] = error

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    won = [o for o in outcomes if not isinstance(o, DomainError)]
    lost = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(won) == 1 and all(isinstance(o, StaleListVersion) for o in lost)
    assert all(o.context["current_version"] == 2 for o in lost)
    with engine.connect() as conn:
        shown = queries.current_list(conn, patient_id, NOW)
        log = audit.verify(conn)
        changes = conn.execute(select(func.count()).select_from(list_changes.list_change)).scalar()
    assert shown.list_version == 2 and changes == 2
    assert log.ok and log.events == 2 + writers


def test_concurrent_dispenses_of_the_last_package_hand_it_out_once(engine):
    patient_id = demo_world(engine)
    done = prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    pharmacies = 4
    barrier = threading.Barrier(pharmacies)
    outcomes: list[object] = [None] * pharmacies

    def hand_out(index: int) -> None:
        order = dispense_order(done.response["prescription_id"], SIMVASTATIN_28)
        barrier.wait()
        try:
            outcomes[index] = dispense(engine, patient_id, order, call(PHARMACIST))
        except DomainError as error:
            outcomes[index] = error

    threads = [threading.Thread(target=hand_out, args=(i,)) for i in range(pharmacies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(refused) == pharmacies - 1
    assert {o.code for o in refused} == {"prescription-fully-dispensed"}
    with engine.connect() as conn:
        (summary,) = queries.prescriptions(conn, patient_id)
    assert summary.dispensed == 1


def test_a_reused_idempotency_key_for_another_request_is_refused_and_audited(engine):
    patient_id = demo_world(engine)
    prescribe(
        engine,
        patient_id,
        prescription_order(SIMVASTATIN_28),
        call(idempotency_key="k"),
        based_on=0,
    )
    with pytest.raises(IdempotencyKeyReused):
        prescribe(
            engine,
            patient_id,
            prescription_order(SIMVASTATIN_98),
            call(idempotency_key="k"),
            based_on=1,
        )
    with engine.connect() as conn:
        last = conn.execute(
            select(audit.audit_event).order_by(audit.audit_event.c.seq.desc()).limit(1)
        ).one()
        assert queries.current_list(conn, patient_id, NOW).list_version == 1
    assert last.outcome == "conflict" and last.detail["code"] == "idempotency-key"


def test_an_id_already_used_by_another_patient_is_refused_as_such(engine):
    patient_id = demo_world(engine)
    order = prescription_order(SIMVASTATIN_28)
    prescribe(engine, patient_id, order, call(), based_on=0)
    other = Patient(
        id=uuid.uuid4(),
        national_id=NationalId("01019000083"),
        given_name="Ola",
        family_name="Nordmann",
        birth_date=date(1990, 1, 1),
    )
    register_patient(engine, other, call())
    with pytest.raises(IdAlreadyUsed):
        prescribe(engine, other.id, order, call(), based_on=0)
    with engine.connect() as conn:
        assert queries.current_list(conn, other.id, NOW).list_version == 0


def test_concurrent_retries_with_one_idempotency_key_have_one_effect(engine):
    patient_id = demo_world(engine)
    order = prescription_order(SIMVASTATIN_28)
    retries = 4
    barrier = threading.Barrier(retries)
    outcomes: list[object] = [None] * retries

    def send(index: int) -> None:
        barrier.wait()
        outcomes[index] = prescribe(
            engine, patient_id, order, call(idempotency_key="retry"), based_on=0
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(retries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(o.replayed for o in outcomes) == [False] + [True] * (retries - 1)
    assert len({o.list_version for o in outcomes}) == 1
    with engine.connect() as conn:
        assert queries.current_list(conn, patient_id, NOW).list_version == 1


def test_concurrent_registrations_of_one_national_id_register_one_patient(engine):
    racers = 4
    barrier = threading.Barrier(racers)
    outcomes: list[object] = [None] * racers

    def register(index: int) -> None:
        patient = Patient(
            id=uuid.uuid4(),
            national_id=NationalId("01019000083"),
            given_name="Ola",
            family_name="Nordmann",
            birth_date=date(1990, 1, 1),
        )
        barrier.wait()
        try:
            register_patient(engine, patient, call())
            outcomes[index] = patient.id
        except DomainError as error:
            outcomes[index] = error

    threads = [threading.Thread(target=register, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    registered = [o for o in outcomes if isinstance(o, uuid.UUID)]
    assert len(registered) == 1
    assert {o.code for o in outcomes if isinstance(o, DomainError)} == {
        "patient-already-registered"
    }
    with engine.connect() as conn:
        assert queries.current_list(conn, registered[0], NOW).list_version == 0


@pytest.mark.postgres
def test_a_command_on_postgres_sends_its_appends_together_with_its_audit_record(
    postgres_url, monkeypatch
):
    """Round trips per command, as the server sees them: BEGIN with claiming the idempotency
    key; bumping the revision (which also takes the audit chain's lock); then the list change,
    entry version, prescription, its version, the idempotency record, the audit record and the
    COMMIT in one pipeline."""
    monkeypatch.setattr(state_cache, "VERIFY", False)  # its check reads would be counted
    engine = make_engine(postgres_url)
    upgrade(engine)
    try:
        with round_trips(engine) as trips:
            patient_id = demo_world(engine)
            first = prescribe(
                engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0
            )
            second = prescribe(
                engine,
                patient_id,
                prescription_order(SIMVASTATIN_98),
                call(idempotency_key="k-2"),
                based_on=first.list_version,
            )
        last_begin = max(i for i, trip in enumerate(trips) if trip[:1] == ["BEGIN"])
        assert trips[last_begin:] == [
            # BEGIN with the claim (on its first use on this connection, its Parse too)
            ["BEGIN", "INSERT"],
            ["UPDATE"],
            ["INSERT"] * 6 + ["UPDATE", "INSERT", "COMMIT"],
        ]
        with engine.connect() as conn:
            assert queries.current_list(conn, patient_id, NOW).list_version == 2
            assert audit.verify(conn).ok
        assert second.list_version == 2
    finally:
        engine.dispose()


def _stale_commands():
    """Every command that changes the list (or records against its version), as
    ``name -> run(engine, patient_id, entry_id, prescription_id, based_on)``. The domain no longer
    checks the version (``MedicationList.apply``, ``reconcile``): the runner does, once."""
    from interactions.dosage import Dosage, FixedDose, Quantity, Use  # noqa: PLC0415
    from medloop.domain.codes import (  # noqa: PLC0415
        DiscontinuationReason,
        ReconciliationOutcome,
        SourceKind,
    )
    from medloop.domain.entry import Discontinuation  # noqa: PLC0415
    from medloop.domain.reconciliation import ConsultedSource, EntryOutcome  # noqa: PLC0415
    from medloop.loop.change import (  # noqa: PLC0415
        EntryOrder,
        add_entry,
        change_dosage,
        discontinue,
        mark_entered_in_error,
        resume,
    )
    from medloop.loop.multidose import set_multidose  # noqa: PLC0415
    from medloop.loop.prescribe import RenewOrder, renew  # noqa: PLC0415
    from medloop.loop.reconcile import ReconciliationOrder, record_reconciliation  # noqa: PLC0415

    dosage = Dosage(use=Use.REGULAR, fixed=(FixedDose(amount=Quantity(value=2, unit="tablett")),))
    stop = Discontinuation(at=NOW, reason=DiscontinuationReason.TREATMENT_ENDED)
    return {
        "add-entry": lambda e, p, entry, rx, v: add_entry(
            e,
            p,
            EntryOrder(
                entry_id=uuid.uuid4(),
                drug=prescription_order(SIMVASTATIN_98).drug,
                use=Use.REGULAR,
                start=NOW.date(),
            ),
            call(),
            based_on=v,
        ),
        "prescribe": lambda e, p, entry, rx, v: prescribe(
            e, p, prescription_order(SIMVASTATIN_98), call(), based_on=v
        ),
        "renew": lambda e, p, entry, rx, v: renew(
            e,
            p,
            RenewOrder(prescription_id=rx, terms=prescription_order(SIMVASTATIN_28).terms),
            call(),
            based_on=v,
        ),
        "change-dosage": lambda e, p, entry, rx, v: change_dosage(
            e, p, entry, dosage, call(), based_on=v
        ),
        "hold": lambda e, p, entry, rx, v: hold(e, p, entry, call(), based_on=v),
        "resume": lambda e, p, entry, rx, v: resume(e, p, entry, call(), based_on=v),
        "discontinue": lambda e, p, entry, rx, v: discontinue(
            e, p, entry, stop, call(), based_on=v
        ),
        "entered-in-error": lambda e, p, entry, rx, v: mark_entered_in_error(
            e, p, entry, call(reason="wrong patient"), based_on=v
        ),
        "reconcile": lambda e, p, entry, rx, v: record_reconciliation(
            e,
            p,
            ReconciliationOrder(
                reconciliation_id=uuid.uuid4(),
                sources=(ConsultedSource(kind=SourceKind.PATIENT),),
                outcomes=(EntryOutcome(entry_id=entry, outcome=ReconciliationOutcome.CONFIRMED),),
            ),
            call(),
            based_on=v,
        ),
        "set-multidose": lambda e, p, entry, rx, v: set_multidose(
            e, p, entry, True, call(), based_on=v
        ),
    }


@pytest.mark.parametrize("command", sorted(_stale_commands()))
def test_every_list_command_on_an_older_list_version_is_refused_once_by_the_runner(engine, command):
    """What the domain's own version checks guarded (``apply`` and ``reconcile``), now checked
    once, by the runner, for every command that depends on the list version."""
    patient_id = demo_world(engine)
    done = prescribe(engine, patient_id, prescription_order(SIMVASTATIN_28), call(), based_on=0)
    entry_id = uuid.UUID(done.response["entry_id"])
    prescription_id = uuid.UUID(done.response["prescription_id"])
    hold(engine, patient_id, entry_id, call(reason="surgery"), based_on=1)
    with engine.connect() as conn:
        before = queries.current_list(conn, patient_id, NOW)

    with pytest.raises(StaleListVersion) as refused:
        _stale_commands()[command](engine, patient_id, entry_id, prescription_id, 1)

    assert refused.value.context["based_on"] == 1
    assert refused.value.context["current_version"] == 2
    assert [c["list_version"] for c in refused.value.context["changes_since"]] == [2]
    with engine.connect() as conn:
        after = queries.current_list(conn, patient_id, NOW)
        assert len(queries.reconciliations(conn, patient_id)) == 0
    assert after == before
