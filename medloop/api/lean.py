"""FastAPI's request handler for a JSON API or page route, done directly for requests of the
ordinary shape (issue #20).

For every request FastAPI 0.165's handler solves the route's dependencies through its general
machinery: for each dependency a cache key (its security scopes worked out again), a fresh
sub-``Response``, the cookies parsed, every parameter looked up through its aliases; and the
body's content type parsed as a MIME message. py-spy put that at ≈ 9 % of the server's samples
in ``bench/api.py``'s mix on PostgreSQL (bench/RESULTS.md, issue #20, session 25), for the
routes the hot path (``api.hot``) does not serve: the dry-run check, the pharmacy's read and
dispense, the catalogue search, the patient's own list.

``LeanRoute`` is compiled once per route (and per inclusion, as FastAPI's handler is) from the
same ``Dependant`` FastAPI's handler uses. A request then goes in two passes:

1. Everything that only reads the request: the body, read and parsed as FastAPI reads it, and
   every parameter of the route and of each of its dependencies, validated by FastAPI's own
   functions (``request_params_to_args``, ``request_body_to_args``) over the same fields. Any
   failure here hands the request to FastAPI's handler untouched (``values`` answers ``None``),
   which then answers with its own error exactly as before; nothing has run yet. Only a body
   FastAPI's handler would reject *as it reads it* (``limits.BodyGuard``'s 413 arrives as an
   ``HTTPException``) is raised here, as that handler raises it.
2. The dependencies called in FastAPI's order (depth first, each one once per request under
   FastAPI's own cache key), then the endpoint. An exception either raises propagates as it
   does from FastAPI's handler, which calls the same dependencies in the same order with the
   same values (its order differs only for a request with an invalid parameter, and such a
   request never gets here).

Only routes of a shape this covers qualify (``of``): coroutine dependencies without ``yield``,
a dependency concurrency limit or security scopes, cached (FastAPI's default), taking path,
query and header parameters, the request and other such dependencies; no cookie parameters;
the body, if any, in the route's own parameters and JSON (not a form); an endpoint that is a
coroutine function answering a ``Response`` (``BlockingRoute``'s endpoints are, by
``routing.dispatching``). Any other route, every route while the app has dependency overrides,
and every request FastAPI's OpenTelemetry support serves take FastAPI's handler.
``tests/api/test_api_lean_routes.py`` checks that both answer alike, request by request, good
and malformed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import params as fastapi_params
from fastapi import routing as fastapi_routing
from fastapi.dependencies.models import (
    Dependant,
    _get_cache_key,
    _is_async_gen_callable,
    _is_coroutine_callable,
    _is_gen_callable,
)
from fastapi.dependencies.utils import request_body_to_args, request_params_to_args
from fastapi.routing import APIRoute
from fastapi.telemetry import get_telemetry_data
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

_effective_route_context = getattr(fastapi_routing, "_effective_route_context_var", None)


def handler_route(route: APIRoute) -> Any:
    """What FastAPI's own handler for ``route`` is built from (its dependant, body field and
    overrides provider): an included route's context, which may add the including router's
    dependencies, else the route (fastapi.routing.APIRoute.get_route_handler). Valid while
    that handler is being built."""
    context = _effective_route_context.get() if _effective_route_context else None
    return context if context is not None and context.original_route is route else route


def answers_with_response(endpoint: Callable[..., Any]) -> bool:
    """Whether ``endpoint`` says it answers with a Starlette ``Response``."""
    answer = inspect.signature(endpoint, eval_str=True).return_annotation
    return inspect.isclass(answer) and issubclass(answer, Response)


def is_json(content_type: str) -> bool:
    """Whether FastAPI's handler reads a body of this ``Content-Type`` as JSON: a MIME type
    ``application/json`` or ``application/…+json``, in any case, parameters aside."""
    kind = content_type.partition(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json") and "/" not in kind[12:]
    )


@dataclass(frozen=True, slots=True)
class _Params:
    """One dependant's own request parameters (FastAPI's fields, in its order)."""

    path: list[Any]
    query: list[Any]
    header: list[Any]
    request: tuple[str, ...]
    """The names under which the dependant takes the request itself."""


@dataclass(frozen=True, slots=True)
class _Call:
    """One dependency: what FastAPI calls, the key it caches the answer under, the name its
    parent takes the answer by (``None`` for a route's or router's ``dependencies=``), and
    its own dependencies and parameters."""

    call: Callable[..., Any]
    key: Any
    name: str | None
    calls: tuple[_Call, ...]
    params: _Params


class _Unfit(Exception):
    """A dependant this module does not cover: the route keeps FastAPI's handler."""


def _params(dependant: Dependant) -> _Params:
    if (
        dependant.cookie_params
        or dependant.background_tasks_param_name
        or dependant.response_param_name
        or dependant.security_scopes_param_name
        or dependant.websocket_param_name
        or dependant.own_oauth_scopes
        or dependant.parent_oauth_scopes
    ):
        raise _Unfit
    names = tuple(
        name
        for name in (dependant.http_connection_param_name, dependant.request_param_name)
        if name is not None
    )
    return _Params(
        list(dependant.path_params),
        list(dependant.query_params),
        list(dependant.header_params),
        names,
    )


