"""The domain package stays pure, and its error codes stay a stable, unique contract."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from medloop.domain.errors import DomainError, NotDispensable, error_codes
from medloop.domain.medication_list import (
    EntryNotActive,
    EntryNotFound,
    ListError,
    PrescriptionNotOnEntry,
)
from medloop.domain.prescription import (
    PrescriptionError,
    PrescriptionExpired,
    PrescriptionFullyDispensed,
    PrescriptionLocked,
    PrescriptionRecalled,
)

DOMAIN = Path(__file__).resolve().parents[2] / "medloop" / "domain"
ALLOWED_THIRD_PARTY = {"pydantic", "interactions", "medloop"}
FORBIDDEN_STDLIB = {
    "os",
    "io",
    "pathlib",
    "socket",
    "sqlite3",
    "subprocess",
    "time",
    "random",
    "logging",
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "path", sorted(DOMAIN.rglob("*.py")), ids=lambda p: str(p.relative_to(DOMAIN))
)
def test_the_domain_imports_only_pure_code(path: Path) -> None:
    for name in imports(path):
        top = name.split(".")[0]
        if name.startswith("medloop."):
            assert name.startswith("medloop.domain"), f"{path.name} imports {name}"
        elif top in sys.stdlib_module_names:
            assert top not in FORBIDDEN_STDLIB, f"{path.name} imports {name}"
        else:
            assert top in ALLOWED_THIRD_PARTY, f"{path.name} imports {name}"


def test_error_codes_are_unique_kebab_case_and_each_names_one_class() -> None:
    codes = error_codes()
    assert len(codes) >= 40
    for code, cls in codes.items():
        assert re.fullmatch(r"[a-z]+(-[a-z0-9]+)*", code), code
        assert cls.code == code and issubclass(cls, DomainError)


def _domain_error_classes() -> set[type[DomainError]]:
    """Every refusal defined in a module of ``medloop.domain``, at any depth (each family
    defines its own: ``medication_list``, ``prescription``, ``multidose.errors``, …)."""
    import importlib
    import pkgutil

    import medloop.domain

    found: set[type[DomainError]] = set()
    for info in pkgutil.walk_packages(medloop.domain.__path__, "medloop.domain."):
        module = importlib.import_module(info.name)
        found |= {
            obj
            for obj in vars(module).values()
            if isinstance(obj, type)
            and issubclass(obj, DomainError)
            and obj is not DomainError
            and obj.__module__ == module.__name__
        }
    return found


def test_every_concrete_error_class_has_its_own_code() -> None:
    classes = _domain_error_classes()
    # A family is a class others refine; only a family may go without a code of its own.
    families = {
        cls
        for cls in classes
        if "code" not in cls.__dict__ and any(o is not cls and issubclass(o, cls) for o in classes)
    }
    assert {ListError, NotDispensable, PrescriptionError} <= families
    domain_codes = {
        cls for cls in error_codes().values() if cls.__module__.startswith("medloop.domain.")
    }
    assert classes - families == domain_codes


def test_errors_live_beside_their_family_and_errors_py_holds_only_what_crosses_families() -> None:
    from medloop.domain import errors
    from medloop.domain.errors import InvalidValue

    defined = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, DomainError)
        and obj.__module__ == errors.__name__
    }
    assert defined == {DomainError, InvalidValue, NotDispensable}
    assert all(cls.__module__ != errors.__name__ for cls in error_codes().values())


def test_a_reused_code_is_refused_at_class_definition() -> None:
    with pytest.raises(TypeError, match="already used"):
        type("Duplicate", (DomainError,), {"code": "entry-not-found"})


def test_errors_carry_json_context() -> None:
    from uuid import UUID

    error = EntryNotFound("no such entry", entry_id=UUID(int=7), ids=(UUID(int=1),))
    assert error.context == {
        "entry_id": "00000000-0000-0000-0000-000000000007",
        "ids": ["00000000-0000-0000-0000-000000000001"],
    }
    assert str(error) == "no such entry"


def test_prescription_and_entry_refusals_that_stop_a_dispense_are_not_dispensable() -> None:
    for cls in (
        PrescriptionRecalled,
        PrescriptionExpired,
        PrescriptionLocked,
        PrescriptionFullyDispensed,
        EntryNotActive,
        PrescriptionNotOnEntry,
    ):
        assert issubclass(cls, NotDispensable)
