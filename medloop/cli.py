"""The ``medloop`` command line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeElapsedColumn
from rich.table import Table

from fest.errors import FestConfigurationError, FestFormatError, FestImportRejected
from medloop.settings import InvalidSetting, Settings, current, forget, install

app = typer.Typer(
    help="medloop: closed-loop medication management on the FEST drug catalogue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
fest_app = typer.Typer(
    help="The FEST drug catalogue: import, inspect, validate, synthesise.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(fest_app, name="fest")
app.add_typer(db_app, name="db")

err = Console(stderr=True)
out = Console()

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: $MEDLOOP_DATABASE_URL or sqlite:///medloop.db)."
    ),
]
EXIT_BAD_INPUT = 1
EXIT_REFUSED = 3
EXIT_CONFIG = 2  # missing or unusable configuration


def _stderr(message: str) -> None:
    """Errors and warnings go to stderr unwrapped, so they can be read by tools."""
    typer.echo(message, err=True)


def _settings(db: str | None = None) -> Settings:
    """This command's settings: the environment read once (``medloop.settings``), ``--db``
    over ``MEDLOOP_DATABASE_URL``; an unusable setting is exit 2."""
    try:
        settings = Settings.from_env(db)
    except InvalidSetting as exc:
        _stderr(f"error: {exc}")
        raise typer.Exit(2) from None
    install(settings)  # the subsystems read these, never the environment again
    return settings


def _engine(db: str | None):
    from medloop.store.db import make_engine
    from medloop.store.migrate import upgrade

    url = _settings(db).database_url
    with _database_opened(url):
        engine = make_engine(url)
        upgrade(engine)
    return engine


@contextmanager
def _database_opened(url: str) -> Iterator[None]:
    """The database at ``url`` opened (connected, its schema migrated) in the block, or exit 2
    saying which database (never its password) and why it could not be opened: a file that
    cannot be made, a server that does not answer or refuses the user, not a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        shown = make_url(url).render_as_string(hide_password=True)
        _stderr(f"error: cannot open the database {shown}: {reason[0] if reason else exc}")
        raise typer.Exit(EXIT_CONFIG) from None


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create or migrate the database schema to the newest revision."""
    engine = _engine(db)
    out.print(f"schema up to date on {engine.url.render_as_string(hide_password=True)}")


@fest_app.command("import")
def fest_import(
    path: Annotated[Path, typer.Argument(help="FEST file: .xml, .xml.gz or DMP's .zip.")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental", help="Apply on top of the catalogue in force (no expiry by absence)."
        ),
    ] = False,
    allow_shrink: Annotated[
        bool,
        typer.Option("--allow-shrink", help="Accept a full file that drops >20% of a catalogue."),
    ] = False,
    allow_older: Annotated[
        bool,
        typer.Option(
            "--allow-older", help="Accept a file with an older HentetDato than the one in force."
        ),
    ] = False,
) -> None:
    """Import a FEST M30 file as a new catalogue version (a no-op if it is already in force)."""
    from fest.loader import import_catalogue

    engine = _engine(db)
    show_bar = not as_json and err.is_terminal
    try:
        if show_bar:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task(f"importing {path.name}", total=None)
                result = import_catalogue(
                    engine,
                    path,
                    incremental=incremental,
                    allow_shrink=allow_shrink,
                    allow_older=allow_older,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                    limits=current().fest_limits,
                )
        else:
            result = import_catalogue(
                engine,
                path,
                incremental=incremental,
                allow_shrink=allow_shrink,
                allow_older=allow_older,
                limits=current().fest_limits,
            )
    except FestFormatError as exc:
        _stderr(f"error: {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except FestImportRejected as exc:
        _stderr(f"refused: {exc}")
        raise typer.Exit(EXIT_REFUSED) from None
    except FestConfigurationError as exc:
        _stderr(f"error: {exc}")
        raise typer.Exit(EXIT_CONFIG) from None
    for warning in result.warnings:
        _stderr(f"warning: {warning}")
    if as_json:
        print(json.dumps(result.as_json()))
        return
    if result.unchanged:
        out.print(
            f"{path.name} is already in force as catalogue version {result.version} "
            f"(HentetDato {result.hentet_dato}); nothing changed."
        )
    else:
        out.print(
            f"Imported {path.name} as catalogue version {result.version} ({result.mode}, "
            f"HentetDato {result.hentet_dato}) in {result.seconds:.2f} s."
        )
    out.print(_counts_table(result.counts, result.changes))


def _counts_table(
    counts: dict[str, int], changes: dict[str, dict[str, int]] | None = None
) -> Table:
    table = Table("catalogue", "in force", "added", "replaced", "expired")
    changes = changes or {}
    for kind, n in counts.items():
        table.add_row(
            kind,
            str(n),
            *(
                str(changes.get(change, {}).get(kind, 0))
                for change in ("added", "replaced", "expired")
            ),
        )
    return table


@fest_app.command("stats")
def fest_stats(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the catalogue version in force and its entry counts."""
    from fest.queries import active_counts, version_in_force

    engine = _engine(db)
    with engine.connect() as conn:
        current = version_in_force(conn)
        counts = active_counts(conn)
    if current is None:
        if as_json:
            print(json.dumps({"version": None, "hentet_dato": None, "counts": counts}))
        else:
            _stderr("No catalogue imported yet: run `medloop fest import PATH`.")
        raise typer.Exit(EXIT_BAD_INPUT)
    if as_json:
        print(
            json.dumps(
                {"version": current["id"], "hentet_dato": current["hentet_dato"], "counts": counts}
            )
        )
        return
    out.print(
        f"Catalogue version {current['id']} ({current['mode']}), "
        f"HentetDato {current['hentet_dato']}, "
        f"from {current['source_name']} imported {current['imported_at']}"
    )
    out.print(_counts_table(counts))
    for warning in current["warnings"]:
        out.print(f"warning: {warning}", highlight=False)


