"""Dependencies the routes share, as ``Annotated`` aliases so signatures read like sentences:
``CallerDep`` (the verified caller, the request id, the clock), ``IfMatch`` (the list version
a write is based on: 428 without it), ``IdempotencyKey``; and ``render`` for a command's
result (the same status, body and ETag for a replay as for the first answer).

The dependencies are coroutines that never block: FastAPI runs a plain function dependency in
the thread pool, a hand-off per dependency per request; only the route itself (which talks to
the database) runs there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import Depends, Header, Request, Response
from fastapi.security import HTTPBearer
from pydantic import AfterValidator, AwareDatetime
from sqlalchemy import Connection, Engine

from interactions.values import MAX_TEXT as _MAX_TEXT
from medloop.api.auth import Principal, TokenVerifier, Unauthenticated
from medloop.api.limits import PRINCIPAL
from medloop.api.policy import Action, accessor, authorize, own_record
from medloop.api.problems import BadPrecondition, Forbidden, PreconditionRequired
from medloop.api.responses import JSONResponse
from medloop.domain._model import constructed
from medloop.domain.oslo import local_date
from medloop.domain.patient import PatientNotFound
from medloop.domain.personnel import Actor
from medloop.loop.runner import Call, CommandResult
from medloop.store.access import audited_many, read_audited, read_own_audited
from medloop.store.db import reader
from medloop.store.replicas import ReadRouter

Read = TypeVar("Read")
_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,9})"?\s*$')


@dataclass(frozen=True)
class ApiState:
    """What the app holds: the database engine, the token verifier and the clock."""

    engine: Engine
    verifier: TokenVerifier
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: Where reads that may be a moment behind go (``medloop.store.replicas``); the primary
    #: when ``None``.
    reads: ReadRouter | None = None

    def read_unaudited(self, work: Callable[[Connection], Read]) -> Read:
        """``work`` on the primary, outside a transaction (``store.db.reader``: autocommit,
        never a ``ROLLBACK``): for reads without patient data (a lookup, a ward's owner)."""
        with reader(self.engine).connect() as conn:
            return work(conn)

    def read_behind(self, work: Callable[[Connection], Read]) -> Read:
        """``work`` on a caught-up replica when there is one, else on the primary."""
        if self.reads is None:
            return self.read_unaudited(work)
        return self.reads.read(work)


@dataclass(frozen=True)
class Caller:
    """One request's caller: who (verified), the request id, the moment it is handled."""

    state: ApiState
    principal: Principal
    request_id: str
    at: datetime

    @property
    def day(self) -> date:
        """The request's "today": the Oslo calendar day of ``at``."""
        return local_date(self.at)

    @property
    def engine(self) -> Engine:
        return self.state.engine

    def authorize(self, action: Action, patient_id: UUID | None = None) -> None:
        authorize(
            self.engine,
            self.principal,
            action,
            patient_id,
            at=self.at,
            request_id=self.request_id,
        )

    def command_call(self, body: Any, key: str | None) -> Call:
        """The call of a write whose body carries a ``reason`` and ``overrides``."""
        return self.call(reason=body.reason, overrides=body.overrides, idempotency_key=key)

    def call(
        self,
        *,
        reason: str | None = None,
        overrides: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        override_every: str | None = None,
    ) -> Call:
        actor = actor_of(self.principal)
        at = self.at
        request_id = self.request_id
        if (
            _CALL_BUILT
            and type(actor) is Actor
            and type(at) is datetime
            and at.tzinfo is UTC
            and (overrides is None or (type(overrides) is dict and not overrides))
            and _kept(reason)
            and _kept(override_every)
            and _kept(idempotency_key)
            and _kept(request_id)
            and _in_range(at)
        ):
            # Every part is what validating it gives (``_call_built``): the same Call, without
            # BaseModel.__init__ validating each again (issue #20).
            return constructed(
                Call,
                actor=actor,
                at=at,
                reason=reason,
                overrides={},
                override_every=override_every,
                idempotency_key=idempotency_key,
                request_id=request_id,
            )
        return Call(
            actor=actor,
            at=at,
            reason=reason,
            overrides=overrides or {},
            override_every=override_every,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    def read(
        self,
        patient_id: UUID,
        what: str,
        read: Callable[[Connection], Read],
        reason: str | None = None,
    ) -> Read:
        """``read`` with the audit record of this access, in one transaction."""
        return read_audited(
            self.engine,
            accessor(self.principal, self.request_id),
            patient_id,
            what,
            read,
            reason=reason,
        )

    def read_many(self, action: str, read: Callable[[Connection], tuple[Read, list[UUID]]]) -> Read:
        """``read(conn) -> (result, patient ids)`` with one audit record of ``action`` per
        patient read, in one transaction (a ward chart)."""
        return audited_many(self.engine, accessor(self.principal, self.request_id), action, read)

    def read_own(self, what: str, read: Callable[[Connection, UUID], Read]) -> Read:
        """``read(conn, patient_id)`` of the caller's own record (patients), audited, in one
        transaction; ``Forbidden`` for other roles and when no list is kept for them."""
        national_id = own_record(self.principal)
        try:
            return read_own_audited(
                self.engine, accessor(self.principal, self.request_id), national_id, what, read
            )
        except PatientNotFound:
            raise Forbidden("no medication list is kept for this person") from None


def actor_of(principal: Principal) -> Actor:
    """``principal.actor``, made once per principal object: the token verifier gives a client's
    requests one ``Principal`` (its memory of verified tokens), and every command of the client
    is then by one frozen ``Actor`` — validated once instead of three models per request, and
    the one object whose JSON ``domain.versioning.dumped`` keeps and whose field changes
    (author, prescriber, instituted-by) ``versioning`` shares, instead of a new actor per
    request dumped again and kept in those memories until they are cleared (issue #20). The
    principal is kept beside its id, so the id cannot name another object meanwhile; at most
    ``_ACTORS_KEPT`` are kept."""
    known = _ACTORS.get(id(principal))
    if known is not None and known[0] is principal:
        return known[1]
    actor = principal.actor
    if len(_ACTORS) >= _ACTORS_KEPT:
        _ACTORS.clear()
    _ACTORS[id(principal)] = (principal, actor)
    return actor


_ACTORS: dict[int, tuple[Principal, Actor]] = {}
_ACTORS_KEPT = 4_096


def _moment_check(cls: type[Any]) -> Callable[[datetime], datetime] | None:
    """The one function ``cls.at``'s type runs after its aware-datetime check (``Moment``'s
    year range), or ``None`` when the field is not of that shape."""
    field = cls.model_fields.get("at")
    if field is None or field.annotation is not AwareDatetime:
        return None
    checks = [m for m in field.metadata if not isinstance(m, AfterValidator)]
    after = [m.func for m in field.metadata if isinstance(m, AfterValidator)]
    return after[0] if not checks and len(after) == 1 else None


def _call_built(cls: type[Any]) -> bool:
    """Whether ``Caller.call`` may build ``cls`` (``Call``) from parts it has checked: a frozen
    model of exactly these fields — an ``Actor`` (an instance is kept as given: instances are
    not revalidated), a ``Moment``, an overrides dict of strings and four optional plain
    strings — with no validators or private attributes of its own, so that validating those
    parts gives them back as they are (``tests/api/test_api_command_call.py`` compares the
    built calls with validated ones)."""
    fields = cls.model_fields
    config = cls.model_config
    decorators = cls.__pydantic_decorators__
    optional_text = str | None
    return (
        tuple(fields)
        == (
            "actor",
            "at",
            "reason",
            "overrides",
            "override_every",
            "idempotency_key",
            "request_id",
        )
        and fields["actor"].annotation is Actor
        and _moment_check(cls) is not None
        and fields["overrides"].annotation == dict[str, str]
        and all(
            fields[name].annotation == optional_text and not fields[name].metadata
            for name in ("reason", "override_every", "idempotency_key", "request_id")
        )
        and not fields["overrides"].metadata
        and config.get("revalidate_instances", "never") == "never"
        and config.get("str_max_length") == _MAX_TEXT
        and not config.get("str_strip_whitespace")
        and not config.get("str_to_lower")
        and not config.get("str_to_upper")
        and not config.get("str_min_length")
        and not cls.__private_attributes__
        and not (
            decorators.validators
            or decorators.field_validators
            or decorators.root_validators
            or decorators.model_validators
        )
    )


def _kept(text: str | None) -> bool:
    """Whether validating ``text`` as a plain string of ``Call`` gives it back as it is: ``None``,
    or an ASCII ``str`` (no lone surrogate) within the model's string bound."""
    return text is None or (type(text) is str and text.isascii() and len(text) <= _MAX_TEXT)


def _in_range(at: datetime) -> bool:
    """Whether ``Call.at``'s own check (``Moment``'s year range) gives ``at`` back as it is."""
    try:
        return _MOMENT(at) is at
    except ValueError:
        return False


_CALL_BUILT = _call_built(Call)
_MOMENT: Callable[[datetime], Any] = _moment_check(Call) or (lambda at: None)


def api_state(request: Request) -> ApiState:
    """``request.app.state.api``, by ``State``'s item access: its ``__getattr__`` is reached
    only after the attribute was looked up and missed (~2 k instructions, issue #20)."""
    try:
        return request.app.state["api"]
    except KeyError:
        return request.app.state.api  # the same AttributeError as ever


class BearerCaller(HTTPBearer):
    """The bearer scheme (as OpenAPI documents it) that also verifies the token and answers
    with the whole ``Caller``: one dependency per request for the token, the request id and
    the clock."""

    async def __call__(self, request: Request) -> Caller:  # type: ignore[override]
        state = api_state(request)
        # A request with a body was authenticated before it was read (medloop.api.limits).
        principal = request.scope.get("state", {}).get(PRINCIPAL)
        if principal is None:
            scheme, _, token = (_authorization(request) or "").partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("a bearer token is required")
            principal = state.verifier.verify(token)
        try:
            # request.state.request_id: request.state is a State over this dict
            request_id = request.scope["state"]["request_id"]
        except KeyError:
            request_id = request.state.request_id  # the same AttributeError as ever
        return Caller(state, principal, request_id, state.clock())


def _authorization(request: Request) -> str | None:
    """``request.headers.get("authorization")``: Starlette's ``Headers`` over the scope's list
    answers the first pair named ``b"authorization"`` (the server gives names in lower case),
    its value decoded as latin-1. Read from that list directly when it is one: no ``Headers``
    (nor its copy of the list, nor ``Mapping.get``'s frames) made once a list read (issue
    #20); anything else goes through ``request.headers`` as before."""
    headers = request.scope.get("headers")
    if type(headers) is not list:
        return request.headers.get("authorization")
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


caller = BearerCaller(auto_error=False, description="A JWT from the configured issuer")
CallerDep = Annotated[Caller, Depends(caller)]


async def if_match(
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description='The list version the write is based on, as the ETag gave it ("7")',
        ),
    ] = None,
) -> int:
    if if_match is None:
        raise PreconditionRequired(
            "this write needs If-Match with the list version it is based on (the list's ETag)"
        )
    found = _ETAG.match(if_match)
    if found is None:
        raise BadPrecondition(f'If-Match must be a list version such as "7", not {if_match!r}')
    return int(found.group(1))


