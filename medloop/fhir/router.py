"""The FHIR R4 routes under ``/fhir``: read, vread, history and search of the engine's data as
FHIR resources, through the JSON API's caller, policy and audited reads (each read of patient
data leaves one audit record, exactly as the JSON API's reads do).

A route parses, authorises (``medloop.api.policy`` and the token's SMART scopes,
``medloop.fhir.scopes``), reads through ``medloop.queries`` / the loop's queries and renders
with ``medloop.fhir.resources``; nothing here decides.
"""

from __future__ import annotations

import inspect
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from threading import Lock
from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Request, Response
from fastapi import params as fastapi_params
from fastapi.routing import APIRoute
from sqlalchemy import Connection
from starlette.exceptions import HTTPException

from interactions import UnknownReference
from interactions.drugs import ReferenceKind
from medloop import queries
from medloop.api import deps
from medloop.api.auth import Role
from medloop.api.deps import Caller, CallerDep
from medloop.api.lean import answers_with_response, handler_route
from medloop.api.policy import MATRIX, Action, permits, read_window
from medloop.api.responses import JSONResponse
from medloop.api.routing import StrictJsonRequest, dispatching
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.personnel import Actor, HealthPersonnel, Organisation
from medloop.domain.state import PatientState
from medloop.fhir import negotiation, scopes
from medloop.fhir import resources as fhir
from medloop.fhir.capability import capability_statement
from medloop.fhir.outcome import FhirError
from medloop.fhir.search import (
    Search,
    at_instant,
    bundle,
    codings_match,
    date_param,
    day_range,
    filtered,
    lenient,
    parse,
    reference_id,
    token,
)
from medloop.fhir.subset import WHOLE, Subset, cut_body, subset_of
from medloop.loop import administration
from medloop.loop.catalogue import Catalogue, catalogue_at, catalogue_in_force


