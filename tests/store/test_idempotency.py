"""Idempotency keys: a retried request replays the first response and never has a second
effect, even when the retries race — on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from sqlalchemy import Engine, func, select

from medloop.store.audit import AuditEvent, Outcome, WriteTransactionRequired, append, audit_event
from medloop.store.db import make_engine
from medloop.store.idempotency import (
    MAX_KEY_LENGTH,
    IdempotencyKeyReused,
    IdempotentRequestInProgress,
    IdempotentResult,
    InvalidIdempotencyKey,
    idempotency_key,
    request_fingerprint,
    run_once,
)
from medloop.store.migrate import upgrade

SCOPE = "hpr:7012345/dispense"
DISPENSE = {"prescription": "d8f5b1c2", "varenr": "123456", "quantity": 1}
DISPENSED = AuditEvent(actor="7012345", actor_role="pharmacist", action="dispense")


def writer(engine: Engine) -> Engine:
    return engine.execution_options(write=True)


class Dispenser:
    """A command whose effect is visible: each dispense writes an audit record."""

    def __init__(self, pause: float = 0.0) -> None:
        self.calls = 0
        self.pause = pause
        self.lock = threading.Lock()

    def compute_in(self, conn):
        def compute() -> dict:
            with self.lock:
                self.calls += 1
                call = self.calls
            time.sleep(self.pause)
            append(conn, DISPENSED)
            return {"dispense": call, "packages": ("123456",)}

        return compute


def dispense(
    engine: Engine, dispenser: Dispenser, key: str = "k-1", request=DISPENSE, scope=SCOPE
) -> IdempotentResult:
    with writer(engine).begin() as conn:
        return run_once(conn, scope, key, request_fingerprint(request), dispenser.compute_in(conn))


def effects(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(audit_event)).scalar_one()


def test_a_retry_replays_the_first_response_without_computing_again(engine):
    dispenser = Dispenser()

    first = dispense(engine, dispenser)
    retry = dispense(engine, dispenser)

    assert first == IdempotentResult({"dispense": 1, "packages": ["123456"]}, replayed=False)
    assert retry == IdempotentResult(first.response, replayed=True)
    assert dispenser.calls == 1 and effects(engine) == 1


def test_the_fingerprint_ignores_key_order_but_not_values():
    assert request_fingerprint({"a": 1, "b": [1, 2]}) == request_fingerprint({"b": [1, 2], "a": 1})
    assert request_fingerprint({"a": 1}) != request_fingerprint({"a": 2})


def test_the_same_key_with_a_different_request_is_refused(engine):
    dispenser = Dispenser()
    first = dispense(engine, dispenser)

    reused = "'k-1' was already used for a different request"
    with pytest.raises(IdempotencyKeyReused, match=reused) as refused:
        dispense(engine, dispenser, request={**DISPENSE, "quantity": 2})

    assert (refused.value.scope, refused.value.key) == (SCOPE, "k-1")
    assert dispenser.calls == 1 and effects(engine) == 1
    assert dispense(engine, dispenser) == IdempotentResult(first.response, replayed=True)


def test_scopes_are_independent(engine):
    dispenser = Dispenser()

    mine = dispense(engine, dispenser, scope="hpr:7012345/dispense")
    theirs = dispense(
        engine, dispenser, scope="hpr:7099999/dispense", request={**DISPENSE, "quantity": 3}
    )

    assert not mine.replayed and not theirs.replayed
    assert (mine.response["dispense"], theirs.response["dispense"]) == (1, 2)
    assert dispenser.calls == 2 and effects(engine) == 2


def test_concurrent_first_calls_with_the_same_key_have_exactly_one_effect(engine):
    racers = 8
    dispenser = Dispenser(pause=0.2)
    start = threading.Barrier(racers)
    results: list[IdempotentResult] = []
    failures: list[BaseException] = []

    def racer() -> None:
        try:
            start.wait()
            results.append(dispense(engine, dispenser))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert dispenser.calls == 1 and effects(engine) == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * (racers - 1)
    assert {r.response["dispense"] for r in results} == {1}


def test_a_waiting_duplicate_takes_the_key_over_when_the_first_attempt_rolls_back(engine):
    dispenser = Dispenser()
    claimed, let_go = threading.Event(), threading.Event()
    second: list[IdempotentResult] = []

    class Abandoned(Exception):
        pass

    def first_attempt() -> None:
        try:
            with writer(engine).begin() as conn:
                run_once(
                    conn, SCOPE, "k-1", request_fingerprint(DISPENSE), dispenser.compute_in(conn)
                )
                claimed.set()
                let_go.wait(10)
                raise Abandoned
        except Abandoned:
            pass

    def retry() -> None:
        second.append(dispense(engine, dispenser))

    first = threading.Thread(target=first_attempt)
    first.start()
    assert claimed.wait(10)
    waiting = threading.Thread(target=retry)
    waiting.start()
    time.sleep(0.3)
    assert second == []  # blocked behind the first attempt's claim
    let_go.set()
    first.join()
    waiting.join(10)

    assert second == [IdempotentResult({"dispense": 2, "packages": ["123456"]}, replayed=False)]
    assert effects(engine) == 1


def test_a_rolled_back_first_attempt_leaves_the_key_free(engine):
    dispenser = Dispenser()

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        with writer(engine).begin() as conn:
            run_once(conn, SCOPE, "k-1", request_fingerprint(DISPENSE), dispenser.compute_in(conn))
            raise Crash

    retry = dispense(engine, dispenser)
    assert retry == IdempotentResult({"dispense": 2, "packages": ["123456"]}, replayed=False)
    assert effects(engine) == 1


def test_a_failed_compute_frees_the_key_and_undoes_its_writes_even_if_the_caller_commits(engine):
    class OutOfStock(Exception):
        pass

    def failing_compute_in(conn):
        def compute() -> dict:
            append(conn, DISPENSED)
            raise OutOfStock

        return compute

    with writer(engine).begin() as conn:
        with pytest.raises(OutOfStock):
            run_once(conn, SCOPE, "k-1", request_fingerprint(DISPENSE), failing_compute_in(conn))
        append(conn, replace(DISPENSED, outcome=Outcome.REFUSED))

    with engine.connect() as conn:
        assert conn.execute(select(idempotency_key)).all() == []
        assert conn.execute(select(audit_event.c.outcome)).scalars().all() == ["refused"]
    assert dispense(engine, Dispenser()).replayed is False


def test_reusing_a_key_inside_its_own_computation_is_in_progress(engine):
    fingerprint = request_fingerprint(DISPENSE)
    with pytest.raises(IdempotentRequestInProgress, match="still in progress"):
        with writer(engine).begin() as conn:

            def compute_reusing_the_key() -> dict:
                return run_once(conn, SCOPE, "k-1", fingerprint, dict).response

            run_once(conn, SCOPE, "k-1", fingerprint, compute_reusing_the_key)


def test_the_response_must_be_json(engine):
    with pytest.raises(TypeError, match="not JSON"):
        with writer(engine).begin() as conn:
            run_once(conn, SCOPE, "k-1", request_fingerprint(DISPENSE), lambda: {"at": object()})


@pytest.mark.parametrize(
    ("scope", "key", "fingerprint", "message"),
    [
        (SCOPE, "", request_fingerprint(DISPENSE), "1 to 200 characters"),
        (SCOPE, "k" * (MAX_KEY_LENGTH + 1), request_fingerprint(DISPENSE), "1 to 200 characters"),
        ("", "k-1", request_fingerprint(DISPENSE), "scope has 1 to 200"),
        (SCOPE, "k-1", "not-a-hash", "lower-case hex SHA-256"),
    ],
)
def test_malformed_keys_are_refused(engine, scope, key, fingerprint, message):
    with pytest.raises(InvalidIdempotencyKey, match=message):
        with writer(engine).begin() as conn:
            run_once(conn, scope, key, fingerprint, dict)


def test_a_key_of_200_characters_is_accepted(engine):
    result = dispense(engine, Dispenser(), key="k" * MAX_KEY_LENGTH)
    retry = dispense(engine, Dispenser(), key="k" * MAX_KEY_LENGTH)
    assert retry == IdempotentResult(result.response, replayed=True)


def test_run_once_on_sqlite_needs_a_write_transaction(sqlite_url):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with pytest.raises(WriteTransactionRequired):
        with engine.begin() as conn:
            run_once(conn, SCOPE, "k-1", request_fingerprint(DISPENSE), dict)
    engine.dispose()
