"""Reading an SVG chart back: its marks and the values Vega wrote on each (``aria-label``), and
the check that a report table's chart draws every row of the table."""

from __future__ import annotations

import html
import re

from medloop.reports import charts

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


_ROLE = {"bar": "bar", "heatmap": "rect mark", "line": "point"}


def assert_chart_matches_table(table: charts.Table) -> None:
    """The chart has one mark per row of its table that has a value (a month without courses
    has no share: no mark, an empty cell), each labelled with that row's values."""
    assert table.chart is not None
    svg = charts.render_svg(table)
    assert f'<title id="{table.id}-title">' in svg and "<desc" in svg
    drawn = marks(svg, _ROLE[table.chart.kind])
    value = table.columns.index(table.chart.value)
    rows = [row for row in table.rows if row[value] is not None]
    assert len(drawn) == len(rows), table.id
    expected = sorted(tuple("" if v is None else _text(v) for v in row) for row in rows)
    found = sorted(tuple(m.get(c, "") for c in table.columns) for m in drawn)
    assert found == expected, table.id


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
