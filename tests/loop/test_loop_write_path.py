"""One way to write: only the runner opens a write transaction, locks a patient or claims an
idempotency key. A new side door (a command, job or route that opens ``writer(engine)`` or
``engine.begin()`` itself) fails here, naming the function."""

from __future__ import annotations

import ast
from pathlib import Path

import medloop

ROOT = Path(medloop.__file__).resolve().parent

SCANNED = ("loop", "api", "pages", "jobs.py", "demo.py", "queries.py")
"""Where changes to patient data could start: the commands, the routes, the pages, the jobs,
the demo."""

OPENERS = frozenset(
    {
        "writer",
        "begin",
        "begin_nested",
        "lock_for_command",
        "lock_patient_revision",
        "run_once",
    }
)
"""Calls that open a write path: a write transaction, a patient's row lock, an idempotency
claim."""

ALLOWED = {
    ("loop/runner.py", "run_command"),  # a command on a patient's list
    ("loop/runner.py", "run_work"),  # the one variant: ward set-up, registration, system work
    ("loop/runner.py", "_audit_refusal"),  # a refusal's audit record, in its own transaction
    ("loop/runner.py", "_locked"),  # the patient's lock, for both
    ("loop/runner.py", "_once"),  # the idempotency key, for both
    # CDS Hooks: an idempotent card issue inside the audited read path (store.access.audited);
    # cards are decision support shown, not a change to the patient's data.
    ("api/cds.py", "_once"),
    # CDS client tokens: a jti's replay record in the idempotency table (no patient data).
    # Found by this guard when issue #15's client JWTs landed; it opens its own transaction and
    # should go through runner.run_work (call=None) like the other system work (left to do).
    ("api/cds_auth.py", "consume_jti"),
}


def _openers(path: Path) -> list[tuple[str, str, int]]:
    """(function, call, line) of every opener called in ``path``."""
    found: list[tuple[str, str, int]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and function == "":
                inner = child.name
            if isinstance(child, ast.Call):
                name = (
                    child.func.id
                    if isinstance(child.func, ast.Name)
                    else child.func.attr
                    if isinstance(child.func, ast.Attribute)
                    else None
                )
                if name in OPENERS:
                    found.append((function or "<module>", name, child.lineno))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


def _scanned() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        target = ROOT / name
        files += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return files


def test_only_the_runner_opens_a_write_transaction_locks_a_patient_or_claims_a_key():
    doors = [
        f"{path.relative_to(ROOT)}:{line} {function}() calls {call}()"
        for path in _scanned()
        for function, call, line in _openers(path)
        if (path.relative_to(ROOT).as_posix(), function) not in ALLOWED
    ]
    assert doors == [], "side doors around loop.runner:\n" + "\n".join(doors)


def test_the_guard_sees_a_side_door(tmp_path):
    door = tmp_path / "door.py"
    door.write_text(
        "def sneak(engine):\n"
        "    with writer(engine).begin() as conn:\n"
        "        pass\n"
        "class Job:\n"
        "    def run(self, engine):\n"
        "        with engine.begin() as conn:\n"
        "            pass\n",
        encoding="utf-8",
    )
    assert {(f, c) for f, c, _ in _openers(door)} == {
        ("sneak", "writer"),
        ("sneak", "begin"),
        ("run", "begin"),
    }
