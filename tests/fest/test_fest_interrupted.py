"""A killed import (kill -9 mid-way) leaves the previous catalogue version in force."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fest.loader import import_catalogue
from fest.queries import active_counts, version_in_force
from medloop.store.db import normalise_url
from tests.fest import festfiles as ff

MEDLOOP = str(Path(sys.executable).with_name("medloop"))


def big_catalogue(path: Path, groups: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<FEST xmlns="{ff.M30}">')
        out.write("<HentetDato>2026-03-01T03:00:00</HentetDato><KatByttegruppe>")
        for i in range(groups):
            out.write(ff.substitution_group(f"ID_BIG_E{i}", f"ID_BIG_G{i}", f"{i:06d}"))
        out.write("</KatByttegruppe></FEST>")
    return path


def _mid_import(db_url: str, pid: int) -> bool:
    """True once the importing process has written inside its (uncommitted) transaction."""
    url = make_url(normalise_url(db_url))
    if url.get_backend_name() == "sqlite":
        wal = Path(url.database + "-wal")
        return wal.exists() and wal.stat().st_size > 1_000_000
    admin = create_engine(url.set(database="postgres"))
    try:
        with admin.connect() as conn:
            return bool(
                conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = :db AND backend_xid IS NOT NULL"
                    ),
                    {"db": url.database},
                )
            )
    finally:
        admin.dispose()


def test_kill_9_during_an_import_leaves_the_previous_version_in_force(engine, db_url, tmp_path):
    small = tmp_path / "v1.xml"
    small.write_text(
        ff.document(
            "2026-01-01T00:00:00",
            {"Byttegruppe": [ff.substitution_group("ID_E1", "ID_G1", "000001")]},
        )
    )
    import_catalogue(engine, small)
    with engine.connect() as conn:
        before = (version_in_force(conn)["id"], active_counts(conn))

    big = big_catalogue(tmp_path / "big.xml", 80_000)
    process = subprocess.Popen(
        [MEDLOOP, "fest", "import", str(big), "--db", db_url, "--allow-shrink"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while not _mid_import(db_url, process.pid):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the import never got under way"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL

    with engine.connect() as conn:
        assert (version_in_force(conn)["id"], active_counts(conn)) == before
    # and the database is usable: the next import goes through
    again = import_catalogue(engine, big, allow_shrink=True)
    assert again.version == before[0] + 1 and again.counts["Byttegruppe"] == 80_000
