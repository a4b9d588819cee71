"""SQLite through aiosqlite (Tortoise's single connection per database).

* Parameters are numbered ``?n``; "differs" is SQLite's NULL-safe ``IS NOT``.
* Values: UUIDs as text, datetimes as UTC ISO text with their offset, as Tortoise
  writes them (so text order is time order).
* A write transaction takes the write lock up front (``BEGIN IMMEDIATE``): Tortoise
  begins deferred, and two deferred transactions that read then write fail at once
  with "database is locked" instead of waiting their turn.
* Errors are classified by SQLite's extended result codes; SQLite reports a CHECK's
  name (and a NOT NULL column) only in its message, in a fixed format, which is read.
  A file that cannot be opened, read or written (a directory, a missing directory, a
  file that is not a database or is damaged, a read-only mount, a full disk) is
  ``TaskStoreUnavailable`` naming what to check.
* The connection is opened here before the package's statements use it (``open``),
  so that a failed open leaves no lock held: Tortoise's own client keeps its lock
  when opening fails, and every later call would wait for ever.
* A column's type is only an affinity: any row may hold any type (``'abc'`` in
  ``version`` passes ``CHECK ("version" >= 1)``). What each column must hold (UUID
  text, a 32-bit integer, Tortoise's UTC timestamp text) is checked in SQL here.
* Migrations run statement by statement (``executescript()`` would COMMIT first);
  the write lock is their lock, tried a second at a time so the wait can be reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar, Final

from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.backends.sqlite.client import SqliteClient

from todo_app.config import APP_LABEL
from todo_app.dialects.base import Dialect, Progress, Rows, field_of_constraint, refused
from todo_app.errors import (
    MigrationFailed,
    MigrationLockTimeout,
    MigrationPlanError,
    TaskConflict,
    TaskError,
    TaskStoreError,
    TaskStoreTimeout,
    TaskStoreUnavailable,
)
from todo_app.table_shape import TABLE, TableShape, column_definition, index_definition

__all__ = ["SQLiteDialect", "check_names"]

logger = logging.getLogger("todo_app")

_BATCH: Final = 500
_CHECK_FAILED: Final = "CHECK constraint failed: "
_NOT_NULL_FAILED: Final = "NOT NULL constraint failed: "
_BUSY: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_KEY_CODES: Final = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE}
)
#: Primary result codes of a database file that cannot be opened, read or written,
#: and what to check. The store is unavailable until someone fixes the file.
_UNUSABLE: Final = {
    sqlite3.SQLITE_CANTOPEN: "check that the path names a file (not a directory) in an "
    "existing directory this user may write, not on a read-only mount",
    sqlite3.SQLITE_PERM: "check the permissions of the file and its directory",
    sqlite3.SQLITE_NOTADB: "check the path: it names some other kind of file",
    sqlite3.SQLITE_CORRUPT: "the file is damaged (truncated or overwritten): restore it "
    "from a backup",
    sqlite3.SQLITE_FULL: "the disk is full: free space and retry (nothing was written)",
    sqlite3.SQLITE_READONLY: "the file, its directory or its mount is read-only "
    "(nothing was written)",
    sqlite3.SQLITE_IOERR: "the file system failed a read or write (full or read-only "
    "disk?): check it and retry",
}
#: How long a caller waits for another one's open of the connection. An open takes
#: milliseconds, or sqlite3's busy timeout (5 s) when another process holds the file:
#: a lock held longer by nobody who opened anything was left by a failed open.
_OPEN_WAIT: Final = 15.0


#: A named CHECK constraint in ``CREATE TABLE`` text.
_CHECK_NAME: Final = re.compile(r'CONSTRAINT\s+"?([A-Za-z0-9_]+)"?\s+CHECK', re.IGNORECASE)
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


def check_names(ddl: str) -> list[str]:
    """Names of the CHECK constraints in SQLite's ``CREATE TABLE`` text (SQLite's
    catalog keeps them nowhere else)."""
    return _CHECK_NAME.findall(ddl)


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


def _opened(client: Any) -> bool:
    """Whether Tortoise's SQLite client finished opening its connection. Its private
    attributes, checked: ``_connection`` is set before the PRAGMAs run, and
    ``_bound_loop`` once they all succeeded (``_post_connect``)."""
    if not getattr(client, "_connection", True):
        return False
    return not hasattr(type(client), "_bound_loop") or client._bound_loop is not None


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


#: What a missing task table means, including the case nobody guesses: an in-memory
#: database is new and empty on every connection, and Tortoise opens a new connection
#: when a call comes from another event loop than the one that migrated it.
_NO_TABLE: Final = (
    f'the database has no "{TABLE}" table: apply todo_app\'s migrations first. With '
    "in-memory SQLite (sqlite://:memory:), a call on another event loop than the one "
    "that migrated it gets a new, empty database (Tortoise re-opens the connection on "
    "a loop switch, as when a test client runs the app on a loop of its own): give such "
    "an app a SQLite file (the todo_sqlite_url fixture)"
)
#: How long the script an installed stub hands Aerich waits for the write lock.
_AERICH_LOCK_WAIT_MS: Final = 300_000
#: todo_app's bookkeeping rows and the task table's DDL: what a revert was planned on.
_FINGERPRINT: Final = (
    "SELECT (SELECT coalesce(group_concat(\"version\", ','), '') FROM (SELECT \"version\" "
    'FROM "aerich" WHERE "app" = ?1 ORDER BY "id")) AS rows, (SELECT "sql" FROM '
    f"sqlite_master WHERE \"type\" = 'table' AND \"name\" = '{TABLE}') AS ddl"
)
_UNCHANGED_TABLE: Final = (
    'CREATE TEMP TABLE IF NOT EXISTS "todo_app_unchanged" ("unchanged" INTEGER '
    'CONSTRAINT "todo_app: the database changed while aerich was reverting a todo_app '
    'migration; nothing was reverted, run it again" CHECK ("unchanged"))'
)


#: Whether any table has a foreign key to the task table (the rebuilds' DROP TABLE
#: would delete its rows, or be refused, with foreign keys on).
_REFERENCED: Final = (
    "SELECT count(*) AS n FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS f "
    f"WHERE m.type = 'table' AND f.\"table\" = '{TABLE}'"
)
#: Fails the script Aerich runs (rolled back) when a row refers to a missing parent.
_KEYS_INTACT: Final = (
    'CREATE TEMP TABLE IF NOT EXISTS "todo_app_keys_intact" ("intact" INTEGER '
    'CONSTRAINT "todo_app: reverting this migration would leave rows referring to tasks '
    'that are gone (see PRAGMA foreign_key_check); nothing was reverted" CHECK ("intact"));\n'
    'INSERT INTO temp."todo_app_keys_intact" ("intact") '
    "SELECT NOT EXISTS (SELECT 1 FROM pragma_foreign_key_check);\n"
    'DELETE FROM temp."todo_app_keys_intact"'
)


async def _references_to_check(tx: BaseDBAsyncClient) -> bool:
    """Foreign keys are on and some table refers to the task table: a rebuild needs
    them off (SQLite's documented way), and checked before its commit."""
    _, rows = await tx.execute_query("PRAGMA foreign_keys")
    if not int(next(iter(dict(rows[0]).values()))):
        return False
    _, referencing = await tx.execute_query(_REFERENCED)
    return bool(dict(referencing[0])["n"])


async def _broken_references(tx: BaseDBAsyncClient) -> list[str]:
    """What ``PRAGMA foreign_key_check`` finds, counted per table and parent."""
    _, rows = await tx.execute_query("PRAGMA foreign_key_check")
    counts: dict[tuple[str, str], int] = {}
    for row in map(dict, rows):
        key = (str(row["table"]), str(row["parent"]))
        counts[key] = counts.get(key, 0) + 1
    return [
        f'{n} row(s) of "{table}" refer to missing rows of "{parent}"'
        for (table, parent), n in sorted(counts.items())
    ]


async def _end_transaction(tx: BaseDBAsyncClient, statement: str) -> None:
    """``statement`` (COMMIT or ROLLBACK) if a transaction is open."""
    async with tx.acquire_connection() as connection:
        open_ = bool(connection.in_transaction)
    if open_:
        await tx.execute_query(statement)


def _literal(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


class SQLiteDialect(Dialect):
    name: ClassVar[str] = "sqlite"
    label: ClassVar[str] = "SQLite"
    aerich_table: ClassVar[str] = (
        'CREATE TABLE IF NOT EXISTS "aerich" ("id" INTEGER PRIMARY KEY AUTOINCREMENT NOT '
        'NULL, "version" VARCHAR(255) NOT NULL, "app" VARCHAR(100) NOT NULL, '
        '"content" JSON NOT NULL)'
    )

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

    def read_column(self, kind: str, column: str) -> str:
        # A timestamp stored without its offset (text written around the package) is
        # UTC, as everything stored is: it reads back as UTC, not as a naive datetime
        # that a later step could take for local time. In SQL, so that reading a row
        # costs no Python call per value.
        if kind == "timestamp":
            # The two forms of _TIMESTAMP_GLOBS; text only (a blob stays a blob, for the
            # stored-form checks to name, not text the driver cannot decode).
            offsetless = f"typeof({column}) = 'text' AND length({column}) IN (19, 26)"
            return f"CASE WHEN {offsetless} THEN {column} || '+00:00' ELSE {column} END"
        return column

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

    async def open(self, db: BaseDBAsyncClient) -> None:
        """Open the client's single connection under its lock, releasing the lock and
        dropping a half-opened connection if that fails, so that the next call opens
        the file afresh. A lock left held by a failed open elsewhere (Tortoise's own
        client, used by a host) is taken over once nobody could still be opening."""
        if isinstance(db, TransactionalDBClient) or _opened(db):
            return  # a transaction's connection is open: its client opened it
        client: Any = db
        lock = getattr(client, "_lock", None)
        if not isinstance(lock, asyncio.Lock) or not hasattr(client, "create_connection"):
            return  # not the client we know: it opens its connection itself
        from todo_app.dialects.sqlite.engine import (
            client_class,
            discard_connection,
            open_connection,
        )

        # Tortoise's own open, made safe, where its internals are as expected.
        opener = open_connection if client_class is not SqliteClient else None
        try:
            await asyncio.wait_for(lock.acquire(), _OPEN_WAIT)
        except TimeoutError:
            if _opened(client):
                raise TaskStoreTimeout(
                    f"the SQLite connection stayed busy for {_OPEN_WAIT:g} s"
                ) from None
            # Held, and still not opened: Tortoise's ConnectionWrapper keeps its lock
            # when opening raises. It is ours now, released below.
            logger.warning("taking over the SQLite connection lock left by a failed open")
        try:
            if not _opened(client):
                await discard_connection(client)  # a half-opened one, if any
                try:
                    if opener is not None:
                        await opener(client)
                    else:
                        await client.create_connection(with_db=True)
                except BaseException:
                    await discard_connection(client)
                    raise
        finally:
            lock.release()

    async def fetch(
        self, db: BaseDBAsyncClient, sql: str, values: list[Any], *, idempotent: bool
    ) -> Rows:
        await self.open(db)
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

        await self.open(db)
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
        advice = _UNUSABLE.get(code & 0xFF) if isinstance(code, int) else None
        if advice is not None:
            return TaskStoreUnavailable(f"{message.splitlines()[0][:200]}: {advice}")
        if code == sqlite3.SQLITE_ERROR and message == f"no such table: {TABLE}":
            # SQLite says only SQLITE_ERROR; its message is the one place that names it.
            return TaskStoreError(_NO_TABLE)
        return TaskStoreError(f"the database refused: {message.splitlines()[0][:200]}")

    def is_busy(self, exc: BaseException) -> bool:
        error = _driver_error(exc)
        return error is not None and (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _BUSY

    # -- migrations -----------------------------------------------------------------

    async def run_script(self, tx: BaseDBAsyncClient, script: str) -> None:
        for statement in _statements(script):
            await tx.execute_query(statement)

    @contextlib.asynccontextmanager
    async def migration_transaction(
        self, tx: BaseDBAsyncClient, *, nested: bool = False
    ) -> AsyncIterator[None]:
        # With foreign keys on, a rebuild's DROP TABLE deletes the task rows first, and
        # the host's rows referring to them go too (ON DELETE CASCADE) or the drop is
        # refused (RESTRICT). The pragma is a no-op inside a transaction: the one just
        # begun (nothing ran in it) is swapped for one begun with them off, checked
        # before its commit, and the setting restored under the connection's lock.
        if not await _references_to_check(tx):
            yield
            return
        if nested:
            raise MigrationPlanError(
                f'other tables refer to "{TABLE}" and foreign keys are on: todo_app\'s '
                "SQLite migrations rebuild that table, which needs them off, and SQLite "
                "cannot switch them inside a transaction: migrate outside the caller's "
                "transaction (nothing was changed)"
            )
        await tx.execute_query("COMMIT")
        try:
            await tx.execute_query("PRAGMA foreign_keys = OFF")
            await tx.execute_query("BEGIN IMMEDIATE")
            yield
            broken = await _broken_references(tx)
            if broken:
                raise MigrationFailed(
                    "the migration would leave rows referring to missing ones, so it was "
                    "rolled back: " + "; ".join(broken)
                )
            await tx.execute_query("COMMIT")
        finally:
            await _end_transaction(tx, "ROLLBACK")
            await tx.execute_query("PRAGMA foreign_keys = ON")
            await tx.execute_query("BEGIN")  # the caller's transaction ends empty

    async def handoff_to_aerich(
        self, tx: BaseDBAsyncClient, script: str, *, forget: Sequence[str], revert: bool
    ) -> str:
        # Tortoise runs Aerich's script with sqlite3's executescript, which COMMITs the
        # stub's transaction first: the script, and the row Aerich writes after it,
        # would land outside the lock. So the script takes the write lock again, clears
        # the rows under it, and a revert first proves that nothing changed meanwhile
        # (a CHECK on a temporary row fails the run, rolled back, if anything did).
        _, timeout = await tx.execute_query("PRAGMA busy_timeout")
        previous = int(next(iter(dict(timeout[0]).values())))
        # A revert's rebuild runs in that script: foreign keys go off before its
        # BEGIN, are checked before its COMMIT and come back on after it (Aerich's own
        # row delete then runs on its own: the row is gone already, deleted below).
        keys = revert and await _references_to_check(tx)
        parts = [
            *(["PRAGMA foreign_keys = OFF"] if keys else []),
            f"PRAGMA busy_timeout = {_AERICH_LOCK_WAIT_MS}",
            "BEGIN IMMEDIATE",
            f"PRAGMA busy_timeout = {previous}",
        ]
        if revert:
            _, seen = await tx.execute_query(_FINGERPRINT, [APP_LABEL])
            rows, ddl = dict(seen[0])["rows"], dict(seen[0])["ddl"]
            parts += [
                _UNCHANGED_TABLE,
                f'INSERT INTO temp."todo_app_unchanged" ("unchanged") SELECT rows IS '
                f"{_literal(rows)} AND ddl IS {_literal(ddl)} FROM ("
                + _FINGERPRINT.replace("?1", _literal(APP_LABEL))
                + ")",
                'DELETE FROM temp."todo_app_unchanged"',
            ]
        if forget:
            names = ", ".join(_literal(name) for name in forget)
            parts.append(
                f'DELETE FROM "aerich" WHERE "app" = {_literal(APP_LABEL)} '
                f'AND "version" IN ({names})'
            )
        handed = ";\n".join(parts) + ";\n" + script
        if keys:
            handed += f"\n;\n{_KEYS_INTACT};\nCOMMIT;\nPRAGMA foreign_keys = ON;\n"
        return handed

    async def take_over_transaction(
        self, tx: BaseDBAsyncClient, *, deadline: float, lock_timeout: float
    ) -> None:
        # Aerich's transaction is a deferred BEGIN: the stub's first read would pin a
        # snapshot, and its first write then fail at once with "database is locked"
        # whenever another runner wrote meanwhile. Nothing ran in it yet, so it is
        # swapped for BEGIN IMMEDIATE, retried (each attempt waits a second on the
        # busy timeout) until the runner's deadline.
        await tx.execute_query("COMMIT")
        async with self.lock_attempts(tx):
            while True:
                try:
                    await tx.execute_query("BEGIN IMMEDIATE")
                    return
                except Exception as exc:
                    if not self.is_busy(exc):
                        raise
                    if time.monotonic() >= deadline:
                        raise MigrationLockTimeout(
                            f"gave up after {lock_timeout:g} s waiting for the SQLite write "
                            "lock: another process is writing to or migrating this database"
                        ) from None

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
            checks=frozenset(check_names(ddl)),
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