class FhirRoute(APIRoute):
    """A route whose plain-function endpoint runs where the app's settings say (as
    ``BlockingRoute``), without refusing query parameters: FHIR search reads them itself
    (strict or lenient, ``medloop.fhir.search``)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        self.answers = negotiation.produced_by(endpoint)
        if not inspect.iscoroutinefunction(endpoint):
            # (marked again: the dispatch router's copy of this route is made from this one)
            endpoint = negotiation.produces(self.answers)(dispatching(endpoint))
        kwargs.setdefault("response_class", FhirResponse)
        methods = {m.upper() for m in kwargs.get("methods") or ()}
        read = _READ_PATH.fullmatch(path) if methods == {"GET"} else None
        self.subsets = None if read is None else read["type"]
        """The resource type a read, vread or history of this route answers with (``None``:
        not one)."""
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()
        lean = _LeanRead.of(self)
        create = _LeanCreate.of(self)
        answers = self.answers
        subsets = self.subsets

        async def strict_json(request: Request) -> Any:
            # Only what the client can read is answered (an Accept or _format for XML: 406).
            negotiation.refuse_unacceptable(request.scope, answers)
            if request.scope["method"] == "POST":  # a resource posted: FHIR JSON only
                negotiation.refuse_unreadable_body(request.scope)
            # Bodies are read by medloop.json_input (no NaN, NUL, lone surrogates, deep nesting).
            request = StrictJsonRequest(request.scope, request.receive)
            # A read's _summary or _elements, and _pretty: checked before the endpoint runs,
            # applied to its answer.
            parts = WHOLE if subsets is None else _read_subset(request, subsets)
            pretty = _pretty(request)
            if lean is not None and lean.applies():
                response = await lean(request)
            elif (
                create is not None
                and create.applies()
                and (values := await create.values(request)) is not None
            ):
                response = await create(values)
            else:
                response = await handler(request)
            return _rewritten(response, parts, pretty) if parts or pretty else response

        return strict_json


_READ_PATH = re.compile(r"/fhir/(?P<type>[A-Z][A-Za-z]+)/\{\w+\}(?:/_history(?:/\{\w+\})?)?")
"""The paths of a read, a vread and an instance's history: what ``_summary`` and ``_elements``
cut after the endpoint has answered (a search cuts its own matches, ``medloop.fhir.search``)."""

_SUBSET_NAMES = (b"_summary", b"_elements")


def _read_subset(request: Request, resource_type: str) -> Subset:
    """The ``_summary`` or ``_elements`` a read of ``resource_type`` asks for (``WHOLE``: none);
    a value this server cannot answer is a 400 before anything is read (an element the type
    does not have is ignored under ``Prefer: handling=lenient``, as a search ignores it)."""
    query = request.scope.get("query_string", b"")
    if not any(name in query for name in _SUBSET_NAMES):
        return WHOLE
    given: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        if name in ("_summary", "_elements"):
            given.setdefault(name, []).append(value)
    return subset_of(given, resource_type, strict=not lenient(request))[0]


def _pretty(request: Request) -> bool:
    """Whether the request asks for indented JSON (``_pretty=true``, a FHIR parameter of every
    interaction); a value other than ``true`` or ``false`` is a 400."""
    if b"_pretty" not in request.scope.get("query_string", b""):
        return False
    given = request.query_params.getlist("_pretty")
    if not given:
        return False
    if given[-1] not in ("true", "false"):
        raise FhirError(
            400, "invalid", f"_pretty={given[-1][:100]}: true or false", expression=["_pretty"]
        )
    return given[-1] == "true"


def _rewritten(response: Response, parts: Subset, pretty: bool) -> Response:
    """The endpoint's JSON answer with only the parts asked for (a 200's: a 304 or an error
    stands) and indented by two spaces when ``pretty``, decoded and encoded once; any other
    answer as it stands."""
    body = getattr(response, "body", None)
    kind = response.headers.get("content-type", "")
    if not body or not kind.startswith((fhir.FHIR_JSON, "application/json")):
        return response
    found = orjson.loads(body)
    if parts and response.status_code == 200:
        found = cut_body(found, parts)
    indent = orjson.OPT_INDENT_2 if pretty else 0
    body = orjson.dumps(found, option=orjson.OPT_NON_STR_KEYS | indent)
    response.body = body
    response.headers["content-length"] = str(len(body))
    return response


class _LeanRead:
    """What FastAPI's request handler does for a FHIR read or search, done directly: the
    caller (``deps.caller``, the route's one dependency), the path's string parameters and
    the request, handed to the endpoint, whose ``Response`` is the answer.

    FastAPI solves the same dependency through its general machinery on every request (a
    cache key and a scope check per dependency, the query string parsed, an error context
    built): ≈ 10 % of a served search's CPU (bench/RESULTS.md, issue #18, session 7). Only a
    ``GET`` route whose parameters are exactly those qualifies (``of``); any other route, and
    every route while the app has dependency overrides, goes through FastAPI's handler.
    Errors propagate as from FastAPI's handler (none of these parameters can fail FastAPI's
    validation: a path parameter is a ``str`` the path matched, the caller's errors are its
    own), so both answer alike; ``tests/fhir/test_fhir_lean_reads.py`` compares them."""

    def __init__(self, call: Callable[..., Any], caller: str, paths: list[str], request: str):
        self.call, self.caller, self.paths, self.request = call, caller, paths, request
        self.overrides: Any = None

    @classmethod
    def of(cls, route: APIRoute) -> _LeanRead | None:
        found = handler_route(route)
        dependant = found.dependant
        dependencies = dependant.dependencies
        paths = dependant.path_params
        if (
            route.methods != {"GET"}
            or len(dependencies) != 1
            or dependencies[0].call is not deps.caller
            or dependant.request_param_name is None
            or dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.body_params
            or dependant.background_tasks_param_name
            or dependant.response_param_name
            or dependant.security_scopes_param_name
            or dependant.websocket_param_name
            or any(p.field_info.annotation is not str or p.field_info.metadata for p in paths)
            or not answers_with_response(route.endpoint)
        ):
            return None
        lean = cls(
            dependant.call,
            str(dependencies[0].name),
            [str(p.name) for p in paths],
            dependant.request_param_name,
        )
        lean.overrides = found.dependency_overrides_provider
        return lean

    def applies(self) -> bool:
        return not getattr(self.overrides, "dependency_overrides", None)

    async def __call__(self, request: Request) -> Response:
        values: dict[str, Any] = {self.caller: await deps.caller(request), self.request: request}
        given = request.path_params
        for name in self.paths:
            values[name] = given[name]
        response = await self.call(**values)
        if not isinstance(response, Response):
            raise TypeError(f"{self.call.__qualname__} answered {type(response)!r}")
        return response


_HEADER_DEPENDENCIES = (deps.if_match, deps.idempotency_key)
"""Dependencies a lean create solves itself: coroutines of one header each, nothing else."""


class _LeanCreate:
    """What FastAPI's request handler does for a FHIR create (``POST /fhir/MedicationRequest``,
    ``POST /fhir/MedicationAdministration``), done directly when the request is of the
    ordinary shape: the body read (``medloop.json_input``, as ``StrictJsonRequest`` reads it),
    the headers taken once each and validated by the route's own FastAPI fields, the caller
    and the header dependencies (``deps.if_match``, ``deps.idempotency_key``) called as
    FastAPI calls them, and the endpoint given the same values. FastAPI's general machinery
    (the content type parsed as a MIME message, each dependency's cache key and scope, every
    parameter looked up and validated through its model field, an error context built) cost
    ≈ 0.1 ms of a served create's CPU (bench/RESULTS.md, issue #18, session 8).

    Anything out of the ordinary — a body that is empty, not ``application/json`` or
    ``application/fhir+json``, not a JSON object; a header given twice; a value a field or
    dependency refuses (a missing ``If-Match``, an ``Idempotency-Key`` too long), a caller
    the token does not give — hands the request to FastAPI's handler untouched (the body
    already read is kept by the request), which then answers with its own error as it always
    did; so a create answers alike on both paths (``tests/fhir/test_fhir_lean_creates.py`` compares
    them). Only a ``POST`` route whose parameters are the caller, those header dependencies,
    headers of its own (``str | None``), one body and the request qualifies (``of``); every
    route while the app has dependency overrides takes FastAPI's handler."""

    def __init__(
        self,
        call: Callable[..., Any],
        request: str,
        caller: str,
        body: Any,
        headers: list[tuple[str, Any]],
        depends: list[tuple[str, Callable[..., Any], Any]],
    ) -> None:
        self.call, self.request, self.caller, self.body = call, request, caller, body
        self.headers = headers
        """(the endpoint's name for it, its field) of each header the route reads itself."""
        self.depends = depends
        """(the endpoint's name for its value, the dependency, its one header field)."""
        self.wanted = {
            field.alias.lower().encode("latin-1"): None
            for field in [f for _, f in headers] + [f for _, _, f in depends]
        }
        self.wanted[b"content-type"] = None
        self.overrides: Any = None

    @classmethod
    def of(cls, route: APIRoute) -> _LeanCreate | None:
        found = handler_route(route)
        dependant = found.dependant
        if (
            route.methods != {"POST"}
            or dependant.request_param_name is None
            or dependant.path_params
            or dependant.query_params
            or dependant.cookie_params
            or len(dependant.body_params) != 1
            or found.body_field is None
            or getattr(found, "_embed_body_fields", False)
            or not isinstance(dependant.body_params[0].field_info, fastapi_params.Body)
            or isinstance(dependant.body_params[0].field_info, fastapi_params.Form)
            or dependant.background_tasks_param_name
            or dependant.response_param_name
            or dependant.security_scopes_param_name
            or dependant.websocket_param_name
            or not all(_plain_header(p) for p in dependant.header_params)
            or not answers_with_response(route.endpoint)
        ):
            return None
        caller = None
        depends = []
        for dependency in dependant.dependencies:
            if dependency.call is deps.caller and caller is None:
                caller = str(dependency.name)
            elif (
                dependency.call in _HEADER_DEPENDENCIES
                and len(dependency.header_params) == 1
                and _plain_header(dependency.header_params[0])
                and not _more_than_headers(dependency)
            ):
                depends.append((str(dependency.name), dependency.call, dependency.header_params[0]))
            else:
                return None
        if caller is None:
            return None
        lean = cls(
            dependant.call,
            dependant.request_param_name,
            caller,
            dependant.body_params[0],
            [(str(p.name), p) for p in dependant.header_params],
            depends,
        )
        if len(lean.wanted) != len(lean.headers) + len(lean.depends) + 1:
            return None  # one header read twice: FastAPI's handler
        lean.overrides = found.dependency_overrides_provider
        return lean

    def applies(self) -> bool:
        return not getattr(self.overrides, "dependency_overrides", None)

    async def values(self, request: Request) -> dict[str, Any] | None:
        """The endpoint's arguments as FastAPI's handler would give them, or ``None``: the
        request is not of the ordinary shape (FastAPI's handler answers it)."""
        found = dict(self.wanted)
        for name, value in request.scope["headers"]:
            if name in found:
                if found[name] is not None:
                    return None
                found[name] = value.decode("latin-1")
        kind = found[b"content-type"]
        if kind is None or kind.partition(";")[0].strip().lower() not in negotiation.BODIES:
            return None
        # Read first, as FastAPI's handler does: a body over the limit is refused alike
        # (``limits.BodyGuard``'s 413); any other failure to read it is FastAPI's to word.
        try:
            body = await request.body()
        except HTTPException:
            raise
        except Exception:  # noqa: BLE001
            return None
        if not body:
            return None
        try:
            posted = await request.json()
        except Exception:  # noqa: BLE001 - FastAPI's handler words the error
            return None
        if type(posted) is not dict:
            return None  # not a resource: FastAPI's handler and the route refuse it
        values: dict[str, Any] = {self.request: request}
        try:
            for name, call, field in self.depends:
                given = _valid(field, found[field.alias.lower().encode("latin-1")])
                values[name] = await call(given)
            for name, field in self.headers:
                values[name] = _valid(field, found[field.alias.lower().encode("latin-1")])
            values[self.body.name] = _valid(self.body, posted)
            # Last: a caller is made once per request (it reads the clock), so nothing after
            # it may hand the request on.
            values[self.caller] = await deps.caller(request)
        except Exception:  # noqa: BLE001 - FastAPI's handler raises it again, in its order
            return None
        return values

    async def __call__(self, values: dict[str, Any]) -> Response:
        response = await self.call(**values)
        if not isinstance(response, Response):
            raise TypeError(f"{self.call.__qualname__} answered {type(response)!r}")
        return response


class _Refused(Exception):
    """A value a FastAPI field does not accept."""


def _valid(field: Any, value: Any) -> Any:
    """``value`` as the FastAPI ``field`` validates it (its own call), else ``_Refused``."""
    found, errors = field.validate(value, {}, loc=("lean",))
    if errors:
        raise _Refused
    return found


def _plain_header(field: Any) -> bool:
    """A header parameter read as one optional string under an alias of its own."""
    info = field.field_info
    return (
        isinstance(info, fastapi_params.Header)
        and info.annotation == (str | None)
        and info.default is None
        and isinstance(field.alias, str)
        and "_" not in field.alias
        and info.validation_alias in (None, field.alias)
    )


def _more_than_headers(dependant: Any) -> bool:
    return bool(
        dependant.dependencies
        or dependant.path_params
        or dependant.query_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.request_param_name
        or dependant.background_tasks_param_name
        or dependant.response_param_name
        or dependant.security_scopes_param_name
        or dependant.websocket_param_name
    )


