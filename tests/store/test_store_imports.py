"""The store's modules import one another without a loop (issue #14: ``store/db.py`` imported
``store/batch.py`` inside a function because batch imported db), and nothing in the store
decides what the domain decides."""

from __future__ import annotations

import ast
from pathlib import Path

STORE = Path(__file__).resolve().parents[2] / "medloop" / "store"

ALLOWED_BACK_EDGES = {
    # Encoding an attested row needs every attested table defined: ``attestation`` imports
    # ``tables`` (which imports every table module, each built on ``attestation``) on first use.
    ("attestation", "tables"),
    # Naming a stored record that failed to load needs every record table and its model:
    # ``columns.names_unreadable`` imports ``records`` (which imports the table modules, each
    # built on ``columns``) only once a load has failed.
    ("columns", "records"),
}


def store_imports() -> dict[str, set[str]]:
    """Each module of ``medloop.store`` with the store modules it imports, anywhere in it."""
    modules = {path.stem for path in STORE.glob("*.py")}
    found: dict[str, set[str]] = {}
    for path in STORE.glob("*.py"):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "medloop.store":
                imported |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[:2] == ["medloop", "store"] and len(parts) > 2 and parts[2] in modules:
                    imported.add(parts[2])
            elif isinstance(node, ast.Import):
                for a in node.names:
                    parts = a.name.split(".")
                    if parts[:2] == ["medloop", "store"] and len(parts) > 2:
                        imported.add(parts[2])
        found[path.stem] = imported - {path.stem}
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import loop of ``graph``, each as the path that closes it."""
    loops: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if (module, target) in ALLOWED_BACK_EDGES:
                continue
            if target in path:
                loops.append([*path[path.index(target) :], target])
            elif target not in done:
                visit(target, [*path, target])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    return loops


def test_the_store_modules_import_one_another_without_a_loop():
    assert cycles(store_imports()) == []


def test_the_loop_finder_finds_the_loop_db_and_batch_had():
    graph = store_imports()
    graph["db"] = graph["db"] | {"batch"}
    graph["batch"] = graph["batch"] | {"db"}
    assert ["db", "batch", "db"] in cycles(graph) or ["batch", "db", "batch"] in cycles(graph)


def test_the_patients_state_and_its_rules_are_the_domains():
    import medloop.domain.administration as domain_administration
    import medloop.domain.state as domain_state
    from medloop.store import administration, patient_state, state_cache

    assert state_cache.PatientState is domain_state.PatientState
    assert patient_state.PatientState is domain_state.PatientState
    assert not hasattr(administration, "in_force")
    assert callable(domain_administration.dose_in_force)
