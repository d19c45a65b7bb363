"""The two hottest routes, dispatched without FastAPI's per-request machinery (issue #20).

A prescribe (``POST /patients/{id}/prescriptions``) and a list read (``GET
/patients/{id}/list``) are most of the API's traffic. Before their route runs, FastAPI 0.165
matches the path through every included router (twice for an included router), builds a
request object, parses the body, solves the dependencies (a cache key, a scope check and a
signature inspection per dependency per request) and validates every parameter: 100-150 us of
event-loop CPU per request, measured (bench/RESULTS.md, issue #20, session 6), against a route
whose own work is 0.5-2 ms.

``HotRoutes`` sits where the router sits (inside the exception handlers, so an exception a
route raises is answered by the same handler as on the generic path). For these two routes,
and only when a request has the ordinary shape, it does the same steps itself with the route's
own pieces: FastAPI's own fields validate the path, the headers and the body, the route's own
dependencies give the caller and the list version, and the route's own endpoint runs (in the
route threads, as always). Anything else goes to the generic path untouched: another route, a
query string, a missing or repeated header, a body that is not plain JSON or does not
validate, a caller the token does not give. Nothing is written before that decision (the
route is the first thing that writes), and a body already read is handed on as it came, so the
generic path answers exactly as if ``HotRoutes`` were not there: the same status, headers,
body, audit records and log line. ``tests/api/test_api_hot_routes.py`` compares both paths'
answers request by request, good and malformed.

The OpenAPI document is not touched: the routes stay registered as they are.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastapi.routing import APIRoute
from pydantic import ValidationError
from pydantic_core import SchemaValidator
from starlette.requests import Request
from starlette.routing import Match

from medloop import json_input
from medloop.api import deps
from medloop.api.limits import PRINCIPAL

_PREFIX = "/patients/"
_FHIR_PREFIX = "/fhir/"
_PRESCRIBE_SUFFIX = "/prescriptions"
_LIST_SUFFIX = "/list"
_SAMPLE_ID = "0b5e7a3c-58d4-4d6f-9a3e-2f0c1d9b8e71"
"""A patient id for the start-up check that these paths reach these routes."""


class _Fallback(Exception):
    """The request is not of the ordinary shape: the generic path answers it."""


class HotRoutes:
    """An ASGI layer around the app's router (see the module docstring)."""

    def __init__(self, app: Any, router: Any, fallback: Any = None) -> None:
        self.router = router
        self.app = router if fallback is None else fallback
        """Where every request not answered here goes: the router, or what wraps it
        (``api.app.MedloopApp`` gives FastAPI's ``AsyncExitStackMiddleware`` around it)."""
        self.fhir = getattr(app.state, "fhir_router", None)
        """The FHIR routes alone (``api.app.create_app``): a request under ``/fhir/`` is
        matched against them instead of against every route of the JSON API's routers first
        (FastAPI 0.165 walks each included router in turn: 261 us of a FHIR create's matching
        in-process, against 29 us for a prescribe). No other route's path starts with
        ``/fhir/`` (``tests/api/test_api_hot_routes.py`` checks it), so the match is the same."""
        self.prescribe = _prescribe_plan(app)
        self.read_list = _read_list_plan(app)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            self.fhir is not None
            and scope["type"] == "http"
            and not scope.get("root_path")
            and scope["path"].startswith(_FHIR_PREFIX)
        ):
            await self.fhir(scope, receive, send)
            return
        if scope["type"] == "http" and not scope.get("query_string") and not scope.get("root_path"):
            path: str = scope["path"]
            method = scope["method"]
            if path.startswith(_PREFIX):
                if method == "POST" and self.prescribe is not None:
                    if path.endswith(_PRESCRIBE_SUFFIX):
                        segment = path[len(_PREFIX) : -len(_PRESCRIBE_SUFFIX)]
                        if segment and "/" not in segment:
                            await self._prescribe(scope, receive, send, segment)
                            return
                elif method == "GET" and self.read_list is not None:
                    if path.endswith(_LIST_SUFFIX):
                        segment = path[len(_PREFIX) : -len(_LIST_SUFFIX)]
                        if segment and "/" not in segment:
                            await self._read_list(scope, receive, send, segment)
                            return
        await self.app(scope, receive, send)

    async def _prescribe(self, scope: dict, receive: Any, send: Any, segment: str) -> None:
        plan = self.prescribe
        assert plan is not None
        received: list[dict] = []
        try:
            principal = scope.get("state", {}).get(PRINCIPAL)
            if principal is None:
                # Not authenticated before the body (medloop.api.limits): the generic path
                # decides what the request gets.
                raise _Fallback
            found = _headers(scope, _PRESCRIBE_HEADERS)
            content_type = found[b"content-type"]
            if content_type is None or not _is_json(content_type):
                raise _Fallback
            if found[b"content-length"] is None:
                # Streamed without a length: BodyGuard counts it as it comes and may refuse it
                # part way (413); only a body whose length BodyGuard has checked is read here.
                raise _Fallback
            # Each raises (ValidationError or _Fallback) on a value that does not validate.
            patient_id = plan.patient_id_of(segment)
            based_on = await deps.if_match(plan.if_match_of(found[b"if-match"]))
            key = plan.key_of(found[b"idempotency-key"])
            body = await _body(receive, received)
            body_value = plan.body_of(json_input.loads(body))
        except Exception:  # noqa: BLE001 - anything out of the ordinary: the generic path
            await self.app(scope, _replaying(received, receive), send)
            return
        request = _selected(scope, receive, send, self.router, plan.route, segment)
        try:
            # request.app.state.api: by State's item access, not its __getattr__ (an attribute
            # State does not have, looked up and missed first: ~2 k instructions, issue #20)
            state = scope["app"].state["api"]
        except KeyError:
            state = scope["app"].state.api  # the same AttributeError as ever
        # What deps.BearerCaller answers for a request authenticated before its body
        # (the request id: request.state.request_id).
        caller = deps.Caller(state, principal, scope["state"]["request_id"], state.clock())
        # The endpoint's arguments by the plan's own names for them, and the request.
        names = plan.names
        arguments = {
            names["caller"]: caller,
            names["patient_id"]: patient_id,
            names["body"]: body_value,
            names["based_on"]: based_on,
            names["key"]: key,
            plan.request_name: request,
        }
        response = await plan.endpoint(**arguments)
        await response(scope, receive, send)

    async def _read_list(self, scope: dict, receive: Any, send: Any, segment: str) -> None:
        plan = self.read_list
        assert plan is not None
        try:
            found = _headers(scope, _LIST_HEADERS)
            patient_id = plan.patient_id_of(segment)
            seen = plan.seen_of(found[b"if-none-match"])
            request = Request(scope, receive, send)
            caller = await deps.caller(request)
        except Exception:  # noqa: BLE001 - anything out of the ordinary: the generic path
            await self.app(scope, receive, send)
            return
        # The scope as the router leaves it, under the request the caller was made from (a
        # Request is its scope, receive and send: the same three ``_selected`` would wrap).
        _select(scope, self.router, plan.route, segment)
        names = plan.names
        arguments = {
            names["caller"]: caller,
            names["patient_id"]: patient_id,
            names["seen"]: seen,
            plan.request_name: request,
        }
        response = await plan.endpoint(**arguments)
        await response(scope, receive, send)


