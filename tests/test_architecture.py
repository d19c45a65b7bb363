"""Package boundaries from docs/architecture.md, checked on the source.

Every import counts: module-level, inside functions (lazy), under ``TYPE_CHECKING``, relative
(``from ..store import x``) and ``importlib.import_module("…")`` with a literal name. Each rule
is its own test, so a failure names the boundary it crosses and lists every offending import
with its file and line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Import:
    path: str  # relative to the repository
    line: int
    module: str  # absolute dotted name of what is imported


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_in(
    source: str, module: str, *, is_package: bool, path: str = "<source>"
) -> list[Import]:
    """Every module ``source`` imports, by absolute name. For ``from a import b`` both ``a`` and
    ``a.b`` are listed (``b`` may be a submodule: ``from medloop.store import audit``)."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(path, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                absolute = ".".join([*base, node.module] if node.module else base)
            else:
                absolute = node.module or ""
            found.append(Import(path, node.lineno, absolute))
            found += [
                Import(path, node.lineno, f"{absolute}.{alias.name}")
                for alias in node.names
                if alias.name != "*"
            ]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            found.append(Import(path, node.lineno, node.args[0].value))
    return found


def imports_of(package: str) -> list[Import]:
    """The imports of every module under ``package`` (a dotted name or a single module)."""
    root = REPO / Path(*package.split("."))
    paths = sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]
    assert paths and all(p.exists() for p in paths), f"{package} has no source: rule is stale"
    found = []
    for path in paths:
        found += imports_in(
            path.read_text(encoding="utf-8"),
            module_name(path),
            is_package=path.name == "__init__.py",
            path=str(path.relative_to(REPO)),
        )
    return found


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# (who, what it must not import): `who` is a package or module of the repository, `what` a
# package (everything under it is forbidden too).
RULES = [
    ("fest", "medloop"),
    ("fest", "interactions"),
    ("interactions", "medloop"),
    ("interactions", "fest"),
    ("interactions", "sqlalchemy"),
    ("interactions", "fastapi"),
    ("interactions", "lxml"),
    ("medloop.domain", "medloop.store"),
    ("medloop.domain", "medloop.loop"),
    ("medloop.domain", "medloop.api"),
    ("medloop.store", "medloop.loop"),
    ("medloop.store", "medloop.api"),
    ("medloop.loop", "medloop.api"),
    ("medloop.ops", "medloop.api"),
    # The reports read (store) and aggregate; they decide nothing and run no command.
    ("medloop.reports", "medloop.api"),
    ("medloop.reports", "medloop.loop"),
    # Routes translate HTTP into commands (medloop.loop) and queries (medloop.queries); the
    # tables and the store's modules are below them.
    ("medloop.api.routes", "medloop.store"),
    # The FHIR face translates like the routes: commands, queries, the API's caller and policy.
    ("medloop.fhir", "medloop.store"),
    # Charts draw plain values of the read side; the timeline's model is pure.
    ("medloop.charts", "medloop.store"),
    ("medloop.charts", "medloop.loop"),
    ("medloop.charts", "medloop.api"),
    ("medloop.timeline", "medloop.store"),
    ("medloop.timeline", "medloop.loop"),
    # The LRU map is kept with by the store and the pages alike: a leaf below every layer.
    ("medloop.lru", "medloop"),
]


def report(imports: list[Import]) -> list[str]:
    """One line per offending import statement, naming its most specific module."""
    longest: dict[tuple[str, int], str] = {}
    for i in imports:
        key = (i.path, i.line)
        if len(i.module) > len(longest.get(key, "")):
            longest[key] = i.module
    return [f"{path}:{line} imports {module}" for (path, line), module in sorted(longest.items())]


@pytest.mark.parametrize(("who", "forbidden"), RULES, ids=[f"{w}-imports-no-{f}" for w, f in RULES])
def test_a_package_never_imports_the_layers_it_must_not(who, forbidden):
    offending = report(
        [i for i in imports_of(who) if within(i.module, forbidden) and not within(i.module, who)]
    )
    assert not offending, "\n".join(offending)


ROUTE_MODULES = sorted(
    module_name(path)
    for path in (REPO / "medloop" / "api" / "routes").glob("*.py")
    if path.name != "__init__.py"
)


def test_route_modules_do_not_import_each_other():
    """Views shared by several routers live in a module of their own, not in one router."""
    assert ROUTE_MODULES
    offending = report(
        [
            i
            for route in ROUTE_MODULES
            for i in imports_of(route)
            if any(within(i.module, other) for other in ROUTE_MODULES if other != route)
        ]
    )
    assert not offending, "\n".join(offending)


