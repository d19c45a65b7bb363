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
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import Depends, Header, Request
from fastapi.security import HTTPBearer
from sqlalchemy import Connection, Engine

from medloop.api.auth import Principal, TokenVerifier, Unauthenticated
from medloop.api.limits import PRINCIPAL
from medloop.api.policy import Action, accessor, authorize, own_record
from medloop.api.problems import BadPrecondition, Forbidden, PreconditionRequired
from medloop.api.responses import JSONResponse
from medloop.domain.patient import PatientNotFound
from medloop.loop.runner import Call, CommandResult
from medloop.store.access import read_audited, read_own_audited
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

    def read_behind(self, work: Callable[[Connection], Read]) -> Read:
        """``work`` on a caught-up replica when there is one, else on the primary."""
        if self.reads is None:
            with reader(self.engine).connect() as conn:
                return work(conn)
        return self.reads.read(work)


@dataclass(frozen=True)
class Caller:
    """One request's caller: who (verified), the request id, the moment it is handled."""

    state: ApiState
    principal: Principal
    request_id: str
    at: datetime

    @property
    def engine(self) -> Engine:
        return self.state.engine

    def authorize(self, action: Action, patient_id: UUID | None = None) -> None:
        authorize(
            self.engine, self.principal, action, patient_id, at=self.at,
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
    ) -> Call:
        return Call(
            actor=self.principal.actor,
            at=self.at,
            reason=reason,
            overrides=overrides or {},
            idempotency_key=idempotency_key,
            request_id=self.request_id,
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
            self.engine, accessor(self.principal, self.request_id), patient_id, what, read,
            reason=reason,
        )


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


def api_state(request: Request) -> ApiState:
    return request.app.state.api


class BearerCaller(HTTPBearer):
    """The bearer scheme (as OpenAPI documents it) that also verifies the token and answers
    with the whole ``Caller``: one dependency per request for the token, the request id and
    the clock."""

    async def __call__(self, request: Request) -> Caller:  # type: ignore[override]
        state = api_state(request)
        # A request with a body was authenticated before it was read (medloop.api.limits).
        principal = request.scope.get("state", {}).get(PRINCIPAL)
        if principal is None:
            scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("a bearer token is required")
            principal = state.verifier.verify(token)
        return Caller(state, principal, request.state.request_id, state.clock())


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
        raise BadPrecondition(f"If-Match must be a list version such as \"7\", not {if_match!r}")
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


def etag(version: int) -> str:
    return f'"{version}"'


def render(result: CommandResult, status: int = 200, **extra_headers: str) -> JSONResponse:
    """A command's answer: its stored response as the body, the list version as the ETag.
    A replay (same Idempotency-Key) answers exactly like the first call, plus
    ``Idempotent-Replayed: true``."""
    headers = {"ETag": etag(result.list_version), **extra_headers}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(result.response, status_code=status, headers=headers)


def json_with_etag(body: Any, version: int) -> JSONResponse:
    return JSONResponse(body, headers={"ETag": etag(version)})
