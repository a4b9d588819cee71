"""Helpers shared by the tests: the dialect list, and raw SQL that bypasses the package."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from todo_app.settings import DatabaseURL
from todo_app.testing import TodoDatabase

#: Every dialect a parametrised test runs on; ``--no-postgres`` deselects PostgreSQL's.
DIALECTS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
#: The ``fresh_database_url`` fixture's type.
FreshURL = Callable[[str], Awaitable[DatabaseURL]]


def placeholders(db: TodoDatabase, count: int) -> list[str]:
    return [f"${n}" for n in range(1, count + 1)] if db.dialect == "postgres" else ["?"] * count


def _db_value(db: TodoDatabase, value: Any) -> Any:
    if db.dialect == "sqlite":
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, dt.datetime):
            return value.isoformat(" ")  # as Tortoise writes it
    return value


async def raw_insert(db: TodoDatabase, **overrides: Any) -> uuid.UUID:
    """INSERT a row with plain SQL (no model, no validation): what the CHECKs see."""
    now = dt.datetime.now(dt.UTC)
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "user_id": "owner",
        "title": "title",
        "description": None,
        "status": "pending",
        "created_at": now,
        "updated_at": now,
    }
    row.update(overrides)
    columns = ", ".join(f'"{name}"' for name in row)
    marks = ", ".join(placeholders(db, len(row)))
    await db.connection.execute_query(
        f'INSERT INTO "todo_app_task" ({columns}) VALUES ({marks})',
        [_db_value(db, value) for value in row.values()],
    )
    return uuid.UUID(str(row["id"]))


async def row_count(db: TodoDatabase) -> int:
    _, rows = await db.connection.execute_query('SELECT count(*) AS n FROM "todo_app_task"')
    return int(rows[0]["n"])


def pool_releases(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Connections given back through ``asyncpg.Pool.release`` from now on."""
    import asyncpg

    released: list[Any] = []
    release = asyncpg.Pool.release

    async def counting(self: Any, connection: Any, **kwargs: Any) -> None:
        released.append(connection)
        await release(self, connection, **kwargs)

    monkeypatch.setattr(asyncpg.Pool, "release", counting)
    return released


async def plain_sql(url: DatabaseURL, sql: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` on ``url`` with the bare driver, no todo_app or Tortoise in between:
    what the database itself holds. Rows of the last statement (none for a script)."""
    if url.dialect == "sqlite":
        import sqlite3

        db = sqlite3.connect(url.reveal().removeprefix("sqlite://"))
        try:
            if ";" in sql.strip().rstrip(";"):
                db.executescript(sql)
                return []
            rows = [tuple(row) for row in db.execute(sql)]
            db.commit()
            return rows
        finally:
            db.close()
    import asyncpg

    connection = await asyncpg.connect(url.reveal())
    try:
        if ";" in sql.strip().rstrip(";"):
            await connection.execute(sql)
            return []
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


async def bookkeeping(url: DatabaseURL) -> list[str]:
    """todo_app's rows of the ``aerich`` table in id order ([] without the table)."""
    if url.dialect == "sqlite":
        found = await plain_sql(url, "SELECT name FROM sqlite_master WHERE name = 'aerich'")
    else:
        found = await plain_sql(url, "SELECT 1 WHERE to_regclass('aerich') IS NOT NULL")
    if not found:
        return []
    rows = await plain_sql(
        url, 'SELECT "version" FROM "aerich" WHERE "app" = \'todo_app\' ORDER BY "id"'
    )
    return [str(row[0]) for row in rows]