_PRESCRIBE_HEADERS = (b"content-type", b"content-length", b"if-match", b"idempotency-key")
_LIST_HEADERS = (b"if-none-match",)


def _headers(scope: dict, wanted: tuple[bytes, ...]) -> dict[bytes, str | None]:
    """The values (latin-1, as Starlette decodes them) of the ``wanted`` headers, ``None`` for
    an absent one; a repeated one is out of the ordinary."""
    found: dict[bytes, str | None] = dict.fromkeys(wanted)
    for name, value in scope["headers"]:
        if name in found:
            if found[name] is not None:
                raise _Fallback
            found[name] = value.decode("latin-1")
    return found


def _is_json(content_type: str) -> bool:
    """What FastAPI reads as JSON (``email.message``'s content type: the part before the first
    ``;``, trimmed, lower case) when it is exactly ``application/json``; the other JSON types
    (``+json``) take the generic path."""
    return content_type.partition(";")[0].strip().lower() == "application/json"


async def _body(receive: Any, received: list[dict]) -> bytes:
    """The whole body, every message kept in ``received`` (to be handed on as it came)."""
    chunks = []
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            raise _Fallback
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            body = b"".join(chunks)
            if not body:
                raise _Fallback
            return body


def _replaying(received: list[dict], receive: Any) -> Callable[[], Awaitable[dict]]:
    """``receive`` with the messages already read given again first."""
    if not received:
        return receive
    pending = list(received)

    async def replay() -> dict:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _selected(
    scope: dict, receive: Any, send: Any, router: Any, route: APIRoute, segment: str
) -> Request:
    """The scope as the generic router leaves it for ``route`` (its endpoint, path parameters
    and the route, which the access log, the metrics and the problem handlers read)."""
    _select(scope, router, route, segment)
    return Request(scope, receive, send)


