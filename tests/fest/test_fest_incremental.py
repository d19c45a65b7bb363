"""Property-based tests of full and incremental catalogue updates (hypothesis).

A model catalogue (domain id -> (entry id, content)) is changed batch by batch.  Each
batch is delivered either as a full file or as an increment (new/changed entries with
``Status A`` and a fresh entry id, replaced/removed entry ids with ``Status U`` and no
payload, in any order, plus stale ``U`` lines for entry ids superseded long ago).
Whatever the route, the catalogue in force must equal the model, and no stored entry
version is ever lost.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from fest import schema
from fest.loader import import_catalogue
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.fest import festfiles as ff

DOMAINS = [f"ID_G{i}" for i in range(6)]

op = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(DOMAINS), st.integers(0, 3)),
    st.tuples(st.just("remove"), st.sampled_from(DOMAINS), st.just(0)),
)
batches = st.lists(st.lists(op, min_size=1, max_size=6), min_size=1, max_size=5)


@pytest.fixture(scope="module")
def template_db() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="medloop-template-"))
    path = folder / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    yield path
    shutil.rmtree(folder)


class Model:
    def __init__(self) -> None:
        self.state: dict[str, tuple[str, str]] = {}
        self.counter = 0
        self.history: list[str] = []

    def apply(self, batch) -> tuple[list[str], list[str]]:
        """Apply a batch; return (A entries, U entry ids) of its increment."""
        before = dict(self.state)
        for kind, domain, content in batch:
            if kind == "set":
                self.counter += 1
                self.state[domain] = (f"ID_E{self.counter}", f"{content:06d}")
            else:
                self.state.pop(domain, None)
        added, expired = [], []
        for domain in DOMAINS:
            old, new = before.get(domain), self.state.get(domain)
            if new is not None and new != old:
                added.append(ff.substitution_group(new[0], domain, new[1]))
                self.history.append(new[0])
            if old is not None and old != new:
                expired.append(old[0])
        return added, expired

    def full_file(self, hentet: str) -> str:
        groups = [ff.substitution_group(e, d, c) for d, (e, c) in sorted(self.state.items())]
        return ff.document(hentet, {"Byttegruppe": groups})


def in_force(engine) -> dict[str, tuple[str, str]]:
    entry, group = schema.fest_entry, schema.fest_substitution_group
    with engine.connect() as conn:
        rows = conn.execute(
            select(entry.c.domain_id, entry.c.entry_id, group.c.code)
            .join(group, group.c.entry == entry.c.id)
            .where(entry.c.valid_to.is_(None))
        ).all()
    return {d: (e, c) for d, e, c in rows}


def stored_entry_ids(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(schema.fest_entry.c.entry_id)).scalars())


def fresh_engine(template: Path, folder: Path, name: str):
    path = folder / name
    shutil.copy(template, path)
    return make_engine(f"sqlite:///{path}")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=batches, shuffle=st.randoms(use_true_random=False), stale=st.booleans())
def test_increments_and_full_files_reach_the_same_catalogue(template_db, batches, shuffle, stale):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = Model()
        incremental = fresh_engine(template_db, folder, "inc.db")
        full = fresh_engine(template_db, folder, "full.db")
        import_catalogue(
            incremental, _write(folder, "f0.xml", model.full_file("2026-01-01T00:00:00"))
        )
        superseded: list[str] = []
        for day, batch in enumerate(batches, start=2):
            hentet = f"2026-01-{day:02d}T00:00:00"
            added, expired = model.apply(batch)
            lines = added + [ff.expired("Byttegruppe", e) for e in expired]
            if stale and superseded:
                lines.append(ff.expired("Byttegruppe", superseded[0]))  # long gone: ignored
            superseded.extend(expired)
            shuffle.shuffle(lines)
            increment = ff.document(hentet, {"Byttegruppe": lines})
            import_catalogue(
                incremental, _write(folder, f"inc{day}.xml", increment), incremental=True
            )
            import_catalogue(
                full, _write(folder, f"full{day}.xml", model.full_file(hentet)), allow_shrink=True
            )
            assert in_force(incremental) == model.state
            assert in_force(full) == model.state
        assert set(model.history) <= stored_entry_ids(incremental)
        incremental.dispose()
        full.dispose()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=batches)
def test_an_expiry_for_an_entry_replaced_in_the_same_increment_is_a_noop(template_db, batches):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = Model()
        engine = fresh_engine(template_db, folder, "db.db")
        for domain in DOMAINS[:3]:
            model.apply([("set", domain, 1)])
        import_catalogue(engine, _write(folder, "f0.xml", model.full_file("2026-01-01T00:00:00")))
        for day, batch in enumerate(batches, start=2):
            added, expired = model.apply(batch)
            # the U lines come first: they name entries the A lines of this file replace
            lines = [ff.expired("Byttegruppe", e) for e in expired] + added
            doc = ff.document(f"2026-01-{day:02d}T00:00:00", {"Byttegruppe": lines})
            import_catalogue(engine, _write(folder, f"i{day}.xml", doc), incremental=True)
            assert in_force(engine) == model.state
        engine.dispose()


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
