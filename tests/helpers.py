"""Helpers shared by the tests: the dialect list, raw SQL that bypasses the package, and
the address of the PostgreSQL server TEST_DATABASE_URL names."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from todo_app.dsn import DatabaseURL
from todo_app.testing import TodoDatabase

#: Every dialect a parametrised test runs on; ``--no-postgres`` deselects PostgreSQL's.
DIALECTS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
#: The ``fresh_database_url`` fixture's type.
FreshURL = Callable[[str], Awaitable[DatabaseURL]]
#: libpq's defaults, for a TEST_DATABASE_URL that leaves them out.
_LIBPQ_HOST = "localhost"
_LIBPQ_PORT = 5432


def server_address(url: DatabaseURL) -> tuple[str, int]:
    """Host (or socket directory) and port of ``url``'s first server: where a test's
    proxy forwards to (TEST_DATABASE_URL, not an address assumed)."""
    params = url.params()
    host = (params.get("host") or _LIBPQ_HOST).split(",")[0]
    port = (params.get("port") or str(_LIBPQ_PORT)).split(",")[0]
    return host, int(port or _LIBPQ_PORT)


def postgres_url(
    url: DatabaseURL,
    *,
    password: str | None = None,
    address: tuple[str, int] | None = None,
) -> str:
    """``url`` (its user, database and other parameters) with ``password`` in its user
    info, and reached at ``address`` (a proxy's) instead of its own server if given."""
    params = url.params()
    host, port = address or server_address(url)
    user = quote(params.pop("user", None) or "postgres", safe="")
    own = params.pop("password", None)
    secret = own if password is None else password
    auth = f"{user}:{quote(secret, safe='')}" if secret is not None else user
    database = quote(params.pop("dbname", None) or "postgres", safe="")
    for key in ("host", "hostaddr", "port"):
        params.pop(key, None)
    if host.startswith("/"):  # a socket directory goes in the query
        params.update(host=host, port=str(port))
        netloc = ""
    else:
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{auth}@{netloc}/{database}{query}"


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


async def cli(url: DatabaseURL, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The CLI in-process as user alice (in a thread: it runs its own event loop): exit
    code and output."""
    import asyncio

    from todo_app.cli import main

    def run() -> int:
        try:
            return main(["--db", url.reveal(), "--user", "alice", *args])
        except SystemExit as exc:
            return int(exc.code or 0)

    code = await asyncio.to_thread(run)
    out, err = capsys.readouterr()
    return code, out + err