IfMatch = Annotated[int, Depends(if_match)]


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="A retry with the same key returns the first response",
            max_length=200,
        ),
    ] = None,
) -> str | None:
    return key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


async def if_none_match(
    if_none_match: Annotated[
        str | None,
        Header(
            alias="If-None-Match",
            description='The ETag of the copy the client holds ("7"): 304 while it is current',
            max_length=1000,
        ),
    ] = None,
) -> str | None:
    return if_none_match


IfNoneMatch = Annotated[str | None, Depends(if_none_match)]


def etag(version: int) -> str:
    return f'"{version}"'


def render(
    result: CommandResult, status: int = 200, *, location: str | None = None
) -> JSONResponse:
    """A command's answer: its stored response as the body, the list version as the ETag, and
    for a 201 where the new thing can be read (``Location``). A replay (same
    Idempotency-Key) answers exactly like the first call, plus ``Idempotent-Replayed: true``."""
    # ``JSONResponse(result.response, status_code=status, headers={"ETag": …, "Location": …,
    # "Idempotent-Replayed": "true"})``, its raw headers written directly (the same bytes).
    headers = [(b"etag", etag(result.list_version).encode("latin-1"))]
    if location is not None:
        headers.append((b"location", location.encode("latin-1")))
    if result.replayed:
        headers.append(_REPLAYED)
    return JSONResponse.with_raw_headers(result.response, status, headers)


