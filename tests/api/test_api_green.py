"""Routes in route greenlets on PostgreSQL (``medloop.store.green``, ``MEDLOOP_ROUTE_MODE``):
they run on the event loop's thread and give the loop back while they wait on the database, so
the requests of one process interleave there; they stay within their bound, finish what they
began when their request is given up, and answer errors as route threads do."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import greenlet
import httpx
import pytest
import uvloop
from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from medloop.api import problems
from medloop.api.routing import BlockingRoute, route_limiter
from medloop.settings import Settings
from medloop.store import green
from medloop.store.db import make_engine

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_engine(postgres_url):
    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE done (n integer)"))
    yield engine
    engine.dispose()


def _app(engine, limiter) -> tuple[FastAPI, dict]:
    seen = {"threads": set(), "greenlets": 0, "running": 0, "most": 0, "finished": []}
    router = APIRouter(route_class=BlockingRoute)

    @router.get("/sleep/{n}", operation_id="sleep")
    def sleep(n: int) -> dict:
        seen["threads"].add(threading.get_ident())
        seen["greenlets"] += type(greenlet.getcurrent()) is green.RouteGreenlet
        seen["running"] += 1
        seen["most"] = max(seen["most"], seen["running"])
        try:
            with engine.begin() as conn:
                conn.execute(text("SELECT pg_sleep(0.2)"))
                conn.execute(text("INSERT INTO done (n) VALUES (:n)"), {"n": n})
        finally:
            seen["running"] -= 1
        seen["finished"].append(n)
        return {"n": n}

    @router.get("/timeout", operation_id="timeout")
    def timeout() -> dict:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 50"))
            conn.execute(text("SELECT pg_sleep(2)"))
        return {}

    @router.get("/broken", operation_id="broken")
    def broken() -> dict:
        with engine.begin() as conn:
            conn.execute(text("SELECT no_such_column FROM done"))
        return {}

    api = FastAPI()
    api.state.route_limiter = limiter
    problems.install(api)
    api.include_router(router)
    return api, seen


async def _get(api: FastAPI, *paths: str) -> tuple[list[httpx.Response], float, int]:
    transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        started = time.perf_counter()
        responses = await asyncio.gather(*(client.get(path) for path in paths))
        return list(responses), time.perf_counter() - started, threading.get_ident()


def _done(engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.execute(text("SELECT n FROM done")).scalars())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_requests_of_one_process_interleave_on_the_event_loop_thread(pg_engine, loop):
    """``uvloop``: the loop ``medloop serve`` runs (whose socket callbacks must not switch
    into a greenlet themselves: ``RouteGreenlet``)."""
    api, seen = _app(pg_engine, route_limiter(4, greenlets=True))
    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        for _ in range(3):  # again and again on one loop
            seen["threads"].clear()
            responses, took, loop_thread = runner.run(_get(api, *(f"/sleep/{n}" for n in range(4))))
            assert seen["threads"] == {loop_thread}
    assert [r.json() for r in responses] == [{"n": n} for n in range(4)]
    assert seen["greenlets"] == 12
    # Four 0.2 s waits on the database at once, not one after another (0.8 s).
    assert seen["most"] == 4 and took < 0.6
    assert _done(pg_engine) == sorted([0, 1, 2, 3] * 3)


def test_no_more_route_greenlets_run_at_once_than_their_bound(pg_engine):
    api, seen = _app(pg_engine, route_limiter(2, greenlets=True))
    responses, took, _ = asyncio.run(_get(api, *(f"/sleep/{n}" for n in range(6))))
    assert [r.status_code for r in responses] == [200] * 6
    assert seen["most"] == 2 and took >= 0.6
    # Queued in arrival order.
    assert seen["finished"][:2] == [0, 1] or sorted(seen["finished"][:2]) == [0, 1]


def test_a_route_given_up_while_it_waits_finishes_its_transaction_and_frees_its_slot(pg_engine):
    routes = green.GreenRoutes(1)
    finished = threading.Event()

    def work() -> str:
        with pg_engine.begin() as conn:
            conn.execute(text("SELECT pg_sleep(0.2)"))
            conn.execute(text("INSERT INTO done (n) VALUES (7)"))
        finished.set()
        return "answer dropped"

    async def give_up() -> list:
        task = asyncio.ensure_future(routes.run(work))
        await asyncio.sleep(0.05)  # the route is waiting on pg_sleep
        task.cancel()  # a client gone, a server shutting down
        with pytest.raises(asyncio.CancelledError):
            await task
        queued = asyncio.ensure_future(routes.run(lambda: "next"))
        await asyncio.sleep(0.05)
        assert not queued.done()  # the slot is still the given-up route's
        return [await queued, finished.is_set()]

    assert asyncio.run(give_up()) == ["next", True]
    assert _done(pg_engine) == [7]


def test_a_request_given_up_while_queued_does_not_start(pg_engine):
    routes = green.GreenRoutes(1)
    started: list[str] = []

    def work(name: str):
        def run() -> str:
            started.append(name)
            with pg_engine.connect() as conn:
                conn.execute(text("SELECT pg_sleep(0.1)"))
            return name

        return run

    async def main() -> None:
        first = asyncio.ensure_future(routes.run(work("first")))
        second = asyncio.ensure_future(routes.run(work("second")))
        await asyncio.sleep(0.02)
        second.cancel()
        assert await first == "first"
        assert await routes.run(work("third")) == "third"

    asyncio.run(main())
    assert started == ["first", "third"]


@pytest.mark.parametrize("path", ["/timeout", "/broken"])
def test_an_error_in_a_route_greenlet_is_answered_as_in_a_route_thread(pg_engine, path):
    answers = {}
    for mode, limiter in (
        ("threads", route_limiter(2)),
        ("greenlets", route_limiter(2, greenlets=True)),
    ):
        api, _ = _app(pg_engine, limiter)
        (response,), _, _ = asyncio.run(_get(api, path))
        answers[mode] = (response.status_code, response.headers.get("content-type"), response.text)
    assert answers["greenlets"] == answers["threads"]
    # The statement timeout: the database busy for a moment; the broken query: a bug.
    assert answers["greenlets"][0] == (503 if path == "/timeout" else 500)
    assert answers["greenlets"][1] == "application/problem+json"
    # The engine's connections are fine afterwards.
    assert (
        asyncio.run(_get(_app(pg_engine, route_limiter(2, greenlets=True))[0], "/sleep/1"))[0][
            0
        ].status_code
        == 200
    )


def test_a_route_greenlet_runs_in_a_copy_of_the_requests_context(pg_engine):
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    routes = green.GreenRoutes(2)

    def work() -> str:
        found = var.get()
        var.set("set in the route")
        with pg_engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return found + " / " + var.get()

    async def main() -> tuple[str, str]:
        var.set("the request's")
        answer = await routes.run(work)
        return answer, var.get()

    assert asyncio.run(main()) == ("the request's / set in the route", "the request's")


def test_a_lock_held_across_a_database_wait_does_not_block_the_event_loop(pg_engine):
    """``GreenLock`` (``loop.catalogue``'s catalogues): a second route greenlet waits for it
    by giving the loop back, so the first can finish its wait and let it go."""
    lock = green.GreenLock()
    routes = green.GreenRoutes(4)
    order: list[str] = []

    def work(name: str):
        def run() -> str:
            with lock:
                order.append(f"{name} in")
                with pg_engine.connect() as conn:
                    conn.execute(text("SELECT pg_sleep(0.1)"))
                order.append(f"{name} out")
            return name

        return run

    async def main() -> list[str]:
        return await asyncio.wait_for(
            asyncio.gather(*(routes.run(work(n)) for n in "abc")), timeout=5
        )

    assert asyncio.run(main()) == ["a", "b", "c"]
    assert [step[-3:] for step in order] == [" in", "out"] * 3  # one holder at a time


def test_outside_a_route_greenlet_a_connection_waits_as_psycopg_does(pg_engine):
    """The job scheduler's threads, the CLI and the route threads use the same engine."""
    found = []

    def in_a_thread() -> None:
        with pg_engine.connect() as conn:
            found.append(type(conn.connection.dbapi_connection).__name__)
            found.append(conn.execute(text("SELECT 41 + 1")).scalar())

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert found == ["Connection", 42]


def test_a_route_greenlet_thrown_out_of_a_wait_closes_its_connection(pg_engine):
    """Killed half-way through a round trip (the process going down), a greenlet leaves a
    connection in an unknown state: it is closed, never handed out again."""
    raw = pg_engine.raw_connection()
    dbapi = raw.dbapi_connection
    assert isinstance(dbapi, green.Connection) and dbapi.handed_out

    async def main() -> None:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()

        def work() -> None:
            dbapi.execute("SELECT pg_sleep(5)")

        route = green.RouteGreenlet(work, loop, answer, lambda: None)
        route.switch()  # now waiting on the socket
        assert not route.dead
        route.throw(greenlet.GreenletExit)
        assert route.dead
        assert isinstance(answer.exception(), greenlet.GreenletExit)

    asyncio.run(main())
    assert dbapi.closed
    raw.invalidate()


def test_route_greenlets_are_postgresql_s_and_the_default_there():
    postgres = "postgresql+psycopg://u@h/db"
    assert Settings.from_env(environ={}, database_url=postgres).route_greenlets
    threads = {"MEDLOOP_ROUTE_MODE": "threads"}
    assert not Settings.from_env(environ=threads, database_url=postgres).route_greenlets
    sqlite = {"MEDLOOP_ROUTE_MODE": "greenlets"}
    assert not Settings.from_env(environ=sqlite, database_url="sqlite:///x.db").route_greenlets