def _select(scope: dict, router: Any, route: APIRoute, segment: str) -> None:
    """What the generic router writes into the scope when it picks ``route``."""
    scope.setdefault("router", router)
    scope["endpoint"] = route.endpoint
    scope["path_params"] = {"patient_id": segment}
    scope["route"] = route


class _Plan:
    """One hot route's pieces: the route, its endpoint, the names its parameters go by and the
    FastAPI fields that validate them."""

    def __init__(self, route: APIRoute, request_name: str, names: dict[str, str]) -> None:
        self.route = route
        self.endpoint = route.dependant.call
        self.request_name = request_name
        self.names = names
        self.patient_id: Any = None
        self.if_match: Any = None
        self.key: Any = None
        self.body: Any = None
        self.seen: Any = None
        self.checks: dict[int, tuple[Any, Callable[[Any], Any]]] = {}
        """The fields validated directly (by id, with the field) and how (``valid``)."""
        self.patient_id_of: Callable[[Any], Any] = _unset
        self.if_match_of: Callable[[Any], Any] = _unset
        self.key_of: Callable[[Any], Any] = _unset
        self.body_of: Callable[[Any], Any] = _unset
        self.seen_of: Callable[[Any], Any] = _unset
        """Each field's ``valid``, called without ``valid``'s frames (``validating``)."""

    def valid(self, field: Any, value: Any) -> Any:
        """``value`` as ``field`` validates it (FastAPI's own call, or the same validator's
        called directly: ``_direct_check``), or ``_Fallback``."""
        check = self.checks.get(id(field))
        if check is not None and check[0] is field:
            return check[1](value)
        found, errors = field.validate(value, {}, loc=("hot",))
        if errors:
            raise _Fallback
        return found

    def check_directly(self, *fields: Any) -> None:
        for field in fields:
            check = _direct_check(field)
            if check is not None:
                self.checks[id(field)] = (field, check)

    def validating(self, field: Any) -> Callable[[Any], Any]:
        """``valid(field, value)`` as one callable of ``value``, raising on a value that does not
        validate (``ValidationError`` or ``_Fallback``: the hot routes hand any exception to the
        generic path): the field's own validator called directly when ``check_directly`` found
        one (``_direct_check``'s call in one frame instead of ``valid``'s and the check's two
        and a dict look-up, a field, four fields a prescribe: issue #20), else ``valid``."""
        direct = _direct_validate(field) if id(field) in self.checks else None
        if direct is not None:
            return direct
        return functools.partial(self.valid, field)


def _direct_check(field: Any) -> Callable[[Any], Any] | None:
    """Validate ``field``'s values with its own pydantic validator directly: what FastAPI's
    ``ModelField.validate`` does (``TypeAdapter.validate_python(value, from_attributes=True)``,
    which calls its ``SchemaValidator`` with every other option at its default), without its
    two Python frames and its error list, which the hot routes do not use (a value that does
    not validate sends the request to the generic path, which words the 422). Only when the
    field's adapter holds a built ``SchemaValidator``; otherwise ``valid`` calls FastAPI's
    ``validate``. 2-3 us of the event loop a validation, four a prescribe (issue #20)."""
    validator = getattr(getattr(field, "_type_adapter", None), "validator", None)
    if type(validator) is not SchemaValidator:
        return None
    validate = validator.validate_python

    def check(value: Any) -> Any:
        try:
            return validate(value, from_attributes=True)
        except ValidationError:
            raise _Fallback from None

    return check


def _direct_validate(field: Any) -> Callable[[Any], Any] | None:
    """``_direct_check``'s validation (its ``SchemaValidator``'s ``validate_python`` with
    ``from_attributes=True``) in one frame, raising ``ValidationError``. (A
    ``functools.partial`` with that keyword costs more than the frame: it merges its keywords
    into a new dict at every call.)"""
    validator = getattr(getattr(field, "_type_adapter", None), "validator", None)
    if type(validator) is not SchemaValidator:
        return None
    validate = validator.validate_python

    def validated(value: Any) -> Any:
        return validate(value, from_attributes=True)

    return validated


def _unset(value: Any) -> Any:
    raise _Fallback


