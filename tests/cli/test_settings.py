"""One settings object (``medloop.settings.Settings``), read from the environment in one place
and passed on explicitly: to the API and, with ``medloop serve --workers N``, to every worker
process inside uvicorn's configuration, never by writing ``os.environ``."""

from __future__ import annotations

import ast
import multiprocessing
import os
import pickle
import re
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fest.parser import Limits
from medloop.cli import app
from medloop.settings import (
    DEFAULT_DATABASE_URL,
    CdsSettingsSection,
    CheckpointSettings,
    EreseptSettings,
    InvalidSetting,
    JobsSettings,
    OpsSettings,
    ReplicaSettings,
    Settings,
)
from tests.reference import REPO

# The variables Settings reads: no other module may read them.
SETTINGS_VARIABLES = {
    "MEDLOOP_DATABASE_URL",
    "MEDLOOP_JWT_PUBLIC_KEY_FILE",
    "MEDLOOP_JWT_JWKS_FILE",
    "MEDLOOP_JWT_ISSUER",
    "MEDLOOP_JWT_AUDIENCE",
    "MEDLOOP_JWT_MAX_LIFETIME_SECONDS",
    "MEDLOOP_ROUTE_THREADS",
    "MEDLOOP_MAX_BODY_BYTES",
    "MEDLOOP_ALLOW_DEV_KEYS",
    "MEDLOOP_FEST_XSD_DIR",
    "MEDLOOP_DEMO_CATALOGUE",
    # the subsystems' sections (#14: every variable read in one place)
    "MEDLOOP_SCHEDULER",
    "MEDLOOP_CATALOGUE_DIR",
    "MEDLOOP_RUN_DIR",
    "MEDLOOP_LOG_LEVEL",
    "MEDLOOP_LOG_FORMAT",
    "MEDLOOP_ACCESS_LOG",
    "MEDLOOP_METRICS_TOKEN",
    "MEDLOOP_VERIFY_STATE_CACHE",
    "MEDLOOP_TRACE",
    "MEDLOOP_DATABASE_REPLICA_URLS",
    "MEDLOOP_REPLICA_CHECK_SECONDS",
    "MEDLOOP_ERESEPT_XSD_DIR",
    "MEDLOOP_ERESEPT_TRUST_STORE",
    "MEDLOOP_ERESEPT_MAX_BYTES",
    "MEDLOOP_ERESEPT_MAX_DEPTH",
    "MEDLOOP_ERESEPT_MAX_EMBEDDING",
    "MEDLOOP_CDS_CLIENTS_FILE",
    "MEDLOOP_CDS_BASE_URL",
    "MEDLOOP_CDS_CORS_ORIGINS",
    "MEDLOOP_FHIR_CORS_ORIGINS",
    "MEDLOOP_AUDIT_CHECKPOINT_DIR",
    "MEDLOOP_AUDIT_SIGNING_KEY_FILE",
    "MEDLOOP_RENAL_MAX_AGE_DAYS",
}


