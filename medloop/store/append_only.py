"""The database triggers that make tables append-only for ordinary SQL, as the migrations
install and remove them (they are not table metadata, so autogenerate neither sees nor needs
them).

PostgreSQL: one trigger function per migration raises ``<table> is append-only: <operation>
refused``, and a ``<table>_append_only`` row trigger calls it before UPDATE or DELETE.
SQLite: ``<table>_refuse_update`` and ``<table>_refuse_delete`` abort with the same message.
"""

from __future__ import annotations

from collections.abc import Iterable

OPERATIONS = ("UPDATE", "DELETE")


def refusing_function(function: str) -> str:
    """The PostgreSQL trigger function ``function()`` that refuses any change."""
    return f"""
    CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
    END
    $$
    """


def install(
    dialect: str, tables: Iterable[str], function: str, *, create_function: bool = True
) -> list[str]:
    """The statements that make ``tables`` append-only; on PostgreSQL through ``function``,
    created here unless an earlier migration did (``create_function=False``)."""
    if dialect == "postgresql":
        return ([refusing_function(function)] if create_function else []) + [
            f"""
            CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {function}()
            """
            for table in tables
        ]
    return [
        f"""
        CREATE TRIGGER {table}_refuse_{operation.lower()} BEFORE {operation} ON {table}
        BEGIN
            SELECT RAISE(ABORT, '{table} is append-only: {operation} refused');
        END
        """
        for table in tables
        for operation in OPERATIONS
    ]


def remove(dialect: str, tables: Iterable[str], function: str | None) -> list[str]:
    """The statements that undo ``install`` (``function``: the trigger function to drop as
    well, ``None`` when it belongs to an earlier migration)."""
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}" for table in tables] + (
            [f"DROP FUNCTION IF EXISTS {function}()"] if function else []
        )
    return [
        f"DROP TRIGGER IF EXISTS {table}_refuse_{operation.lower()}"
        for table in tables
        for operation in OPERATIONS
    ]