def _calls(dependant: Dependant) -> tuple[_Call, ...]:
    found = []
    for sub in dependant.dependencies:
        call = sub.call
        if (
            call is None
            or not sub.use_cache
            or sub.concurrency is not None
            or sub.scope is not None
            or sub.body_params
            or _is_gen_callable(call)
            or _is_async_gen_callable(call)
            or not _is_coroutine_callable(call)
        ):
            raise _Unfit
        found.append(
            _Call(call, _get_cache_key(dependant=sub), sub.name, _calls(sub), _params(sub))
        )
    return tuple(found)


def _every(calls: tuple[_Call, ...]) -> list[_Call]:
    """Every dependency of the tree, each node once, depth first."""
    found: list[_Call] = []
    for each in calls:
        found.extend(_every(each.calls))
        found.append(each)
    return found


class LeanRoute:
    """A route's handler past FastAPI's general machinery (see the module docstring)."""

    def __init__(
        self,
        endpoint: Callable[..., Any],
        calls: tuple[_Call, ...],
        params: _Params,
        body: list[Any],
        embed_body: bool,
        overrides: Any,
    ) -> None:
        self.endpoint, self.calls, self.params = endpoint, calls, params
        self.body, self.embed_body, self.overrides = body, embed_body, overrides
        self.checked = [each.params for each in _every(calls)] + [params]
        """Every dependant's parameters, the route's last: all validated before anything
        is called."""
        self.uses_query = any(p.query for p in self.checked)
        self.uses_headers = any(p.header for p in self.checked)

    @classmethod
    def of(cls, route: APIRoute) -> LeanRoute | None:
        """The lean handler of ``route`` as its FastAPI handler is being built, or ``None``:
        the route is of a shape this module does not cover."""
        found = handler_route(route)
        dependant = found.dependant
        call = dependant.call
        body_field = found.body_field
        if (
            call is None
            or not inspect.iscoroutinefunction(call)
            or not answers_with_response(route.endpoint)
            or (body_field is not None and isinstance(body_field.field_info, fastapi_params.Form))
            or bool(dependant.body_params) != (body_field is not None)
        ):
            return None
        try:
            calls = _calls(dependant)
            params = _params(dependant)
        except _Unfit:
            return None
        return cls(
            call,
            calls,
            params,
            list(dependant.body_params),
            bool(getattr(found, "_embed_body_fields", False)),
            found.dependency_overrides_provider,
        )

    def applies(self) -> bool:
        """Not while the app overrides a dependency (FastAPI's handler resolves those), nor
        for a request FastAPI's telemetry serves (an OpenTelemetry provider configured): its
        handler records the request's values and its dependency and endpoint spans."""
        return (
            not getattr(self.overrides, "dependency_overrides", None)
            and get_telemetry_data() is None
        )

    async def values(self, request: Request) -> dict[str, Any] | None:
        """Pass 1: every parameter's value, by dependant, and the body's; or ``None`` when any
        would fail (FastAPI's handler answers the request)."""
        body: dict[str, Any] = {}
        if self.body:
            # Read first, as FastAPI's handler does: a body over the limit is refused alike.
            try:
                raw = await request.body()
            except HTTPException:
                raise
            except Exception:  # noqa: BLE001 - FastAPI's handler words the failure
                return None
            kind = request.headers.get("content-type")
            if not raw or kind is None or not is_json(kind):
                return None
            try:
                posted = await request.json()
            except Exception:  # noqa: BLE001 - FastAPI's handler words the failure
                return None
            body, errors = await request_body_to_args(self.body, posted, self.embed_body)
            if errors:
                return None
        path = request.path_params
        query = request.query_params if self.uses_query else None
        headers = request.headers if self.uses_headers else None
        solved: dict[int, dict[str, Any]] = {}
        for params in self.checked:
            given: dict[str, Any] = {}
            for fields, source in (
                (params.path, path),
                (params.query, query),
                (params.header, headers),
            ):
                if fields:
                    found, errors = request_params_to_args(fields, source)
                    if errors:
                        return None
                    given.update(found)
            for name in params.request:
                given[name] = request
            solved[id(params)] = given
        solved[id(self.params)].update(body)
        return solved

    async def answer(self, solved: dict[int, dict[str, Any]]) -> Response:
        """Pass 2: the dependencies called as FastAPI calls them, then the endpoint."""
        cache: dict[Any, Any] = {}
        values = solved[id(self.params)]
        await self._call(self.calls, values, solved, cache)
        response = await self.endpoint(**values)
        if not isinstance(response, Response):
            raise TypeError(f"{self.endpoint.__qualname__} answered {type(response)!r}")
        return response

    async def _call(
        self,
        calls: tuple[_Call, ...],
        into: dict[str, Any],
        solved: dict[int, dict[str, Any]],
        cache: dict[Any, Any],
    ) -> None:
        for each in calls:
            if each.key in cache:
                answer = cache[each.key]
            else:
                own = solved[id(each.params)]
                if each.calls:
                    own = dict(own)
                    await self._call(each.calls, own, solved, cache)
                answer = await each.call(**own)
                cache[each.key] = answer
            if each.name is not None:
                into[each.name] = answer
