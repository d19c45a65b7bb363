"""The ``medloop`` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeElapsedColumn
from rich.table import Table

from fest.errors import FestFormatError, FestImportRejected
from medloop.settings import Settings

app = typer.Typer(
    help="medloop: closed-loop medication management on the FEST drug catalogue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
fest_app = typer.Typer(help="The FEST drug catalogue: import, inspect, validate, synthesise.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(fest_app, name="fest")
app.add_typer(db_app, name="db")

err = Console(stderr=True)
out = Console()

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $MEDLOOP_DATABASE_URL or sqlite:///medloop.db)."),
]
EXIT_BAD_INPUT = 1
EXIT_REFUSED = 3


def _stderr(message: str) -> None:
    """Errors and warnings go to stderr unwrapped, so they can be read by tools."""
    typer.echo(message, err=True)


def _engine(db: str | None):
    from medloop.store.db import make_engine
    from medloop.store.migrate import upgrade

    engine = make_engine(db or Settings.from_env().database_url)
    upgrade(engine)
    return engine


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
        bool, typer.Option("--incremental", help="Apply on top of the catalogue in force (no expiry by absence).")
    ] = False,
    allow_shrink: Annotated[
        bool, typer.Option("--allow-shrink", help="Accept a full file that drops >20% of a catalogue.")
    ] = False,
    allow_older: Annotated[
        bool, typer.Option("--allow-older", help="Accept a file with an older HentetDato than the one in force.")
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
                )
        else:
            result = import_catalogue(
                engine, path, incremental=incremental, allow_shrink=allow_shrink, allow_older=allow_older
            )
    except FestFormatError as exc:
        _stderr(f"error: {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except FestImportRejected as exc:
        _stderr(f"refused: {exc}")
        raise typer.Exit(EXIT_REFUSED) from None
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


def _counts_table(counts: dict[str, int], changes: dict[str, dict[str, int]] | None = None) -> Table:
    table = Table("catalogue", "in force", "added", "replaced", "expired")
    changes = changes or {}
    for kind, n in counts.items():
        table.add_row(
            kind,
            str(n),
            *(str(changes.get(change, {}).get(kind, 0)) for change in ("added", "replaced", "expired")),
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
        print(json.dumps({"version": current["id"], "hentet_dato": current["hentet_dato"], "counts": counts}))
        return
    out.print(
        f"Catalogue version {current['id']} ({current['mode']}), HentetDato {current['hentet_dato']}, "
        f"from {current['source_name']} imported {current['imported_at']}"
    )
    out.print(_counts_table(counts))
    for warning in current["warnings"]:
        out.print(f"warning: {warning}", highlight=False)


@fest_app.command("synth")
def fest_synth(
    out_path: Annotated[Path, typer.Argument(metavar="OUT.xml", help="Where to write the file.")],
    scale: Annotated[float, typer.Option(help="1.0 ≈ production size (~11k packages, ~100+ MB).")] = 1.0,
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
        typer.Option(help="Folder with ER-M30-2014-12-01.xsd and its imports (default: $MEDLOOP_FEST_XSD_DIR)."),
    ] = None,
) -> None:
    """Validate a FEST file against the official M30 XSD; prints every violation with its line."""
    from fest.validate import SchemaNotFound, validate_file

    directory = xsd_dir or Settings.from_env().fest_xsd_dir
    try:
        errors = validate_file(path, directory)
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


@app.command("demo")
def demo(db: DbOption = None) -> None:
    """Load the demo catalogue (seeds/demo-fest.xml) and show what was loaded."""
    from fest.loader import import_catalogue

    settings = Settings.from_env()
    engine = _engine(db)
    try:
        result = import_catalogue(engine, settings.demo_catalogue, allow_shrink=True, allow_older=True)
    except (FestFormatError, FestImportRejected) as exc:
        _stderr(f"error: {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    state = "already in force" if result.unchanged else "imported"
    out.print(
        f"Demo catalogue {state}: version {result.version}, HentetDato {result.hentet_dato} "
        f"on {engine.url.render_as_string(hide_password=True)}"
    )
    out.print(_counts_table(result.counts, result.changes))
    out.print("[bold]Demo data only: not a clinical source.[/bold]")


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

    request = typer.get_text_stream("stdin").read()
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


audit_app = typer.Typer(help="The audit log of access to patient data.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
EXIT_AUDIT_BROKEN = 1


@audit_app.command("verify")
def audit_verify(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Walk the audit log's hash chain from the first record to the last.

    Exit 0 when the chain is intact, 1 at its first broken link (a changed, missing,
    inserted or reordered record).  Keep the printed last hash elsewhere: a log cut short
    is only seen against it.
    """
    from medloop.store.audit import verify

    with _engine(db).connect() as conn:
        result = verify(conn)
    if as_json:
        print(json.dumps(result.as_json()))
    elif result.broken is None:
        typer.echo(f"audit log intact: {result.events} events, last hash {result.last_hash}")
    else:
        link = result.broken
        _stderr(
            f"audit log broken at event {link.seq} ({link.problem}): expected {link.expected}, "
            f"found {link.found}; the {result.events} events before it are intact "
            f"(last hash {result.last_hash})"
        )
    if not result.ok:
        raise typer.Exit(EXIT_AUDIT_BROKEN)