def _route(app: Any, operation_id: str) -> APIRoute | None:
    for route in _in_order(app.router.routes):
        if isinstance(route, APIRoute) and route.operation_id == operation_id:
            return route
    return None


def _in_order(routes: Any) -> Iterator[Any]:
    """The app's routes in the order the generic router tries them, included routers opened
    (``None`` for one included under a prefix of its own: medloop includes none)."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is None:
            yield route
        elif route.include_context.prefix:
            yield None
        else:
            yield from _in_order(original.routes)


def _reached(app: Any, method: str, path: str) -> Any:
    """The route the generic router gives ``method path`` (the first full match)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    for route in _in_order(app.router.routes):
        if route is None:
            return None
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def _dependency(route: APIRoute, name: str) -> Any:
    for dependency in route.dependant.dependencies:
        if dependency.name == name:
            return dependency
    return None


def _candidate(
    app: Any, operation: str, method: str, suffix: str, calls: list[Any]
) -> tuple[APIRoute, str, list[str | None]] | None:
    """The route ``operation``, the name its endpoint takes the request by (``routing.dispatching``
    adds it) and its dependencies' names, when a ``method`` request to a patient's ``suffix``
    reaches it, its one path parameter is the patient id, its dependencies are ``calls`` in
    that order and it reads no query, header or cookie parameter of its own; else ``None``."""
    route = _route(app, operation)
    if route is None or _reached(app, method, f"{_PREFIX}{_SAMPLE_ID}{suffix}") is not route:
        return None
    dependant = route.dependant
    if (
        [param.name for param in dependant.path_params] != ["patient_id"]
        or dependant.request_param_name is None
        or [d.call for d in dependant.dependencies] != calls
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
    ):
        return None
    return route, dependant.request_param_name, [d.name for d in dependant.dependencies]


def _prescribe_plan(app: Any) -> _Plan | None:
    """The prescribe route's plan, or ``None`` (generic path only) when the route is not the
    one this module was written for: its dependencies, parameters or path reached otherwise."""
    found = _candidate(
        app,
        "prescribe",
        "POST",
        _PRESCRIBE_SUFFIX,
        [deps.caller, deps.if_match, deps.idempotency_key],
    )
    if found is None:
        return None
    route, request_name, names = found
    dependant = route.dependant
    if len(dependant.body_params) != 1 or route.body_field is None or _embedded(route):
        return None
    plan = _Plan(
        route,
        request_name,
        {
            "caller": names[0],
            "based_on": names[1],
            "key": names[2],
            "patient_id": "patient_id",
            "body": dependant.body_params[0].name,
        },
    )
    plan.patient_id = dependant.path_params[0]
    if_match = _dependency(route, names[1])
    key = _dependency(route, names[2])
    if len(if_match.header_params) != 1 or len(key.header_params) != 1:
        return None
    plan.if_match = if_match.header_params[0]
    plan.key = key.header_params[0]
    plan.body = dependant.body_params[0]
    if plan.if_match.alias.lower() != "if-match" or plan.key.alias.lower() != "idempotency-key":
        return None
    plan.check_directly(plan.patient_id, plan.if_match, plan.key, plan.body)
    plan.patient_id_of = plan.validating(plan.patient_id)
    plan.if_match_of = plan.validating(plan.if_match)
    plan.key_of = plan.validating(plan.key)
    plan.body_of = plan.validating(plan.body)
    return plan


def _read_list_plan(app: Any) -> _Plan | None:
    """The list read's plan, or ``None`` (see ``_prescribe_plan``)."""
    found = _candidate(app, "readList", "GET", _LIST_SUFFIX, [deps.caller, deps.if_none_match])
    if found is None:
        return None
    route, request_name, names = found
    dependant = route.dependant
    if dependant.body_params:
        return None
    plan = _Plan(
        route,
        request_name,
        {"caller": names[0], "seen": names[1], "patient_id": "patient_id"},
    )
    plan.patient_id = dependant.path_params[0]
    seen = _dependency(route, names[1])
    if len(seen.header_params) != 1 or seen.header_params[0].alias.lower() != "if-none-match":
        return None
    plan.seen = seen.header_params[0]
    plan.check_directly(plan.patient_id, plan.seen)
    plan.patient_id_of = plan.validating(plan.patient_id)
    plan.seen_of = plan.validating(plan.seen)
    return plan


def _embedded(route: APIRoute) -> bool:
    return bool(getattr(route, "_embed_body_fields", False))
