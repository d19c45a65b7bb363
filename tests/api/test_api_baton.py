"""The route threads' baton (``store.baton``): one route thread runs its Python at a time and
gives the baton up while it waits on the database; a route that blocks on anything else while
holding it stalls the others for at most the baton's patience, never for good."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from sqlalchemy import text

from medloop.api.routing import RouteThreads
from medloop.store import baton as batons
from medloop.store.db import make_engine


def test_a_baton_is_held_by_one_thread_and_given_back_only_by_it() -> None:
    baton = batons.Baton(patience=0.05)
    assert baton.take() and baton.held()
    taken: list[bool] = []
    other = threading.Thread(target=lambda: (baton.give(), taken.append(baton.take())))
    other.start()
    other.join()
    assert taken == [False]  # the other thread's give was a no-op, its take ran out of patience
    assert baton.held()
    baton.give()
    assert not baton.held()
    assert baton.take()
    baton.give()


def test_route_threads_take_the_baton_and_a_thread_without_one_runs_without_it() -> None:
    threads = RouteThreads(2)
    assert threads.baton is not None
    assert RouteThreads(1).baton is None  # one thread: nobody to take turns with
    assert RouteThreads(2, baton=False).baton is None

    def work() -> tuple[bool, bool]:
        return batons.current() is threads.baton, threads.baton.held()

    assert asyncio.run(threads.run(work)) == (True, True)
    assert batons.current() is None  # the loop's thread carries none


@pytest.mark.postgres
def test_a_route_gives_the_baton_up_while_it_waits_on_the_database(postgres_url: str) -> None:
    """Four routes that each wait 0.3 s on the server overlap: without the baton given up in
    the wait they would run one after another (patience is long here)."""
    engine = make_engine(postgres_url)
    try:
        threads = RouteThreads(4)
        threads.baton.patience = 30.0

        def work() -> bool:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_sleep(0.3)"))
            return threads.baton.held()

        async def four() -> list[bool]:
            return await asyncio.gather(*(threads.run(work) for _ in range(4)))

        asyncio.run(threads.run(work))  # the pool's connections made first
        started = time.perf_counter()
        held = asyncio.run(four())
        elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    assert held == [True] * 4  # each took the baton back after its wait
    assert elapsed < 0.9, elapsed


@pytest.mark.postgres
def test_a_lock_held_across_a_round_trip_stalls_the_others_for_patience_only(
    postgres_url: str,
) -> None:
    """Route A holds a plain lock across a round trip; route B, holding the baton, waits for
    that lock; A's wait ends and A cannot get the baton back: it runs without it after the
    baton's patience, releases the lock, and both finish."""
    engine = make_engine(postgres_url)
    lock = threading.Lock()
    a_waits = threading.Event()
    try:
        threads = RouteThreads(2)
        threads.baton.patience = 0.2

        def a() -> str:
            with lock, engine.connect() as conn:
                a_waits.set()
                conn.execute(text("SELECT pg_sleep(0.2)"))
            return "a"

        def b() -> str:
            a_waits.wait(5)
            with lock:
                return "b"

        async def both() -> list[str]:
            return await asyncio.wait_for(asyncio.gather(threads.run(a), threads.run(b)), 10)

        assert asyncio.run(both()) == ["a", "b"]
    finally:
        engine.dispose()


def test_waiting_for_a_lock_held_across_round_trips_gives_the_baton_up() -> None:
    """``baton.acquire`` (the catalogue lock's): the waiter gives its baton up while it waits,
    so the lock's holder, back from the server, gets the baton at once."""
    baton = batons.Baton(patience=2.0)
    lock = threading.Lock()
    lock.acquire()
    got: list[bool] = []
    taken = threading.Event()

    def waiter() -> None:
        batons.carry(baton)
        baton.take()
        taken.set()
        batons.acquire(lock)  # gives the baton up while it waits
        got.append(baton.held())
        lock.release()
        baton.give()

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    assert taken.wait(5)
    time.sleep(0.05)  # the waiter now waits for the lock
    started = time.perf_counter()
    assert baton.take()
    assert time.perf_counter() - started < 1.0
    lock.release()
    baton.give()
    thread.join(5)
    assert got == [True]
