"""SQLite through aiosqlite (Tortoise's single connection per database).

* Parameters are numbered ``?n``; "differs" is SQLite's NULL-safe ``IS NOT``.
* Values: UUIDs as text, datetimes as UTC ISO text with their offset, as Tortoise
  writes them (so text order is time order).
* A write transaction takes the write lock up front (``BEGIN IMMEDIATE``): Tortoise
  begins deferred, and two deferred transactions that read then write fail at once
  with "database is locked" instead of waiting their turn.
* Errors are classified by SQLite's extended result codes; SQLite reports a CHECK's
  name (and a NOT NULL column) only in its message, in a fixed format, which is read.
* A column's type is only an affinity: any row may hold any type (``'abc'`` in
  ``version`` passes ``CHECK ("version" >= 1)``). What each column must hold (UUID
  text, a 32-bit integer, Tortoise's UTC timestamp text) is checked in SQL here.
* Migrations run statement by statement (``executescript()`` would COMMIT first);
  the write lock is their lock, tried a second at a time so the wait can be reported.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Final

from tortoise.backends.base.client import BaseDBAsyncClient

from todo_app.dialects.base import Dialect, Progress, Rows, field_of_constraint, refused
from todo_app.errors import (
    MigrationPlanError,
    TaskConflict,
    TaskError,
    TaskStoreError,
    TaskStoreUnavailable,
)
from todo_app.schema import TableShape, column_definition, index_definition

__all__ = ["SQLiteDialect"]

_BATCH: Final = 500
_CHECK_FAILED: Final = "CHECK constraint failed: "
_NOT_NULL_FAILED: Final = "NOT NULL constraint failed: "
_BUSY: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_KEY_CODES: Final = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE}
)


_HEX: Final = "[0-9a-f]"
_DIGIT: Final = "[0-9]"
#: A task id as the package (and Tortoise) stores it: ``str(uuid)``.
_UUID_GLOB: Final = "-".join(_HEX * n for n in (8, 4, 4, 4, 12))
_SECONDS: Final = "dddd-dd-dd dd:dd:dd".replace("d", _DIGIT)
#: A datetime as Tortoise stores it (``isoformat(" ")``), in UTC: with or without
#: microseconds, with the offset ``+00:00`` or none (UTC, as the model reads it). Only
#: UTC keeps text order the time order that the listing's keyset relies on.
_TIMESTAMP_GLOBS: Final = tuple(
    _SECONDS + fraction + offset for fraction in ("", "." + _DIGIT * 6) for offset in ("", "+00:00")
)


def _sound_timestamp(column: str) -> str:
    """SQL true exactly when ``column`` holds a timestamp in one of ``_TIMESTAMP_GLOBS``
    that exists (no 31 February, no hour 24, no year 0): SQLite normalises an impossible
    date, so one that is not its own normal form does not exist."""
    shapes = " OR ".join(f"{column} GLOB '{glob}'" for glob in _TIMESTAMP_GLOBS)
    seconds = f"substr({column}, 1, 19)"
    return (
        f"typeof({column}) = 'text' AND ({shapes}) AND substr({column}, 1, 4) <> '0000' "
        f"AND coalesce(strftime('%Y-%m-%d %H:%M:%S', {seconds}, '+0 seconds') = {seconds}, 0)"
    )


def _driver_error(exc: BaseException) -> sqlite3.Error | None:
    """The sqlite3 error under Tortoise's wrappers (which keep it as context or as
    their first argument), if there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sqlite3.Error):
            return seen
        wrapped = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = seen.__cause__ or seen.__context__ or wrapped
    return None


def _check_name(message: str) -> str | None:
    """The CHECK's name in SQLite's message (its only place there), or None."""
    return message.removeprefix(_CHECK_FAILED) if message.startswith(_CHECK_FAILED) else None


def _not_null_column(message: str) -> str:
    """The column in SQLite's "NOT NULL constraint failed: <table>.<column>"."""
    return message.removeprefix(_NOT_NULL_FAILED).rpartition(".")[2]


def _statements(script: str) -> list[str]:
    """Split a script into statements, respecting quotes and triggers."""
    statements, current = [], ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \t\r\n;"):
                statements.append(current.strip())
            current = ""
    if current.strip(" \t\r\n;"):
        raise MigrationPlanError("migration SQL ends with an incomplete statement")
    return statements


