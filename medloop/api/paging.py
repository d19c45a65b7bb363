"""Cursor pagination for the endpoints that answer with a list.

A page is ``limit`` items in a stable order (each endpoint names its sort key); when more
follow, the answer carries an RFC 8288 ``Link: <path?cursor=…&limit=…>; rel="next"`` header.
The cursor is opaque to clients: the sort key of the last item shown, so a page does not
shift when items are added before it. A cursor this API did not give is refused
(``invalid-cursor``, 422), never ignored.
"""

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import orjson
from fastapi import Depends, Query, Request

from medloop.api.problems import BadCursor

Item = TypeVar("Item")
Key = tuple[str | int, ...]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

LINK_DESCRIPTION = 'RFC 8288 `Link: <…?cursor=…&limit=…>; rel="next"` while a next page follows'


@dataclass(frozen=True)
class PageRequest:
    """Which page the client asked for, and the URL to name the next one from."""

    limit: int
    after: Key | None
    path: str
    query: tuple[tuple[str, str], ...]

    def page(
        self, items: Sequence[Item], key: Callable[[Item], Key]
    ) -> tuple[list[Item], dict[str, str]]:
        """The page of ``items`` (ordered by ``key``) after the cursor, and its headers
        (``Link`` to the next page when there is one)."""
        ordered = sorted(items, key=key)
        if self.after is not None:
            try:
                ordered = [item for item in ordered if key(item) > self.after]
            except TypeError:
                raise BadCursor("the cursor does not belong to this list") from None
        shown = ordered[: self.limit]
        if len(ordered) <= self.limit:
            return shown, {}
        return shown, {"Link": self.next_link(key(shown[-1]))}

    def next_link(self, last: Key) -> str:
        query = [(k, v) for k, v in self.query if k not in ("cursor", "limit")]
        query += [("cursor", encode(last)), ("limit", str(self.limit))]
        return f'<{self.path}?{urlencode(query)}>; rel="next"'


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def instant(moment: datetime) -> int:
    """A moment as a sort key: microseconds since the epoch (exact, whatever its offset)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def encode(key: Key) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).rstrip(b"=").decode()


def decode(cursor: str) -> Key:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadCursor("the cursor is not one this API gave") from None
    if not (
        isinstance(found, list)
        and found
        and all(isinstance(part, str | int) and not isinstance(part, bool) for part in found)
    ):
        raise BadCursor("the cursor is not one this API gave")
    return tuple(found)


def pages(default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> Any:
    """The dependency of a paged endpoint: ``limit`` (``default``, at most ``maximum``) and
    ``cursor`` query parameters as a ``PageRequest``."""

    async def page_request(
        request: Request,
        limit: Annotated[
            int, Query(ge=1, le=maximum, description="How many items a page holds at most")
        ] = default,
        cursor: Annotated[
            str | None,
            Query(
                max_length=1000,
                pattern=r"^[A-Za-z0-9_-]+$",
                description="Where the page starts: from the previous page's `Link: …; "
                'rel="next"` (opaque)',
            ),
        ] = None,
    ) -> PageRequest:
        return PageRequest(
            limit=limit,
            after=None if cursor is None else decode(cursor),
            path=request.url.path,
            query=tuple(request.query_params.multi_items()),
        )

    return Depends(page_request)


PAGED: dict[int | str, dict[str, Any]] = {
    200: {"headers": {"Link": {"description": LINK_DESCRIPTION, "schema": {"type": "string"}}}}
}
"""The OpenAPI entry of a paged answer: its ``Link`` header."""

Page = Annotated[PageRequest, pages()]
"""A page of at most ``DEFAULT_LIMIT`` items by default, ``MAX_LIMIT`` at most."""
