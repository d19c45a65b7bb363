"""The adapter from catalogue tables to decision-support records (medloop.catalogue)."""

from __future__ import annotations

import pytest

from fest.loader import import_catalogue
from medloop.catalogue import NoCatalogue, load_snapshot
from tests.fest import festfiles as ff
from tests.reference import real_extract


def test_snapshot_of_the_real_extract_carries_every_record_in_force(engine):
    result = import_catalogue(engine, real_extract())
    with engine.connect() as conn:
        snapshot = load_snapshot(conn)
    assert (
        snapshot.info.version == result.version and snapshot.info.hentet_dato == result.hentet_dato
    )
    assert len(snapshot.products) == result.counts["LegemiddelMerkevare"]
    assert len(snapshot.packages) == result.counts["Legemiddelpakning"]
    assert len(snapshot.substances) == result.counts["Virkestoff"]
    assert len(snapshot.strengths) == result.counts["VirkestoffMedStyrke"]
    assert len(snapshot.interactions) == result.counts["Interaksjon"]
    assert len(snapshot.notices) == result.counts["VarselSlv"]
    assert all(len(i.groups) == 2 for i in snapshot.interactions)
    assert all(p.product_ids for p in snapshot.packages)
    assert all(n.references for n in snapshot.notices)
    strength_ids = {s.id for s in snapshot.strengths}
    assert all(set(p.strength_ids) <= strength_ids for p in snapshot.products)


def test_snapshot_as_of_an_older_version_shows_that_version(engine, tmp_path):
    v1 = tmp_path / "v1.xml"
    v1.write_text(
        ff.document(
            "2026-01-01T00:00:00",
            {"Interaksjon": [ff.interaction("ID_E1", "ID_I1", 1, "B01AA03", "M01AE")]},
        )
    )
    v2 = tmp_path / "v2.xml"
    v2.write_text(
        ff.document(
            "2026-02-01T00:00:00",
            {"Interaksjon": [ff.interaction("ID_E2", "ID_I1", 2, "B01AA03", "M01AE")]},
        )
    )
    import_catalogue(engine, v1)
    import_catalogue(engine, v2)
    with engine.connect() as conn:
        old, new = load_snapshot(conn, version=1), load_snapshot(conn)
        with pytest.raises(NoCatalogue):
            load_snapshot(conn, version=9)
    assert [i.relevance for i in old.interactions] == [1]
    assert [i.relevance for i in new.interactions] == [2]
    group_b = new.interactions[0].groups[1]
    assert group_b.members[0].atc == "M01AE"
    assert new.interactions[0].references == (("Demo 2026", "https://example.org/ref"),)


def test_no_catalogue_yet_is_a_clear_error(engine):
    with engine.connect() as conn, pytest.raises(NoCatalogue, match="fest import"):
        load_snapshot(conn)
