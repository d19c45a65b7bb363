"""Reading an SVG chart back: its marks and the values Vega wrote on each (``aria-label``)."""

from __future__ import annotations

import html
import re

_TAG = re.compile(r"<(?:path|rect|circle|g|text)\b[^>]*>")
_ATTR = re.compile(r'([a-z-]+)="([^"]*)"')


def marks(svg: str, role: str) -> list[dict[str, str]]:
    """Every mark whose ``aria-roledescription`` is ``role`` (``bar``, ``point``, ``rect``…),
    as the field: value pairs of its ``aria-label``."""
    found = []
    for tag in _TAG.findall(svg):
        attrs = dict(_ATTR.findall(tag))
        if attrs.get("aria-roledescription") != role:
            continue
        label = html.unescape(attrs.get("aria-label", ""))
        found.append(dict(part.split(": ", 1) for part in label.split("; ") if ": " in part))
    return found