def dispatch_router(app: Any, routers: Sequence[APIRouter]) -> APIRouter:
    """The FHIR routes alone, for requests under ``/fhir/`` (``api.hot.HotRoutes``): one flat
    router over copies of ``routers``' routes, bound to ``app`` (its dependency overrides, as
    an included route's are). FastAPI 0.165 matches a path against an included router through
    its include context twice per request (once to find the router, once to find the route in
    it): ≈ 0.18 ms of a served search's CPU measured in-process (bench/RESULTS.md, issue #18,
    session 7); a flat router tries each route's pattern once, in the same order, so the same
    route answers. A request for one of the routes' fixed paths (a search, a create) is tried
    against only the routes whose pattern matches that path (``_FhirDispatch``)."""
    found = _FhirDispatch(dependency_overrides_provider=app)
    for source in routers:
        for route in source.routes:
            if not isinstance(route, APIRoute):
                raise TypeError(f"{route!r}: the FHIR routers hold API routes only")
            found.add_api_route(
                route.path,
                route.endpoint,
                response_model=route.response_model,
                status_code=route.status_code,
                tags=route.tags,
                dependencies=route.dependencies,
                summary=route.summary,
                description=route.description,
                response_description=route.response_description,
                responses=route.responses,
                deprecated=route.deprecated,
                methods=route.methods,
                operation_id=route.operation_id,
                response_model_include=route.response_model_include,
                response_model_exclude=route.response_model_exclude,
                response_model_by_alias=route.response_model_by_alias,
                response_model_exclude_unset=route.response_model_exclude_unset,
                response_model_exclude_defaults=route.response_model_exclude_defaults,
                response_model_exclude_none=route.response_model_exclude_none,
                include_in_schema=route.include_in_schema,
                response_class=route.response_class,
                name=route.name,
                route_class_override=type(route),
                callbacks=route.callbacks,
                openapi_extra=route.openapi_extra,
                generate_unique_id_function=route.generate_unique_id_function,
            )
    found.index()
    return found


class _FhirDispatch(APIRouter):
    """The flat FHIR router, with the routes that can answer each fixed path (a route without
    path parameters: ``/fhir/MedicationStatement``) kept apart, in their order: matching
    ``GET /fhir/MedicationStatement`` tried 15 patterns, ``POST /fhir/MedicationRequest`` 29
    (20-25 us a request in-process, ≈ 2 % of a served search's CPU; bench/RESULTS.md, issue #18,
    session 8). A route left out cannot match that path (its pattern does not), so the router
    over the few picks the same route as over all (the first full match, else the first
    partial: a 405), and never reaches the trailing-slash redirect."""

    def index(self) -> None:
        self._by_path: dict[str, APIRouter] = {}
        for route in self.routes:
            if not isinstance(route, APIRoute) or route.param_convertors:
                continue
            if route.path in self._by_path:
                continue
            few = APIRouter(redirect_slashes=self.redirect_slashes)
            few.routes = [r for r in self.routes if r.path_regex.match(route.path)]  # type: ignore[attr-defined]
            self._by_path[route.path] = few

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        few = (
            self._by_path.get(scope["path"])
            if scope["type"] == "http" and not scope.get("root_path")
            else None
        )
        if few is None:
            await super().__call__(scope, receive, send)
            return
        scope.setdefault("router", self)
        await few.app(scope, receive, send)


class FhirResponse(JSONResponse):
    media_type = fhir.FHIR_JSON


router = APIRouter(prefix="/fhir", tags=["fhir"], route_class=FhirRoute, include_in_schema=False)

READ_ACTIONS: dict[str, tuple[Action, ...]] = {
    "Patient": (Action.LIST_READ, Action.DISPENSING_READ, Action.CHART_READ),
    "MedicationStatement": (Action.LIST_READ,),
    "MedicationRequest": (Action.LIST_READ, Action.DISPENSING_READ),
    "MedicationDispense": (Action.LIST_READ, Action.DISPENSING_READ),
    "MedicationAdministration": (Action.CHART_READ,),
    "AllergyIntolerance": (Action.LIST_READ, Action.DISPENSING_READ),
    "DetectedIssue": (Action.LIST_READ, Action.DISPENSING_READ),
    "AuditEvent": (),
}
"""The policy action a read of each resource type is, per role: the first action the matrix
gives the caller's role (a patient reads their own record: ``own-record.read``)."""


def action_for(caller: Caller, resource: str) -> Action:
    if caller.principal.role is Role.PATIENT:
        return Action.OWN_RECORD
    candidates = READ_ACTIONS[resource]
    for action in candidates:
        if caller.principal.role in MATRIX[action]:
            return action
    return candidates[0] if candidates else Action.OWN_RECORD


def fhir_json(body: dict[str, Any], status: int = 200, **headers: str) -> FhirResponse:
    return FhirResponse(body, status_code=status, headers=headers or None)


MAX_IF_NONE_MATCH = 1000
"""The longest ``If-None-Match`` a conditional read takes (the JSON API's bound)."""


def _if_none_match(request: Request) -> str | None:
    """The request's ``If-None-Match`` (its lines joined, as one list), read here rather than
    by a FastAPI dependency so that the read keeps ``_LeanRead``; longer than
    ``MAX_IF_NONE_MATCH``: 400."""
    given = request.headers.getlist("if-none-match")
    if not given:
        return None
    joined = ", ".join(given)
    if len(joined) > MAX_IF_NONE_MATCH:
        raise FhirError(400, "invalid", f"If-None-Match: at most {MAX_IF_NONE_MATCH} characters")
    return joined


def versioned(body: dict[str, Any], if_none_match: str | None = None) -> Response:
    """A versioned resource with its ``ETag`` (``W/"<versionId>"``) and ``Last-Modified``; a
    conditional read (``If-None-Match`` naming that version) is 304 with those headers and no
    body: the client's copy is current."""
    version = (body.get("meta") or {}).get("versionId")
    headers = {}
    if version is not None:
        headers["ETag"] = f'W/"{version}"'
    updated = (body.get("meta") or {}).get("lastUpdated")
    if updated is not None:
        moment = datetime.fromisoformat(updated.replace("Z", "+00:00"))
        headers["Last-Modified"] = moment.strftime("%a, %d %b %Y %H:%M:%S GMT")
    if (
        if_none_match is not None
        and version is not None
        and deps.etag_matches(if_none_match, int(version))
    ):
        return Response(status_code=304, headers=headers)
    return fhir_json(body, **headers)


Key = tuple[str, UUID, int, UUID]
"""(resource type, the engine's id of what it renders, its version, the patient)."""


class Rendered:
    """The FHIR resources of append-only versions, rendered once per process: a list entry's
    or prescription's version never changes once stored, so its resource is kept under
    (resource type, id, version, patient) and a search of a patient's 20 statements renders
    none again (LRU, at most ``size``; the resources are never mutated after rendering).
    A search also keeps each resource's JSON (``rendered``), so that its Bundle is assembled
    from encoded resources: only the Bundle's own fields are encoded per request."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._found: OrderedDict[Key, dict[str, Any]] = OrderedDict()
        self._encoded: dict[Key, orjson.Fragment] = {}
        self._lock = Lock()

    def get(self, key: Key, render: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
                return found
        found = render()
        self._keep(key, found, None)
        return found

    def rendered(
        self, key: Key, render: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], orjson.Fragment]:
        """``get``, and the resource's JSON as the response renders it (encoded once)."""
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
                encoded = self._encoded.get(key)
                if encoded is not None:
                    return found, encoded
        if found is None:
            found = render()
        encoded = orjson.Fragment(encode(found))
        self._keep(key, found, encoded)
        return found, encoded

    def _keep(self, key: Key, found: dict[str, Any], encoded: orjson.Fragment | None) -> None:
        with self._lock:
            self._found[key] = found
            if encoded is not None:
                self._encoded[key] = encoded
            while len(self._found) > self.size:
                oldest, _ = self._found.popitem(last=False)
                self._encoded.pop(oldest, None)


RENDERED = Rendered(20_000)
"""≈ 1.5 KB a resource and as much again for its JSON: at most ≈ 60 MB per process."""


def encode(resource: dict[str, Any]) -> bytes:
    """A resource's JSON exactly as ``FhirResponse`` renders it."""
    return orjson.dumps(resource, option=orjson.OPT_NON_STR_KEYS)


def statement(version: Any, patient_id: UUID) -> dict[str, Any]:
    """The MedicationStatement of a list entry's version (``RENDERED``)."""
    return RENDERED.get(_statement_key(version, patient_id), _render_statement(version, patient_id))


def _statement_key(version: Any, patient_id: UUID) -> Key:
    return ("MedicationStatement", version.entry_id, version.version, patient_id)


def _render_statement(version: Any, patient_id: UUID) -> Callable[[], dict[str, Any]]:
    return lambda: fhir.medication_statement(version, patient_id)