_REPLAYED = (b"idempotent-replayed", b"true")


def json_with_etag(body: Any, version: int, if_none_match: str | None = None) -> Response:
    """A read whose ETag is the list version; 304 without a body when the client's
    ``If-None-Match`` names that version (or is ``*``). ``body`` as bytes is JSON rendered
    already (``views.list_view``)."""
    tag = etag(version)
    if if_none_match is not None and etag_matches(if_none_match, version):
        return Response(status_code=304, headers={"ETag": tag})
    if isinstance(body, bytes):
        return Response(body, media_type=JSONResponse.media_type, headers={"ETag": tag})
    return JSONResponse(body, headers={"ETag": tag})


def etag_matches(if_none_match: str, version: int) -> bool:
    """Whether ``If-None-Match`` names ``version`` (weakly: ``"7"`` and ``W/"7"`` alike) or is
    ``*``."""
    if if_none_match.strip() == "*":
        return True
    for candidate in if_none_match.split(","):
        found = _ETAG.match(candidate)
        if found is not None and int(found.group(1)) == version:
            return True
    return False


# -- OpenAPI: the headers the answers carry ------------------------------------------------------

_STRING = {"type": "string"}
ETAG_HEADER = {
    "ETag": {
        "description": 'The list version ("7"); send it back in If-Match to write, or in '
        "If-None-Match to read again only when it changed",
        "schema": _STRING,
    }
}
REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "description": "true when this is the stored answer to an earlier call with the same "
        "Idempotency-Key",
        "schema": _STRING,
    }
}
LOCATION_HEADER = {
    "Location": {"description": "Where what was created can be read", "schema": _STRING}
}
LINK_HEADER = {
    "Link": {
        "description": 'RFC 8288: `<…?cursor=…>; rel="next"` while there is a next page',
        "schema": _STRING,
    }
}


def read_with_etag() -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entries of a read that sends an ETag and answers If-None-Match with 304."""
    return {
        200: {"headers": ETAG_HEADER},
        304: {
            "description": "Not modified: the copy named in If-None-Match is current",
            "headers": ETAG_HEADER,
        },
    }


def command_answer(status: int = 200) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of a command's answer (``render``)."""
    headers = {**ETAG_HEADER, **REPLAYED_HEADER}
    if status == 201:
        headers.update(LOCATION_HEADER)
    return {status: {"headers": headers}}