def is_test_module(module: str) -> bool:
    return module.split(".")[0] == "tests" and any(
        part.startswith("test_") for part in module.split(".")
    )


def test_no_test_module_is_imported_by_another_module():
    """Builders shared by test modules live in their folder's ``helpers.py`` (fixtures in
    ``conftest.py``): importing a ``test_*`` module runs its tests' module-level code a second
    time and makes one test file the library of another."""
    offending = report([i for i in imports_of("tests") if is_test_module(i.module)])
    assert not offending, "\n".join(offending)


def test_the_test_import_rule_fails_on_an_import_of_a_test_module(tmp_path, monkeypatch):
    (tmp_path / "tests" / "api").mkdir(parents=True)
    (tmp_path / "tests" / "api" / "test_b.py").write_text(
        "def f():\n    from tests.api.test_a import builder\n"
    )
    monkeypatch.setitem(globals(), "REPO", tmp_path)

    with pytest.raises(AssertionError, match=r"tests/api/test_b.py:2 imports tests.api.test_a"):
        test_no_test_module_is_imported_by_another_module()


ENVIRONMENT_READERS = {
    "medloop/settings.py": "the one place the environment is read (Settings.from_env)",
    # prometheus_client reads PROMETHEUS_MULTIPROC_DIR itself, at import: the CLI sets it for
    # the workers before importing it, and the metrics module asks whether it is set.
    "medloop/cli.py": "sets and removes PROMETHEUS_MULTIPROC_DIR for prometheus_client",
    "medloop/ops/metrics.py": "PROMETHEUS_MULTIPROC_DIR, prometheus_client's own variable",
}
"""The only modules of medloop, fest and interactions that touch ``os.environ`` or
``os.getenv`` (#14: one settings object, read in one place), with why."""


def environment_uses(source: str) -> list[int]:
    """Lines where ``source`` touches ``os.environ``/``os.getenv``/``os.putenv`` or imports
    ``environ``/``getenv`` from ``os``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"):
            found.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(a.name in ("environ", "getenv", "putenv") for a in node.names):
                found.append(node.lineno)
    return sorted(found)


def test_only_the_settings_read_the_environment():
    offending = [
        f"{path.relative_to(REPO)}:{line}"
        for package in ("medloop", "fest", "interactions")
        for path in sorted((REPO / package).rglob("*.py"))
        if str(path.relative_to(REPO)) not in ENVIRONMENT_READERS
        for line in environment_uses(path.read_text(encoding="utf-8"))
    ]
    assert not offending, "read the setting in medloop/settings.py:\n" + "\n".join(offending)


def test_the_environment_rule_sees_every_way_of_reading_it():
    source = "import os\nfrom os import getenv\na = os.environ.get('X')\nb = os.getenv('Y')\n"
    assert environment_uses(source) == [2, 3, 4]


# -- the checker itself: it must see the imports that are easy to miss ----------------------------

LAZY = """
from __future__ import annotations
import os.path
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from medloop.store.tables import metadata
def f():
    from ..store import audit
    from . import queries
    import medloop.loop.runner as runner
    return importlib.import_module("medloop.api.app")
"""


def test_the_checker_sees_lazy_relative_type_checking_and_dynamic_imports():
    modules = {i.module for i in imports_in(LAZY, "medloop.domain.entry", is_package=False)}

    assert {
        "os.path",
        "medloop.store.tables",
        "medloop.store",
        "medloop.store.audit",
        "medloop.domain",
        "medloop.domain.queries",
        "medloop.loop.runner",
        "medloop.api.app",
    } <= modules


def test_a_relative_import_in_a_package_init_resolves_against_the_package_itself():
    modules = {
        i.module for i in imports_in("from .gp import x", "medloop.api.routes", is_package=True)
    }

    assert "medloop.api.routes.gp" in modules


def test_a_rule_fails_on_an_import_that_crosses_it(tmp_path, monkeypatch):
    (tmp_path / "medloop" / "domain").mkdir(parents=True)
    (tmp_path / "medloop" / "domain" / "x.py").write_text(
        "def f():\n    from ..loop import runner\n"
    )
    monkeypatch.setitem(globals(), "REPO", tmp_path)

    with pytest.raises(AssertionError, match=r"medloop/domain/x.py:2 imports medloop.loop"):
        test_a_package_never_imports_the_layers_it_must_not("medloop.domain", "medloop.loop")
