"""PostgreSQL through asyncpg.

* Statements run straight on the client's asyncpg pool outside a transaction
  (Tortoise's wrapper around the pool costs as much as the pool itself), on the
  caller's transaction connection inside one; checkouts made for the package's own
  statements are marked clean (``todo_app.dialects.postgres.pool``).
* Bulk imports go in with COPY.
* The column types hold every stored value but a timestamp Python cannot (a year
  past 9999, BC, an infinity): the one stored-value check.
* Errors are classified by SQLSTATE (asyncpg's exception classes), constraint and
  column names from the error's own fields.
* Migrations: a transaction-scoped advisory lock, polled so the wait can be reported
  and bounded; the application's ``statement_timeout`` is lifted for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar, Final

import asyncpg
from tortoise.backends.base.client import (
    BaseDBAsyncClient,
    PoolConnectionWrapper,
    TransactionalDBClient,
)

from todo_app.compat import client_pool
from todo_app.connection import connection_failure, is_connection_failure
from todo_app.dialects.base import (
    Dialect,
    Progress,
    Replication,
    Rows,
    field_of_constraint,
    refused,
)
from todo_app.dialects.postgres.pool import mark_clean, release_clean
from todo_app.dialects.postgres.replication import StreamingReplication
from todo_app.errors import (
    MigrationLockTimeout,
    TaskConflict,
    TaskError,
    TaskStoreError,
    TaskStoreTimeout,
    TaskStoreUnavailable,
    TaskValidationError,
)
from todo_app.table_shape import TableShape, column_definition, index_definition

__all__ = ["PostgresDialect"]

logger = logging.getLogger("todo_app.migrations")

_COPY_BATCH: Final = 5000
#: pg_advisory_xact_lock key: the bytes of "todo_app" as a signed 64-bit integer.
ADVISORY_LOCK_KEY: Final = int.from_bytes(b"todo_app", "big", signed=True)
#: Client-side backstop for one migration statement (a rebuild may be long).
_STATEMENT_BACKSTOP: Final = 24 * 3600.0
_POLL_SECONDS: Final = 0.2
_REPORT_EVERY: Final = 5.0

_LOCK_HOLDER: Final = """
SELECT a.pid, coalesce(a.application_name, '') AS application,
       coalesce(host(a.client_addr), 'local socket') AS client,
       extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start))::float8 AS seconds
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1
LIMIT 1
"""
_COLUMNS: Final = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, a.atthasdef AS has_default
FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_CHECKS: Final = """
SELECT conname AS name FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'c'
"""
_INDEXES: Final = """
SELECT c.relname AS name, i.indisunique AS is_unique, i.indisprimary AS is_primary,
       array(
           SELECT coalesce(a.attname, '<expression>')
           FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           ORDER BY k.ord
       ) AS columns,
       i.indpred IS NOT NULL AS partial
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = to_regclass($1)
"""


def _driver_error(exc: BaseException) -> BaseException:
    """The asyncpg (or OS) error under Tortoise's wrappers, if there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def _died_idle(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection was already gone: one the server or the
    network closed while it sat idle in the pool."""
    return isinstance(exc, asyncpg.ConnectionDoesNotExistError | ConnectionResetError)


class PostgresDialect(Dialect):
    name: ClassVar[str] = "postgres"
    label: ClassVar[str] = "PostgreSQL"
    json_cast: ClassVar[str] = "::jsonb"
    aerich_table: ClassVar[str] = (
        'CREATE TABLE IF NOT EXISTS "aerich" ("id" SERIAL NOT NULL PRIMARY KEY, '
        '"version" VARCHAR(255) NOT NULL, "app" VARCHAR(100) NOT NULL, '
        '"content" JSONB NOT NULL)'
    )
    # Dropped at commit whatever happens, never left on a pooled connection.
    temporary_table_options: ClassVar[str] = " ON COMMIT DROP"
    replication: ClassVar[Replication | None] = StreamingReplication()

    def param(self, number: int) -> str:
        return f"${number}"

    def differs(self, left: str, right: str) -> str:
        return f"{left} IS DISTINCT FROM {right}"

    def stored_check(self, kind: str, column: str) -> tuple[str, str] | None:
        # The column types hold every other kind; a timestamptz holds years (10000,
        # BC) and infinities that asyncpg cannot give Python as an aware datetime.
        if kind == "timestamp":
            return (
                f"{column} BETWEEN '0001-01-01 00:00:00+00' AND '9999-12-31 23:59:59.999999+00'",
                "a timestamp between the years 1 and 9999 (what Python holds)",
            )
        return None

    # -- running the package's statements -------------------------------------------

    async def fetch(
        self, db: BaseDBAsyncClient, sql: str, values: list[Any], *, idempotent: bool
    ) -> Rows:
        pool = client_pool(db)
        if pool is None or isinstance(db, TransactionalDBClient):
            try:
                return await self._through_tortoise(db, sql, values)
            except Exception as exc:
                if not (idempotent and _died_idle(exc)):
                    raise
            return await self._through_tortoise(db, sql, values)
        # The common case, kept flat: the checkout is most of the cost of a
        # primary-key read.
        connection = await pool.acquire()
        mark_clean(connection)
        try:
            rows: Rows = await connection.fetch(sql, *values)
        except BaseException as exc:
            await pool.release(connection)  # shielded: a cancelled caller strands nothing
            if not (idempotent and _died_idle(exc)):
                raise
        else:
            await release_clean(pool, connection)
            return rows
        # A connection that died idle in the pool is only noticed when used: a read
        # (or an insert that does nothing the second time) tries once more.
        return await self._through_tortoise(db, sql, values)

    async def _through_tortoise(self, db: BaseDBAsyncClient, sql: str, values: list[Any]) -> Rows:
        """The statement on the caller's transaction, or on a checkout Tortoise makes
        (which also opens the pool, once, under its lock)."""
        wrapper = db.acquire_connection()
        async with wrapper as connection:
            if isinstance(wrapper, PoolConnectionWrapper):
                mark_clean(connection)  # our own checkout, only our statements
            rows: Rows = await connection.fetch(sql, *values)
            return rows

    async def bulk_insert(
        self,
        db: BaseDBAsyncClient,
        rows: list[tuple[Any, ...]],
        ids: set[Any],
        progress: Progress,
    ) -> None:
        """Client ids checked in one query, then COPY in batches, in one asyncpg
        transaction on one checkout (a savepoint inside a caller's transaction)."""
        table = self.statements.table.strip('"')
        wrapper = db.acquire_connection()
        async with wrapper as connection:
            if isinstance(wrapper, PoolConnectionWrapper):
                mark_clean(connection)  # our own checkout, only our statements
            async with connection.transaction():
                if ids and await connection.fetchval(
                    f'SELECT count(*) FROM "{table}" WHERE "id" = ANY($1::uuid[])', list(ids)
                ):
                    raise TaskConflict("an item's id is already in use")
                for start in range(0, len(rows), _COPY_BATCH):
                    batch = rows[start : start + _COPY_BATCH]
                    await connection.copy_records_to_table(
                        table, records=batch, columns=self.statements.columns
                    )
                    if progress is not None:
                        progress(start + len(batch))

    # -- errors ---------------------------------------------------------------------

    def refused_by(self, exc: BaseException) -> str | None:
        error = _driver_error(exc)
        if isinstance(error, asyncpg.IntegrityConstraintViolationError):
            if isinstance(error, asyncpg.NotNullViolationError):
                return f"NOT NULL {error.column_name}"
            return error.constraint_name or None
        if isinstance(error, asyncpg.StringDataRightTruncationError):
            return "a value longer than its column"
        return None

    def classify(self, exc: BaseException) -> TaskError | None:
        error = _driver_error(exc)
        if isinstance(error, asyncpg.UniqueViolationError):
            return TaskConflict("a task with this id already exists")
        if isinstance(error, asyncpg.CheckViolationError):
            name = error.constraint_name
            return refused(field_of_constraint(name), name)
        if isinstance(error, asyncpg.NotNullViolationError):
            return refused(error.column_name or "data")
        if isinstance(
            error, asyncpg.StringDataRightTruncationError | asyncpg.NumericValueOutOfRangeError
        ):
            return TaskValidationError("data", "a value is too long or out of range")
        if isinstance(
            error, asyncpg.CharacterNotInRepertoireError | asyncpg.UntranslatableCharacterError
        ):
            return TaskValidationError("data", "text must not contain NUL characters")
        if isinstance(
            error, asyncpg.InvalidSQLStatementNameError | asyncpg.DuplicatePreparedStatementError
        ):
            return TaskStoreUnavailable(
                f"{error} -- behind a transaction-mode pooler (PgBouncer), turn asyncpg's "
                "statement cache off: TODO_APP_STATEMENT_CACHE_SIZE=0 or pgbouncer=true in "
                "the URL"
            )
        if isinstance(error, asyncpg.QueryCanceledError):
            return TaskStoreTimeout("the database did not answer in time")
        if isinstance(error, asyncpg.ReadOnlySQLTransactionError):
            # A standby, or a primary being demoted: a failover is under way.
            return TaskStoreUnavailable("the database is read-only (a standby?); retry")
        if isinstance(error, OSError) or is_connection_failure(error):
            return TaskStoreUnavailable(f"the database is unavailable: {connection_failure(error)}")
        if isinstance(error, asyncpg.PostgresError):
            said = (str(error).splitlines() or [""])[0][:200]
            return TaskStoreError(f"the database refused: {said}")
        return None

    # -- migrations -----------------------------------------------------------------

    async def run_script(self, tx: BaseDBAsyncClient, script: str) -> None:
        connection: Any = getattr(tx, "_connection", None)
        if connection is not None and hasattr(connection, "execute"):
            # Straight on asyncpg, for its per-call timeout: Tortoise would apply the
            # pool's command_timeout (the application's statement timeout + margin).
            await connection.execute(script, timeout=_STATEMENT_BACKSTOP)
        else:  # pragma: no cover - a transaction client always holds its connection
            await tx.execute_script(script)

    async def migration_lock(
        self, tx: BaseDBAsyncClient, *, deadline: float, lock_timeout: float
    ) -> None:
        await tx.execute_query("SET LOCAL statement_timeout = 0")
        started = time.monotonic()
        next_report = started + _REPORT_EVERY / 2
        while True:
            _, rows = await tx.execute_query(
                "SELECT pg_try_advisory_xact_lock($1) AS got", [ADVISORY_LOCK_KEY]
            )
            if rows[0]["got"]:
                return
            now = time.monotonic()
            if now >= deadline:
                raise MigrationLockTimeout(
                    f"gave up after {lock_timeout:g} s waiting for the migration lock, held "
                    f"by {await self._lock_holder(tx)}"
                )
            if now >= next_report:
                logger.warning(
                    "waiting for the migration lock, held by %s (waited %.0f s, giving up "
                    "after %g s)",
                    await self._lock_holder(tx),
                    now - started,
                    lock_timeout,
                )
                next_report = now + _REPORT_EVERY
            await asyncio.sleep(_POLL_SECONDS)

    async def _lock_holder(self, tx: BaseDBAsyncClient) -> str:
        key = ADVISORY_LOCK_KEY & 0xFFFF_FFFF_FFFF_FFFF
        _, rows = await tx.execute_query(_LOCK_HOLDER, [key >> 32, key & 0xFFFF_FFFF])
        if not rows:
            return "another session (gone by now)"
        row = rows[0]
        application = f" {row['application']!r}" if row["application"] else ""
        return (
            f"PostgreSQL backend {row['pid']}{application} from {row['client']}, "
            f"in its transaction for {float(row['seconds']):.0f} s"
        )

    # -- the live schema ------------------------------------------------------------

    async def read_shape(self, db: BaseDBAsyncClient, table: str) -> TableShape | None:
        """The table the connection's ``search_path`` resolves: the one every query
        of the package reaches."""
        _, columns = await db.execute_query(_COLUMNS, [table])
        if not columns:
            return None  # no table (todo_app's tables always have columns)
        _, checks = await db.execute_query(_CHECKS, [table])
        _, indexes = await db.execute_query(_INDEXES, [table])
        primary_key: tuple[str, ...] = ()
        named: dict[str, str] = {}
        for row in indexes:
            if row["is_primary"]:
                primary_key = tuple(row["columns"])
                continue
            definition = index_definition(list(row["columns"]), bool(row["is_unique"]))
            named[str(row["name"])] = definition + (" WHERE ..." if row["partial"] else "")
        return TableShape(
            columns={
                str(r["name"]): column_definition(str(r["type"]), bool(r["not_null"]))
                for r in columns
            },
            primary_key=primary_key,
            indexes=named,
            checks=frozenset(str(row["name"]) for row in checks),
            defaults=frozenset(str(r["name"]) for r in columns if r["has_default"]),
        )

    async def aerich_columns(self, db: BaseDBAsyncClient) -> set[str] | None:
        _, rows = await db.execute_query(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass('aerich') "
            "AND attnum > 0 AND NOT attisdropped"
        )
        if not rows:
            _, present = await db.execute_query("SELECT to_regclass('aerich') IS NOT NULL AS p")
            return set() if present[0]["p"] else None
        return {str(row["attname"]) for row in rows}
