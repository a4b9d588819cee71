"""The repository's hot paths as fixed, parameterised SQL, run on Tortoise's own
connection (whatever name the host gave it, inside the host's transaction if there is
one).

Why not the ORM here: per operation, Tortoise builds its SQL with pypika, acquires a
pooled connection and resets it on release (one extra round trip), and instantiates
models the caller never sees. These statements are written once per dialect (with
``$n`` placeholders, which SQLite reads as ``?n``), each operation is one statement
where the ORM needed a transaction of several, and a checkout used only for them is
marked clean so the pool can skip its reset round trip (``todo_app.pool`` explains
why that is safe). The rules are unchanged: values are cleaned by ``rules.py`` before
they get here, and the database's CHECK constraints still hold.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Final

from tortoise.backends.base.client import (
    BaseDBAsyncClient,
    PoolConnectionWrapper,
    TransactionalDBClient,
)

from todo_app.pool import mark_clean

__all__ = ["COLUMNS", "Runner", "statement"]

TABLE: Final = "todo_app_task"
MAX_VERSION: Final = 2**31 - 1
COLUMNS: Final = (
    "id",
    "user_id",
    "title",
    "description",
    "status",
    "version",
    "created_at",
    "updated_at",
    "completed_at",
)
_SELECT: Final = ", ".join(f'"{column}"' for column in COLUMNS)
_PLACEHOLDER = re.compile(r"\$(\d+)")

# -- statements (PostgreSQL spelling; see statement()) --------------------------------

GET: Final = f'SELECT {_SELECT} FROM "{TABLE}" WHERE "id" = $1 AND "user_id" = $2'
INSERT: Final = f'INSERT INTO "{TABLE}" ({_SELECT}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)'
INSERT_IF_NEW: Final = INSERT + ' ON CONFLICT ("id") DO NOTHING RETURNING "id"'
GET_ANY_OWNER: Final = f'SELECT {_SELECT} FROM "{TABLE}" WHERE "id" = $1'
DELETE: Final = f'DELETE FROM "{TABLE}" WHERE "id" = $1 AND "user_id" = $2 RETURNING "id"'
DELETE_VERSION: Final = (
    f'DELETE FROM "{TABLE}" WHERE "id" = $1 AND "user_id" = $2 AND "version" = $3 RETURNING "id"'
)
DELETE_ALL: Final = f'DELETE FROM "{TABLE}" WHERE "user_id" = $1 RETURNING "id"'
# CAST(... AS TEXT) is the one spelling both dialects take for a UUID as text.
IDS_LIKE: Final = (
    f'SELECT "id" FROM "{TABLE}" WHERE "user_id" = $1 AND CAST("id" AS TEXT) LIKE $2 '
    'ORDER BY "id" LIMIT $3'
)
COUNTS: Final = (
    f'SELECT "status", count(*) AS "n" FROM "{TABLE}" WHERE "user_id" = $1 GROUP BY "status"'
)


@cache
def listing(*, newest: bool, with_status: bool, after: bool) -> str:
    """One page in ``(created_at, id)`` order. The row-value comparison and the ORDER
    BY match the ``(user_id, created_at, id)`` index exactly, so PostgreSQL walks the
    index from the cursor on: no sort, no scan of earlier pages."""
    where = ['"user_id" = $1']
    if with_status:
        where.append('"status" = $2')
    if after:
        first = len(where) + 1
        where.append(f'("created_at", "id") {"<" if newest else ">"} (${first}, ${first + 1})')
    direction = "DESC" if newest else "ASC"
    limit = f"${2 + (1 if with_status else 0) + (2 if after else 0)}"
    return (
        f'SELECT {_SELECT} FROM "{TABLE}" WHERE {" AND ".join(where)} '
        f'ORDER BY "created_at" {direction}, "id" {direction} LIMIT {limit}'
    )


@cache
def update(fields: frozenset[str], *, with_version: bool) -> str:
    """UPDATE of the given fields, only if one of them really changes; version and
    updated_at move, completed_at follows the status. Parameters: $1 id, $2 owner,
    $3 now, then the fields in sorted order, then the expected version."""
    names = sorted(fields)
    sets, changed = [], []
    for offset, name in enumerate(names, start=4):
        sets.append(f'"{name}" = ${offset}')
        changed.append(f'"{name}" IS DISTINCT FROM ${offset}')
    if "status" in fields:
        status = f"${4 + names.index('status')}"
        sets.append(
            f"\"completed_at\" = CASE WHEN {status} = 'completed' "
            'THEN COALESCE("completed_at", $3) ELSE NULL END'
        )
    sets += ['"version" = "version" + 1', '"updated_at" = $3']
    # The version column is 32-bit: a task at its last version takes no more writes
    # (on SQLite too, whose integers would silently grow past it).
    where = [
        '"id" = $1',
        '"user_id" = $2',
        f'"version" < {MAX_VERSION}',
        f"({' OR '.join(changed)})",
    ]
    if with_version:
        where.append(f'"version" = ${4 + len(names)}')
    return f'UPDATE "{TABLE}" SET {", ".join(sets)} WHERE {" AND ".join(where)} RETURNING {_SELECT}'


@cache
def statement(sql: str, dialect: str) -> str:
    """``sql`` in the dialect's spelling: SQLite numbers its parameters ``?n``."""
    if dialect == "postgres":
        return sql
    return _PLACEHOLDER.sub(r"?\1", sql).replace(" IS DISTINCT FROM ", " IS NOT ")


