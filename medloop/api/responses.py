"""The JSON body every route and problem document answers with, rendered by orjson (compact
UTF-8, as Starlette's ``JSONResponse`` renders it, in a fraction of the time)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)

    @classmethod
    def with_raw_headers(
        cls, content: Any, status_code: int, headers: list[tuple[bytes, bytes]]
    ) -> JSONResponse:
        """``cls(content, status_code, headers)`` for ``headers`` given as Starlette's raw
        headers would hold them (lower-case names and values encoded as latin-1; neither
        ``content-length`` nor ``content-type`` among them): the same response — status, body,
        raw headers in the same order, no background task — without Starlette's set-up, which
        builds the raw headers from a mapping in several Python calls (a command answers with
        this on every request; issue #20). ``headers`` becomes the response's."""
        response = cls.__new__(cls)
        response.status_code = status_code
        response.background = None
        body = response.body = orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        if not (status_code < 200 or status_code in (204, 304)):
            headers.append((b"content-length", str(len(body)).encode("latin-1")))
        headers.append(_JSON_TYPE)
        response.raw_headers = headers
        return response


_JSON_TYPE = (b"content-type", JSONResponse.media_type.encode("latin-1"))