def test_every_setting_comes_from_the_environment_given(tmp_path):
    settings = Settings.from_env(
        environ={
            "MEDLOOP_DATABASE_URL": "postgresql://db/medloop",
            "MEDLOOP_JWT_JWKS_FILE": str(tmp_path / "jwks.json"),
            "MEDLOOP_JWT_ISSUER": "https://helseid.example",
            "MEDLOOP_JWT_AUDIENCE": "medloop",
            "MEDLOOP_JWT_MAX_LIFETIME_SECONDS": "600",
            "MEDLOOP_ROUTE_THREADS": "4",
            "MEDLOOP_MAX_BODY_BYTES": "2048",
            "MEDLOOP_ALLOW_DEV_KEYS": "1",
            "MEDLOOP_FEST_XSD_DIR": str(tmp_path),
            "MEDLOOP_DEMO_CATALOGUE": str(tmp_path / "demo.xml"),
            "MEDLOOP_SCHEDULER": " Off ",
            "MEDLOOP_CATALOGUE_DIR": str(tmp_path / "incoming"),
            "MEDLOOP_RUN_DIR": str(tmp_path / "run"),
            "MEDLOOP_LOG_LEVEL": "debug",
            "MEDLOOP_LOG_FORMAT": "console",
            "MEDLOOP_ACCESS_LOG": "off",
            "MEDLOOP_METRICS_TOKEN": "s3cret",
            "MEDLOOP_VERIFY_STATE_CACHE": "1",
            "MEDLOOP_TRACE": str(tmp_path / "trace"),
            "MEDLOOP_DATABASE_REPLICA_URLS": " postgresql://r1/m , ,postgresql://r2/m",
            "MEDLOOP_REPLICA_CHECK_SECONDS": "0.5",
            "MEDLOOP_ERESEPT_XSD_DIR": str(tmp_path / "xsd"),
            "MEDLOOP_ERESEPT_TRUST_STORE": str(tmp_path / "ca"),
            "MEDLOOP_ERESEPT_MAX_BYTES": "1000",
            "MEDLOOP_ERESEPT_MAX_DEPTH": "10",
            "MEDLOOP_ERESEPT_MAX_EMBEDDING": "2",
            "MEDLOOP_CDS_CLIENTS_FILE": str(tmp_path / "clients.json"),
            "MEDLOOP_CDS_BASE_URL": "https://medloop.example/",
            "MEDLOOP_CDS_CORS_ORIGINS": "https://ehr.example/, https://other.example",
            "MEDLOOP_FHIR_CORS_ORIGINS": "https://app.example:8443, http://localhost:3000/",
            "MEDLOOP_AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
            "MEDLOOP_AUDIT_SIGNING_KEY_FILE": str(tmp_path / "key.pem"),
            "MEDLOOP_FEST_MAX_XML_BYTES": "123",
            "MEDLOOP_RENAL_MAX_AGE_DAYS": "30",
        }
    )

    assert settings == Settings(
        database_url="postgresql://db/medloop",
        jwks_file=tmp_path / "jwks.json",
        issuer="https://helseid.example",
        audience="medloop",
        max_lifetime_seconds=600,
        route_threads=4,
        max_body_bytes=2048,
        allow_dev_keys=True,
        fest_xsd_dir=tmp_path,
        demo_catalogue=tmp_path / "demo.xml",
        fhir_cors_origins=("https://app.example:8443", "http://localhost:3000"),
        jobs=JobsSettings(scheduler=False, catalogue_dir=tmp_path / "incoming"),
        ops=OpsSettings(
            run_dir=tmp_path / "run",
            log_level="DEBUG",
            log_format="console",
            access_log=False,
            metrics_token="s3cret",
            verify_state_cache=True,
            trace_dir=tmp_path / "trace",
        ),
        replicas=ReplicaSettings(
            urls=("postgresql://r1/m", "postgresql://r2/m"), check_seconds=0.5
        ),
        eresept=EreseptSettings(
            xsd_dir=tmp_path / "xsd",
            trust_store=tmp_path / "ca",
            max_bytes=1000,
            max_depth=10,
            max_embedding=2,
        ),
        cds=CdsSettingsSection(
            clients_file=tmp_path / "clients.json",
            base_url="https://medloop.example",
            cors_origins=("https://ehr.example", "https://other.example"),
        ),
        checkpoints=CheckpointSettings(
            directory=tmp_path / "checkpoints", key_file=tmp_path / "key.pem"
        ),
        fest_limits=Limits(max_xml_bytes=123),
        renal_max_age_days=30,
    )
    assert not settings.uses_dev_keys


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MEDLOOP_ERESEPT_MAX_DEPTH", "deep", "MEDLOOP_ERESEPT_MAX_DEPTH must be a whole number"),
        ("MEDLOOP_ERESEPT_MAX_BYTES", "0", "MEDLOOP_ERESEPT_MAX_BYTES must be positive"),
        ("MEDLOOP_FEST_MAX_XML_BYTES", "lots", "MEDLOOP_FEST_MAX_XML_BYTES must be a positive"),
        ("MEDLOOP_RENAL_MAX_AGE_DAYS", "-3", "MEDLOOP_RENAL_MAX_AGE_DAYS must be a positive"),
        ("MEDLOOP_CDS_CORS_ORIGINS", "*", "MEDLOOP_CDS_CORS_ORIGINS names origins, not '*'"),
        ("MEDLOOP_FHIR_CORS_ORIGINS", "https://a.example, *", "MEDLOOP_FHIR_CORS_ORIGINS names"),
        # what no browser sends as its Origin would match nothing: refused, named
        ("MEDLOOP_FHIR_CORS_ORIGINS", "https://app.example/launch", "'https://app.example/l"),
        ("MEDLOOP_FHIR_CORS_ORIGINS", "app.example", "'app.example' is not an origin"),
        ("MEDLOOP_FHIR_CORS_ORIGINS", "https://App.example", "is not an origin"),
        ("MEDLOOP_CDS_CORS_ORIGINS", "https://ehr.example:port", "is not an origin"),
        ("MEDLOOP_REPLICA_CHECK_SECONDS", "soon", "MEDLOOP_REPLICA_CHECK_SECONDS must be"),
    ],
)
def test_an_unusable_subsystem_setting_names_its_variable(variable, value, message):
    with pytest.raises(InvalidSetting, match=message):
        Settings.from_env(environ={variable: value})


