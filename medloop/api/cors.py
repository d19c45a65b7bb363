"""CORS on some routes only: the configured origins of browser apps may call the routes made for
them (an EHR's CDS Hooks client, a SMART on FHIR app), preflight included, through Starlette's
``CORSMiddleware``; every other route answers without CORS headers, so no other origin's page
can read a patient's list through a signed-in browser. No credentials (cookies) are allowed:
these routes authenticate with bearer tokens, and the pages' session cookie stays their own.

A layer of this kind in the stack leaves the one-frame edge out (``app._edge``): the layers are
then served one by one, for every route (measured only when configured)."""

from __future__ import annotations

from typing import Any

from starlette.middleware.cors import CORSMiddleware

from medloop.fhir import outcome as fhir_outcome


class PathCors:
    """CORS for ``origins`` on the paths ``prefixes`` name (the prefix itself or below it);
    ``methods`` and ``allow_headers`` are what a preflight may ask for, ``expose_headers``
    what a script of those origins may read of an answer."""

    prefixes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("GET", "POST")
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()

    def __init__(self, app: Any, origins: tuple[str, ...]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=list(self.methods),
            allow_headers=list(self.allow_headers),
            expose_headers=list(self.expose_headers),
            allow_credentials=False,
            max_age=600,
        )
        self._below = tuple(f"{prefix}/" for prefix in self.prefixes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path in self.prefixes or path.startswith(self._below):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class FhirCors(PathCors):
    """CORS for the origins of SMART on FHIR browser apps (``MEDLOOP_FHIR_CORS_ORIGINS``) on
    ``/fhir`` and ``/.well-known/smart-configuration``: what a FHIR client sends (the bearer
    token, ``Prefer``, conditional and idempotent writes, a witness's token) and reads (the
    version, where a new resource or an export's status is, the list version for the next
    ``If-Match``, an export's progress)."""

    prefixes = fhir_outcome.PREFIXES  # the paths FHIR answers (with OperationOutcomes)
    allow_headers = (
        "Authorization",
        "Content-Type",
        "Accept",
        "Prefer",
        "If-Match",
        "If-None-Match",
        "Idempotency-Key",
        "X-Request-ID",
        "X-Witness-Authorization",
    )
    expose_headers = (
        "ETag",
        "Last-Modified",
        "Location",
        "Content-Location",
        "X-List-Version",
        "X-Progress",
        "Retry-After",
        "X-Request-ID",
        "Idempotent-Replayed",
    )
