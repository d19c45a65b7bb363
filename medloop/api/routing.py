"""Where a route's work runs: on the event loop's own thread, or in a bounded thread pool.

The routes are plain functions: they talk to the database through SQLAlchemy's blocking
drivers. FastAPI would run each of them in anyio's thread pool, so every request hands its
work to a thread and back, and the threads of one process then take turns at the GIL. Under
load that costs more than the work: in interleaved runs of bench/api.py (PostgreSQL, 2
worker processes, 16 clients) the routes run on the event loop's thread took 20-28 % less
server CPU per request and served 30-38 % more requests/s, one request at a time per process,
concurrency coming from worker processes (``medloop serve --workers``) instead of threads:
the classic pre-fork model, with uvicorn still reading request bodies and writing responses
asynchronously around each route. (One SQLite process: 50-84 % more requests/s.)

``BlockingRoute`` (the ``route_class`` of every router) turns each plain route into a
coroutine that either calls it directly (``route_threads`` 0, the default on SQLite) or runs it
in a pool of ``route_threads`` threads (``MEDLOOP_ROUTE_THREADS``; 4 by default on PostgreSQL).
Later measurements against the floor of our own stack on a quiet machine (bench/RESULTS.md,
issue #20) turned the earlier finding around for PostgreSQL: with 4 threads a worker keeps
serving while a request waits on its round trips, for 1.7x the requests/s of the event loop at
the same CPU per request and PostgreSQL CPU per request down to the floor's.
The coroutine has the route's own signature, name and documentation, so FastAPI's parameter
handling and the OpenAPI document are unchanged.

The pool is the standard library's ``ThreadPoolExecutor`` (``RouteThreads``): per request it
costs 20-40 us less CPU than anyio's ``to_thread.run_sync`` with a ``CapacityLimiter`` (measured
with 8 requests in flight on 4 threads, bench/RESULTS.md issue #20, session 5: anyio yields to
the loop once before handing off and enters a cancel scope and the limiter; the executor's queue
is a ``SimpleQueue``), and a route thread answers the event loop's future itself, another
20-40 us less than the loop's ``run_in_executor`` (session 6).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from medloop import json_input
from medloop.api.lean import LeanRoute
from medloop.store.db import retry_read

_SAFE_METHODS = frozenset({"GET", "HEAD"})
"""Requests that change nothing (RFC 9110 safe methods): retried once on a lost connection
(``store.db.retry_read``); writes are not, a client retries them with an Idempotency-Key."""

_REQUEST = "_medloop_route_request"
"""The extra parameter through which the wrapper gets the request (and so its app)."""


Result = TypeVar("Result")


class RouteThreads:
    """The pool of threads a process runs its routes in: at most ``threads`` routes at once,
    the others queued in arrival order. Each runs in a copy of the request's context (the log
    context's request id goes with it). A request given up while its route runs (the server
    shutting down) does not stop the route: it finishes its transaction in its thread, and its
    answer is dropped; one still queued does not start.

    The threads take their jobs from one ``SimpleQueue`` (a C queue: a put is one call, and
    wakes one waiting thread). It was the standard library's ``ThreadPoolExecutor``, whose
    ``submit`` makes a ``Future`` (a ``Condition``) and a ``_WorkItem``, takes its shutdown lock
    and asks a ``Semaphore`` (a Python ``Condition`` again) whether a thread is idle, and whose
    thread then marks the ``Future`` running and done (notifying its ``Condition`` twice) and
    releases the ``Semaphore``: work per request on both sides of the hand-off that nothing
    here reads (issue #20). A thread is started only when no started one is idle, ``threads``
    at most (``_Live.idle``), as the executor did; like the
    executor's they are joined at the interpreter's exit after the jobs already queued
    (``threading._register_atexit``, before non-daemon threads are waited for), and they stop
    when the pool is collected."""

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError(f"route threads must be 1 or more, not {threads}")
        self.threads = threads
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._started: list[threading.Thread] = []
        self._live = live = _Live(self._jobs, self._started)
        _LIVE.add(live)
        weakref.finalize(self, _retire, live).atexit = False

    async def run(self, work: Callable[[], Result]) -> Result:
        """``work()``'s result, computed in one of the threads. The thread answers the event
        loop's own future directly (``call_soon_threadsafe``), not through ``run_in_executor``:
        that checks the function for a coroutine (an abstract-class ``isinstance``) and chains
        a second future to the executor's, 20-40 us of the event loop's time a request more
        (bench/RESULTS.md, issue #20, session 6)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Result] = loop.create_future()
        live = self._live
        with live.lock:
            live.idle -= 1
            start = live.idle < 0 and len(self._started) < self.threads
            if start:
                thread = threading.Thread(
                    target=_serve, args=(live,), name=f"medloop-route_{len(self._started)}"
                )
                thread.start()
                self._started.append(thread)
        self._jobs.put((loop, answer, contextvars.copy_context(), work))
        return await answer


def _serve(live: _Live) -> None:
    """A route thread: run each job taken from the queue until ``None``."""
    get = live.jobs.get
    with live.lock:
        live.idle += 1
    while True:
        job = get()
        if job is None:
            return
        _job(live, *job)
        del job  # nothing of a request is kept while the thread waits for the next


def _job(
    live: _Live, loop: Any, answer: asyncio.Future, context: contextvars.Context, work: Any
) -> None:
    """Run one job, count the thread idle again, then answer: a request the answer lets the
    loop make next finds the thread idle (no second thread for one request at a time)."""
    outcome: tuple[Callable[..., None], Any] | None = None
    if not answer.cancelled():  # given up while queued: not started
        try:
            outcome = (_answer, context.run(work))
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting request
            outcome = (_fail, error)
    with live.lock:
        live.idle += 1
    if outcome is not None:
        try:
            loop.call_soon_threadsafe(outcome[0], answer, outcome[1])
        except RuntimeError:
            pass  # the loop has closed (the process is ending): no one awaits the answer


class _Live:
    """A pool's queue and threads, for stopping them (``_stop_all``, or the pool collected),
    and how many threads wait for a job less the jobs queued (``idle``, under ``lock``: a
    thread counts itself before it waits, a request counts its job; a thread is started when
    it comes out below 0 and the pool is not full, so, as with the executor, one request at
    a time keeps one thread busy, and its caches warm)."""

    def __init__(self, jobs: queue.SimpleQueue[Any], started: list[threading.Thread]) -> None:
        self.jobs = jobs
        self.started = started
        self.lock = threading.Lock()
        self.idle = 0

    def stop(self) -> None:
        for _ in self.started:
            self.jobs.put(None)


_LIVE: set[_Live] = set()


def _retire(live: _Live) -> None:
    """A pool collected: its threads stop."""
    _LIVE.discard(live)
    live.stop()


def _stop_all() -> None:
    """At the interpreter's exit: each pool's threads finish the jobs queued and stop."""
    live = list(_LIVE)
    for found in live:
        found.stop()
    for found in live:
        for thread in found.started:
            thread.join()


threading._register_atexit(_stop_all)  # type: ignore[attr-defined] - as concurrent.futures does


def _answer(future: asyncio.Future, result: Any) -> None:
    if not future.cancelled():  # given up while it ran: the answer is dropped
        future.set_result(result)


def _fail(future: asyncio.Future, error: BaseException) -> None:
    if not future.cancelled():
        future.set_exception(error)


def route_limiter(threads: int) -> RouteThreads | None:
    """What ``app.state.route_limiter`` holds: ``None`` to run routes on the event loop, else
    the pool of threads they run in."""
    if threads < 0:
        raise ValueError(f"route threads must be 0 (on the event loop) or more, not {threads}")
    return RouteThreads(threads) if threads else None


class BlockingRoute(APIRoute):
    """An ``APIRoute`` whose plain-function endpoint runs where the app's settings say, whose
    JSON body is read by ``medloop.json_input.loads`` (no NaN, infinities, NUL, lone
    surrogates or deep nesting get past it), and which refuses query parameters it does not
    declare (422 ``invalid-request``). A request of the ordinary shape is answered past
    FastAPI's dependency machinery (``api.lean.LeanRoute``), alike."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = dispatching(endpoint)
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()
        known = query_parameters(self.dependant)
        lean = LeanRoute.of(self)

        async def strict_json(request: Request) -> Any:
            request = StrictJsonRequest(request.scope, request.receive)
            unknown = [name for name in request.query_params if name not in known]
            if unknown:
                # A query parameter the route does not know is refused, not ignored (a client
                # sending ``offset`` would otherwise get the first page and think it the next).
                raise RequestValidationError(
                    [
                        {
                            "type": "extra_forbidden",
                            "loc": ("query", name),
                            "msg": "Unknown query parameter",
                            "input": None,
                        }
                        for name in dict.fromkeys(unknown)
                    ]
                )
            if lean is not None and lean.applies():
                solved = await lean.values(request)
                if solved is not None:
                    return await lean.answer(solved)
            return await handler(request)

        return strict_json


def query_parameters(dependant: Dependant) -> frozenset[str]:
    """The names of the query parameters a route and its dependencies declare."""
    found: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        found.update(param.alias for param in current.query_params)
        pending.extend(current.dependencies)
    return frozenset(found)


class StrictJsonRequest(Request):
    """A request whose ``json()`` is ``medloop.json_input.loads`` of its body."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json_input.loads(await self.body())
        return self._json


def dispatching(route: Callable[..., Any]) -> Callable[..., Any]:
    """A coroutine function with ``route``'s parameters (plus the request) that runs
    ``route`` on the loop or in the app's route threads."""
    signature = inspect.signature(route, eval_str=True)
    if _REQUEST in signature.parameters:
        raise TypeError(f"{route.__qualname__}: the parameter name {_REQUEST} is reserved")
    # FastAPI hands the request to one parameter only: a route that asks for it shares it.
    own = next((p.name for p in signature.parameters.values() if p.annotation is Request), None)

    async def endpoint(**values: Any) -> Any:
        request: Request = values[own] if own else values.pop(_REQUEST)
        try:
            threads = request.app.state["route_limiter"]  # State's item access (api.hot)
        except KeyError:
            threads = request.app.state.route_limiter  # the same AttributeError as ever
        work = functools.partial(route, **values)
        if request.method in _SAFE_METHODS:
            # A read whose database connection died under it runs once more on a fresh one.
            work = functools.partial(retry_read, work)
        if threads is None:
            return work()
        return await threads.run(work)

    parameters = [*signature.parameters.values()]
    if own is None:
        parameters.append(
            inspect.Parameter(_REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        )
    # Not functools.wraps: FastAPI follows __wrapped__ and would find the plain function.
    endpoint.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    for name in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(endpoint, name, getattr(route, name))
    return endpoint