def prescription(version: Any, patient_id: UUID) -> dict[str, Any]:
    """The MedicationRequest of a prescription's version (``RENDERED``)."""
    return RENDERED.get(
        _prescription_key(version, patient_id), _render_prescription(version, patient_id)
    )


def _prescription_key(version: Any, patient_id: UUID) -> Key:
    return ("MedicationRequest", version.prescription_id, version.version, patient_id)


def _render_prescription(version: Any, patient_id: UUID) -> Callable[[], dict[str, Any]]:
    return lambda: fhir.medication_request(version, patient_id)


def _uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise FhirError(404, "not-found", f"there is no {what} {value!r}") from None


def _version(value: str) -> int:
    if not value.isdigit() or len(value) > 9:
        raise FhirError(404, "not-found", f"there is no version {value!r}")
    return int(value)


def _gone(resource: str, resource_id: Any) -> FhirError:
    return FhirError(404, "not-found", f"there is no {resource}/{resource_id}")


# -- patient scoping ------------------------------------------------------------------------------


def read_patient(
    caller: Caller,
    patient_id: UUID,
    resource: str,
    read: Callable[[Connection], Any],
) -> Any:
    """``read`` of one patient's ``resource``s: scopes, then the policy (refusals audited),
    then the audited read."""
    scopes.require(caller, resource, "read", patient_id)
    caller.authorize(action_for(caller, resource), patient_id)
    return caller.read(patient_id, f"fhir-{resource}", read)


def own_patient_id(caller: Caller) -> UUID:
    found = caller.state.read_unaudited(
        lambda conn: queries.find_patient_id(conn, caller.principal.subject)
    )
    if found is None:
        raise FhirError(403, "forbidden", "no medication list is kept for this person")
    return found


def search_patient(caller: Caller, search: Search) -> UUID:
    """The patient a search is about: its ``patient``/``subject`` parameter, or for a
    patient's own app the patient themself."""
    given = search.one("patient") or search.one("subject") or search.one("entity")
    if given is None:
        if caller.principal.role is Role.PATIENT:
            return own_patient_id(caller)
        raise FhirError(
            400,
            "required",
            f"a {search.resource} search names the patient (patient=Patient/<id>)",
            expression=["patient"],
        )
    return _uuid(reference_id("patient", given), "Patient")


def patient_of(caller: Caller, kind: str, resource_id: UUID, resource: str) -> UUID:
    found = caller.state.read_unaudited(lambda conn: queries.patient_of(conn, kind, resource_id))
    if found is None:
        raise _gone(resource, resource_id)
    return found


# -- metadata -------------------------------------------------------------------------------------


@router.get("/metadata", summary="The CapabilityStatement: what this server supports")
def metadata(request: Request) -> FhirResponse:
    cors = bool(request.app.state.settings.fhir_cors_origins)
    return fhir_json(capability_statement(str(request.base_url).rstrip("/") + "/fhir", cors=cors))


# -- Patient --------------------------------------------------------------------------------------


@router.get("/Patient/{patient_id}", summary="Read a patient")
def read_patient_resource(caller: CallerDep, patient_id: str) -> FhirResponse:
    found = _uuid(patient_id, "Patient")
    state = read_patient(caller, found, "Patient", lambda conn: queries.patient_state(conn, found))
    return fhir_json(fhir.patient(state.patient))


@router.get("/Patient", summary="Search patients by identifier (system|value) or _id")
def search_patients(caller: CallerDep, request: Request) -> FhirResponse:
    search = parse(request, "Patient")
    wanted = search.one("identifier")
    ids = search.params.get("_id")
    if wanted is None and not ids:
        if caller.principal.role is not Role.PATIENT:
            raise FhirError(
                400,
                "required",
                "a Patient search names identifier=system|value or _id",
                expression=["identifier"],
            )
        ids = [str(own_patient_id(caller))]
    found: UUID | None
    if wanted is not None:
        system, value = token(wanted)
        if system not in (None, fhir.FNR, fhir.DNR) or not (value.isdigit() and len(value) == 11):
            return fhir_json(bundle(request, search, []))
        scopes.require(caller, "Patient", "search", None)
        if caller.principal.role is Role.PATIENT and value != caller.principal.subject:
            return fhir_json(bundle(request, search, []))
        found = caller.state.read_unaudited(lambda conn: queries.find_patient_id(conn, value))
        if caller.principal.role is not Role.PATIENT:
            # As the JSON API's lookup: authorised against the patient found (audited there).
            caller.authorize(Action.PATIENT_LOOKUP, found)
        if found is None:
            return fhir_json(bundle(request, search, []))
    else:
        found = _uuid(ids[-1].split(",")[0], "Patient")
    state = read_patient(caller, found, "Patient", lambda conn: queries.patient_state(conn, found))
    resource = fhir.patient(state.patient)
    system_wanted = token(wanted)[0] if wanted else None
    if system_wanted is not None and resource["identifier"][0]["system"] != system_wanted:
        return fhir_json(bundle(request, search, []))
    return fhir_json(bundle(request, search, [resource]))


# -- Practitioner, Organization, PractitionerRole: the caller, and whoever the caller's readable
# records name

DIRECTORY_CANDIDATES = 200
"""At most this many records naming a practitioner or organisation are weighed (the first the
caller may read is shown): medloop keeps no registry of either (``store.directory``)."""

DIRECTORY_SEARCH_KEYS = 20
"""At most this many identifiers are looked up by one Practitioner or Organization search."""


SOURCE_RESOURCE = {
    "list": "MedicationStatement",
    "prescription": "MedicationRequest",
    "dispense": "MedicationDispense",
    "administration": "MedicationAdministration",
}
"""The resource a record naming someone is read as (its read policy decides who sees it)."""


Named = HealthPersonnel | Organisation | Actor


def _own(caller: Caller, kind: str, key: str, organisation: str | None) -> list[Named]:
    principal = caller.principal
    if principal.role in (Role.PATIENT, Role.EXPORTER):
        return []
    if kind == "practitioner" and key == principal.subject:
        return [principal.actor.personnel]
    if kind == "organisation" and key == principal.organisation:
        return [principal.actor.organisation]
    if (
        kind == "role"
        and key == principal.subject
        and organisation in (None, principal.organisation)
    ):
        return [principal.actor]
    return []


def named(caller: Caller, kind: str, key: str, organisation: str | None = None) -> Named | None:
    """The practitioner (HPR number ``key``), organisation (id ``key``) or practitioner ``key``
    acting for ``organisation`` (``role``) as named in a record the caller may read (by the
    token's scopes and the role × organisation policy of the resource that record is read
    as), that read audited against its patient; the caller's own practitioner, organisation
    and role (SMART ``fhirUser``) without one. ``None``: nothing the caller may read names it
    (a 404, whether or not someone else's record does)."""
    found = named_all(caller, kind, key, organisation, first=True)
    return found[0] if found else None


def named_all(
    caller: Caller,
    kind: str,
    key: str,
    organisation: str | None = None,
    *,
    first: bool = False,
) -> list[Named]:
    """``named``, each distinct record of ``key`` (for a role without ``organisation``: each
    organisation the practitioner acts for) the caller may read, one audited read each;
    with ``first`` only the first."""
    own = _own(caller, kind, key, organisation)
    if own and (first or kind != "role"):
        return own
    principal = caller.principal
    if principal.role is Role.EXPORTER or not key.isascii() or len(key) > 64:
        return own
    if organisation is not None and (not organisation.isascii() or len(organisation) > 64):
        return own
    own_patient = None
    if principal.role is Role.PATIENT:
        own_patient = caller.state.read_unaudited(
            lambda conn: queries.find_patient_id(conn, principal.subject)
        )
        if own_patient is None:
            return []
    candidates = caller.state.read_unaudited(
        lambda conn: queries.namings(
            conn, kind, key, limit=DIRECTORY_CANDIDATES, organisation=organisation
        )
    )
    resource = DIRECTORY_RESOURCE[kind]
    found: dict[Any, Named] = {_directory_key(n): n for n in own}
    for naming in candidates:
        if _directory_key(naming.found) in found:
            continue
        if own_patient is not None and naming.patient_id != own_patient:
            continue
        source = SOURCE_RESOURCE[naming.source]
        refused = scopes.allows(
            principal.scopes,
            source,
            "read",
            naming.patient_id,
            own_patient=principal.is_patient,
            patient_context=principal.patient_context,
        )
        if refused is not None or not permits(
            caller.engine, principal, action_for(caller, source), naming.patient_id, at=caller.at
        ):
            continue
        caller.read(naming.patient_id, f"fhir-{resource}", lambda conn: None)
        found[_directory_key(naming.found)] = naming.found
        if first:
            break
    return list(found.values())


