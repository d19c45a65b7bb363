"""The substitution-restriction check over the synthetic catalogue: a substitute within a group
FEST marks restricted (``MerknadTilByttbarhet``) raises an alert that needs a reasoned
override; within any other group, nothing."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from fest.loader import import_catalogue
from fest.synth import write_synthetic
from interactions import CatalogueSnapshot, Kind, Knowledge, Medication, Severity, check
from interactions.checks.substitution import restriction_key
from interactions.medication import Substitution
from medloop.catalogue import load_snapshot
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[CatalogueSnapshot, Knowledge]:
    folder: Path = tmp_path_factory.mktemp("synth-substitution")
    write_synthetic(folder / "fest.xml", scale=0.05, seed=5)
    engine = make_engine(f"sqlite:///{folder / 'db.sqlite'}")
    upgrade(engine)
    import_catalogue(engine, folder / "fest.xml")
    with engine.connect() as conn:
        snapshot = load_snapshot(conn)
    engine.dispose()
    return snapshot, Knowledge.build(snapshot)


def test_only_substitutes_in_restricted_groups_raise_the_restriction(
    synthetic: tuple[CatalogueSnapshot, Knowledge],
) -> None:
    snapshot, knowledge = synthetic
    members: defaultdict[str, list[str]] = defaultdict(list)
    for package in snapshot.packages:
        if package.substitution_group_id:
            members[package.substitution_group_id].append(package.id)
    pairs = {g: ids[:2] for g, ids in members.items() if len(ids) >= 2}
    restricted = {g for g in pairs if knowledge.substitution_groups[g].restricted}
    assert restricted and set(pairs) - restricted, "the synthetic catalogue has both kinds"
    for group_id, (prescribed, handed_out) in pairs.items():
        group = knowledge.substitution_groups[group_id]
        substitute = Medication(
            id="e1",
            drug=knowledge.resolve(fest_id=handed_out),
            substitution=Substitution(
                prescribed=knowledge.resolve(fest_id=prescribed).name,
                group_id=group_id,
                prescription="rx-1",
            ),
        )
        alerts = check(knowledge, [substitute])
        found = [a for a in alerts if a.kind is Kind.SUBSTITUTION_RESTRICTION]
        if not group.restricted:
            assert found == [], group.code
            continue
        (alert,) = found
        assert alert.requires_override and alert.severity is Severity.PRECAUTIONS
        assert alert.detail.restriction == group.restriction_text
        assert alert.detail.group_code == group.code
        assert alert.key == restriction_key("e1", group.code, "rx-1")
        # The same drug on the list without the substitution raises nothing.
        plain = Medication(id="e1", drug=substitute.drug)
        assert not any(a.kind is Kind.SUBSTITUTION_RESTRICTION for a in check(knowledge, [plain]))