class Runner:
    """Runs the statements above on a Tortoise connection, in its dialect."""

    __slots__ = ("db", "dialect")

    def __init__(self, db: BaseDBAsyncClient) -> None:
        self.db = db
        self.dialect: str = db.capabilities.dialect

    def value(self, value: Any) -> Any:
        """A Python value as this dialect's driver takes it."""
        if self.dialect == "sqlite":
            if isinstance(value, uuid.UUID):
                return str(value)
            if isinstance(value, dt.datetime):
                # As Tortoise writes it: UTC, ISO text with its offset, space-separated.
                return value.astimezone(dt.UTC).isoformat(" ")
        return value

    async def fetch(
        self, sql: str, *args: Any, idempotent: bool = False
    ) -> Sequence[Mapping[str, Any]]:
        """Rows of ``sql``. An ``idempotent`` statement (a read, or an insert that
        does nothing the second time) is tried once more on another connection if
        its connection turns out dead: a connection that died idle in the pool is
        only noticed when used, and that must not fail a request."""
        values = [self.value(arg) for arg in args]
        if not idempotent or self.dialect != "postgres":
            return await self._fetch(sql, values)
        try:
            return await self._fetch(sql, values)
        except Exception as exc:
            if not _connection_died(exc):
                raise
            return await self._fetch(sql, values)

    async def _fetch(self, sql: str, values: list[Any]) -> Sequence[Mapping[str, Any]]:
        pool = getattr(self.db, "_pool", None) if self.dialect == "postgres" else None
        if pool is not None and not isinstance(self.db, TransactionalDBClient):
            # Straight to the client's asyncpg pool (Tortoise's wrapper around it costs
            # as much as the pool itself); outside a transaction only.
            connection = await pool.acquire()
            try:
                mark_clean(connection)
                rows: Sequence[Mapping[str, Any]] = await connection.fetch(sql, *values)
                return rows
            finally:
                await pool.release(connection)
        wrapper = self.db.acquire_connection()
        async with wrapper as connection:
            if self.dialect == "postgres":
                if isinstance(wrapper, PoolConnectionWrapper):
                    mark_clean(connection)  # our own checkout, only our statements
                fetched: Sequence[Mapping[str, Any]] = await connection.fetch(sql, *values)
                return fetched
            return await connection.execute_fetchall(statement(sql, "sqlite"), values)  # type: ignore[no-any-return]

    async def fetchrow(
        self, sql: str, *args: Any, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        rows = await self.fetch(sql, *args, idempotent=idempotent)
        return rows[0] if rows else None


def _connection_died(exc: BaseException) -> bool:
    import asyncpg

    if isinstance(exc, asyncpg.ConnectionDoesNotExistError | ConnectionResetError):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)