def test_a_trace_setting_naming_a_file_is_refused_and_stops_a_command_with_exit_2(
    monkeypatch, tmp_path, sqlite_url
):
    """MEDLOOP_TRACE names a directory the serving processes write into: a file there used to
    end ``medloop serve`` in a traceback when the first worker tried to make it a directory."""
    taken = tmp_path / "trace.json"
    taken.write_text("{}")
    with pytest.raises(InvalidSetting, match="MEDLOOP_TRACE must name a directory"):
        Settings.from_env(environ={"MEDLOOP_TRACE": str(taken)})
    # a directory, existing or not yet, is taken as it is
    assert Settings.from_env(environ={"MEDLOOP_TRACE": str(tmp_path)}).ops.trace_dir == tmp_path
    later = tmp_path / "later"
    assert Settings.from_env(environ={"MEDLOOP_TRACE": str(later)}).ops.trace_dir == later

    monkeypatch.setenv("MEDLOOP_TRACE", str(taken))
    # every command reads the settings first (``serve`` among them; a command that returns is
    # used here so that a regression fails rather than serves)
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", sqlite_url])

    assert result.exit_code == 2
    assert "MEDLOOP_TRACE must name a directory" in result.output
    assert "Traceback" not in result.output


def test_the_process_reads_its_settings_once_and_the_cli_installs_its_own(monkeypatch):
    from medloop import settings as process

    first = process.current()
    assert process.current() is first  # read once, not per use
    chosen = Settings.from_env(environ={"MEDLOOP_METRICS_TOKEN": "chosen"})
    process.install(chosen)
    assert process.current().ops.metrics_token == "chosen"


def test_the_database_url_given_wins_and_an_empty_environment_gives_the_defaults():
    assert Settings.from_env(environ={}).database_url == DEFAULT_DATABASE_URL
    assert Settings.from_env(environ={}).uses_dev_keys
    chosen = Settings.from_env("sqlite:///x.db", environ={"MEDLOOP_DATABASE_URL": "sqlite://"})
    assert chosen.database_url == "sqlite:///x.db"


def test_an_unusable_setting_names_its_variable():
    with pytest.raises(InvalidSetting, match="MEDLOOP_MAX_BODY_BYTES"):
        Settings.from_env(environ={"MEDLOOP_MAX_BODY_BYTES": "12"})


def test_an_unusable_setting_stops_any_command_with_exit_2(monkeypatch, sqlite_url):
    monkeypatch.setenv("MEDLOOP_ROUTE_THREADS", "many")

    result = CliRunner().invoke(app, ["db", "upgrade", "--db", sqlite_url])

    assert result.exit_code == 2
    assert "MEDLOOP_ROUTE_THREADS" in result.output