DIRECTORY_RESOURCE = {
    "practitioner": "Practitioner",
    "organisation": "Organization",
    "role": "PractitionerRole",
}


def _directory_key(found: Named) -> Any:
    """What tells two directory answers apart (a role: the practitioner's organisation)."""
    if isinstance(found, Actor):
        return (found.personnel.hpr_number, found.organisation.id)
    return found.hpr_number if isinstance(found, HealthPersonnel) else found.id


@router.get("/Practitioner/{practitioner_id}", summary="A practitioner (HPR) the caller may see")
def read_practitioner(caller: CallerDep, practitioner_id: str) -> FhirResponse:
    found = named(caller, "practitioner", practitioner_id)
    if not isinstance(found, HealthPersonnel):
        raise _gone("Practitioner", practitioner_id)
    return fhir_json(fhir.practitioner(found))


@router.get("/Practitioner", summary="Find a practitioner by identifier (HPR) or _id")
def search_practitioners(caller: CallerDep, request: Request) -> FhirResponse:
    search = parse(request, "Practitioner")
    keys = _directory_keys(search, "Practitioner", (fhir.HPR,))
    found = [named(caller, "practitioner", k) for k in keys if k.isdigit() and len(k) <= 9]
    resources = [fhir.practitioner(p) for p in found if isinstance(p, HealthPersonnel)]
    return fhir_json(bundle(request, search, resources))


@router.get("/Organization/{organization_id}", summary="An organisation the caller may see")
def read_organization(caller: CallerDep, organization_id: str) -> FhirResponse:
    found = named(caller, "organisation", organization_id)
    if not isinstance(found, Organisation):
        raise _gone("Organization", organization_id)
    return fhir_json(fhir.organization(found))


@router.get("/Organization", summary="Find an organisation by identifier (org number, HER-id)")
def search_organizations(caller: CallerDep, request: Request) -> FhirResponse:
    search = parse(request, "Organization")
    keys = _directory_keys(search, "Organization", (fhir.ORG_NUMBER, fhir.HER_ID))
    resources = []
    for key in keys:
        found = named(caller, "organisation", key)
        if isinstance(found, Organisation) and _organisation_matches(search, found):
            resources.append(fhir.organization(found))
    return fhir_json(bundle(request, search, resources))


@router.get(
    "/PractitionerRole/{role_id}",
    summary="A practitioner acting for an organisation (<HPR>-<organisation>) the caller may see",
)
def read_practitioner_role(caller: CallerDep, role_id: str) -> FhirResponse:
    parsed = fhir.parse_practitioner_role_id(role_id)
    found = None if parsed is None else named(caller, "role", parsed[0], parsed[1])
    if not isinstance(found, Actor) or fhir.practitioner_role_id(found) != role_id:
        raise _gone("PractitionerRole", role_id)
    return fhir_json(fhir.practitioner_role(found))


@router.get(
    "/PractitionerRole",
    summary="Find the roles of a practitioner (practitioner=, organization=) or by _id",
)
def search_practitioner_roles(caller: CallerDep, request: Request) -> FhirResponse:
    search = parse(request, "PractitionerRole")
    ids = [v for value in search.params.get("_id", []) for v in value.split(",") if v]
    given = search.one("practitioner")
    if not ids and given is None:
        raise FhirError(
            400,
            "required",
            "a PractitionerRole search names practitioner=Practitioner/<HPR number> or _id",
            expression=["practitioner"],
        )
    hpr = None if given is None else reference_id("practitioner", given, "Practitioner")
    organization = search.one("organization")
    org = (
        None if organization is None else reference_id("organization", organization, "Organization")
    )
    found: list[Named] = []
    for role_id in list(dict.fromkeys(ids))[:DIRECTORY_SEARCH_KEYS]:
        parsed = fhir.parse_practitioner_role_id(role_id)
        if parsed is not None:
            found += named_all(caller, "role", parsed[0], parsed[1], first=True)
    if hpr is not None and hpr.isdigit() and len(hpr) <= 9:
        found += named_all(caller, "role", hpr, org)
    # Every parameter given must match (FHIR's AND of parameters).
    resources: dict[str, dict[str, Any]] = {}
    for actor in found:
        if not isinstance(actor, Actor) or fhir.practitioner_role_id(actor) is None:
            continue
        resource = fhir.practitioner_role(actor)
        if (
            (not ids or resource["id"] in ids)
            and hpr in (None, actor.personnel.hpr_number)
            and org in (None, actor.organisation.id)
        ):
            resources.setdefault(resource["id"], resource)
    return fhir_json(bundle(request, search, list(resources.values())))


def _directory_keys(search: Search, resource: str, systems: tuple[str, ...]) -> list[str]:
    """The ids a Practitioner or Organization search asks for: ``identifier`` values of one of
    ``systems`` (or no system) and ``_id`` values, each once, at most ``_count`` of them."""
    identifiers = [v for value in search.params.get("identifier", []) for v in value.split(",")]
    ids = [v for value in search.params.get("_id", []) for v in value.split(",")]
    if not identifiers and not ids:
        raise FhirError(
            400,
            "required",
            f"a {resource} search names identifier=system|value or _id",
            expression=["identifier"],
        )
    keys: list[str] = []
    for value in identifiers:
        system, code = token(value)
        if system is None or system in systems:
            keys.append(code)
    keys.extend(ids)
    return list(dict.fromkeys(k for k in keys if k))[:DIRECTORY_SEARCH_KEYS]


def _organisation_matches(search: Search, found: Organisation) -> bool:
    """An ``identifier`` naming a system matches only the organisation's own system (an org
    number is not a HER-id)."""
    identifiers = [v for value in search.params.get("identifier", []) for v in value.split(",")]
    for value in identifiers:
        system, code = token(value)
        if code == found.id and system in (None, fhir.organisation_system(found.id)):
            return True
    return found.id in [v for value in search.params.get("_id", []) for v in value.split(",")]


# -- Medication -----------------------------------------------------------------------------------


@router.get("/Medication/{medication_id}", summary="A catalogue drug as resolved in a version")
def read_medication(caller: CallerDep, medication_id: str) -> FhirResponse:
    scopes.require(caller, "Medication", "read", None)
    caller.authorize(Action.CATALOGUE_READ)
    parsed = fhir.parse_medication_id(medication_id)
    if parsed is None:
        raise _gone("Medication", medication_id)
    version, fest_id = parsed

    def resolve(conn: Connection) -> CatalogueDrug | None:
        catalogue = catalogue_at(conn, version)
        return None if catalogue is None else _resolved(catalogue, fest_id=fest_id)

    drug = caller.state.read_unaudited(resolve)
    if drug is None:
        raise _gone("Medication", medication_id)
    return fhir_json(fhir.medication(drug))


def _resolved(catalogue: Catalogue, **named: str) -> CatalogueDrug | None:
    """The drug ``named`` (``fest_id=`` or ``varenr=``) resolved in ``catalogue``; a package
    named by its FEST id carries its varenr as when it is named by varenr."""
    try:
        resolved = catalogue.knowledge.resolve(**named)
    except (UnknownReference, ValueError):
        return None
    varenr = named.get("varenr")
    if varenr is None and resolved.reference_kind is ReferenceKind.PACKAGE:
        varenr = next(
            (
                package.varenr
                for packages in catalogue.packages_by_varenr.values()
                for package in packages
                if package.id == resolved.reference_id
            ),
            None,
        )
    elif resolved.reference_kind is not ReferenceKind.PACKAGE:
        varenr = None
    try:
        return CatalogueDrug(resolved=resolved, catalogue_version=catalogue.version, varenr=varenr)
    except ValueError:
        return None


