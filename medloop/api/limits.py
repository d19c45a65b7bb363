"""The request body's gate: who sends it is checked before a byte of it is read, and it is read
only up to ``MEDLOOP_MAX_BODY_BYTES``.

``BodyGuard`` is plain ASGI (no task, no request object per request). For a method that may
carry a body (everything but GET, HEAD and OPTIONS; every such route of the API needs a
token):

- the bearer token is verified first (the verifier remembers verified tokens, so this is a
  dictionary look-up after a client's first request), and a request without a valid one is
  answered 401 without reading its body; the principal is kept in the request's state for the
  route's own ``CallerDep``, which then does not verify the token again; the web pages
  (paths under ``page_prefix``) are the exception: their session cookie is checked by the
  page before it reads the form;
- a ``Content-Length`` above the limit is answered 413 at once; a body sent without one (or
  longer than it said) is counted while it streams in and the request is refused with 413 as
  soon as it passes the limit, so at most ``limit`` bytes (plus one chunk) are ever held.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from medloop.api.auth import Unauthenticated

_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
PRINCIPAL = "principal"
"""The key of the verified principal in the request's state (``request.state.principal``)."""


class BodyTooLarge(HTTPException):
    """The request body is larger than the configured limit (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


class BodyGuard:
    def __init__(
        self, app: Any, *, limit: int, verifier: Any, page_prefix: str | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.verifier = verifier
        self.page_prefix = page_prefix

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in _NO_BODY:
            await self.app(scope, receive, send)
            return
        refusal = self.admit(scope)
        if refusal is not None:
            await refuse(scope, receive, send, *refusal)
            return
        await self.app(scope, self.limited(receive), send)

    def admit(self, scope: dict) -> tuple[int, str, str] | None:
        """For a request that may carry a body: ``None`` when it is admitted (its verified
        principal, if any, kept in its state), else the refusal to answer it with (status,
        problem code, detail). ``api.app`` calls this for the requests it serves in one
        frame (``_Edge``), so both answer alike."""
        length = authorization = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"authorization":
                authorization = value
        try:
            if self.page_prefix is not None and scope["path"].startswith(self.page_prefix):
                # A web page (medloop.pages): its session cookie, not a bearer token, says who
                # sends it; the page checks the session before it reads the form. The size
                # limit below applies all the same.
                principal = None
            else:
                principal = self._principal(authorization)
        except Unauthenticated as error:
            return 401, "unauthenticated", str(error)
        except Exception:  # noqa: BLE001 - not decided here: the route's own check answers
            principal = None
        if principal is not None:
            scope.setdefault("state", {})[PRINCIPAL] = principal
        limit = self.limit
        if length is not None and (not length.isdigit() or int(length) > limit):
            return (
                413,
                "request-too-large",
                f"the request body is larger than the limit of {limit} bytes",
            )
        return None

    def limited(self, receive: Any) -> Any:
        """``receive`` counting the body's bytes: ``BodyTooLarge`` past the limit."""
        limit = self.limit
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited

    def _principal(self, authorization: bytes | None) -> Any:
        scheme, _, token = (authorization or b"").decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("a bearer token is required")
        return self.verifier.verify(token)


async def refuse(scope: dict, receive: Any, send: Any, status: int, code: str, detail: str) -> None:
    from medloop.api.problems import problem

    request = Request(scope)
    response = problem(status, code, detail, request)
    from medloop.fhir.outcome import from_problem, under_fhir

    if under_fhir(request):
        # The FHIR face answers every refusal as an OperationOutcome.
        response = from_problem(response)
    if status == 413:
        response.headers["Connection"] = "close"
    await response(scope, receive, send)