class SQLiteDialect(Dialect):
    name: ClassVar[str] = "sqlite"
    label: ClassVar[str] = "SQLite"

    def param(self, number: int) -> str:
        return f"?{number}"

    def differs(self, left: str, right: str) -> str:
        return f"{left} IS NOT {right}"

    def value(self, value: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.UTC).isoformat(" ")
        return value

    def stored_check(self, kind: str, column: str) -> tuple[str, str] | None:
        # A column's type is only its affinity here: any row may hold any type.
        if kind == "uuid":
            return (
                f"typeof({column}) = 'text' AND {column} GLOB '{_UUID_GLOB}'",
                "a task id as todo_app stores it (lowercase UUID text)",
            )
        if kind == "integer":
            return (
                f"typeof({column}) = 'integer' AND {column} BETWEEN -2147483648 AND 2147483647",
                "a 32-bit integer",
            )
        if kind == "timestamp":
            return (
                _sound_timestamp(column),
                "a UTC timestamp as Tortoise stores it ('YYYY-MM-DD HH:MM:SS[.ffffff][+00:00]')",
            )
        return f"typeof({column}) = 'text'", "text"

    # -- running the package's statements -------------------------------------------

    async def fetch(
        self, db: BaseDBAsyncClient, sql: str, values: list[Any], *, idempotent: bool
    ) -> Rows:
        async with db.acquire_connection() as connection:
            rows: Rows = await connection.execute_fetchall(sql, values)
            return rows

    async def bulk_insert(
        self,
        db: BaseDBAsyncClient,
        rows: list[tuple[Any, ...]],
        ids: set[Any],
        progress: Progress,
    ) -> None:
        """Batched INSERTs in one write transaction (the write lock taken up front)."""
        from tortoise.backends.base.client import NestedTransactionContext
        from tortoise.transactions import in_transaction

        table = self.statements.table
        context = in_transaction(db.connection_name)
        async with context as tx:
            if not isinstance(context, NestedTransactionContext):
                await self.begin_write(tx)
            wanted = [self.value(task_id) for task_id in ids]
            for start in range(0, len(wanted), _BATCH):
                chunk = wanted[start : start + _BATCH]
                marks = ", ".join(self.param(n) for n in range(1, len(chunk) + 1))
                _, taken = await tx.execute_query(
                    f'SELECT 1 FROM {table} WHERE "id" IN ({marks}) LIMIT 1', chunk
                )
                if taken:
                    raise TaskConflict("an item's id is already in use")
            for start in range(0, len(rows), _BATCH):
                batch = rows[start : start + _BATCH]
                await tx.execute_many(
                    self.statements.insert, [[self.value(v) for v in row] for row in batch]
                )
                if progress is not None:
                    progress(start + len(batch))

    async def begin_write(self, tx: BaseDBAsyncClient) -> None:
        # Swap the deferred BEGIN Tortoise just issued for an immediate one. The
        # connection is Tortoise's single SQLite connection, held under its lock.
        await tx.execute_query("COMMIT")
        await tx.execute_query("BEGIN IMMEDIATE")

    # -- errors ---------------------------------------------------------------------

    def refused_by(self, exc: BaseException) -> str | None:
        error = _driver_error(exc)
        code = getattr(error, "sqlite_errorcode", None)
        if code == sqlite3.SQLITE_CONSTRAINT_CHECK:
            return _check_name(str(error))
        if code == sqlite3.SQLITE_CONSTRAINT_NOTNULL:
            return f"NOT NULL {_not_null_column(str(error))}"
        if code in _KEY_CODES:
            return "the primary key"
        return None

    def classify(self, exc: BaseException) -> TaskError | None:
        error = _driver_error(exc)
        if error is None:
            return None
        code = getattr(error, "sqlite_errorcode", None)
        message = str(error)
        if code == sqlite3.SQLITE_CONSTRAINT_CHECK:
            name = _check_name(message)
            return refused(field_of_constraint(name), name)
        if code == sqlite3.SQLITE_CONSTRAINT_NOTNULL:
            return refused(_not_null_column(message) or "data")
        if code in _KEY_CODES:
            return TaskConflict("a task with this id already exists")
        if self.is_busy(error):
            return TaskStoreUnavailable("the database is busy (locked by another writer)")
        return TaskStoreError(f"the database refused: {message.splitlines()[0][:200]}")

    def is_busy(self, exc: BaseException) -> bool:
        error = _driver_error(exc)
        return error is not None and (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _BUSY

    # -- migrations -----------------------------------------------------------------

    async def run_script(self, tx: BaseDBAsyncClient, script: str) -> None:
        for statement in _statements(script):
            await tx.execute_query(statement)

    @contextlib.asynccontextmanager
    async def lock_attempts(self, db: BaseDBAsyncClient) -> AsyncIterator[None]:
        """Each attempt at ``BEGIN IMMEDIATE`` waits a second at most (the runner
        reports and retries until its own limit); the busy timeout is restored."""
        _, rows = await db.execute_query("PRAGMA busy_timeout")
        previous = int(next(iter(dict(rows[0]).values())))
        await db.execute_query("PRAGMA busy_timeout = 1000")
        try:
            yield
        finally:
            await db.execute_query(f"PRAGMA busy_timeout = {previous}")

    # -- the live schema ------------------------------------------------------------

    async def read_shape(self, db: BaseDBAsyncClient, table: str) -> TableShape | None:
        _, tables = await db.execute_query(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
        )
        if not tables:
            return None
        ddl = str(dict(tables[0])["sql"])
        _, info = await db.execute_query(f'PRAGMA table_xinfo("{table}")')
        columns = [dict(row) for row in info if dict(row).get("hidden", 0) == 0]
        _, index_list = await db.execute_query(f'PRAGMA index_list("{table}")')
        indexes: dict[str, str] = {}
        for row in map(dict, index_list):
            if row["origin"] == "pk":
                continue
            _, parts = await db.execute_query(f'PRAGMA index_info("{row["name"]}")')
            ordered = sorted((dict(part) for part in parts), key=lambda part: part["seqno"])
            definition = index_definition([str(p["name"]) for p in ordered], bool(row["unique"]))
            indexes[str(row["name"])] = definition + (" WHERE ..." if row.get("partial") else "")
        primary = sorted((c for c in columns if c["pk"]), key=lambda c: c["pk"])
        return TableShape(
            columns={
                str(c["name"]): column_definition(str(c["type"]).upper(), bool(c["notnull"]))
                for c in columns
            },
            primary_key=tuple(str(c["name"]) for c in primary),
            indexes=indexes,
            checks=frozenset(TableShape.sqlite_check_names(ddl)),
            defaults=frozenset(str(c["name"]) for c in columns if c["dflt_value"] is not None),
        )

    async def aerich_columns(self, db: BaseDBAsyncClient) -> set[str] | None:
        _, tables = await db.execute_query(
            "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'aerich'"
        )
        if not tables[0]["n"]:
            return None
        _, rows = await db.execute_query('PRAGMA table_info("aerich")')
        return {str(dict(row)["name"]) for row in rows}
