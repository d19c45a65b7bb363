"""Where routes run (``medloop.api.routing``): on the event loop's thread by default, in a
bounded thread pool when ``MEDLOOP_ROUTE_THREADS`` says so, with the routes' parameters and
OpenAPI document unchanged either way."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query, Request
from typer.testing import CliRunner

from medloop.api.config import ApiSettings, InvalidSetting
from medloop.api.routing import BlockingRoute, dispatching, route_limiter
from medloop.cli import app as cli
from medloop.settings import DEFAULT_ROUTE_THREADS_POSTGRES


def _app(threads: int) -> tuple[FastAPI, dict]:
    seen = {"threads": set(), "running": 0, "most": 0}
    lock = threading.Lock()
    router = APIRouter(route_class=BlockingRoute)

    @router.get("/work/{n}", operation_id="work")
    def work(n: int, pause: Annotated[float, Query(ge=0, le=1)] = 0.0) -> dict:
        """Does some work."""
        with lock:
            seen["running"] += 1
            seen["most"] = max(seen["most"], seen["running"])
            seen["threads"].add(threading.get_ident())
        time.sleep(pause)
        with lock:
            seen["running"] -= 1
        return {"n": n * 2}

    api = FastAPI()
    api.state.route_limiter = route_limiter(threads)
    api.include_router(router)
    return api, seen


async def _four_at_once(api: FastAPI) -> tuple[list[httpx.Response], int]:
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(
            *(client.get(f"/work/{n}", params={"pause": 0.2}) for n in range(4))
        )
    return list(responses), threading.get_ident()


def test_by_default_a_route_runs_on_the_event_loop_thread_one_request_at_a_time():
    api, seen = _app(ApiSettings.from_env("sqlite://").route_threads)
    responses, loop_thread = asyncio.run(_four_at_once(api))
    assert [r.json() for r in responses] == [{"n": 0}, {"n": 2}, {"n": 4}, {"n": 6}]
    assert seen["threads"] == {loop_thread}
    assert seen["most"] == 1


def test_with_route_threads_routes_run_in_that_many_threads_at_most():
    api, seen = _app(2)
    responses, loop_thread = asyncio.run(_four_at_once(api))
    assert all(r.status_code == 200 for r in responses)
    assert loop_thread not in seen["threads"]
    assert seen["most"] == 2


def test_a_dispatched_route_keeps_its_parameters_validation_and_documentation():
    api, _ = _app(0)
    operation = api.openapi()["paths"]["/work/{n}"]["get"]
    assert operation["operationId"] == "work"
    assert operation["description"] == "Does some work."
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [
        ("n", "path"),
        ("pause", "query"),
    ]
    response = asyncio.run(_get(api, "/work/3?pause=5"))
    assert response.status_code == 422


async def _get(api: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


def test_the_served_app_documents_no_dispatch_parameter():
    from medloop.api.app import create_app
    from medloop.store.db import make_engine
    from medloop.store.migrate import upgrade

    engine = make_engine("sqlite://")
    upgrade(engine)
    schema = create_app(ApiSettings.from_env("sqlite://"), engine=engine).openapi()
    names = {
        parameter["name"]
        for path in schema["paths"].values()
        for operation in path.values()
        for parameter in operation.get("parameters", [])
    }
    assert names and not any("medloop_route" in name for name in names)


@pytest.mark.parametrize("threads", [0, 2])
def test_a_dispatched_route_that_asks_for_the_request_gets_it(threads):
    router = APIRouter(route_class=BlockingRoute)

    @router.get("/who")
    def who(request: Request, n: int = 1) -> dict:
        return {"path": request.url.path, "n": n}

    api = FastAPI()
    api.state.route_limiter = route_limiter(threads)
    api.include_router(router)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/who", params={"n": 3})

    response = asyncio.run(call())
    assert response.status_code == 200 and response.json() == {"path": "/who", "n": 3}


def test_a_route_may_not_use_the_reserved_parameter_name():
    def route(_medloop_route_request: int) -> None:
        return None

    with pytest.raises(TypeError, match="reserved"):
        dispatching(route)


@pytest.mark.parametrize(("value", "threads"), [(None, 0), ("", 0), ("0", 0), ("8", 8), (" 3 ", 3)])
def test_route_threads_are_read_from_the_environment(monkeypatch, value, threads):
    if value is None:
        monkeypatch.delenv("MEDLOOP_ROUTE_THREADS", raising=False)
    else:
        monkeypatch.setenv("MEDLOOP_ROUTE_THREADS", value)
    assert ApiSettings.from_env("sqlite://").route_threads == threads


@pytest.mark.parametrize(
    ("url", "value", "threads"),
    [
        ("postgresql+psycopg://db/medloop", None, DEFAULT_ROUTE_THREADS_POSTGRES),
        ("postgresql://db/medloop", "", DEFAULT_ROUTE_THREADS_POSTGRES),
        ("postgresql+psycopg://db/medloop", "0", 0),
        ("postgresql+psycopg://db/medloop", "2", 2),
        ("sqlite:///medloop.db", None, 0),
    ],
)
def test_unset_route_threads_mean_a_pool_on_postgresql_and_the_event_loop_on_sqlite(
    monkeypatch, url, value, threads
):
    if value is None:
        monkeypatch.delenv("MEDLOOP_ROUTE_THREADS", raising=False)
    else:
        monkeypatch.setenv("MEDLOOP_ROUTE_THREADS", value)
    assert ApiSettings.from_env(url).route_threads == threads


@pytest.mark.parametrize("value", ["-1", "many", "2.5", "257"])
def test_a_bad_route_threads_setting_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv("MEDLOOP_ROUTE_THREADS", value)
    with pytest.raises(InvalidSetting, match="MEDLOOP_ROUTE_THREADS"):
        ApiSettings.from_env("sqlite://")


def test_serve_refuses_a_bad_route_threads_setting(sqlite_url, monkeypatch):
    monkeypatch.setenv("MEDLOOP_ALLOW_DEV_KEYS", "1")
    monkeypatch.setenv("MEDLOOP_ROUTE_THREADS", "lots")
    result = CliRunner().invoke(cli, ["serve", "--db", sqlite_url])
    assert result.exit_code == 2
    assert "MEDLOOP_ROUTE_THREADS" in result.stderr and "'lots'" in result.stderr


def test_route_threads_answer_finish_what_runs_and_skip_what_was_given_up_while_queued():
    """One thread: the first work runs, the second waits in the queue; both requests are given
    up (the server shutting down). The running one finishes, the queued one never starts; an
    exception reaches the awaiting request as it was raised."""
    threads = route_limiter(1)
    started: list[str] = []
    release = threading.Event()

    def slow() -> str:
        started.append("slow")
        release.wait(5)
        return "slow done"

    def queued() -> str:
        started.append("queued")
        return "queued done"

    def failing() -> str:
        raise LookupError("no such thing")

    async def scenario() -> None:
        first = asyncio.ensure_future(threads.run(slow))
        second = asyncio.ensure_future(threads.run(queued))
        while not started:
            await asyncio.sleep(0.01)
        first.cancel()
        second.cancel()
        release.set()
        for task in (first, second):
            with pytest.raises(asyncio.CancelledError):
                await task
        with pytest.raises(LookupError, match="no such thing"):
            await threads.run(failing)
        assert await threads.run(lambda: 7) == 7

    asyncio.run(scenario())
    assert started == ["slow"]


def test_route_threads_take_work_in_arrival_order_each_in_a_copy_of_its_context():
    """One thread, five requests at once: they run in the order they came, each sees the
    context it was submitted in, and what a route sets in its context stays there."""
    import contextvars

    threads = route_limiter(1)
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="none")
    seen: list[str] = []

    def work() -> str:
        seen.append(marker.get())
        marker.set("changed by the route")
        return marker.get()

    async def one(n: int) -> str:
        marker.set(f"request {n}")
        answer = await threads.run(work)
        assert marker.get() == f"request {n}"
        return answer

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(one(n) for n in range(5))))

    assert asyncio.run(scenario()) == ["changed by the route"] * 5
    assert seen == [f"request {n}" for n in range(5)]


def test_route_threads_are_bounded_named_and_stop_with_their_pool():
    """At most ``threads`` threads, named as the executor named them; once the pool is
    collected its threads end."""
    import gc

    threads = route_limiter(2)
    running: set[threading.Thread] = set()
    barrier = threading.Barrier(2, timeout=5)

    def work() -> None:
        running.add(threading.current_thread())
        barrier.wait()

    async def scenario(pool) -> None:
        for _ in range(3):
            barrier.reset()
            await asyncio.gather(pool.run(work), pool.run(work))

    asyncio.run(scenario(threads))
    assert len(running) == 2
    assert {thread.name for thread in running} == {"medloop-route_0", "medloop-route_1"}
    del threads
    gc.collect()
    for thread in running:
        thread.join(5)
        assert not thread.is_alive()


def test_at_exit_the_route_threads_finish_the_work_they_have(tmp_path):
    """The event loop ends while a route runs and another is queued (both requests given up),
    then the interpreter exits: the running route finishes (a transaction is never cut short)
    before the process ends, the queued one does not start, and the thread does not fail on
    the closed loop, as with the executor."""
    import subprocess
    import sys
    import textwrap

    done = tmp_path / "done"
    script = textwrap.dedent(
        f"""
        import asyncio, threading, time
        from medloop.api.routing import route_limiter

        threads = route_limiter(1)
        started = threading.Event()

        def work(name):
            started.set()
            time.sleep(0.3)
            with open({str(done)!r}, "a") as out:
                out.write(name + "\\n")

        async def main():
            asyncio.ensure_future(threads.run(lambda: work("first")))
            asyncio.ensure_future(threads.run(lambda: work("second")))
            await asyncio.sleep(0)
            started.wait(5)

        asyncio.run(main())
        """
    )
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=30, check=False
    )
    assert finished.returncode == 0, finished.stderr
    assert done.read_text().splitlines() == ["first"]
    assert finished.stderr == b""


def test_one_request_at_a_time_keeps_one_route_thread():
    """A thread is started only when none is idle: requests one after the other all run in
    the first thread (its caches stay warm), as with the executor."""
    threads = route_limiter(4)
    seen: set[int] = set()

    async def scenario() -> None:
        for _ in range(20):
            await threads.run(lambda: seen.add(threading.get_ident()))

    asyncio.run(scenario())
    assert len(seen) == 1


def test_the_app_state_read_by_item_is_the_attribute_and_a_missing_one_raises_as_before():
    """``deps.api_state``, ``BearerCaller``'s request id and the dispatching endpoint read
    Starlette's ``State`` by item (``State.__getitem__``: its own dict) instead of through its
    ``__getattr__``: the same values, and when one is missing the same ``AttributeError`` as
    the attribute's."""
    from starlette.datastructures import State

    from medloop.api import deps

    state = State({"api": "the api", "route_limiter": None})
    assert state["api"] == state.api == "the api"
    assert state["route_limiter"] is state.route_limiter is None

    class App:
        def __init__(self, values: dict) -> None:
            self.state = State(values)

    def request_of(values: dict, scope_state: dict | None) -> Request:
        scope = {"type": "http", "method": "GET", "headers": [], "app": App(values)}
        if scope_state is not None:
            scope["state"] = scope_state
        return Request(scope)

    assert deps.api_state(request_of({"api": "the api"}, {})) == "the api"
    with pytest.raises(AttributeError) as missing:
        deps.api_state(request_of({}, {}))
    with pytest.raises(AttributeError) as as_ever:
        _ = State({}).api
    assert str(missing.value) == str(as_ever.value)

    class Api:
        def clock(self) -> str:
            return "now"

    from medloop.api.limits import PRINCIPAL

    api = Api()
    known = {PRINCIPAL: "someone", "request_id": "r-1"}
    caller = asyncio.run(deps.caller(request_of({"api": api}, known)))
    assert (caller.state, caller.principal, caller.request_id, caller.at) == (
        api,
        "someone",
        "r-1",
        "now",
    )
    with pytest.raises(AttributeError) as missing:
        asyncio.run(deps.caller(request_of({"api": api}, {PRINCIPAL: "someone"})))
    with pytest.raises(AttributeError) as as_ever:
        _ = State({}).request_id
    assert str(missing.value) == str(as_ever.value)

    from medloop.api import routing

    def route() -> str:
        return "ran"

    endpoint = dispatching(route)
    limiter = {"route_limiter": None}
    assert asyncio.run(endpoint(**{routing._REQUEST: request_of(limiter, {})})) == "ran"
    with pytest.raises(AttributeError) as missing:
        asyncio.run(endpoint(**{routing._REQUEST: request_of({}, {})}))
    with pytest.raises(AttributeError) as as_ever:
        _ = State({}).route_limiter
    assert str(missing.value) == str(as_ever.value)


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"host", b"x")],
        [(b"authorization", b"Bearer abc")],
        [(b"host", b"x"), (b"authorization", b"bearer  abc "), (b"authorization", b"Bearer z")],
        [(b"Authorization", b"Bearer upper-case-name"), (b"authorization", b"Bearer \xe6\xf8")],
        [(b"authorization", b"")],
        ((b"authorization", b"Bearer from-a-tuple"),),
    ],
)
def test_the_authorization_header_is_read_as_request_headers_get_reads_it(headers):
    """``deps._authorization`` scans the scope's header list itself (no ``Headers``): the same
    first value, decoded the same, as Starlette's ``request.headers.get`` for each list; a
    scope whose headers are not a list goes through ``request.headers``."""
    from medloop.api import deps

    ours = deps._authorization(Request({"type": "http", "headers": headers}))
    theirs = Request({"type": "http", "headers": headers}).headers.get("authorization")
    assert ours == theirs
    with pytest.raises(KeyError):
        deps._authorization(Request({"type": "http"}))
