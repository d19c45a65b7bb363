"""The app's included routers, each told the first path segments its routes can match.

FastAPI 0.165 matches a request against the app's routers one after the other: each included
router (``_IncludedRouter``) tries every one of its routes' patterns, and the one that matched
tries them again to find its route. A request for a page, a report or ``/health/live`` walked
most of the app's 200-odd patterns before its own: 100-225 us of the event loop a request
in-process, ≈ 8 % of the server's CPU in ``bench/api.py``'s mix (bench/RESULTS.md, issue #20,
session 24).

``index_routers`` replaces each of the app router's included routers by the same inclusion
(the same router, the same include context: prefix, dependencies, overrides) that first looks
at the request path's first segment (``/pharmacy/…`` → ``pharmacy``): when none of its routes
begins with that segment, none of its patterns can match the path, and it answers "no match"
at once, as trying them all would have. A router with a route whose first segment is a
parameter (or a path that does not begin with ``/``) is left to try every pattern. The app's
router still tries its routes in their order, so the route that answers is the one that
answered before (``tests/api/test_api_route_index.py`` checks every route of the app)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import routing as fastapi_routing
from starlette._utils import get_route_path
from starlette.routing import Match

_IncludedRouter: Any = getattr(fastapi_routing, "_IncludedRouter", None)


def first_segment(path: str) -> str:
    """``/pharmacy/patients/1`` → ``pharmacy``; ``/`` → ``""``."""
    return path[1:].split("/", 1)[0]


def _segments(included: Any) -> frozenset[str] | None:
    """The first segments of every route ``included`` holds, or ``None`` when one of them
    cannot be told from its path (a parameter, a path not beginning with ``/``)."""
    found: set[str] = set()
    for context in included.effective_route_contexts():
        path = getattr(context, "path_format", None) or getattr(context, "path", None)
        if not isinstance(path, str) or not path.startswith("/"):
            return None
        segment = first_segment(path)
        if "{" in segment:
            return None
        found.add(segment)
    return frozenset(found)


if _IncludedRouter is not None:

    @dataclass(eq=False)
    class IndexedInclude(_IncludedRouter):  # type: ignore[misc, valid-type]
        """An inclusion that says "no match" at once for a path none of its routes begins
        like."""

        segments: frozenset[str] | None = None

        def matches(self, scope: Any) -> tuple[Match, Any]:
            segments = self.segments
            if segments is not None and first_segment(get_route_path(scope)) not in segments:
                return Match.NONE, {}
            return super().matches(scope)


def index_routers(router: Any) -> int:
    """Replace ``router``'s included routers by indexed ones (``IndexedInclude``); the number
    indexed. Without FastAPI's ``_IncludedRouter`` (another FastAPI), nothing changes."""
    if _IncludedRouter is None:
        return 0
    indexed = 0
    for position, route in enumerate(router.routes):
        if type(route) not in (_IncludedRouter, IndexedInclude):
            continue
        segments = _segments(route)
        if segments is None:
            continue
        router.routes[position] = IndexedInclude(
            original_router=route.original_router,
            include_context=route.include_context,
            segments=segments,
        )
        indexed += 1
    return indexed


def chosen(router: Any, method: str, path: str) -> tuple[Any, Match]:
    """The route ``router`` hands an HTTP ``method path`` to, as ``APIRouter.app`` chooses it
    (the first full match, else the first partial), down to an included router's own route;
    ``(None, Match.NONE)`` when none matches. What ``tests/api/test_api_route_index.py`` and
    ``bench/route_match.py`` compare with the index and without."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }
    partial: tuple[Any, Match] | None = None
    for route in router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL or (match is Match.PARTIAL and partial is None):
            inner = route._match(scope)[2] if hasattr(route, "_match") else route
            if match is Match.FULL:
                return inner, match
            partial = (inner, match)
    return partial or (None, Match.NONE)