@router.get("/Medication", summary="Find a drug of the catalogue in force by varenr or FEST id")
def search_medications(caller: CallerDep, request: Request) -> FhirResponse:
    scopes.require(caller, "Medication", "search", None)
    caller.authorize(Action.CATALOGUE_READ)
    search = parse(request, "Medication")
    codes = [v for value in search.params.get("code", []) for v in value.split(",")]
    ids = [v for value in search.params.get("_id", []) for v in value.split(",")]
    if not codes and not ids:
        raise FhirError(
            400,
            "required",
            "a Medication search names code=system|value or _id",
            expression=["code"],
        )

    def find(conn: Connection) -> list[CatalogueDrug]:
        catalogue = catalogue_in_force(conn)
        found: dict[str, CatalogueDrug] = {}
        for value in codes:
            system, code = token(value)
            drug = None
            if system in (None, fhir.NO_VARENR, fhir.FEST_VARENR) and code.isdigit():
                drug = _resolved(catalogue, varenr=code)
            if drug is None and system not in (fhir.NO_VARENR, fhir.FEST_VARENR):
                drug = _resolved(catalogue, fest_id=code)
            if drug is not None:
                found[fhir.medication_id(drug)] = drug
        for value in ids:
            parsed = fhir.parse_medication_id(value)
            at = None if parsed is None else catalogue_at(conn, parsed[0])
            drug = None if at is None or parsed is None else _resolved(at, fest_id=parsed[1])
            if drug is not None:
                found[fhir.medication_id(drug)] = drug
        return list(found.values())

    drugs = caller.state.read_unaudited(find)
    return fhir_json(bundle(request, search, [fhir.medication(d) for d in drugs]))


# -- MedicationStatement --------------------------------------------------------------------------


@dataclass(frozen=True)
class Versioned:
    """A versioned resource type of the engine, for its read, vread and ``_history`` routes:
    ``kind`` finds the patient a resource id belongs to (``queries.patient_of``), ``versions``
    loads the resource's versions (oldest first) from that patient's state, ``number`` is a
    version's number and ``render`` makes it the FHIR resource."""

    resource: str
    kind: str
    versions: Callable[[PatientState, UUID], Sequence[Any]]
    number: Callable[[Any], int]
    render: Callable[[Any, UUID], dict[str, Any]]

    def load(self, caller: Caller, resource_id: str) -> tuple[UUID, Sequence[Any]]:
        """The patient and the versions of ``resource_id`` (an audited, authorised read)."""
        found = _uuid(resource_id, self.resource)
        patient_id = patient_of(caller, self.kind, found, self.resource)
        versions = read_patient(
            caller,
            patient_id,
            self.resource,
            lambda conn: self.versions(queries.patient_state(conn, patient_id), found),
        )
        return patient_id, versions

    def read(self, caller: Caller, resource_id: str, if_none_match: str | None = None) -> Response:
        patient_id, versions = self.load(caller, resource_id)
        if not versions:
            raise _gone(self.resource, resource_id)
        return versioned(self.render(versions[-1], patient_id), if_none_match)

    def vread(
        self, caller: Caller, resource_id: str, version_id: str, if_none_match: str | None = None
    ) -> Response:
        _uuid(resource_id, self.resource)
        wanted = _version(version_id)
        patient_id, versions = self.load(caller, resource_id)
        match = [v for v in versions if self.number(v) == wanted]
        if not match:
            raise FhirError(
                404, "not-found", f"{self.resource}/{resource_id} has no version {wanted}"
            )
        return versioned(self.render(match[-1], patient_id), if_none_match)

    def history(self, caller: Caller, resource_id: str, request: Request) -> FhirResponse:
        patient_id, versions = self.load(caller, resource_id)
        return fhir_json(
            _history(request, [self.render(v, patient_id) for v in reversed(versions)])
        )


def _statement_versions(state: PatientState) -> dict[UUID, list[Any]]:
    versions: dict[UUID, list[Any]] = {}
    for change in state.changes:
        for version in change.entry_versions:
            versions.setdefault(version.entry_id, []).append(version)
    return versions


STATEMENTS = Versioned(
    "MedicationStatement",
    "entry",
    lambda state, found: _statement_versions(state).get(found, []),
    lambda version: version.version,
    statement,
)
REQUESTS = Versioned(
    "MedicationRequest",
    "prescription",
    lambda state, found: state.prescription_history.get(found, ()),
    lambda version: version.prescription.version,
    prescription,
)


@router.get("/MedicationStatement/{entry_id}", summary="The current version of a list entry")
def read_statement(caller: CallerDep, entry_id: str, request: Request) -> Response:
    return STATEMENTS.read(caller, entry_id, _if_none_match(request))


@router.get(
    "/MedicationStatement/{entry_id}/_history/{version_id}",
    summary="One version of a list entry (vread)",
)
def vread_statement(
    caller: CallerDep, entry_id: str, version_id: str, request: Request
) -> Response:
    return STATEMENTS.vread(caller, entry_id, version_id, _if_none_match(request))


@router.get(
    "/MedicationStatement/{entry_id}/_history",
    summary="Every version of a list entry, newest first",
)
def history_statement(caller: CallerDep, entry_id: str, request: Request) -> FhirResponse:
    return STATEMENTS.history(caller, entry_id, request)


def _history(request: Request, found: list[dict[str, Any]]) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/") + "/fhir"
    return {
        "resourceType": "Bundle",
        "type": "history",
        "total": len(found),
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "request": {
                    "method": "POST" if r["meta"]["versionId"] == "1" else "PUT",
                    "url": f"{r['resourceType']}/{r['id']}",
                },
                "response": {
                    "status": "201" if r["meta"]["versionId"] == "1" else "200",
                    "etag": f'W/"{r["meta"]["versionId"]}"',
                    "lastModified": r["meta"]["lastUpdated"],
                },
            }
            for r in found
        ],
    }


def _medication_codes(resource: dict[str, Any], drugs: dict[str, CatalogueDrug]) -> list[dict]:
    target = (resource.get("medicationReference") or {}).get("reference", "")
    drug = drugs.get(target.removeprefix("Medication/"))
    if drug is not None:
        return fhir.drug_codings(drug)
    return list((resource.get("medicationCodeableConcept") or {}).get("coding", []))


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _date_rule(points: Callable[[dict[str, Any]], tuple[datetime, datetime | None] | None]):
    def rule(resource: dict[str, Any], value: str, modifier: str) -> bool:
        found = points(resource)
        return found is not None and date_param("date", value).matches(*found)

    return rule


def _status_rule(resource: dict[str, Any], value: str, modifier: str) -> bool:
    matched = resource.get("status") in value.split(",")
    return not matched if modifier == "not" else matched


def _id_rule(resource: dict[str, Any], value: str, modifier: str) -> bool:
    return resource["id"] in value.split(",")


def _code_rule(drugs: dict[str, CatalogueDrug]):
    def rule(resource: dict[str, Any], value: str, modifier: str) -> bool:
        return codings_match([value], _medication_codes(resource, drugs), modifier)

    return rule


def _last_updated(resource: dict[str, Any]) -> tuple[datetime, None] | None:
    updated = (resource.get("meta") or {}).get("lastUpdated")
    return None if updated is None else at_instant(_instant(updated))