def environment_reads(tree: ast.AST) -> set[str]:
    """Names read with ``….get("X")``, ``getenv("X")`` or ``environ["X"]``."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("get", "getenv"):
                found.add(node.args[0].value)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            found.add(node.slice.value)
    return found


def test_only_medloop_settings_reads_the_settings_variables():
    readers = {}
    for path in sorted((REPO / "medloop").rglob("*.py")):
        read = environment_reads(ast.parse(path.read_text(encoding="utf-8")))
        if read & SETTINGS_VARIABLES:
            readers[str(path.relative_to(REPO))] = sorted(read & SETTINGS_VARIABLES)

    assert readers == {"medloop/settings.py": sorted(SETTINGS_VARIABLES)}


def test_the_reader_scan_sees_a_second_reader():
    source = 'import os\nURL = os.environ.get("MEDLOOP_DATABASE_URL")\nX = os.environ["Y"]\n'
    assert environment_reads(ast.parse(source)) == {"MEDLOOP_DATABASE_URL", "Y"}


def _worker_settings(config) -> tuple[str, str, str | None]:
    """What uvicorn does in a worker: build the app from the configuration it was given."""
    app_ = config.load_app()()
    engine = app_.state.api.engine
    return (
        app_.state.settings.database_url,
        engine.url.render_as_string(hide_password=False),
        os.environ.get("MEDLOOP_DATABASE_URL"),
    )


@pytest.mark.postgres
def test_serve_hands_its_settings_to_the_workers_without_writing_the_environment(
    monkeypatch, postgres_url, tmp_path
):
    import uvicorn.supervisors

    supervised = []

    class Supervisor:
        def __init__(self, config, sockets):
            supervised.append(config)
            for sock in sockets:
                sock.close()

        def run(self):
            pass

    monkeypatch.setattr(uvicorn.supervisors, "Multiprocess", Supervisor)
    monkeypatch.setenv("MEDLOOP_ALLOW_DEV_KEYS", "1")
    monkeypatch.setenv("MEDLOOP_SCHEDULER", "off")
    monkeypatch.setenv("MEDLOOP_ROUTE_THREADS", "3")
    monkeypatch.delenv("MEDLOOP_DATABASE_URL", raising=False)
    # prometheus_client is loaded in this test process already: its folder must be given.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    before = dict(os.environ)

    result = CliRunner().invoke(
        app, ["serve", "--db", postgres_url, "--workers", "2", "--port", "0"]
    )

    assert result.exit_code == 0, result.output
    assert dict(os.environ) == before
    (config,) = supervised
    assert config.workers == 2
    given = config.medloop_settings
    # The settings read once, with the server's run folder (heartbeat, readiness) on board.
    assert given.ops.run_dir is not None and given.ops.run_dir.name.startswith("medloop-run-")
    read = Settings.from_env(postgres_url)
    assert given == replace(read, ops=replace(read.ops, run_dir=given.ops.run_dir))
    assert given.route_threads == 3
    # uvicorn pickles the configuration into each worker it spawns: do the same, and let the
    # fresh process (whose environment has no MEDLOOP_DATABASE_URL) build its app from it.
    spawned = pickle.loads(pickle.dumps(config))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        url, engine_url, variable = pool.apply(_worker_settings, (spawned,))
    assert url == postgres_url
    assert Path(engine_url).name == Path(postgres_url).name  # the worker's database
    assert variable is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://medloop:hunter2@db/medloop", "not 'mysql://medloop:***@db/medloop'"),
        ("postgresql+psycopg2://db/medloop", "must name SQLite"),
        ("not a url", "must be a database URL"),
    ],
)
def test_a_database_url_medloop_cannot_run_on_is_refused_without_its_password(url, message):
    """SQLite and PostgreSQL through psycopg 3 only: another database, driver or no URL at all
    is refused when the settings are read (it used to end a command in an import traceback),
    and the message never shows the password."""
    with pytest.raises(InvalidSetting, match=re.escape(message)) as refused:
        Settings.from_env(url, environ={})
    assert "hunter2" not in str(refused.value)
    with pytest.raises(InvalidSetting, match="MEDLOOP_DATABASE_URL"):
        Settings.from_env(environ={"MEDLOOP_DATABASE_URL": url})


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///x.db", "postgresql://u@h/d", "postgresql+psycopg://u@h/d"]
)
def test_the_database_urls_medloop_runs_on_are_taken_as_given(url):
    assert Settings.from_env(url, environ={}).database_url == url


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["db", "upgrade"], "unable to open database file"),
        (["records", "check"], "unable to open database file"),
    ],
)
def test_a_database_that_cannot_be_opened_stops_a_command_with_exit_2_and_why(
    args, reason, tmp_path
):
    """A database file in a folder that does not exist (or a server that does not answer,
    below) is named with the reason, exit 2, not a traceback."""
    url = f"sqlite:///{tmp_path}/no/such/folder/medloop.db"
    result = CliRunner().invoke(app, [*args, "--db", url])
    assert result.exit_code == 2, result.output
    assert f"error: cannot open the database {url}: {reason}" in result.output
    assert "Traceback" not in result.output


def test_a_server_that_does_not_answer_is_named_without_the_password():
    url = "postgresql+psycopg://medloop:hunter2@127.0.0.1:1/medloop"
    result = CliRunner().invoke(app, ["audit", "verify", "--db", url])
    assert result.exit_code == 2, result.output
    assert "error: cannot open the database postgresql+psycopg://medloop:***@127.0.0.1:1" in (
        result.output
    )
    assert "hunter2" not in result.output and "Traceback" not in result.output