@fest_app.command("synth")
def fest_synth(
    out_path: Annotated[Path, typer.Argument(metavar="OUT.xml", help="Where to write the file.")],
    scale: Annotated[
        float, typer.Option(help="1.0 ≈ production size (~11k packages, ~100+ MB).")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 0,
) -> None:
    """Write a synthetic FEST catalogue with production-like proportions (valid against the XSD)."""
    from fest.synth import write_synthetic

    if scale <= 0:
        _stderr("error: --scale must be positive")
        raise typer.Exit(EXIT_BAD_INPUT)
    counts = write_synthetic(out_path, scale=scale, seed=seed)
    out.print(f"wrote {out_path} ({out_path.stat().st_size / 1e6:.1f} MB)")
    out.print(_counts_table(counts))


@fest_app.command("validate")
def fest_validate(
    path: Annotated[Path, typer.Argument(help="FEST file: .xml, .xml.gz or .zip.")],
    xsd_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder with ER-M30-2014-12-01.xsd and its imports "
            "(default: $MEDLOOP_FEST_XSD_DIR)."
        ),
    ] = None,
) -> None:
    """Validate a FEST file against the official M30 XSD; prints every violation with its line."""
    from fest.validate import SchemaNotFound, validate_file

    directory = xsd_dir or _settings().fest_xsd_dir
    try:
        errors = validate_file(path, directory, current().fest_limits)
    except SchemaNotFound as exc:
        _stderr(f"error: {exc}")
        raise typer.Exit(2) from None
    except FestFormatError as exc:
        _stderr(f"error: {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if errors:
        for error in errors:
            _stderr(str(error))
        _stderr(f"{path}: {len(errors)} schema violation(s)")
        raise typer.Exit(EXIT_BAD_INPUT)
    out.print(f"{path}: valid against the FEST M30 schema")


DEMO_DATABASE = "medloop-demo.db"


@app.command("demo")
def demo(
    db: Annotated[
        str | None,
        typer.Option("--db", help=f"Database URL (default: a fresh ./{DEMO_DATABASE}, recreated)."),
    ] = None,
    port: Annotated[int, typer.Option(help="Port to serve on (127.0.0.1 only).")] = 8000,
    no_serve: Annotated[
        bool,
        typer.Option("--no-serve", help="Build the demo world and print tokens; do not serve."),
    ] = False,
) -> None:
    """Build the demo world (catalogue, GP practice, pharmacy, nursing home with residents) and
    serve the web pages (with the DEMO sign-in) and the API on 127.0.0.1 with offline docs at
    /docs; prints first the address to open and who to sign in as, then bearer tokens."""
    from fest.queries import active_counts, version_in_force
    from medloop.demo import GP, NURSE, PHARMACIST, SECOND_NURSE, build

    settings = _settings(db)
    if db is None:
        for suffix in ("", "-wal", "-shm"):
            Path(DEMO_DATABASE + suffix).unlink(missing_ok=True)
        db = f"sqlite:///{DEMO_DATABASE}"
    engine = _engine(db)
    with engine.connect() as conn:
        before = version_in_force(conn)
    from datetime import timedelta

    lifetime = settings.max_lifetime_seconds
    try:
        world = build(engine, settings.demo_catalogue, token_lifetime=timedelta(seconds=lifetime))
    except (FestFormatError, FestImportRejected) as exc:
        _stderr(f"error: {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    with engine.connect() as conn:
        current = version_in_force(conn)
        counts = active_counts(conn)
    assert current is not None
    if not no_serve:
        # First what a person needs: where to click. Integrators' tokens follow below.
        typer.echo(
            f"\nOpen http://127.0.0.1:{port}/ in a browser and sign in as a demo person (DEMO "
            "sign-in, no password):\n"
            f"  Sykepleier  {NURSE.personnel.name} — the ward round on Solbakken 1. etasje\n"
            f"  Sykepleier  {SECOND_NURSE.personnel.name} (avdelingsleder) — also witness\n"
            f"  Lege        {GP.personnel.name} — the GP's patients\n"
            f"  Farmasøyt   {PHARMACIST.personnel.name} — the multidose pharmacy\n"
            "  Pasient     Kari Nordmann — her own list and access log\n"
        )
    unchanged = before is not None and before["id"] == current["id"]
    state = "already in force" if unchanged else "imported"
    out.print(
        f"Demo catalogue {state}: version {current['id']}, HentetDato {current['hentet_dato']} "
        f"on {engine.url.render_as_string(hide_password=True)}"
    )
    out.print(_counts_table(counts))
    built = "already built" if world.already_built else "built"
    out.print(
        f"Demo world {built}: GP practice, pharmacy and nursing home; "
        f"{len(world.patients)} residents (national ids {', '.join(world.patients)})."
    )
    for note in world.notes:
        out.print(note, highlight=False)
    out.print("[bold]Demo data only: not a clinical source.[/bold]")
    typer.echo(
        f"\nBearer tokens (development keys, valid {lifetime / 3600:g} h; the ward-admin "
        "nurse may also admit and discharge):"
    )
    for role, token in world.tokens.items():
        typer.echo(f"  {role:<10} {token}")
    first = next(iter(world.patients.values()))
    typer.echo(
        "\nTry:\n  curl -H 'Authorization: Bearer <gp token>' "
        f"http://127.0.0.1:{port}/patients/{first}/list"
    )
    if no_serve:
        return
    from dataclasses import replace

    _serve(
        replace(settings, database_url=db, allow_dev_keys=True, demo_sign_in=True),
        "127.0.0.1",
        port,
    )


def _serve(settings: Settings, host: str, port: int, *, workers: int = 1) -> None:
    from medloop.api.auth import TokenVerifier

    if settings.uses_dev_keys:
        if not settings.allow_dev_keys:
            _stderr(
                "error: no token keys configured: set MEDLOOP_JWT_PUBLIC_KEY_FILE or "
                "MEDLOOP_JWT_JWKS_FILE (and MEDLOOP_JWT_ISSUER), or MEDLOOP_ALLOW_DEV_KEYS=1 "
                "to trust the bundled development keys that anyone can sign with"
            )
            raise typer.Exit(2)
        _stderr(
            "warning: trusting the bundled DEVELOPMENT keys (medloop/dev_keys); "
            "never do this with real patient data"
        )
    if workers > 1 and settings.database_url.startswith("sqlite"):
        _stderr("error: --workers > 1 needs PostgreSQL (SQLite has one serving process)")
        raise typer.Exit(2)
    run_dir = _prepare_run_dir(workers)  # before the app (and prometheus_client) is imported
    # The run folder (heartbeat, readiness) is part of the settings this process and every
    # worker (SettingsConfig) use.
    settings = replace(settings, ops=replace(settings.ops, run_dir=run_dir))
    install(settings)
    try:
        # cds_auth reaches prometheus_client through the API package: imported only now.
        from medloop.api.cds_auth import CdsSettings

        try:
            # The token configuration is checked before anything is served (and before the
            # schema is migrated): a server that cannot verify a token must not start.
            TokenVerifier(settings)
            CdsSettings.from_env(settings.issuer)  # the trusted CDS clients, likewise
        except InvalidSetting as exc:
            _stderr(f"error: {exc}")
            raise typer.Exit(2) from None
        _run_server(settings, host, port, workers)
    finally:
        _forget_run_dir(run_dir)


def _run_server(settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    from medloop.api import trace
    from medloop.api.app import create_app
    from medloop.api.server import HttpProtocol, SettingsConfig, settle_heap
    from medloop.ops.logs import lean_records

    with _database_opened(settings.database_url):
        app_ = create_app(settings)  # migrates the schema, once, before any worker starts
    typer.echo(f"Serving on http://{host}:{port} (docs: /docs, schema: /openapi.json)")
    # The scheduled jobs run in this process only (uvicorn's workers are its children); on
    # PostgreSQL each run also takes an advisory lock, so other servers' schedulers skip it.
    scheduler = _start_scheduler(settings.database_url)
    try:
        if workers > 1:
            from uvicorn.supervisors import Multiprocess

            # The workers get these settings inside uvicorn's configuration (pickled into each
            # worker process), not through os.environ.
            config = SettingsConfig(
                settings,
                host=host,
                port=port,
                workers=workers,
                log_level="warning",
                http=HttpProtocol,
                log_config=None,
            )
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            checkpointer = _start_wal_checkpointer(app_.state.api.engine)
            settle_heap()
            lean_records()
            try:
                uvicorn.run(
                    trace.install(app_),  # the app itself unless MEDLOOP_TRACE is set
                    host=host,
                    port=port,
                    log_level="warning",
                    http=HttpProtocol,
                    log_config=None,
                )
            finally:
                if checkpointer is not None:
                    checkpointer.stop()
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)


def _start_wal_checkpointer(engine):
    """On SQLite (one serving process, every route on the event loop), the write-ahead log is
    checkpointed by a thread of its own rather than by whichever request commits past the
    threshold (``medloop.store.wal``); ``None`` on PostgreSQL or an in-memory database."""
    from medloop.store.wal import WalCheckpointer

    try:
        return WalCheckpointer(engine).start()
    except ValueError:
        return None


def _forget_run_dir(run_dir: Path) -> None:
    """Remove the run folder and the variables that name it (a server started in-process, as
    the tests do, leaves nothing behind for the next one)."""
    import shutil

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").startswith(str(run_dir)):
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    forget()
    shutil.rmtree(run_dir, ignore_errors=True)


def _prepare_run_dir(workers: int) -> Path:
    """A fresh folder for this server's run: the scheduler's heartbeat (``/health/ready``) and,
    with several workers, the metrics every worker writes (``PROMETHEUS_MULTIPROC_DIR``, which
    must be set before ``prometheus_client`` is first imported)."""
    import sys
    import tempfile

    from medloop.ops import logs

    logs.configure()
    run_dir = Path(tempfile.mkdtemp(prefix="medloop-run-"))
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        if "prometheus_client" in sys.modules:
            raise RuntimeError("prometheus_client was imported before the metrics folder was set")
        metrics_dir = run_dir / "metrics"
        metrics_dir.mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    return run_dir


def _start_scheduler(database_url: str):
    """The job scheduler on its own engine, or ``None`` when ``MEDLOOP_SCHEDULER=off``."""
    from medloop.jobs import start_scheduler
    from medloop.store.db import make_engine

    scheduler = start_scheduler(make_engine(database_url))
    if scheduler is not None:
        typer.echo("Scheduled jobs: on (MEDLOOP_SCHEDULER=off to disable)")
    return scheduler


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    db: DbOption = None,
    workers: Annotated[
        int,
        typer.Option(
            help="Worker processes (PostgreSQL); each runs its routes in MEDLOOP_ROUTE_THREADS "
            "threads (default 4 on PostgreSQL).",
            min=1,
            envvar="MEDLOOP_WORKERS",
        ),
    ] = 1,
) -> None:
    """Run the HTTP API (uvicorn) on the database ($MEDLOOP_DATABASE_URL or --db), after
    migrating its schema. Token keys: MEDLOOP_JWT_PUBLIC_KEY_FILE or MEDLOOP_JWT_JWKS_FILE with
    MEDLOOP_JWT_ISSUER and MEDLOOP_JWT_AUDIENCE; MEDLOOP_ALLOW_DEV_KEYS=1 trusts the bundled
    development keys instead."""
    _serve(_settings(db), host, port, workers=workers)


@app.command("token")
def token(
    role: Annotated[str, typer.Option(help="gp, nurse, pharmacist or patient.")],
    hpr: Annotated[str | None, typer.Option(help="HPR number (health personnel).")] = None,
    org: Annotated[str | None, typer.Option(help="Organisation id (health personnel).")] = None,
    patient: Annotated[
        str | None, typer.Option("--patient", help="National id (role patient).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    ward_admin: Annotated[
        bool,
        typer.Option(
            "--ward-admin", help="Nurse only: may create and configure wards, admit and discharge."
        ),
    ] = False,
    hours: Annotated[
        float,
        typer.Option(help="Lifetime in hours (at most MEDLOOP_JWT_MAX_LIFETIME_SECONDS)."),
    ] = 1.0,
    scope: Annotated[
        str | None,
        typer.Option(
            help="SMART scopes for /fhir, space-separated (e.g. 'user/*.rs "
            "user/MedicationRequest.c'); without it the token reaches nothing under /fhir."
        ),
    ] = None,
    launch_patient: Annotated[
        str | None,
        typer.Option(
            "--launch-patient",
            help="SMART launch context: the patient id patient/ scopes of a health personnel "
            "token reach.",
        ),
    ] = None,
) -> None:
    """Print a bearer token signed with the DEVELOPMENT key (for the demo and tests only)."""
    from datetime import timedelta

    from medloop.api.auth import Role, Unauthenticated, issue_token

    try:
        chosen = Role(role)
    except ValueError:
        _stderr(f"error: --role must be one of {', '.join(r.value for r in Role)}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    subject = patient if chosen is Role.PATIENT else hpr
    if subject is None or (chosen is not Role.PATIENT and org is None):
        _stderr("error: a patient token needs --patient; other roles need --hpr and --org")
        raise typer.Exit(EXIT_BAD_INPUT)
    longest = _settings().max_lifetime_seconds
    if not 0 < hours * 3600 <= longest:
        _stderr(
            f"error: --hours must be more than 0 and at most {longest / 3600:g} "
            "(MEDLOOP_JWT_MAX_LIFETIME_SECONDS); the server refuses longer-lived tokens"
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    if ward_admin and chosen is not Role.NURSE:
        _stderr("error: --ward-admin is for nurse tokens only")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        signed = issue_token(
            chosen,
            subject,
            None if chosen is Role.PATIENT else org,
            name=name,
            ward_admin=ward_admin,
            scope=scope,
            patient=launch_patient,
            lifetime=timedelta(hours=hours),
        )
    except Unauthenticated as exc:
        _stderr(f"error: {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    print(signed)


EXIT_CHECK_PROBLEM = 2


@app.command("check")
def check_medications(
    db: DbOption = None,
    include_all: Annotated[
        bool, typer.Option("--all", help="Include relevance-3 ('no action needed') interactions.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON response (or problem object) on stdout.")
    ] = False,
) -> None:
    """Check a medication list read as JSON on stdin against the catalogue in force.

    Each medication names its drug by varenr, atc or fest_id (contract: medloop/check.py).

    Exit 2 with a problem object for an invalid request, unknown medications or no catalogue.
    """
    from medloop.check import CHECK_ERRORS, check_request, describe, describe_problem, problem_for

    # Bytes: the parser names text that is not UTF-8 (a text stream raised on it).
    request = typer.get_binary_stream("stdin").read()
    try:
        outcome = check_request(_engine(db), request, include_all)
    except CHECK_ERRORS as error:
        problem = problem_for(error)
        if as_json:
            print(json.dumps(problem.as_json(), ensure_ascii=False))
        else:
            _stderr("\n".join(describe_problem(problem)))
        raise typer.Exit(EXIT_CHECK_PROBLEM) from None
    if as_json:
        print(json.dumps(outcome.as_json(), ensure_ascii=False))
    else:
        typer.echo("\n".join(describe(outcome)))


@app.command("review")
def review_medications(
    db: DbOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON response (or problem object) on stdout.")
    ] = False,
) -> None:
    """Review a medication list read as JSON on stdin (the request of `medloop check`) against
    the nursing-home criteria: NORGEP-NH, STOPP/START, renal rules, ACB, indicators.

    Contract: medloop/review.py. Exit 2 with a problem object as `medloop check` does.
    """
    from medloop.check import CHECK_ERRORS, describe_problem, problem_for
    from medloop.review import describe_review, review_request

    # Bytes: the parser names text that is not UTF-8 (a text stream raised on it).
    request = typer.get_binary_stream("stdin").read()
    try:
        outcome = review_request(_engine(db), request)
    except CHECK_ERRORS as error:
        problem = problem_for(error)
        if as_json:
            print(json.dumps(problem.as_json(), ensure_ascii=False))
        else:
            _stderr("\n".join(describe_problem(problem)))
        raise typer.Exit(EXIT_CHECK_PROBLEM) from None
    if as_json:
        print(json.dumps(outcome.as_json(), ensure_ascii=False))
    else:
        typer.echo("\n".join(describe_review(outcome)))


audit_app = typer.Typer(help="The audit log of access to patient data.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
EXIT_AUDIT_BROKEN = 1


EXIT_MISSING_CONFIGURATION = 2


@audit_app.command("verify")
def audit_verify(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    max_problems: Annotated[
        int,
        typer.Option(
            "--max-problems", min=1, help="List at most this many problems (all are counted)."
        ),
    ] = 100,
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            "--checkpoints",
            help="A directory of signed checkpoints "
            "(or one checkpoint file) the log must still agree with.",
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The checkpoints' Ed25519 public key "
            "(PEM); default: the public half of "
            "MEDLOOP_AUDIT_SIGNING_KEY_FILE.",
        ),
    ] = None,
) -> None:
    """Walk the audit log's hash chains (one per patient) from first record to last, and every
    row of patient data against the audit record of the command that appended it.

    Exit 0 when everything holds, 1 when anything was tampered with (a changed, missing,
    inserted or reordered record; a changed, deleted or added row; with --checkpoints, a
    chain cut short, dropped or re-hashed since a checkpoint, or a checkpoint whose signature
    does not hold), listing every problem up to --max-problems; 2 when --checkpoints has no
    public key to check them with.  Keep the printed digest of the chains' heads elsewhere, or
    let the audit-checkpoint job sign checkpoints.
    """
    from medloop.store.audit import verify

    anchors, notes = None, []
    if checkpoints is not None:
        from medloop import audit_checkpoints as cp

        key_file = public_key or current().checkpoints.key_file
        if key_file is None:
            _stderr(f"--checkpoints needs --public-key FILE (or {cp.KEY_VARIABLE})")
            raise typer.Exit(EXIT_MISSING_CONFIGURATION)
        try:
            key = cp.load_public_key(key_file)
        except cp.CheckpointNotConfigured as error:
            _stderr(str(error))
            raise typer.Exit(EXIT_MISSING_CONFIGURATION) from None
        found, notes = cp.load_checkpoints(checkpoints, key)
        if not found and not notes:
            notes = [f"{checkpoints}: no checkpoint files (checkpoint-*.json)"]
        anchors = cp.anchors_of(found)
    with _engine(db).connect() as conn, conn.begin():
        result = verify(conn, max_problems=max_problems, anchors=anchors, checkpoint_problems=notes)
    if as_json:
        print(json.dumps(result.as_json()))
    elif result.broken is None:
        typer.echo(
            f"audit log intact: {result.events} events in {result.chains} chains, "
            f"heads digest {result.heads}; {result.rows} rows of patient data attested"
            + ("" if anchors is None else f"; agrees with {len(found)} signed checkpoints")
        )
    else:
        link = result.broken
        _stderr(
            f"audit log broken at event {link.seq} of chain {link.chain} ({link.problem}): "
            f"expected {link.expected}, found {link.found}; the {result.events} events walked "
            "before it are intact"
            if link.problem in ("gap", "prev_hash", "hash")
            else f"audit log broken ({link.problem}): {_problem_text(link)}"
        )
        for problem in result.problems[1:]:
            _stderr(f"  {_problem_text(problem)}")
        if result.problem_count > len(result.problems):
            _stderr(
                f"  ... {result.problem_count - len(result.problems)} more problems "
                "(--max-problems)"
            )
    if not result.ok:
        raise typer.Exit(EXIT_AUDIT_BROKEN)


def _problem_text(problem: Any) -> str:
    where = "" if problem.chain is None else f"event {problem.seq} of chain {problem.chain}: "
    row = "" if problem.row is None else f" [{problem.row}]"
    return f"{where}{problem.problem}: expected {problem.expected}, found {problem.found}{row}"


jobs_app = typer.Typer(help="Scheduled jobs, run once by hand.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("list")
def jobs_list() -> None:
    """The scheduled jobs and what each does."""
    from medloop.jobs import JOBS

    for job in JOBS.values():
        typer.echo(f"{job.name}\t{job.description}")


@jobs_app.command("run")
def jobs_run(
    name: Annotated[str, typer.Argument(help="The job (see 'medloop jobs list').")],
    db: DbOption = None,
    now: Annotated[
        str | None, typer.Option(help="Run as of this ISO 8601 time with offset (default: now).")
    ] = None,
) -> None:
    """Run one job once and print its result as JSON (idempotent: a second run changes
    nothing)."""
    from datetime import datetime

    from medloop.jobs import JOBS, run_job

    if name not in JOBS:
        _stderr(f"no job {name!r}; jobs: {', '.join(JOBS)}")
        raise typer.Exit(EXIT_BAD_INPUT)
    moment = None
    if now is not None:
        try:
            moment = datetime.fromisoformat(now)
        except ValueError as error:
            _stderr(f"--now must be an ISO 8601 moment, e.g. 2026-11-20T08:00:00+01:00: {error}")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        if moment.tzinfo is None:
            _stderr("--now needs a UTC offset, e.g. 2026-11-20T08:00:00+01:00")
            raise typer.Exit(EXIT_BAD_INPUT)
    from medloop.audit_checkpoints import CheckpointNotConfigured, CheckpointRefused

    try:
        print(json.dumps(run_job(_engine(db), name, moment)))
    except CheckpointNotConfigured as error:
        _stderr(str(error))
        raise typer.Exit(EXIT_MISSING_CONFIGURATION) from None
    except CheckpointRefused as error:
        _stderr(str(error))
        raise typer.Exit(EXIT_REFUSED) from None


records_app = typer.Typer(help="The stored patient records.", no_args_is_help=True)
app.add_typer(records_app, name="records")
EXIT_UNREADABLE = 1


@records_app.command("check")
def records_check(
    db: DbOption = None,
    patient: Annotated[
        str | None, typer.Option("--patient", help="Only this patient (our patient id).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Load every stored record (of one patient, with --patient) as its model and list those
    that do not load: table, row key, column and why (never the stored value).

    Exit 0 when every record loads, 1 when one does not.
    """
    from uuid import UUID

    from medloop.store.records import check

    patient_id = None
    if patient is not None:
        try:
            patient_id = UUID(patient)
        except ValueError:
            _stderr(f"--patient must be a patient id (a UUID), not {patient!r}")
            raise typer.Exit(EXIT_BAD_INPUT) from None
    with _engine(db).connect() as conn:
        found = list(check(conn, patient_id))
    if as_json:
        print(json.dumps({"unreadable": [record.as_json() for record in found]}))
    elif not found:
        typer.echo("every stored record loads")
    else:
        for record in found:
            key = ", ".join(f"{name}={value}" for name, value in record.key.items())
            typer.echo(f"{record.table} ({key}) {record.column}: {record.reason}")
        _stderr(f"{len(found)} stored record(s) cannot be read")
    if found:
        raise typer.Exit(EXIT_UNREADABLE)


# --- e-prescription messages (medloop.eresept): reading and validating ----------------------

eresept_app = typer.Typer(
    help="National e-prescription messages (MsgHead with M1, M5, M10, M25.x, M27.1).",
    no_args_is_help=True,
)
app.add_typer(eresept_app, name="eresept")


@eresept_app.command("validate")
def eresept_validate(
    path: Annotated[Path, typer.Argument(help="The message: one MsgHead XML file.")],
    xsd_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder with eresept/ and felleskomponenter/ "
            "(default: $MEDLOOP_ERESEPT_XSD_DIR or ../shared/reference/xsd)."
        ),
    ] = None,
    trust_store: Annotated[
        Path | None,
        typer.Option(
            help="Folder of PEM certificates to verify signatures against (default: "
            "$MEDLOOP_ERESEPT_TRUST_STORE; none: signatures are reported, not verified)."
        ),
    ] = None,
) -> None:
    """Validate a message and every document in it (base64-embedded ones too) against the
    official XSDs, and check its signatures; every violation with its line on stderr.
    Exit 0 valid, 1 invalid or malformed, 2 missing configuration."""
    from dataclasses import replace

    from medloop.eresept import EreseptError, ReaderConfig, SchemaConfigMissing, read_message

    try:
        config = ReaderConfig.from_env()
    except ValueError as exc:
        _stderr(f"error: {exc}")
        raise typer.Exit(2) from None
    if xsd_dir is not None:
        config = replace(config, xsd_dir=xsd_dir)
    if trust_store is not None:
        config = replace(config, trust_store=trust_store)
    if config.trust_store is not None and not config.trust_store.is_dir():
        _stderr(
            f"error: trust store {config.trust_store} is not a folder (MEDLOOP_ERESEPT_TRUST_STORE)"
        )
        raise typer.Exit(2)
    try:
        data = path.read_bytes()
    except OSError as exc:
        _stderr(f"{path}: cannot read: {exc.strerror or exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    try:
        message = read_message(data, source=str(path), config=config)
    except SchemaConfigMissing as exc:
        _stderr(f"error: {exc}")
        raise typer.Exit(2) from None
    except EreseptError as exc:
        for problem in exc.problems:
            _stderr(str(problem))
        _stderr(f"{path}: invalid: {len(exc.problems)} problem(s)")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    info = message.msg_info
    unchecked = [d for d in message.documents if d.validation != "valid"]
    verdict = (
        "valid"
        if not unchecked
        else (f"valid envelope, {len(unchecked)} document(s) not schema-validated (below)")
    )
    typer.echo(f"{path}: {verdict}: {info.type} ({info.type_name}) MsgId {info.msg_id}")
    for document in message.documents:
        indent = "  " * (document.depth + 1)
        typer.echo(
            f"{indent}{document.type} <{document.root}> at {document.where} "
            f"(line {document.line}): {document.validation}"
        )
    for signature in message.signatures:
        typer.echo(
            f"  signature at {signature.where} (line {signature.line}): {signature.status}"
            + (f" — {signature.signer}" if signature.signer else "")
        )


def _reader_config():
    from medloop.eresept import ReaderConfig

    try:
        config = ReaderConfig.from_env()
    except ValueError as exc:
        _stderr(f"error: {exc}")
        raise typer.Exit(EXIT_CONFIG) from None
    if config.trust_store is not None and not config.trust_store.is_dir():
        _stderr(
            f"error: trust store {config.trust_store} is not a folder (MEDLOOP_ERESEPT_TRUST_STORE)"
        )
        raise typer.Exit(EXIT_CONFIG)
    return config


@eresept_app.command("import")
def eresept_import(
    path: Annotated[Path, typer.Argument(help="The message: one MsgHead XML file.")],
    db: DbOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the receipt as one JSON object.")
    ] = False,
) -> None:
    """Import one message: M25.1 (a list), M1 (a prescription), M5 (a recall), M10 (a
    dispensing report), M25.2 (a multidose pharmacy's proposals), M25.3 (what it packed),
    M27.1 (the multidose doctor), or an M9.12 / M9.4 answer carrying an M25.1 / M1. Validated
    like ``validate``, then applied to the list, or kept as a proposal for a prescriber (M25.1,
    M25.2), idempotent by MsgId. Prints the receipt
    {"message_id", "type", "patient", "result", "entries", "reasons"}.
    Exit 0 applied / proposed / duplicate, 1 malformed or schema-invalid (line and column on
    stderr), 2 missing configuration, 3 refused by a rule."""
    from medloop.domain.errors import DomainError
    from medloop.eresept import EreseptError, SchemaConfigMissing
    from medloop.loop.messages import import_message
    from medloop.loop.runner import OverrideRequired

    config = _reader_config()
    try:
        data = path.read_bytes()
    except OSError as exc:
        _stderr(f"{path}: cannot read: {exc.strerror or exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    engine = _engine(db)
    try:
        receipt = import_message(engine, data, source=str(path), config=config)
    except SchemaConfigMissing as exc:
        _stderr(f"error: {exc}")
        raise typer.Exit(EXIT_CONFIG) from None
    except EreseptError as exc:
        for problem in exc.problems:
            _stderr(str(problem))
        refused = _refused_receipt(data, exc.code, [str(p) for p in exc.problems])
        if as_json:
            print(json.dumps(refused))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (DomainError, OverrideRequired) as exc:
        code = getattr(exc, "code", "refused")
        reasons = [f"{code}: {getattr(exc, 'detail', str(exc))}"]
        _stderr(f"{path}: refused: {reasons[0]}")
        if as_json:
            print(json.dumps(_refused_receipt(data, code, reasons)))
        raise typer.Exit(EXIT_REFUSED) from None
    if as_json:
        print(json.dumps(receipt.as_contract()))
    else:
        typer.echo(
            f"{path}: {receipt.result}: {receipt.type} MsgId {receipt.message_id} "
            f"patient {receipt.patient}, {receipt.entries} entries"
        )
        for reason in receipt.reasons:
            typer.echo(f"  {reason}")


@eresept_app.command("outbox")
def eresept_outbox(
    patient: Annotated[
        str | None, typer.Option(help="Only this patient's messages (national id).")
    ] = None,
    db: DbOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per line, one per message.")
    ] = False,
) -> None:
    """List the messages due to be sent (state ready), oldest first: the multidose doctor's
    answers to M25.2 proposals, each an M25.1 to the M25.2's sender. Per message its MsgId,
    patient, receiver, decision, list version and SHA-256; the bytes are
    GET /patients/{id}/eresept/outbox/{msg_id}, marked sent with POST …/sent. The read is
    audited (one record per patient listed, actor "operator"). Exit 0, 3 no list is kept for
    --patient."""
    from medloop import queries
    from medloop.store.access import Accessor, audited_many
    from medloop.store.db import reader

    engine = _engine(db)
    only = None
    if patient is not None:
        with reader(engine).connect() as conn:
            only = queries.find_patient_id(conn, patient)
        if only is None:
            _stderr(f"no list is kept for patient {patient}")
            raise typer.Exit(EXIT_REFUSED)

    def listed(conn):
        found, patients = queries.outbox_ready(conn)
        if only is not None:
            found = [(m, n) for m, n in found if m.patient_id == only]
            patients = [p for p in patients if p == only]
        return found, patients

    who = Accessor(actor="operator", actor_role="operator", organisation=None, request_id=None)
    found = audited_many(engine, who, "eresept-outbox.read", listed)
    for message, national_id in found:
        answer = message.answer
        row = {
            "msg_id": message.msg_id,
            "type": message.type,
            "state": message.state,
            "patient": national_id,
            "created_at": message.created_at.isoformat(),
            "receiver": answer.origin.sender.model_dump(),
            "in_reply_to": answer.origin.msg_id,
            "proposal_id": str(answer.proposal_id),
            "kind": answer.kind.value,
            "decision": "accepted" if answer.accepted else "rejected",
            "list_version": answer.list_version,
            "sha256": message.sha256,
        }
        if as_json:
            print(json.dumps(row))
        else:
            receiver = answer.origin.sender
            typer.echo(
                f"{message.msg_id} {message.type} patient {national_id} to "
                f"{receiver.name or '?'} (HER {receiver.her_id or '-'}): proposal "
                f"{row['kind']} {row['decision']}, list version {answer.list_version}, "
                f"sha256 {message.sha256}"
            )


def _refused_receipt(data: bytes, code: str, reasons: list[str]) -> dict:
    """The receipt of a refused message, with what could be read of its envelope."""
    from medloop.eresept.parsing import envelope_summary

    found = envelope_summary(data)
    return {
        "message_id": found.get("msg_id"),
        "type": found.get("type"),
        "patient": found.get("patient"),
        "result": "refused",
        "entries": 0,
        "reasons": reasons,
    }


@eresept_app.command("export")
def eresept_export(
    type_: Annotated[
        str,
        typer.Option(
            "--type", help="M25.1 (a patient's list), M1 (a prescription) or M5 (its recall)."
        ),
    ],
    patient: Annotated[str | None, typer.Option(help="The patient's national id (M25.1).")] = None,
    prescription: Annotated[str | None, typer.Option(help="A prescription id (M1, M5).")] = None,
    sender_hpr: Annotated[
        str | None,
        typer.Option(help="The requesting prescriber's HPR number (default: the list's author)."),
    ] = None,
    sender_name: Annotated[str | None, typer.Option(help="Their name.")] = None,
    sender_org: Annotated[
        str | None, typer.Option(help="Their organisation's HER-id or org number.")
    ] = None,
    sender_org_name: Annotated[str | None, typer.Option(help="Their organisation's name.")] = None,
    db: DbOption = None,
) -> None:
    """Print one message on stdout: a patient's current list as an M25.1, a prescription as an
    M1, or a recalled prescription's recall as an M5. The read is audited like any read of
    the list. Exit 0, 1 bad arguments, 3 not found (or not recalled, for M5)."""
    import sys
    import uuid as uuid_module
    from datetime import UTC, datetime
    from uuid import UUID

    from medloop import queries
    from medloop.domain.codes import OrganisationKind, PersonnelRole
    from medloop.domain.errors import DomainError
    from medloop.domain.personnel import Actor, HealthPersonnel, Organisation

    if type_ not in ("M25.1", "M1", "M5"):
        _stderr(f"--type must be M25.1, M1 or M5, not {type_!r}")
        raise typer.Exit(EXIT_BAD_INPUT)
    if (type_ == "M25.1") != (patient is not None) or (type_ != "M25.1") != (
        prescription is not None
    ):
        _stderr("--type M25.1 takes --patient NATIONAL_ID; --type M1 and M5 take --prescription ID")
        raise typer.Exit(EXIT_BAD_INPUT)
    prescription_id = None
    if prescription is not None:
        try:
            prescription_id = UUID(prescription)
        except ValueError:
            _stderr(f"--prescription must be a prescription id (a UUID), not {prescription!r}")
            raise typer.Exit(EXIT_BAD_INPUT) from None
    engine = _engine(db)
    from medloop.store.db import reader

    with reader(engine).connect() as conn:
        if prescription_id is not None:
            patient_id = queries.patient_of_prescription(conn, prescription_id)
            missing = f"there is no prescription {prescription_id}"
        else:
            patient_id = queries.find_patient_id(conn, patient or "")
            missing = f"no list is kept for patient {patient}"
        if patient_id is None:
            _stderr(missing)
            raise typer.Exit(EXIT_REFUSED)
        author = queries.list_author(conn, patient_id)
    if sender_hpr is not None:
        try:
            sender = Actor(
                personnel=HealthPersonnel(
                    hpr_number=sender_hpr, name=sender_name or sender_hpr, role=PersonnelRole.DOCTOR
                ),
                organisation=Organisation(
                    id=sender_org or "unknown",
                    name=sender_org_name or sender_org or "unknown",
                    kind=OrganisationKind.GP_PRACTICE,
                ),
            )
        except (ValueError, DomainError) as exc:
            _stderr(f"--sender-hpr: {exc}")
            raise typer.Exit(EXIT_BAD_INPUT) from None
    elif author is not None:
        sender = author
    else:
        _stderr("the list has no author yet: give the sender with --sender-hpr and --sender-org")
        raise typer.Exit(EXIT_BAD_INPUT)
    now = datetime.now(UTC)
    try:
        if prescription_id is not None and type_ == "M5":
            data = queries.read_for(
                engine,
                sender,
                patient_id,
                "eresept-export-m5",
                lambda conn: queries.recall_as_m5(
                    conn, patient_id, prescription_id, sender, at=now
                ),
                reason="e-prescription export (M5)",
            )
        elif prescription_id is not None:
            data = queries.read_for(
                engine,
                sender,
                patient_id,
                "eresept-export-m1",
                lambda conn: queries.prescription_as_m1(
                    conn, patient_id, prescription_id, sender, at=now
                ),
                reason="e-prescription export (M1)",
            )
        else:
            msg_id = str(uuid_module.uuid4())
            data = queries.read_for(
                engine,
                sender,
                patient_id,
                "eresept-export-m251",
                lambda conn: queries.list_as_m25_1(conn, patient_id, sender, msg_id=msg_id, at=now),
                reason="e-prescription export (M25.1)",
            )
    except DomainError as exc:
        _stderr(f"refused: {exc.code}: {exc.detail}")
        raise typer.Exit(EXIT_REFUSED) from None
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
