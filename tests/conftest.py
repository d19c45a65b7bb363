"""Shared fixtures: databases (SQLite always, PostgreSQL when configured) and the API world.

PostgreSQL tests run when ``MEDLOOP_TEST_POSTGRES_URL`` points at a server; each test gets
a database of its own, created and dropped here.  With ``MEDLOOP_REQUIRE_POSTGRES=1`` (CI)
an unreachable server fails those tests, and a run in which no PostgreSQL test passed
fails as a whole.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Every command and read that takes a patient's state from the cache checks it against the
# tables (medloop.store.state_cache): the whole suite guards the cache's coherence.
os.environ.setdefault("MEDLOOP_VERIFY_STATE_CACHE", "1")

from hypothesis import settings  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url

from medloop.store.db import make_engine, normalise_url  # noqa: E402
from medloop.store.migrate import upgrade  # noqa: E402
from tests.api.helpers import World, make_world  # noqa: E402

# The build machines are shared: time limits per example would fail on load, not on bugs.
settings.register_profile("medloop", deadline=None)
settings.load_profile("medloop")

POSTGRES_URL = os.environ.get("MEDLOOP_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("MEDLOOP_REQUIRE_POSTGRES") == "1"
_postgres_passed = 0


def pytest_configure(config: pytest.Config) -> None:
    from tests import log_capture, sql_capture

    log_capture.install()
    # every SQL statement the suite sends (tests/ops/test_citus_routing.py)
    sql_capture.install()
    if not _is_worker(config) and getattr(config.option, "numprocesses", None):
        # Where the pytest-xdist workers report their share of the suite's log records and of
        # its SQL statements.
        config._medloop_scan_dir = Path(tempfile.mkdtemp(prefix="medloop-suite-scan-"))


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist (controller): hand each worker the directory for its share of the scan."""
    node.workerinput["medloop_scan_dir"] = str(node.config._medloop_scan_dir)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``last`` run after all others (the scans of the whole suite's logs and SQL)."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _postgres_passed
    if report.when == "call" and report.passed and "postgres" in report.keywords:
        _postgres_passed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests import log_capture, sql_capture

    _drop_templates()  # this process's migrated template database (``_migrated_copy``)
    config = session.config
    if _is_worker(config):
        # A worker reports its share; the controller counts PostgreSQL passes and judges.
        scan_dir, worker = (
            Path(config.workerinput["medloop_scan_dir"]),
            config.workerinput["workerid"],
        )
        log_capture.report(scan_dir, worker)
        sql_capture.report(scan_dir, worker)
        return
    scan_dir = getattr(config, "_medloop_scan_dir", None)
    if scan_dir is not None and session.testscollected and not config.option.collectonly:
        from tests import citus_routing

        for check, problem in (
            ("log scan (tests/log_capture.py)", log_capture.verdict(scan_dir)),
            ("SQL routing check (tests/citus_routing.py)", citus_routing.verdict(scan_dir)),
        ):
            if problem is not None:
                print(f"\nthe whole suite's {check}: {problem}")
                session.exitstatus = 1
    if (
        REQUIRE_POSTGRES
        and _postgres_passed == 0
        and session.testscollected
        and not session.config.option.collectonly
    ):
        print("\nMEDLOOP_REQUIRE_POSTGRES=1 but no PostgreSQL test passed")
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _settings_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process reads its settings once (``medloop.settings.current``); a test that changes
    the environment with ``monkeypatch`` gets them read again, as a new process would."""
    from medloop import settings

    settings.forget()
    setenv, delenv = monkeypatch.setenv, monkeypatch.delenv

    def setenv_afresh(*args: Any, **kwargs: Any) -> None:
        setenv(*args, **kwargs)
        settings.forget()

    def delenv_afresh(*args: Any, **kwargs: Any) -> None:
        delenv(*args, **kwargs)
        settings.forget()

    monkeypatch.setenv = setenv_afresh  # type: ignore[method-assign]
    monkeypatch.delenv = delenv_afresh  # type: ignore[method-assign]
    yield
    settings.forget()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'medloop.db'}"


@contextmanager
def _postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the test server, dropped afterwards (skipped, or failed
    under ``MEDLOOP_REQUIRE_POSTGRES=1``, when there is no server)."""
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("MEDLOOP_REQUIRE_POSTGRES=1 but MEDLOOP_TEST_POSTGRES_URL is not set")
        pytest.skip("MEDLOOP_TEST_POSTGRES_URL not set")
    admin_url = normalise_url(POSTGRES_URL)
    name = f"medloop_t_{uuid.uuid4().hex[:12]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required but unusable: {exc}")
        pytest.skip(f"PostgreSQL unusable: {exc}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with _postgres_database() as url:
        yield url


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    """One database per test module and kind, for read-only tests that would otherwise build
    the same world for every case (e.g. a scope x role x organisation matrix of reads)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('module-db') / 'medloop.db'}"
    else:
        with _postgres_database() as url:
            yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on SQLite and on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def engine(db_url: str):
    """An engine on the test's own database, its schema at the migration head: a copy of a
    database this test process migrated once (``_migrated_copy``), not a run of every
    migration per test (the migrations were most of a test's set-up: 0.3 s on SQLite and
    0.5-0.7 s on PostgreSQL of each of ~1 600 tests). ``upgrade`` still runs, and finds the
    copy at the head; the migrations themselves are tested from an empty database in
    tests/store/test_migrations.py."""
    _migrated_copy(db_url)
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


_templates: dict[str, str] = {}
"""This process's migrated databases by kind: a SQLite file, a PostgreSQL database name."""


def _migrated_copy(db_url: str) -> None:
    """Make the empty database at ``db_url`` a copy of one migrated to the head: SQLite by
    the backup API into the new file, PostgreSQL by recreating the test's database from a
    template database (``CREATE DATABASE … TEMPLATE``)."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        import sqlite3

        template = _templates.get("sqlite")
        if template is None:
            template = str(Path(tempfile.mkdtemp(prefix="medloop-template-")) / "head.db")
            migrated = make_engine(f"sqlite:///{template}")
            upgrade(migrated)
            migrated.dispose()
            _templates["sqlite"] = template
        source = sqlite3.connect(template)
        target = sqlite3.connect(url.database)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        return
    admin = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        template = _templates.get("postgres")
        if template is None:
            template = f"medloop_head_{uuid.uuid4().hex[:12]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{template}"'))
            _templates["postgres"] = template
            migrated = make_engine(url.set(database=template).render_as_string(False))
            upgrade(migrated)
            migrated.dispose()  # a template database must have no sessions when copied
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{url.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{url.database}" TEMPLATE "{template}"'))
    finally:
        admin.dispose()


def _drop_templates() -> None:
    template = _templates.pop("postgres", None)
    if template is not None and POSTGRES_URL:
        admin = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)'))
        finally:
            admin.dispose()


@pytest.fixture
def world(engine) -> World:
    """The API over ``engine`` with the demo catalogue and one patient (tests/api/helpers.py)."""
    return make_world(engine)
