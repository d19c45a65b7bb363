"""Package boundaries from docs/architecture.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_top_levels(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {(str(path.relative_to(REPO)), a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path.relative_to(REPO)), node.module.split(".")[0]))
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("fest", {"medloop", "interactions"}),
        ("interactions", {"medloop", "fest", "sqlalchemy", "fastapi", "lxml"}),
    ],
)
def test_lower_packages_never_import_the_layers_above(package, forbidden):
    offending = sorted((path, name) for path, name in imported_top_levels(package) if name in forbidden)
    assert offending == []