def _included(drugs: dict[str, CatalogueDrug]):
    def include(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [fhir.medication(drugs[m]) for m in fhir.referenced_medications(page) if m in drugs]

    return include


def _drugs_of(*references: Any) -> dict[str, CatalogueDrug]:
    return {
        fhir.medication_id(drug): drug for drug in references if isinstance(drug, CatalogueDrug)
    }


class Encoded:
    """One search's resources with their JSON kept in ``RENDERED`` (``fragments``: by the
    identity of each resource dict this search holds, for ``search.bundle``), and the
    Medications its resources name, each rendered once per version of what names it."""

    def __init__(self) -> None:
        self.fragments: dict[int, orjson.Fragment] = {}
        self.drugs: dict[str, CatalogueDrug] = {}
        self._sources: dict[str, Key] = {}

    def resource(self, key: Key, render: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        found, encoded = RENDERED.rendered(key, render)
        self.fragments[id(found)] = encoded
        return found

    def names(self, key: Key, drug: Any) -> None:
        """``drug`` is named by the version ``key`` renders (for ``code`` and ``_include``;
        the last to name a Medication id renders it, as ``_drugs_of`` keeps the last)."""
        if isinstance(drug, CatalogueDrug):
            found = fhir.medication_id(drug)
            self.drugs[found] = drug
            self._sources[found] = key

    def included(self, page: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            self.resource(self._medication_key(m), _render_medication(self.drugs[m]))
            for m in fhir.referenced_medications(page)
            if m in self.drugs
        ]

    def _medication_key(self, medication_id: str) -> Key:
        kind, source, version, patient = self._sources[medication_id]
        return (f"Medication of {kind}", source, version, patient)


def _render_medication(drug: CatalogueDrug) -> Callable[[], dict[str, Any]]:
    return lambda: fhir.medication(drug)


def _validate_dates(search: Search, names: tuple[str, ...]) -> None:
    for name in names:
        for value in search.params.get(name, []):
            date_param(name, value)


@router.get("/MedicationStatement", summary="Search a patient's list entries")
def search_statements(caller: CallerDep, request: Request) -> Response:
    return _search_state(caller, request, "MedicationStatement", _statements_found)


def _statements_found(state: PatientState, patient_id: UUID, search: Search) -> Found:
    versions = _statement_versions(state)
    entries = state.medication_list.entries
    encoded = Encoded()
    found = []
    for e in entries:
        version = versions[e.id][-1]
        key = _statement_key(version, patient_id)
        found.append(encoded.resource(key, _render_statement(version, patient_id)))
        encoded.names(key, e.drug)
    by_id = {str(e.id): e for e in entries}

    def effective(resource: dict[str, Any]) -> tuple[datetime, datetime]:
        return day_range(*fhir.effective_range(by_id[resource["id"]]))

    matches = filtered(
        found,
        search,
        {
            "_id": _id_rule,
            "status": _status_rule,
            "code": _code_rule(encoded.drugs),
            "effective": _date_rule(effective),
            "date": _date_rule(effective),
            "_lastUpdated": _date_rule(_last_updated),
        },
    )
    return matches, encoded


Found = tuple[list[dict[str, Any]], Encoded]
"""A search's matches over a patient's state, and their encoded resources and Medications."""

DATE_PARAMETERS = {
    "MedicationStatement": ("effective", "date", "_lastUpdated"),
    "MedicationRequest": ("authoredon", "date", "_lastUpdated"),
}


def _search_state(
    caller: Caller,
    request: Request,
    resource: str,
    find: Callable[[PatientState, UUID, Search], Found],
) -> Response:
    """A search of what the patient's state holds (``find``: the matches), as its encoded
    searchset Bundle: rendered once per state (the patient's revision) and request (its URL;
    the parameters ignored under lenient handling), kept with the cached state
    (``queries.state_memo``, one Bundle per resource type), so a repeated search of an
    unchanged patient encodes nothing again; each search is still an audited read."""
    search = parse(request, resource)
    _validate_dates(search, DATE_PARAMETERS[resource])
    patient_id = search_patient(caller, search)
    asked = _asked(request, search)

    def read(conn: Connection) -> bytes:
        state = queries.patient_state(conn, patient_id)
        memo = queries.state_memo(conn, patient_id)
        slot = (_SEARCHED, resource)
        found = memo.get(slot)
        if found is None or found[0] != asked:
            matches, encoded = find(state, patient_id, search)
            body = bundle(request, search, matches, encoded.included, encoded.fragments)
            found = memo[slot] = (asked, encode(body))
        return found[1]

    return Response(read_patient(caller, patient_id, resource, read), media_type=fhir.FHIR_JSON)


_SEARCHED = "fhir.router.searched"


def _asked(request: Request, search: Search) -> tuple[Any, ...]:
    """What a search's Bundle is made of besides the patient's state: the parts of the scope
    its URL and base URL are made of (Starlette's ``URL``: scheme, server, root path, path,
    query string, the first ``Host``), and the parameters ignored under lenient handling.
    Read as they stand: building the URL itself per request was ≈ 1.5 % of a served search's
    CPU (bench/RESULTS.md, issue #18, session 8); it is built only for a Bundle made anew."""
    scope = request.scope
    host = next((v for k, v in scope["headers"] if k == b"host"), None)
    return (
        scope.get("scheme", "http"),
        scope.get("server"),
        scope.get("app_root_path"),
        scope.get("root_path", ""),
        scope["path"],
        scope.get("query_string", b""),
        host,
        search.ignored,
    )


# -- MedicationRequest ----------------------------------------------------------------------------


@router.get("/MedicationRequest/{prescription_id}", summary="The current version of a prescription")
def read_request(caller: CallerDep, prescription_id: str, request: Request) -> Response:
    return REQUESTS.read(caller, prescription_id, _if_none_match(request))


@router.get(
    "/MedicationRequest/{prescription_id}/_history/{version_id}",
    summary="One version of a prescription (vread)",
)
def vread_request(
    caller: CallerDep, prescription_id: str, version_id: str, request: Request
) -> Response:
    return REQUESTS.vread(caller, prescription_id, version_id, _if_none_match(request))


@router.get(
    "/MedicationRequest/{prescription_id}/_history",
    summary="Every version of a prescription, newest first",
)
def history_request(caller: CallerDep, prescription_id: str, request: Request) -> FhirResponse:
    return REQUESTS.history(caller, prescription_id, request)


@router.get("/MedicationRequest", summary="Search a patient's prescriptions")
def search_requests(caller: CallerDep, request: Request) -> Response:
    return _search_state(caller, request, "MedicationRequest", _requests_found)


def _requests_found(state: PatientState, patient_id: UUID, search: Search) -> Found:
    latest = [versions[-1] for versions in state.prescription_history.values()]
    latest.sort(key=lambda v: (v.prescription.issued, str(v.prescription_id)))
    encoded = Encoded()
    found = []
    for v in latest:
        key = _prescription_key(v, patient_id)
        found.append(encoded.resource(key, _render_prescription(v, patient_id)))
        encoded.names(key, v.prescription.drug)
    authored = _date_rule(
        lambda r: day_range(*(2 * [datetime.fromisoformat(r["authoredOn"]).date()]))
    )
    matches = filtered(
        found,
        search,
        {
            "_id": _id_rule,
            "status": _status_rule,
            "code": _code_rule(encoded.drugs),
            "authoredon": authored,
            "date": authored,
            "_lastUpdated": _date_rule(_last_updated),
        },
    )
    return matches, encoded


# -- MedicationDispense ---------------------------------------------------------------------------


def _dispenses(state: PatientState, patient_id: UUID) -> list[dict[str, Any]]:
    return [
        fhir.medication_dispense(d, patient_id, state.prescriptions.get(d.prescription_id))
        for d in state.dispenses
    ]


@router.get("/MedicationDispense/{dispense_id}", summary="A dispense")
def read_dispense(caller: CallerDep, dispense_id: str) -> FhirResponse:
    found = _uuid(dispense_id, "MedicationDispense")
    patient_id = patient_of(caller, "dispense", found, "MedicationDispense")
    state = read_patient(
        caller,
        patient_id,
        "MedicationDispense",
        lambda conn: queries.patient_state(conn, patient_id),
    )
    match = [r for r in _dispenses(state, patient_id) if r["id"] == str(found)]
    if not match:
        raise _gone("MedicationDispense", dispense_id)
    return fhir_json(match[0])


@router.get("/MedicationDispense", summary="Search a patient's dispenses")
def search_dispenses(caller: CallerDep, request: Request) -> FhirResponse:
    search = parse(request, "MedicationDispense")
    _validate_dates(search, ("whenhandedover",))
    patient_id = search_patient(caller, search)
    state = read_patient(
        caller,
        patient_id,
        "MedicationDispense",
        lambda conn: queries.patient_state(conn, patient_id),
    )
    found = _dispenses(state, patient_id)

    def prescription_rule(resource: dict[str, Any], value: str, modifier: str) -> bool:
        wanted = reference_id("prescription", value, "MedicationRequest")
        return resource["authorizingPrescription"][0]["reference"].endswith(wanted)

    matches = filtered(
        found,
        search,
        {
            "_id": _id_rule,
            "status": _status_rule,
            "code": lambda r, v, m: codings_match([v], r["medicationCodeableConcept"]["coding"], m),
            "whenhandedover": _date_rule(
                lambda r: day_range(*(2 * [datetime.fromisoformat(r["whenHandedOver"]).date()]))
            ),
            "prescription": prescription_rule,
        },
    )
    return fhir_json(bundle(request, search, matches))


# -- MedicationAdministration ---------------------------------------------------------------------


def administrations(
    caller: Caller, patient_id: UUID, *, scoped: bool = True
) -> tuple[list[dict[str, Any]], dict[str, CatalogueDrug]]:
    """The patient's chartings as MedicationAdministrations (scopes checked unless
    ``scoped`` is false: the answer to a create), with the drugs they reference."""
    if scoped:
        scopes.require(caller, "MedicationAdministration", "read", patient_id)
    action = action_for(caller, "MedicationAdministration")
    since, until = None, None
    if action is Action.OWN_RECORD:
        caller.authorize(action, patient_id)
    else:
        # As the JSON API: a nurse sees the chartings of her organisation's current admission.
        since, until = read_window(
            caller.engine,
            caller.principal,
            action,
            patient_id,
            None,
            None,
            at=caller.at,
            request_id=caller.request_id,
        )

    def read(conn: Connection) -> tuple[list[Any], PatientState]:
        charted = administration.administration_history(conn, patient_id, since, until)
        return charted, queries.patient_state(conn, patient_id)

    charted, state = caller.read(patient_id, "fhir-MedicationAdministration", read)
    entries = {e.id: e for e in state.medication_list.entries}
    found = [
        fhir.medication_administration(c, patient_id, entries.get(c.administration.entry_id))
        for c in charted
    ]
    return found, _drugs_of(*(e.drug for e in entries.values()))


@router.get("/MedicationAdministration/{administration_id}", summary="A charted dose")
def read_administration(caller: CallerDep, administration_id: str) -> FhirResponse:
    found = _uuid(administration_id, "MedicationAdministration")
    patient_id = caller.state.read_unaudited(
        lambda conn: administration.patient_of_administration(conn, found)
    )
    if patient_id is None:
        raise _gone("MedicationAdministration", administration_id)
    resources, _ = administrations(caller, patient_id)
    match = [r for r in resources if r["id"] == str(found)]
    if not match:
        raise _gone("MedicationAdministration", administration_id)
    return fhir_json(match[0])


@router.get("/MedicationAdministration", summary="Search a patient's charted doses")
def search_administrations(caller: CallerDep, request: Request) -> FhirResponse:
    search = parse(request, "MedicationAdministration")
    _validate_dates(search, ("effective-time",))
    patient_id = search_patient(caller, search)
    found, drugs = administrations(caller, patient_id)
    matches = filtered(
        found,
        search,
        {
            "_id": _id_rule,
            "status": _status_rule,
            "effective-time": _date_rule(lambda r: at_instant(_instant(r["effectiveDateTime"]))),
            "code": _code_rule(drugs),
        },
    )
    return fhir_json(bundle(request, search, matches, _included(drugs)))


# -- AllergyIntolerance, DetectedIssue, AuditEvent ------------------------------------------------


@router.get("/AllergyIntolerance", summary="A patient's allergies and CAVE")
def search_allergies(caller: CallerDep, request: Request) -> FhirResponse:
    search = parse(request, "AllergyIntolerance")
    patient_id = search_patient(caller, search)
    state = read_patient(
        caller,
        patient_id,
        "AllergyIntolerance",
        lambda conn: queries.patient_state(conn, patient_id),
    )
    found = [
        fhir.allergy_intolerance(state.patient, i, a)
        for i, a in enumerate(state.patient.allergies, start=1)
    ]
    return fhir_json(bundle(request, search, found))


def _split_local(value: str, resource: str) -> tuple[UUID, int]:
    head, _, tail = value.rpartition("-")
    if not tail.isdigit() or len(tail) > 6:
        raise _gone(resource, value)
    return _uuid(head, resource), int(tail)


@router.get("/AllergyIntolerance/{allergy_id}", summary="One allergy or CAVE entry")
def read_allergy(caller: CallerDep, allergy_id: str) -> FhirResponse:
    patient_id, index = _split_local(allergy_id, "AllergyIntolerance")
    state = read_patient(
        caller,
        patient_id,
        "AllergyIntolerance",
        lambda conn: queries.patient_state(conn, patient_id),
    )
    allergies = state.patient.allergies
    if not 1 <= index <= len(allergies):
        raise _gone("AllergyIntolerance", allergy_id)
    return fhir_json(fhir.allergy_intolerance(state.patient, index, allergies[index - 1]))


@router.get("/DetectedIssue", summary="A patient's stored alerts, with overrides as mitigation")
def search_issues(caller: CallerDep, request: Request) -> FhirResponse:
    search = parse(request, "DetectedIssue")
    _validate_dates(search, ("identified",))
    patient_id = search_patient(caller, search)
    on_record = read_patient(
        caller, patient_id, "DetectedIssue", lambda conn: queries.alerts_on_record(conn, patient_id)
    )
    found = [fhir.detected_issue(patient_id, i, a) for i, a in enumerate(on_record, start=1)]
    matches = filtered(
        found,
        search,
        {"identified": _date_rule(lambda r: at_instant(_instant(r["identifiedDateTime"])))},
    )
    return fhir_json(bundle(request, search, matches))


@router.get("/DetectedIssue/{issue_id}", summary="One stored alert")
def read_issue(caller: CallerDep, issue_id: str) -> FhirResponse:
    patient_id, index = _split_local(issue_id, "DetectedIssue")
    on_record = read_patient(
        caller, patient_id, "DetectedIssue", lambda conn: queries.alerts_on_record(conn, patient_id)
    )
    if not 1 <= index <= len(on_record):
        raise _gone("DetectedIssue", issue_id)
    return fhir_json(fhir.detected_issue(patient_id, index, on_record[index - 1]))


@router.get("/AuditEvent", summary="The access log of the patient's own record (patients only)")
def search_audit(caller: CallerDep, request: Request) -> FhirResponse:
    search = parse(request, "AuditEvent")
    _validate_dates(search, ("date",))
    patient_id = search_patient(caller, search)
    scopes.require(caller, "AuditEvent", "search", patient_id)
    caller.authorize(Action.OWN_RECORD, patient_id)
    page = caller.read(
        patient_id,
        "fhir-AuditEvent",
        lambda conn: queries.access_log(
            conn, caller.principal.subject, limit=queries.ACCESS_LOG_PAGE, patient_id=patient_id
        ),
    )
    found = [fhir.audit_event(e, patient_id) for e in page.events]
    matches = filtered(
        found, search, {"date": _date_rule(lambda r: at_instant(_instant(r["recorded"])))}
    )
    return fhir_json(bundle(request, search, matches))


def now_utc() -> datetime:
    return datetime.now(UTC)


# -- SMART discovery ------------------------------------------------------------------------------

well_known = APIRouter(tags=["fhir"], route_class=FhirRoute, include_in_schema=False)


@well_known.get(
    "/.well-known/smart-configuration",
    summary="SMART App Launch discovery: the issuer, endpoints, scopes and capabilities",
)
def smart_configuration(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    body: dict[str, Any] = {
        "issuer": settings.issuer,
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "ES384", "RS384"],
        "scopes_supported": list(scopes.SUPPORTED),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "launch-standalone",
            "client-confidential-asymmetric",
            "context-standalone-patient",
            "permission-patient",
            "permission-user",
            "permission-v1",
            "permission-v2",
        ],
    }
    if settings.smart_authorize_url:
        body["authorization_endpoint"] = settings.smart_authorize_url
    if settings.smart_token_url:
        body["token_endpoint"] = settings.smart_token_url
    return JSONResponse(body)
