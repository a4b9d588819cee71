"""pytest fixtures for testing code that uses todo_app (ours and a host's).

Enable with ``pytest_plugins = ["todo_app.testing"]`` in a ``conftest.py``.

* ``todo_sqlite`` -- a fresh in-memory SQLite database per test, built by applying
  the real migrations (so the CHECK constraints are there, as in production).
* ``todo_postgres`` -- a PostgreSQL database created for the test session on the
  server of ``TEST_DATABASE_URL``, migrated once, emptied before each test and
  dropped at the end. If the server is unreachable the test *fails*; run pytest
  with ``--no-postgres`` to deselect PostgreSQL tests explicitly instead.
* ``todo_db`` -- both of the above: a test using it runs once per dialect.
* ``fresh_database_url`` -- a factory of empty, unmigrated databases (for
  migration tests), dropped at the end of the test.

Each dialect gets its own connection name, because Tortoise caches compiled SQL per
connection name for the whole process; none of them is called "default", which
proves the package works on whatever name a host chooses.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import TortoiseContext

from todo_app.config import tortoise_config
from todo_app.migrator import upgrade
from todo_app.settings import DatabaseURL, get_settings

__all__ = ["TodoDatabase"]

SQLITE_CONNECTION = "todo_sqlite"
POSTGRES_CONNECTION = "todo_postgres"


@dataclass(frozen=True)
class TodoDatabase:
    """What a test gets: the dialect, its URL and the migrated connection."""

    dialect: str
    url: DatabaseURL
    connection: BaseDBAsyncClient
    context: TortoiseContext


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("todo_app")
    group.addoption(
        "--no-postgres",
        action="store_true",
        default=False,
        help="Deselect tests that need PostgreSQL (they fail, not skip, when it is down).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs the PostgreSQL server of TEST_DATABASE_URL")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("todo_db") == "postgres":
            item.add_marker(pytest.mark.postgres)
    if not config.getoption("--no-postgres"):
        return
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        (deselected if item.get_closest_marker("postgres") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def _admin_dsn(url: DatabaseURL) -> dict[str, Any]:
    """asyncpg keyword arguments for the server of ``url`` (via the package's own
    translation, so the tests connect exactly as the library does)."""
    credentials = dict(url.connection(pool_min_size=1, pool_max_size=1)["credentials"])
    password = credentials.pop("password", None)
    credentials.pop("minsize", None)
    credentials.pop("maxsize", None)
    credentials.pop("application_name", None)
    credentials.pop("reset", None)  # a pool option, not a connection one
    return {**credentials, "password": password() if callable(password) else password}


class PostgresServer:
    """Creates and drops uniquely named databases on the test server."""

    def __init__(self, url: DatabaseURL) -> None:
        self.url = url
        self.created: list[str] = []

    async def _admin(self) -> asyncpg.Connection:
        try:
            connection: asyncpg.Connection = await asyncpg.connect(**_admin_dsn(self.url))
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.fail(
                f"PostgreSQL at {self.url} is unreachable ({type(exc).__name__}: {exc}). "
                "Start it, set TEST_DATABASE_URL, or run pytest --no-postgres.",
                pytrace=False,
            )
        return connection

    async def create(self, prefix: str = "todo_app_test") -> DatabaseURL:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        admin = await self._admin()
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        self.created.append(name)
        return self.url.with_database(name)

    async def drop(self, url: DatabaseURL) -> None:
        name = url.database
        admin = await self._admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        with contextlib.suppress(ValueError):
            self.created.remove(str(name))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_server() -> AsyncIterator[PostgresServer]:
    """The PostgreSQL server of ``TEST_DATABASE_URL``; drops what tests left behind."""
    server = PostgresServer(get_settings().test_database_url)
    yield server
    for name in list(server.created):
        await server.drop(server.url.with_database(name))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _postgres_session_url(postgres_server: PostgresServer) -> AsyncIterator[DatabaseURL]:
    url = await postgres_server.create()
    async with _context(url, POSTGRES_CONNECTION) as db:
        await upgrade(db.connection)
    yield url
    await postgres_server.drop(url)


@contextlib.asynccontextmanager
async def _context(url: DatabaseURL, connection_name: str) -> AsyncIterator[TodoDatabase]:
    context = TortoiseContext()
    async with context:
        await context.init(config=tortoise_config(url, connection_name=connection_name))
        connection = context.connections.get(connection_name)
        yield TodoDatabase(url.dialect, url, connection, context)


@pytest_asyncio.fixture(loop_scope="session")
async def todo_sqlite() -> AsyncIterator[TodoDatabase]:
    """A migrated in-memory SQLite database, new for each test."""
    async with _context(DatabaseURL("sqlite://:memory:"), SQLITE_CONNECTION) as db:
        await upgrade(db.connection)
        yield db


@pytest_asyncio.fixture(loop_scope="session")
async def todo_postgres(_postgres_session_url: DatabaseURL) -> AsyncIterator[TodoDatabase]:
    """The session's migrated PostgreSQL database, emptied for this test."""
    async with _context(_postgres_session_url, POSTGRES_CONNECTION) as db:
        await db.connection.execute_script('TRUNCATE "todo_app_task"')
        yield db


@pytest.fixture(params=["sqlite", "postgres"])
def todo_db(request: pytest.FixtureRequest) -> TodoDatabase:
    """A migrated, empty database: the test runs once on SQLite, once on PostgreSQL."""
    db: TodoDatabase = request.getfixturevalue(f"todo_{request.param}")
    return db


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_database_url(
    tmp_path: Path, postgres_server: PostgresServer
) -> AsyncIterator[Callable[[str], Awaitable[DatabaseURL]]]:
    """``await fresh_database_url("sqlite" | "postgres")``: an empty database URL.

    SQLite databases are files under pytest's ``tmp_path`` (migrations are tested
    across connections, which ``:memory:`` cannot survive); PostgreSQL databases are
    created on the test server and dropped after the test.
    """
    made: list[DatabaseURL] = []

    async def make(dialect: str) -> DatabaseURL:
        if dialect == "sqlite":
            url = DatabaseURL(f"sqlite://{tmp_path / f'todo-{uuid.uuid4().hex[:8]}.sqlite3'}")
        else:
            url = await postgres_server.create("todo_app_fresh")
            made.append(url)
        return url

    yield make
    for url in made:
        await postgres_server.drop(url)
