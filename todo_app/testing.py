"""pytest fixtures for testing code that uses todo_app (ours and a host's).

Enable with ``pytest_plugins = ["todo_app.testing"]`` in a ``conftest.py``.

* ``todo_sqlite`` -- a fresh in-memory SQLite database per test, built by applying
  the real migrations (so the CHECK constraints are there, as in production).
* ``todo_postgres`` -- a PostgreSQL database created for the test session on the
  server of ``TEST_DATABASE_URL``, migrated once, emptied before each test and
  dropped at the end. If the server is unreachable the test *fails*; run pytest
  with ``--no-postgres`` to deselect PostgreSQL tests explicitly instead.
* ``todo_db`` -- both of the above: a test using it runs once per dialect.
* ``fresh_database_url`` -- a factory of empty, unmigrated databases of either
  dialect (for migration tests), dropped at the end of the test; ``fresh_sqlite_url``
  -- the same for SQLite only, which ``--no-postgres`` keeps.
* ``todo_sqlite_url`` -- the URL of a migrated SQLite *file*, new for each test, for
  an app that opens its own connections: a test client that runs the app (and its
  lifespan) on another event loop, where an in-memory database would be a new,
  empty one.
* ``todo_extra_apps`` -- override it (session scope) to get the host's own Tortoise
  apps into the same databases: ``{"shop": ["shop.models"]}``. Their tables are made
  by Tortoise's schema generator after todo_app's migrations.

Tortoise connections belong to the event loop that opened them, so the per-test
fixtures open theirs on the loop the test runs on: their loop scope is the host's
``asyncio_default_test_loop_scope`` (pytest-asyncio's default: one loop per test).
Session-wide work (CREATE DATABASE, migrate, DROP) holds no connection across tests
and runs on a private loop in a worker thread, whatever loops the host uses.

PostgreSQL databases are named ``<prefix>_<random>`` (``todo_app_test`` unless
``--todo-db-prefix`` or the ``todo_db_prefix`` ini option says otherwise): a CI
server shared by several projects or runs can tell (and clean up) its own.

Each dialect gets its own connection name, because Tortoise caches compiled SQL per
connection name for the whole process; none of them is called "default", which
proves the package works on whatever name a host chooses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import re
import types
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar, cast

import pytest
import pytest_asyncio
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import TortoiseContext
from tortoise.models import Model

from todo_app.compat import require
from todo_app.config import APP_LABEL, tortoise_config
from todo_app.dialects.postgres.connect import create_database, drop_database
from todo_app.dsn import DatabaseURL
from todo_app.errors import TaskStoreUnavailable
from todo_app.migrator import upgrade
from todo_app.models import Task
from todo_app.settings import get_settings

__all__ = ["PostgresServer", "TodoDatabase"]

SQLITE_CONNECTION = "todo_sqlite"
POSTGRES_CONNECTION = "todo_postgres"
#: Fixtures that hold connections and so must run on the test's own loop.
_LOOP_BOUND = ("todo_sqlite", "todo_postgres")
#: Fixtures whose mere use means PostgreSQL (``todo_postgres`` depends on the first).
_POSTGRES_FIXTURES = frozenset({"postgres_server", "_postgres_session_url", "todo_postgres"})
_NO_POSTGRES = "--no-postgres"
_PREFIX_OPTION = "--todo-db-prefix"
_PREFIX_INI = "todo_db_prefix"
_DEFAULT_PREFIX = "todo_app_test"
#: A prefix PostgreSQL takes unquoted and leaves room for ``_fresh_<12 hex>`` in 63.
_PREFIX_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,40}")

T = TypeVar("T")
LoopScope = Literal["session", "package", "module", "class", "function"]
ExtraApps = Mapping[str, list[str]]


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
        _NO_POSTGRES,
        action="store_true",
        default=False,
        help="Deselect tests that need PostgreSQL (they fail, not skip, when it is down).",
    )
    group.addoption(
        _PREFIX_OPTION,
        default=None,
        metavar="PREFIX",
        help=f"Name the test databases PREFIX_<random> (default: the {_PREFIX_INI} ini "
        f"option, else {_DEFAULT_PREFIX}).",
    )
    parser.addini(_PREFIX_INI, f"Prefix of the test databases' names ({_DEFAULT_PREFIX}).")


def _database_prefix(config: pytest.Config) -> str:
    prefix = config.getoption(_PREFIX_OPTION) or config.getini(_PREFIX_INI) or _DEFAULT_PREFIX
    if not isinstance(prefix, str) or not _PREFIX_PATTERN.fullmatch(prefix):
        raise pytest.UsageError(
            f"{_PREFIX_OPTION} / {_PREFIX_INI}: {prefix!r} is not a usable database name "
            "prefix (lowercase letters, digits and _, not starting with a digit, at most 41)"
        )
    return prefix


def pytest_configure(config: pytest.Config) -> None:
    _database_prefix(config)  # a bad prefix stops the run before any test
    config.addinivalue_line("markers", "postgres: needs the PostgreSQL server of TEST_DATABASE_URL")
    config.pluginmanager.register(
        _loop_bound_fixtures(_test_loop_scope(config)), f"{__name__}.loop_bound"
    )


def _test_loop_scope(config: pytest.Config) -> LoopScope:
    # pytest-asyncio has validated the value by now.
    return cast(LoopScope, config.getini("asyncio_default_test_loop_scope") or "function")


def _needs_postgres(item: pytest.Item) -> bool:
    """Whether ``item`` reaches PostgreSQL through a marker or any of our fixtures.

    ``fresh_database_url`` serves both dialects and connects only when asked for
    PostgreSQL, which collection cannot see: a test using it counts as a PostgreSQL
    test unless one of its parameters is ``"sqlite"`` (the SQLite half of a
    dialect-parametrised test). SQLite-only tests use ``fresh_sqlite_url``.
    """
    if item.get_closest_marker("postgres"):
        return True
    names = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    params: dict[str, Any] = dict(callspec.params) if callspec is not None else {}
    if params.get("todo_db") == "postgres" or names & _POSTGRES_FIXTURES:
        return True
    return "fresh_database_url" in names and "sqlite" not in params.values()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needing = [item for item in items if _needs_postgres(item)]
    for item in needing:
        item.add_marker(pytest.mark.postgres)
    if not config.getoption(_NO_POSTGRES) or not needing:
        return
    deselected = set(needing)
    config.hook.pytest_deselected(items=needing)
    items[:] = [item for item in items if item not in deselected]


def _refuse_under_no_postgres(config: pytest.Config, what: str) -> None:
    """A test that reaches PostgreSQL in a way collection could not see (a dynamic
    ``getfixturevalue``, ``fresh_database_url("postgres")`` in a SQLite variant)
    fails rather than connect or skip: marking it is the fix."""
    if config.getoption(_NO_POSTGRES):
        pytest.fail(
            f"this test uses PostgreSQL ({what}) although pytest runs with --no-postgres: "
            "mark it @pytest.mark.postgres so that --no-postgres deselects it",
            pytrace=False,
        )


def _run_aside(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a private event loop in a worker thread.

    For session-wide work whose connections live only as long as the call: it is
    independent of the host's loop scopes, and works even if a loop is running.
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="todo_app") as pool:
        return pool.submit(asyncio.run, coro).result()


class PostgresServer:
    """Creates and drops uniquely named databases on the test server.

    Every call opens and closes its own connection, so it may run on any loop.
    """

    def __init__(self, url: DatabaseURL, prefix: str = _DEFAULT_PREFIX) -> None:
        self.url = url
        self.prefix = prefix
        self.created: list[str] = []

    def _unreachable(self, exc: TaskStoreUnavailable) -> NoReturn:
        pytest.fail(
            f"PostgreSQL at {self.url} is unreachable ({exc}). "
            "Start it, set TEST_DATABASE_URL, or run pytest --no-postgres.",
            pytrace=False,
        )

    async def create(self, kind: str = "") -> DatabaseURL:
        """A new empty database, ``<prefix>[_<kind>]_<random>``."""
        name = "_".join(filter(None, (self.prefix, kind, uuid.uuid4().hex[:12])))
        try:
            await create_database(self.url, name)
        except TaskStoreUnavailable as exc:
            self._unreachable(exc)
        self.created.append(name)
        return self.url.with_database(name)

    async def drop(self, url: DatabaseURL) -> None:
        name = str(url.database)
        try:
            await drop_database(self.url, name)
        except TaskStoreUnavailable as exc:
            self._unreachable(exc)
        with contextlib.suppress(ValueError):
            self.created.remove(name)

    async def drop_all(self) -> None:
        for name in list(self.created):
            await self.drop(self.url.with_database(name))


@pytest.fixture(scope="session")
def todo_extra_apps() -> ExtraApps:
    """The host's Tortoise apps to load next to todo_app: ``{label: [modules]}``.

    Override it in a ``conftest.py`` (session scope) so host models share the
    migrated databases; the labels are the ones the models' relations use.
    """
    return {}


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """The PostgreSQL server of ``TEST_DATABASE_URL``; drops what tests left behind."""
    _refuse_under_no_postgres(request.config, "postgres_server")
    server = PostgresServer(get_settings().test_database_url, _database_prefix(request.config))
    yield server
    _run_aside(server.drop_all())


@pytest.fixture(scope="session")
def _postgres_session_url(
    postgres_server: PostgresServer, todo_extra_apps: ExtraApps
) -> Iterator[DatabaseURL]:
    """The session's database, migrated once (with the host's tables) on a private loop."""

    async def create() -> DatabaseURL:
        url = await postgres_server.create()
        async with _context(url, POSTGRES_CONNECTION, todo_extra_apps) as db:
            await _build_schema(db, todo_extra_apps)
        return url

    url = _run_aside(create())
    yield url
    _run_aside(postgres_server.drop(url))


def _config(url: DatabaseURL, connection_name: str, extra_apps: ExtraApps) -> dict[str, Any]:
    config = tortoise_config(url, connection_name=connection_name)
    for label, modules in extra_apps.items():
        if label == APP_LABEL:
            raise pytest.UsageError(f"todo_extra_apps: the app label {label!r} is todo_app's own")
        config["apps"][label] = {"models": list(modules), "default_connection": connection_name}
    return config


@contextlib.asynccontextmanager
async def _context(
    url: DatabaseURL, connection_name: str, extra_apps: ExtraApps
) -> AsyncIterator[TodoDatabase]:
    """A Tortoise context on the running loop; its connections close on the way out,
    also when the test failed or was interrupted (an open aiosqlite connection keeps
    a non-daemon thread, and with it the pytest process, alive)."""
    context = TortoiseContext()
    async with context:
        await context.init(config=_config(url, connection_name, extra_apps))
        connection = context.connections.get(connection_name)
        yield TodoDatabase(url.dialect, url, connection, context)


def _extra_models(db: TodoDatabase, extra_apps: ExtraApps) -> list[type[Model]]:
    apps = db.context.apps
    assert apps is not None, "the context is initialised"
    return [model for label in extra_apps for model in apps[label].values()]


async def _build_schema(db: TodoDatabase, extra_apps: ExtraApps) -> None:
    """todo_app's real migrations first, then the host's tables from its models.

    Only the host's models go through Tortoise's schema generator: run on every
    model, it would also add its own versions of todo_app's indexes.
    """
    await upgrade(db.connection)
    models = _extra_models(db, extra_apps)
    if not models:
        return
    require("tortoise.schema_generator_hooks")  # HostModelsOnly's overrides
    own_tables = {model._meta.db_table for model in models}
    base: type[Any] = db.connection.schema_generator

    class HostModelsOnly(base):  # type: ignore[misc]
        def _get_models_to_create(self) -> list[type[Model]]:
            for model in models:
                model._check()
            return models

        def _get_table_sql(self, model: type[Model], safe: bool = True) -> dict[str, Any]:
            # todo_app's table exists already: a reference to it orders nothing.
            table: dict[str, Any] = super()._get_table_sql(model, safe)
            table["references"] = {ref for ref in table["references"] if ref in own_tables}
            return table

    generator = HostModelsOnly(db.connection)
    await generator.generate_from_string(generator.get_create_schema_sql(safe=False))


def _require_loop_scope(request: pytest.FixtureRequest, loop_scope: str) -> None:
    """A test marked with another loop scope would use our connections from a loop
    they do not belong to: say so instead of failing obscurely (or hanging)."""
    marker = request.node.get_closest_marker("asyncio")
    wanted = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope") if marker else None
    if wanted and wanted != loop_scope:
        pytest.fail(
            f"{request.fixturename} opens its connections on the {loop_scope}-scoped loop "
            f"(asyncio_default_test_loop_scope) but this test runs on a {wanted}-scoped one: "
            "drop its loop_scope or set asyncio_default_test_loop_scope to match",
            pytrace=False,
        )


def _loop_bound_fixtures(loop_scope: LoopScope) -> types.ModuleType:
    """The per-test fixtures, on the loop scope the host's tests run with.

    Built at configure time because pytest-asyncio fixes a fixture's loop scope
    when it is declared, and only the host's ini says which loop its tests get.
    """

    @pytest_asyncio.fixture(loop_scope=loop_scope)
    async def todo_sqlite(
        request: pytest.FixtureRequest, todo_extra_apps: ExtraApps
    ) -> AsyncIterator[TodoDatabase]:
        """A migrated in-memory SQLite database, new for each test."""
        _require_loop_scope(request, loop_scope)
        async with _context(
            DatabaseURL("sqlite://:memory:"), SQLITE_CONNECTION, todo_extra_apps
        ) as db:
            await _build_schema(db, todo_extra_apps)
            yield db

    @pytest_asyncio.fixture(loop_scope=loop_scope)
    async def todo_postgres(
        request: pytest.FixtureRequest,
        _postgres_session_url: DatabaseURL,
        todo_extra_apps: ExtraApps,
    ) -> AsyncIterator[TodoDatabase]:
        """The session's migrated PostgreSQL database, emptied for this test."""
        _require_loop_scope(request, loop_scope)
        async with _context(_postgres_session_url, POSTGRES_CONNECTION, todo_extra_apps) as db:
            tables = [Task._meta.db_table] + [
                model._meta.db_table for model in _extra_models(db, todo_extra_apps)
            ]
            quoted = ", ".join(f'"{table}"' for table in tables)
            await db.connection.execute_script(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
            yield db

    module = types.ModuleType(f"{__name__}.loop_bound")
    module.todo_sqlite = todo_sqlite  # type: ignore[attr-defined]
    module.todo_postgres = todo_postgres  # type: ignore[attr-defined]
    return module


@pytest.fixture(params=["sqlite", "postgres"])
def todo_db(request: pytest.FixtureRequest) -> TodoDatabase:
    """A migrated, empty database: the test runs once on SQLite, once on PostgreSQL."""
    db: TodoDatabase = request.getfixturevalue(f"todo_{request.param}")
    return db


@pytest.fixture
def todo_sqlite_url(
    fresh_sqlite_url: Callable[[], DatabaseURL], todo_extra_apps: ExtraApps
) -> DatabaseURL:
    """The URL of a migrated SQLite file (with the host's tables), new for each test.

    For an app under test that opens its own connections, e.g. through
    ``todo_app.lifespan`` run by a test client on an event loop of its own. An
    in-memory database (``todo_sqlite``) lives on one connection: on another loop
    Tortoise re-opens it, empty. Migrated on a private loop: any test loop may use it.
    """
    url = fresh_sqlite_url()

    async def build() -> None:
        async with _context(url, SQLITE_CONNECTION, todo_extra_apps) as db:
            await _build_schema(db, todo_extra_apps)

    _run_aside(build())
    return url


@pytest.fixture
def fresh_sqlite_url(tmp_path: Path) -> Callable[[], DatabaseURL]:
    """``fresh_sqlite_url()``: the URL of a new, empty SQLite file under ``tmp_path``.

    For SQLite-only tests: unlike ``fresh_database_url`` it cannot reach PostgreSQL,
    so ``--no-postgres`` keeps them. Files, not ``:memory:``: migration tests open
    several connections to one database.
    """
    return lambda: DatabaseURL(f"sqlite://{tmp_path / f'todo-{uuid.uuid4().hex[:8]}.sqlite3'}")


@pytest.fixture
def fresh_database_url(
    request: pytest.FixtureRequest, fresh_sqlite_url: Callable[[], DatabaseURL]
) -> Iterator[Callable[[str], Awaitable[DatabaseURL]]]:
    """``await fresh_database_url("sqlite" | "postgres")``: an empty database URL.

    SQLite databases come from ``fresh_sqlite_url``; PostgreSQL databases are created
    on the test server, only when asked for, and dropped after the test.
    """
    server: PostgresServer | None = None

    async def make(dialect: str) -> DatabaseURL:
        nonlocal server
        if dialect == "sqlite":
            return fresh_sqlite_url()
        _refuse_under_no_postgres(request.config, 'fresh_database_url("postgres")')
        server = server or PostgresServer(
            get_settings().test_database_url, _database_prefix(request.config)
        )
        return await server.create("fresh")

    yield make
    if server is not None and server.created:
        _run_aside(server.drop_all())
